import { randomBytes, randomUUID } from 'node:crypto';
import type { DatabaseHandle } from '../../db/database.js';
import { recordChange } from '../../db/changes.js';
import { ValidationError } from '../../errors.js';
import { assertValid } from '../../http/validation.js';
import { digestHa1 } from '../../security/passwords.js';
import type { Actor } from '../common/actor.js';
import { requireOrganization } from '../organizations/service.js';
import { requireUser } from '../users/service.js';
import { DeviceRepository, type Device } from './repository.js';
import { NewDeviceSchema, type NewDeviceInput } from './schemas.js';

export interface SipAccount {
  /** Digest user name, registered as sip:{username}@{domain}. */
  username: string;
  /** Shown once; only the digest HA1 values are stored. */
  password: string;
  domain: string;
  realm: string;
}

/** A new SIP password: 24 characters of base64url (144 bits). */
export function newSipPassword(): string {
  return randomBytes(18).toString('base64url');
}

export async function createDevice(
  database: DatabaseHandle,
  actor: Actor,
  domain: string,
  userId: string,
  input: unknown,
  prefix = 'body',
): Promise<{ device: Device; sip?: SipAccount }> {
  const data = assertValid<NewDeviceInput>(NewDeviceSchema, input, prefix);
  if (data.deviceType === 'MOBILE' && !data.number) {
    throw new ValidationError([
      { field: `${prefix}.number`, message: 'is required for a MOBILE device (its E.164 number)' },
    ]);
  }
  const organization = await requireOrganization(database, domain);
  const user = await requireUser(database, organization, userId);
  let sip: SipAccount | undefined;
  let deviceKey: string;
  if (data.deviceType === 'MOBILE') {
    deviceKey = data.number!;
  } else {
    deviceKey = randomUUID();
    const password = newSipPassword();
    const username = `${user.userId}-${deviceKey.slice(0, 8)}`;
    sip = { username, password, domain: organization.domain, realm: organization.domain };
  }
  const device = await database.db.transaction().execute(async (trx) => {
    const created = await new DeviceRepository(trx).create(organization.id, {
      userId: user.id,
      kind: data.deviceType,
      deviceKey,
      name: data.deviceName ?? defaultName(data.deviceType),
      icon: data.deviceIcon ?? 'DEFAULT',
      sipUsername: sip?.username ?? null,
      ha1Md5: sip ? digestHa1(sip.username, sip.realm, sip.password, 'MD5') : null,
      ha1Sha256: sip ? digestHa1(sip.username, sip.realm, sip.password, 'SHA-256') : null,
      number: data.number ?? null,
    });
    const summary = {
      deviceId: created.deviceId,
      deviceType: created.kind,
      user: `${user.userId}@${organization.domain}`,
    };
    await recordChange(trx, {
      organizationId: organization.id,
      actor,
      action: 'device.created',
      entity: 'device',
      entityId: created.deviceId,
      data: summary,
      event: { type: 'device.created', userId: user.id, data: summary },
    });
    return created;
  });
  return sip ? { device, sip } : { device };
}

function defaultName(kind: Device['kind']): string {
  return kind === 'MOBILE' ? 'Mobile' : kind === 'DESKPHONE' ? 'Desk phone' : 'Softphone';
}
