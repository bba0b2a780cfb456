import { randomBytes, randomUUID } from 'node:crypto';
import type { DatabaseHandle } from '../../db/database.js';
import { recordChange } from '../../db/changes.js';
import { ConflictError, NotFoundError, ValidationError } from '../../errors.js';
import { assertValid } from '../../http/validation.js';
import { digestHa1 } from '../../security/passwords.js';
import type { Actor } from '../common/actor.js';
import { requireOrganization } from '../organizations/service.js';
import { requireUser } from '../users/service.js';
import { DeviceRepository, type Device } from './repository.js';
import {
  NewDeviceSchema,
  UpdateDeviceSchema,
  type NewDeviceInput,
  type UpdateDeviceInput,
} from './schemas.js';
import type { Organization } from '../organizations/repository.js';
import type { User } from '../users/repository.js';
import { RegistrationRepository } from '../registrations/repository.js';

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

/** The device `deviceId` of `user`, or 404 (a device of another user is not found either). */
export async function requireDevice(
  database: DatabaseHandle,
  organization: Organization,
  user: User,
  deviceId: string,
): Promise<Device> {
  const d = await new DeviceRepository(database.db).get(organization.id, deviceId);
  if (!d || d.userId !== user.id)
    throw new NotFoundError(`no device ${deviceId} of ${user.userId}@${organization.domain}`);
  return d;
}

export async function updateDevice(
  database: DatabaseHandle,
  actor: Actor,
  organization: Organization,
  user: User,
  deviceId: string,
  input: unknown,
  prefix = 'body',
): Promise<Device> {
  const data = assertValid<UpdateDeviceInput>(UpdateDeviceSchema, input ?? {}, prefix);
  const device = await requireDevice(database, organization, user, deviceId);
  if (data.deviceId !== undefined && data.deviceId !== device.deviceId) {
    throw new ValidationError([
      { field: `${prefix}.deviceId`, message: `cannot be changed (is ${device.deviceId}); leave it out` },
    ]);
  }
  if (data.deviceType !== undefined && data.deviceType !== device.kind) {
    throw new ValidationError([
      {
        field: `${prefix}.deviceType`,
        message: `cannot be changed (is ${device.kind}); create a new device instead`,
      },
    ]);
  }
  if (device.kind === 'MOBILE' && data.number !== undefined && data.number !== device.number) {
    throw new ValidationError([
      {
        field: `${prefix}.number`,
        message: 'is the identity of a MOBILE device; create a new device for another number',
      },
    ]);
  }
  return database.db.transaction().execute(async (trx) => {
    const updated = await new DeviceRepository(trx).update(organization.id, deviceId, {
      ...(data.deviceName !== undefined ? { name: data.deviceName } : {}),
      ...(data.deviceIcon !== undefined ? { icon: data.deviceIcon } : {}),
      ...(data.number !== undefined ? { number: data.number } : {}),
    });
    const summary = {
      deviceId,
      user: `${user.userId}@${organization.domain}`,
      fields: Object.keys(data)
        .filter((k) => k !== 'deviceId' && k !== 'deviceType')
        .sort(),
    };
    await recordChange(trx, {
      organizationId: organization.id,
      actor,
      action: 'device.updated',
      entity: 'device',
      entityId: deviceId,
      data: summary,
      event: { type: 'device.updated', userId: user.id, data: summary },
    });
    return updated;
  });
}

/** Rotates a SIP device's password: a new one is generated and returned once; the old stops working. */
export async function rotateSipPassword(
  database: DatabaseHandle,
  actor: Actor,
  organization: Organization,
  user: User,
  deviceId: string,
): Promise<{ device: Device; sip: SipAccount }> {
  const device = await requireDevice(database, organization, user, deviceId);
  if (device.kind === 'MOBILE' || device.sipUsername === null) {
    throw new ConflictError(
      `device ${deviceId} is a ${device.kind} without a SIP account; only desk phones and softphones have SIP passwords`,
    );
  }
  const password = newSipPassword();
  const sip: SipAccount = {
    username: device.sipUsername,
    password,
    domain: organization.domain,
    realm: organization.domain,
  };
  const updated = await database.db.transaction().execute(async (trx) => {
    const d = await new DeviceRepository(trx).setCredentials(organization.id, deviceId, {
      sipUsername: sip.username,
      ha1Md5: digestHa1(sip.username, sip.realm, password, 'MD5'),
      ha1Sha256: digestHa1(sip.username, sip.realm, password, 'SHA-256'),
    });
    const summary = { deviceId, user: `${user.userId}@${organization.domain}`, sipUsername: sip.username };
    await recordChange(trx, {
      organizationId: organization.id,
      actor,
      action: 'device.password_rotated',
      entity: 'device',
      entityId: deviceId,
      data: summary,
      event: { type: 'device.password_rotated', userId: user.id, data: summary },
    });
    return d;
  });
  return { device: updated, sip };
}

/** Deletes a device (its SIP account stops registering at once). */
export async function deleteDevice(
  database: DatabaseHandle,
  actor: Actor,
  organization: Organization,
  user: User,
  deviceId: string,
): Promise<Device> {
  const device = await requireDevice(database, organization, user, deviceId);
  await database.db.transaction().execute(async (trx) => {
    if (!(await new DeviceRepository(trx).delete(organization.id, deviceId))) {
      throw new NotFoundError(`no device ${deviceId} of ${user.userId}@${organization.domain}`);
    }
    const summary = { deviceId, deviceType: device.kind, user: `${user.userId}@${organization.domain}` };
    await recordChange(trx, {
      organizationId: organization.id,
      actor,
      action: 'device.deleted',
      entity: 'device',
      entityId: deviceId,
      data: summary,
      event: { type: 'device.deleted', userId: user.id, data: summary },
    });
  });
  return device;
}

/** A device's SIP registrations as the APIs show them. */
export interface RegistrationView {
  contact: string;
  expires: string;
  userAgent: string | null;
  source: string;
}

/** The unexpired SIP registrations of one device. */
export async function registrationsOf(database: DatabaseHandle, device: Device): Promise<RegistrationView[]> {
  const bindings = await new RegistrationRepository(database.db).listByDevice(device.id);
  return bindings.map((b) => ({
    contact: b.contact,
    expires: new Date(b.expiresAt).toISOString(),
    userAgent: b.userAgent,
    source: `${b.sourceTransport}:${b.sourceAddress}:${b.sourcePort}`,
  }));
}

/**
 * Every device of a user with its SIP registration state (read from the bindings the registrar
 * stores, so any server process answers the same).
 */
export async function devicesWithRegistrations(
  database: DatabaseHandle,
  organizationId: number,
  userId: number,
): Promise<{ device: Device; registrations: RegistrationView[] }[]> {
  const [devices, states] = await Promise.all([
    new DeviceRepository(database.db).listByUser(organizationId, userId),
    new RegistrationRepository(database.db).stateOfUserDevices(organizationId, userId),
  ]);
  const byId = new Map(states.map((s) => [s.deviceId, s]));
  return devices.map((device) => ({
    device,
    registrations: (byId.get(device.deviceId)?.contacts ?? []).map((c) => ({
      contact: c.contact,
      expires: new Date(c.expiresAt).toISOString(),
      userAgent: c.userAgent,
      source: c.source,
    })),
  }));
}
