import type { Kysely, Selectable } from 'kysely';
import type { DB, DeviceKind, SipRegistrationsTable } from '../../db/schema.js';
import { toDeviceId } from '../devices/repository.js';

/** One registered contact (binding) of a device, RFC 3261 §10. */
export interface SipBinding {
  id: number;
  organizationId: number;
  /** Internal device id. */
  deviceId: number;
  /** Internal id of the device's user. */
  userId: number;
  /** `sip:{sipUsername}@{domain}`. */
  aor: string;
  /** The Contact URI exactly as registered. */
  contact: string;
  callId: string;
  cseq: number;
  sourceTransport: 'udp' | 'tcp';
  sourceAddress: string;
  sourcePort: number;
  userAgent: string | null;
  expiresAt: number;
  registeredAt: number;
  updatedAt: number;
}

export interface NewBinding {
  organizationId: number;
  deviceId: number;
  userId: number;
  aor: string;
  contact: string;
  callId: string;
  cseq: number;
  sourceTransport: 'udp' | 'tcp';
  sourceAddress: string;
  sourcePort: number;
  userAgent: string | null;
  expiresAt: number;
}

/** Registration state of one device, for the device API. */
export interface DeviceRegistrationState {
  /** Public device id (`2.<uuid>`). */
  deviceId: string;
  kind: DeviceKind;
  registered: boolean;
  contacts: { contact: string; expiresAt: number; userAgent: string | null; source: string }[];
}

function toBinding(r: Selectable<SipRegistrationsTable>): SipBinding {
  return {
    id: r.id,
    organizationId: r.organization_id,
    deviceId: r.device_id,
    userId: r.user_id,
    aor: r.aor,
    contact: r.contact,
    callId: r.call_id,
    cseq: r.cseq,
    sourceTransport: r.source_transport === 'tcp' ? 'tcp' : 'udp',
    sourceAddress: r.source_address,
    sourcePort: r.source_port,
    userAgent: r.user_agent,
    expiresAt: r.expires_at,
    registeredAt: r.registered_at,
    updatedAt: r.updated_at,
  };
}

export class RegistrationRepository {
  constructor(private readonly db: Kysely<DB>) {}

  /** Inserts or refreshes the binding of (device, contact). */
  async upsert(b: NewBinding, now = Date.now()): Promise<SipBinding> {
    const existing = await this.db
      .selectFrom('sip_registrations')
      .select('id')
      .where('device_id', '=', b.deviceId)
      .where('contact', '=', b.contact)
      .executeTakeFirst();
    const values = {
      organization_id: b.organizationId,
      device_id: b.deviceId,
      user_id: b.userId,
      aor: b.aor,
      contact: b.contact,
      call_id: b.callId,
      cseq: b.cseq,
      source_transport: b.sourceTransport,
      source_address: b.sourceAddress,
      source_port: b.sourcePort,
      user_agent: b.userAgent,
      expires_at: b.expiresAt,
      updated_at: now,
    };
    const r = existing
      ? await this.db
          .updateTable('sip_registrations')
          .set(values)
          .where('id', '=', existing.id)
          .returningAll()
          .executeTakeFirstOrThrow()
      : await this.db
          .insertInto('sip_registrations')
          .values({ ...values, registered_at: now })
          .returningAll()
          .executeTakeFirstOrThrow();
    return toBinding(r);
  }

  async remove(deviceId: number, contact: string): Promise<boolean> {
    const r = await this.db
      .deleteFrom('sip_registrations')
      .where('device_id', '=', deviceId)
      .where('contact', '=', contact)
      .executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  }

  async removeAllOfDevice(deviceId: number): Promise<number> {
    const r = await this.db
      .deleteFrom('sip_registrations')
      .where('device_id', '=', deviceId)
      .executeTakeFirst();
    return Number(r.numDeletedRows);
  }

  async listByDevice(deviceId: number, now = Date.now()): Promise<SipBinding[]> {
    const rows = await this.db
      .selectFrom('sip_registrations')
      .selectAll()
      .where('device_id', '=', deviceId)
      .where('expires_at', '>', now)
      .orderBy('id')
      .execute();
    return rows.map(toBinding);
  }

  /** Every unexpired binding (what a restarted registrar loads). */
  async listActive(now = Date.now()): Promise<SipBinding[]> {
    const rows = await this.db
      .selectFrom('sip_registrations')
      .selectAll()
      .where('expires_at', '>', now)
      .orderBy('id')
      .execute();
    return rows.map(toBinding);
  }

  /** Deletes the bindings that expired by `now` and returns them. */
  async removeExpired(now = Date.now()): Promise<SipBinding[]> {
    const rows = await this.db
      .selectFrom('sip_registrations')
      .selectAll()
      .where('expires_at', '<=', now)
      .execute();
    if (rows.length === 0) return [];
    await this.db
      .deleteFrom('sip_registrations')
      .where(
        'id',
        'in',
        rows.map((r) => r.id),
      )
      .execute();
    return rows.map(toBinding);
  }

  /** Public id and kind of a device by internal id. */
  async deviceSummary(id: number): Promise<{ deviceId: string; kind: DeviceKind } | undefined> {
    const r = await this.db
      .selectFrom('devices')
      .select(['kind', 'device_key'])
      .where('id', '=', id)
      .executeTakeFirst();
    return r && { deviceId: toDeviceId(r.kind, r.device_key), kind: r.kind };
  }

  /** Registration state of every device of a user (devices without bindings included). */
  async stateOfUserDevices(
    organizationId: number,
    userId: number,
    now = Date.now(),
  ): Promise<DeviceRegistrationState[]> {
    const rows = await this.db
      .selectFrom('devices as d')
      .leftJoin('sip_registrations as r', (j) =>
        j.onRef('r.device_id', '=', 'd.id').on('r.expires_at', '>', now),
      )
      .select([
        'd.id as device_pk',
        'd.kind',
        'd.device_key',
        'r.contact',
        'r.expires_at',
        'r.user_agent',
        'r.source_transport',
        'r.source_address',
        'r.source_port',
      ])
      .where('d.organization_id', '=', organizationId)
      .where('d.user_id', '=', userId)
      .orderBy('d.id')
      .orderBy('r.id')
      .execute();
    const out = new Map<number, DeviceRegistrationState>();
    for (const r of rows) {
      let s = out.get(r.device_pk);
      if (!s) {
        s = { deviceId: toDeviceId(r.kind, r.device_key), kind: r.kind, registered: false, contacts: [] };
        out.set(r.device_pk, s);
      }
      if (r.contact !== null && r.expires_at !== null) {
        s.registered = true;
        s.contacts.push({
          contact: r.contact,
          expiresAt: r.expires_at,
          userAgent: r.user_agent,
          source: `${r.source_transport ?? 'udp'}:${r.source_address ?? ''}:${r.source_port ?? 0}`,
        });
      }
    }
    return [...out.values()];
  }
}
