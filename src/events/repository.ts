import { sql, type Kysely, type Selectable } from 'kysely';
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

function eventRow(event: NewEvent, now: number) {
  return {
    organization_id: event.organizationId,
    type: event.type,
    time: event.time ?? now,
    user_id: event.userId ?? null,
    group_id: event.groupId ?? null,
    data: toJson(event.data ?? {}),
  };
}

/** The durable, ordered event log. Append inside the transaction of the change it describes. */
export class EventRepository {
  constructor(private readonly db: Kysely<DB>) {}

  async append(event: NewEvent): Promise<StoredEvent> {
    const r = await this.db
      .insertInto('events')
      .values(eventRow(event, Date.now()))
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

  /** Whether the organization has an event of `type` at or after `since` (time). */
  async hasEvent(organizationId: number, type: string, since: number): Promise<boolean> {
    const r = await this.db
      .selectFrom('events')
      .select('seq')
      .where('organization_id', '=', organizationId)
      .where('type', '=', type)
      .where('time', '>=', since)
      .limit(1)
      .executeTakeFirst();
    return r !== undefined;
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

  // --- event channel (issue 6) -------------------------------------------------------------

  /**
   * Appends several events in one statement, in order, like `appendMany`, returning only the
   * highest seq written (0 for none): for writers that do not need the rows back.
   */
  async appendBatch(events: readonly NewEvent[], now = Date.now()): Promise<number> {
    if (events.length === 0) return 0;
    const rows = await this.db
      .insertInto('events')
      .values(events.map((event) => eventRow(event, now)))
      .returning('seq')
      .execute();
    let max = 0;
    for (const r of rows) if (r.seq > max) max = r.seq;
    return max;
  }

  /** Appends several events in one statement (same transaction rules as `append`), in order. */
  async appendMany(events: NewEvent[], now = Date.now()): Promise<StoredEvent[]> {
    if (events.length === 0) return [];
    const rows = await this.db
      .insertInto('events')
      .values(events.map((event) => eventRow(event, now)))
      .returningAll()
      .execute();
    return rows.map(toEvent).sort((a, b) => a.seq - b.seq);
  }

  /**
   * Events with seq > `afterSeq` (of one organization, or of all when `organizationId` is null),
   * optionally only of the given types, in order.
   */
  async readRange(opts: {
    organizationId: number | null;
    afterSeq: number;
    limit: number;
    types?: readonly string[] | undefined;
  }): Promise<StoredEvent[]> {
    let q = this.db
      .selectFrom('events')
      .selectAll()
      .where('seq', '>', opts.afterSeq)
      .orderBy('seq')
      .limit(Math.max(1, Math.min(opts.limit, 10_000)));
    if (opts.organizationId !== null) q = q.where('organization_id', '=', opts.organizationId);
    if (opts.types && opts.types.length > 0) q = q.where('type', 'in', [...opts.types]);
    const rows = await q.execute();
    return rows.map(toEvent);
  }

  /** A named position of the log (`pruned_through`, `webhooks`), or null when never set. */
  async getPosition(name: string): Promise<number | null> {
    const r = await this.db
      .selectFrom('event_log_state')
      .select('seq')
      .where('name', '=', name)
      .executeTakeFirst();
    return r ? Number(r.seq) : null;
  }

  /** Sets a named position to `seq` (any value, also backwards). */
  async setPosition(name: string, seq: number): Promise<void> {
    await this.db
      .insertInto('event_log_state')
      .values({ name, seq })
      .onConflict((oc) => oc.column('name').doUpdateSet({ seq }))
      .execute();
  }

  /** Sets a named position, never moving it backwards. */
  async advancePosition(name: string, seq: number): Promise<void> {
    await this.db
      .insertInto('event_log_state')
      .values({ name, seq })
      .onConflict((oc) =>
        oc.column('name').doUpdateSet({
          seq: sql<number>`case when excluded.seq > event_log_state.seq then excluded.seq else event_log_state.seq end`,
        }),
      )
      .execute();
  }

  /**
   * The end of the oldest run of events older than `before` (time): the highest seq such that it
   * and every event before it are older. Never reaches past a younger event, even when times are
   * not in seq order. Null when the oldest event is young enough.
   */
  async lastSeqBefore(before: number): Promise<number | null> {
    const young = await this.db
      .selectFrom('events')
      .select((eb) => eb.fn.min('seq').as('seq'))
      .where('time', '>=', before)
      .executeTakeFirst();
    let q = this.db.selectFrom('events').select((eb) => eb.fn.max('seq').as('seq'));
    if (young?.seq != null) q = q.where('seq', '<', Number(young.seq));
    const r = await q.executeTakeFirst();
    return r?.seq == null ? null : Number(r.seq);
  }

  /** The seq such that exactly `keep` events are newer than it, null when there are no more. */
  async seqKeepingNewest(keep: number): Promise<number | null> {
    const r = await this.db
      .selectFrom('events')
      .select('seq')
      .orderBy('seq', 'desc')
      .limit(1)
      .offset(Math.max(0, keep))
      .executeTakeFirst();
    return r ? Number(r.seq) : null;
  }

  /**
   * Retention: deletes up to `batch` of the oldest events with seq <= `throughSeq` and moves
   * `pruned_through` past them, in one short statement pair (call inside a transaction).
   * Returns how many were deleted and the highest deleted seq.
   */
  async pruneThrough(
    throughSeq: number,
    batch: number,
  ): Promise<{ deleted: number; through: number | null }> {
    const top = await this.db
      .selectFrom((eb) =>
        eb
          .selectFrom('events')
          .select('seq')
          .where('seq', '<=', throughSeq)
          .orderBy('seq')
          .limit(Math.max(1, batch))
          .as('b'),
      )
      .select((eb) => [eb.fn.max('b.seq').as('top'), eb.fn.countAll().as('n')])
      .executeTakeFirst();
    if (top?.top == null || Number(top.n) === 0) return { deleted: 0, through: null };
    const through = Number(top.top);
    const r = await this.db.deleteFrom('events').where('seq', '<=', through).executeTakeFirst();
    await this.advancePosition('pruned_through', through);
    return { deleted: Number(r.numDeletedRows), through };
  }

  /**
   * What decides a user's visibility: the ACD groups it is an agent of, and the ACD groups it
   * supervises (every ACD group of its organization when it belongs to a user group with the
   * ACD_SUPERVISOR role).
   */
  async viewerGroups(
    organizationId: number,
    userId: number,
  ): Promise<{ groupIds: number[]; supervisedGroupIds: number[]; supervisor: boolean }> {
    const agentOf = await this.db
      .selectFrom('acd_agents')
      .select('group_id')
      .where('organization_id', '=', organizationId)
      .where('user_id', '=', userId)
      .execute();
    const roleRows = await this.db
      .selectFrom('user_group_members as m')
      .innerJoin('user_groups as g', 'g.id', 'm.group_id')
      .select('g.roles')
      .where('m.organization_id', '=', organizationId)
      .where('m.user_id', '=', userId)
      .execute();
    const supervisor = roleRows.some((r) => fromJson<string[]>(r.roles, []).includes('ACD_SUPERVISOR'));
    const supervised = supervisor
      ? await this.db
          .selectFrom('acd_groups')
          .select('id')
          .where('organization_id', '=', organizationId)
          .execute()
      : [];
    return {
      groupIds: agentOf.map((r) => Number(r.group_id)).sort((a, b) => a - b),
      supervisedGroupIds: supervised.map((r) => Number(r.id)).sort((a, b) => a - b),
      supervisor,
    };
  }
}
