import type { Kysely, Selectable } from 'kysely';
import { fromJson, toJson } from '../db/dialects/index.js';
import type { DB, EventsTable } from '../db/schema.js';

export interface StoredEvent {
  seq: number;
  organizationId: number | null;
  type: string;
  time: number;
  /** Internal id of the user the event concerns (visibility). */
  userId: number | null;
  /** ACD group the event concerns (visibility for agents and supervisors). */
  groupId: number | null;
  data: unknown;
}

export interface NewEvent {
  organizationId: number | null;
  type: string;
  time?: number;
  userId?: number | null;
  groupId?: number | null;
  data?: unknown;
}

function toEvent(r: Selectable<EventsTable>): StoredEvent {
  return {
    seq: r.seq,
    organizationId: r.organization_id,
    type: r.type,
    time: r.time,
    userId: r.user_id,
    groupId: r.group_id,
    data: fromJson<unknown>(r.data, null),
  };
}

/** The durable, ordered event log. Append inside the transaction of the change it describes. */
export class EventRepository {
  constructor(private readonly db: Kysely<DB>) {}

  async append(event: NewEvent): Promise<StoredEvent> {
    const r = await this.db
      .insertInto('events')
      .values({
        organization_id: event.organizationId,
        type: event.type,
        time: event.time ?? Date.now(),
        user_id: event.userId ?? null,
        group_id: event.groupId ?? null,
        data: toJson(event.data ?? {}),
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    return toEvent(r);
  }

  /** Events of one organization with seq > `afterSeq`, in order. */
  async readAfter(organizationId: number, afterSeq: number, limit = 100): Promise<StoredEvent[]> {
    const rows = await this.db
      .selectFrom('events')
      .selectAll()
      .where('organization_id', '=', organizationId)
      .where('seq', '>', afterSeq)
      .orderBy('seq')
      .limit(Math.max(1, Math.min(limit, 10_000)))
      .execute();
    return rows.map(toEvent);
  }

  /** Events of every organization with seq > `afterSeq` (the in-process notifier's feed). */
  async readAfterAll(afterSeq: number, limit = 1000): Promise<StoredEvent[]> {
    const rows = await this.db
      .selectFrom('events')
      .selectAll()
      .where('seq', '>', afterSeq)
      .orderBy('seq')
      .limit(Math.max(1, Math.min(limit, 10_000)))
      .execute();
    return rows.map(toEvent);
  }

  /** The oldest retained seq (of one organization, or overall), null when the log is empty. */
  async oldestSeq(organizationId?: number): Promise<number | null> {
    let q = this.db.selectFrom('events').select((eb) => eb.fn.min('seq').as('seq'));
    if (organizationId !== undefined) q = q.where('organization_id', '=', organizationId);
    const r = await q.executeTakeFirst();
    return r?.seq == null ? null : Number(r.seq);
  }

  /** The newest seq, null when the log is empty. */
  async latestSeq(): Promise<number | null> {
    const r = await this.db
      .selectFrom('events')
      .select((eb) => eb.fn.max('seq').as('seq'))
      .executeTakeFirst();
    return r?.seq == null ? null : Number(r.seq);
  }

  /**
   * Retention: deletes up to `batch` of the oldest events with time < `before` (small batches keep
   * writers unblocked). Returns how many were deleted.
   */
  async pruneBefore(before: number, batch = 1000): Promise<number> {
    const r = await this.db
      .deleteFrom('events')
      .where(
        'seq',
        'in',
        this.db.selectFrom('events').select('seq').where('time', '<', before).orderBy('seq').limit(batch),
      )
      .executeTakeFirst();
    return Number(r.numDeletedRows);
  }
}
