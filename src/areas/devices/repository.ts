import { randomUUID } from 'node:crypto';
import type { Kysely, Selectable } from 'kysely';
import { mapConflict, pageLimit, toPage, type Page, type PageRequest } from '../../db/common.js';
import type { DB, DeviceKind, DevicesTable } from '../../db/schema.js';
import { NotFoundError } from '../../errors.js';

export type { DeviceKind } from '../../db/schema.js';

/** The kind code of a public deviceId: `0.<E.164>` mobile, `1.<uuid>` desk phone, `2.<uuid>` softphone. */
export const DEVICE_KIND_CODES: Readonly<Record<DeviceKind, number>> = {
  MOBILE: 0,
  DESKPHONE: 1,
  SOFTPHONE: 2,
};
const KIND_BY_CODE: Readonly<Record<string, DeviceKind>> = {
  '0': 'MOBILE',
  '1': 'DESKPHONE',
  '2': 'SOFTPHONE',
};

export function toDeviceId(kind: DeviceKind, deviceKey: string): string {
  return `${DEVICE_KIND_CODES[kind]}.${deviceKey}`;
}

/** Splits a public deviceId; null when it is not `<0|1|2>.<key>`. */
export function parseDeviceId(deviceId: string): { kind: DeviceKind; deviceKey: string } | null {
  const dot = deviceId.indexOf('.');
  if (dot < 1) return null;
  const kind = KIND_BY_CODE[deviceId.slice(0, dot)];
  const deviceKey = deviceId.slice(dot + 1);
  if (!kind || deviceKey.length === 0) return null;
  return { kind, deviceKey };
}

export interface Device {
  id: number;
  organizationId: number;
  /** Internal id of the owning user. */
  userId: number;
  kind: DeviceKind;
  deviceKey: string;
  /** Public id, `<kind code>.<device key>`. */
  deviceId: string;
  name: string;
  icon: string;
  sipUsername: string | null;
  number: string | null;
  hasSipCredentials: boolean;
  createdAt: number;
  updatedAt: number;
}

/** What digest authentication needs: HA1 = H(username:realm:password), realm = the domain. */
export interface DeviceCredentials {
  sipUsername: string;
  ha1Md5: string | null;
  ha1Sha256: string | null;
}

export interface NewDevice {
  /** Internal id of the owning user (must belong to the organization). */
  userId: number;
  kind: DeviceKind;
  /** MOBILE: the E.164 number (required). Others: generated uuid when absent. */
  deviceKey?: string;
  name?: string;
  icon?: string;
  sipUsername?: string | null;
  ha1Md5?: string | null;
  ha1Sha256?: string | null;
  number?: string | null;
}

function toDevice(r: Selectable<DevicesTable>): Device {
  return {
    id: r.id,
    organizationId: r.organization_id,
    userId: r.user_id,
    kind: r.kind,
    deviceKey: r.device_key,
    deviceId: toDeviceId(r.kind, r.device_key),
    name: r.name,
    icon: r.icon,
    sipUsername: r.sip_username,
    number: r.number,
    hasSipCredentials: r.sip_username !== null && (r.ha1_md5 !== null || r.ha1_sha256 !== null),
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

export class DeviceRepository {
  constructor(private readonly db: Kysely<DB>) {}

  async create(organizationId: number, input: NewDevice, now = Date.now()): Promise<Device> {
    const user = await this.db
      .selectFrom('users')
      .select('id')
      .where('organization_id', '=', organizationId)
      .where('id', '=', input.userId)
      .executeTakeFirst();
    if (!user) throw new NotFoundError(`user ${input.userId} not found`);
    let deviceKey = input.deviceKey;
    if (deviceKey === undefined) {
      if (input.kind === 'MOBILE')
        throw new RangeError('a MOBILE device needs its E.164 number as deviceKey');
      deviceKey = randomUUID();
    }
    const key = deviceKey;
    const r = await mapConflict(
      this.db,
      () =>
        this.db
          .insertInto('devices')
          .values({
            organization_id: organizationId,
            user_id: input.userId,
            kind: input.kind,
            device_key: key,
            name: input.name ?? '',
            icon: input.icon ?? 'DEFAULT',
            sip_username: input.sipUsername ?? null,
            ha1_md5: input.ha1Md5 ?? null,
            ha1_sha256: input.ha1Sha256 ?? null,
            number: input.number ?? (input.kind === 'MOBILE' ? key : null),
            created_at: now,
            updated_at: now,
          })
          .returningAll()
          .executeTakeFirstOrThrow(),
      (columns) =>
        columns.includes('sip_username')
          ? `SIP username "${input.sipUsername ?? ''}" is already used in this organization`
          : `device ${toDeviceId(input.kind, key)} already exists in this organization`,
    );
    return toDevice(r);
  }

  async listByUser(organizationId: number, userId: number): Promise<Device[]> {
    const rows = await this.db
      .selectFrom('devices')
      .selectAll()
      .where('organization_id', '=', organizationId)
      .where('user_id', '=', userId)
      .orderBy('kind')
      .orderBy('id')
      .execute();
    return rows.map(toDevice);
  }

  /** A user's devices by id (creation order), keyset-paginated. */
  async listByUserPage(
    organizationId: number,
    userId: number,
    page: PageRequest = {},
  ): Promise<Page<Device>> {
    const limit = pageLimit(page.limit);
    let q = this.db
      .selectFrom('devices')
      .selectAll()
      .where('organization_id', '=', organizationId)
      .where('user_id', '=', userId)
      .orderBy('id')
      .limit(limit + 1);
    if (page.after != null) q = q.where('id', '>', page.after);
    return toPage(await q.execute(), limit, toDevice, (r) => r.id);
  }

  /** By public deviceId (`2.<uuid>`); undefined for a malformed id too. */
  async get(organizationId: number, deviceId: string): Promise<Device | undefined> {
    const parsed = parseDeviceId(deviceId);
    if (!parsed) return undefined;
    const r = await this.db
      .selectFrom('devices')
      .selectAll()
      .where('organization_id', '=', organizationId)
      .where('kind', '=', parsed.kind)
      .where('device_key', '=', parsed.deviceKey)
      .executeTakeFirst();
    return r && toDevice(r);
  }

  /** For the SIP registrar: the device and its digest HA1 values. */
  async getBySipUsername(
    organizationId: number,
    sipUsername: string,
  ): Promise<{ device: Device; credentials: DeviceCredentials } | undefined> {
    const r = await this.db
      .selectFrom('devices')
      .selectAll()
      .where('organization_id', '=', organizationId)
      .where('sip_username', '=', sipUsername)
      .executeTakeFirst();
    if (!r) return undefined;
    return { device: toDevice(r), credentials: { sipUsername, ha1Md5: r.ha1_md5, ha1Sha256: r.ha1_sha256 } };
  }

  async update(
    organizationId: number,
    deviceId: string,
    patch: { name?: string; icon?: string; number?: string | null },
    now = Date.now(),
  ): Promise<Device> {
    const parsed = parseDeviceId(deviceId);
    if (!parsed) throw new NotFoundError(`device ${deviceId} not found`);
    const r = await this.db
      .updateTable('devices')
      .set({
        updated_at: now,
        ...(patch.name !== undefined && { name: patch.name }),
        ...(patch.icon !== undefined && { icon: patch.icon }),
        ...(patch.number !== undefined && { number: patch.number }),
      })
      .where('organization_id', '=', organizationId)
      .where('kind', '=', parsed.kind)
      .where('device_key', '=', parsed.deviceKey)
      .returningAll()
      .executeTakeFirst();
    if (!r) throw new NotFoundError(`device ${deviceId} not found`);
    return toDevice(r);
  }

  /** Sets (or rotates) the SIP credentials. Store HA1 values only, never the password. */
  async setCredentials(
    organizationId: number,
    deviceId: string,
    credentials: DeviceCredentials,
    now = Date.now(),
  ): Promise<Device> {
    const parsed = parseDeviceId(deviceId);
    if (!parsed) throw new NotFoundError(`device ${deviceId} not found`);
    const r = await mapConflict(
      this.db,
      () =>
        this.db
          .updateTable('devices')
          .set({
            sip_username: credentials.sipUsername,
            ha1_md5: credentials.ha1Md5,
            ha1_sha256: credentials.ha1Sha256,
            updated_at: now,
          })
          .where('organization_id', '=', organizationId)
          .where('kind', '=', parsed.kind)
          .where('device_key', '=', parsed.deviceKey)
          .returningAll()
          .executeTakeFirst(),
      () => `SIP username "${credentials.sipUsername}" is already used in this organization`,
    );
    if (!r) throw new NotFoundError(`device ${deviceId} not found`);
    return toDevice(r);
  }

  async delete(organizationId: number, deviceId: string): Promise<boolean> {
    const parsed = parseDeviceId(deviceId);
    if (!parsed) return false;
    const r = await this.db
      .deleteFrom('devices')
      .where('organization_id', '=', organizationId)
      .where('kind', '=', parsed.kind)
      .where('device_key', '=', parsed.deviceKey)
      .executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  }
}
