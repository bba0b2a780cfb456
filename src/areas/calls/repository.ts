import type { Kysely, Selectable } from 'kysely';
import { toBool } from '../../db/dialects/index.js';
import type { CallRecordsTable, DB, DeviceKind } from '../../db/schema.js';

/** One user leg of a finished call. */
export interface CallRecord {
  id: number;
  organizationId: number;
  callId: string;
  branchId: string;
  /** `INCOMING` or `OUTGOING`, from the user's point of view. */
  direction: string;
  /** Internal user id (null when the user was deleted since). */
  userId: number | null;
  localNumber: string | null;
  remoteNumber: string | null;
  deviceType: string | null;
  startedAt: number;
  answeredAt: number | null;
  endedAt: number;
  terminationReason: string;
}

export type NewCallRecord = Omit<CallRecord, 'id'>;

/** A user a dialled string resolved to, with what a call needs to ring them. */
export interface RoutableUser {
  id: number;
  organizationId: number;
  userId: string;
  firstName: string;
  lastName: string;
  extension: string | null;
  /** The user's first number (E.164), if any. */
  number: string | null;
}

function toRecord(r: Selectable<CallRecordsTable>): CallRecord {
  return {
    id: r.id,
    organizationId: r.organization_id,
    callId: r.call_id,
    branchId: r.branch_id,
    direction: r.direction,
    userId: r.user_id,
    localNumber: r.local_number,
    remoteNumber: r.remote_number,
    deviceType: r.device_type,
    startedAt: r.started_at,
    answeredAt: r.answered_at,
    endedAt: r.ended_at,
    terminationReason: r.termination_reason,
  };
}

/** 12 columns a row: well under SQLite's and PostgreSQL's bound-parameter limits. */
const ROWS_PER_STATEMENT = 500;

function recordRow(r: NewCallRecord) {
  return {
    organization_id: r.organizationId,
    call_id: r.callId,
    branch_id: r.branchId,
    direction: r.direction,
    user_id: r.userId,
    local_number: r.localNumber,
    remote_number: r.remoteNumber,
    device_type: r.deviceType,
    started_at: r.startedAt,
    answered_at: r.answeredAt,
    ended_at: r.endedAt,
    termination_reason: r.terminationReason,
  };
}

export class CallRepository {
  constructor(private readonly db: Kysely<DB>) {}

  async insertRecord(r: NewCallRecord): Promise<CallRecord> {
    const row = await this.db
      .insertInto('call_records')
      .values(recordRow(r))
      .returningAll()
      .executeTakeFirstOrThrow();
    return toRecord(row);
  }

  /** Writes many records in multi-row statements (the B2BUA's batched writer). */
  async insertRecords(records: readonly NewCallRecord[]): Promise<void> {
    for (let i = 0; i < records.length; i += ROWS_PER_STATEMENT) {
      await this.db
        .insertInto('call_records')
        .values(records.slice(i, i + ROWS_PER_STATEMENT).map(recordRow))
        .execute();
    }
  }

  async recordsOfCall(organizationId: number, callId: string): Promise<CallRecord[]> {
    const rows = await this.db
      .selectFrom('call_records')
      .selectAll()
      .where('organization_id', '=', organizationId)
      .where('call_id', '=', callId)
      .orderBy('id')
      .execute();
    return rows.map(toRecord);
  }

  /** A user's call history, newest first. */
  async recordsOfUser(organizationId: number, userId: number, limit = 100): Promise<CallRecord[]> {
    const rows = await this.db
      .selectFrom('call_records')
      .selectAll()
      .where('organization_id', '=', organizationId)
      .where('user_id', '=', userId)
      .orderBy('started_at', 'desc')
      .orderBy('id', 'desc')
      .limit(Math.min(Math.max(1, limit), 1000))
      .execute();
    return rows.map(toRecord);
  }

  /** Records of an organization started in [from, to), for the CDR export. */
  async recordsBetween(
    organizationId: number,
    from: number,
    to: number,
    limit = 1000,
  ): Promise<CallRecord[]> {
    const rows = await this.db
      .selectFrom('call_records')
      .selectAll()
      .where('organization_id', '=', organizationId)
      .where('started_at', '>=', from)
      .where('started_at', '<', to)
      .orderBy('started_at')
      .orderBy('id')
      .limit(Math.min(Math.max(1, limit), 10_000))
      .execute();
    return rows.map(toRecord);
  }

  private async routable(
    organizationId: number,
    where: { column: 'u.user_id' | 'u.extension' | 'u.id'; value: string | number },
  ): Promise<RoutableUser | undefined> {
    const r = await this.db
      .selectFrom('users as u')
      .select(['u.id', 'u.organization_id', 'u.user_id', 'u.first_name', 'u.last_name', 'u.extension'])
      .where('u.organization_id', '=', organizationId)
      .where(where.column, '=', where.value)
      .executeTakeFirst();
    if (!r) return undefined;
    const n = await this.db
      .selectFrom('numbers')
      .select('number')
      .where('organization_id', '=', organizationId)
      .where('user_id', '=', r.id)
      .orderBy('number')
      .executeTakeFirst();
    return {
      id: r.id,
      organizationId: r.organization_id,
      userId: r.user_id,
      firstName: r.first_name,
      lastName: r.last_name,
      extension: r.extension,
      number: n?.number ?? null,
    };
  }

  userByUserId(organizationId: number, userId: string): Promise<RoutableUser | undefined> {
    return this.routable(organizationId, { column: 'u.user_id', value: userId });
  }

  userByExtension(organizationId: number, extension: string): Promise<RoutableUser | undefined> {
    return this.routable(organizationId, { column: 'u.extension', value: extension });
  }

  userById(organizationId: number, id: number): Promise<RoutableUser | undefined> {
    return this.routable(organizationId, { column: 'u.id', value: id });
  }

  /** Internal ids of the logged-in agents of an ACD group (night mode: none). */
  async loggedInAgents(organizationId: number, groupId: number): Promise<number[]> {
    const group = await this.db
      .selectFrom('acd_groups')
      .select(['night_mode'])
      .where('organization_id', '=', organizationId)
      .where('id', '=', groupId)
      .executeTakeFirst();
    if (!group || toBool(group.night_mode)) return [];
    const rows = await this.db
      .selectFrom('acd_agents')
      .select('user_id')
      .where('organization_id', '=', organizationId)
      .where('group_id', '=', groupId)
      .where('logged_in', '=', true)
      .orderBy('user_id')
      .execute();
    return rows.map((r) => r.user_id);
  }

  /** Kind of every device of an organization by internal id (for call events' device type). */
  async deviceKind(deviceId: number): Promise<DeviceKind | undefined> {
    const r = await this.db
      .selectFrom('devices')
      .select('kind')
      .where('id', '=', deviceId)
      .executeTakeFirst();
    return r?.kind;
  }
}
