import type { Kysely } from 'kysely';
import { AuditRepository, type AuditEntry } from '../areas/audit/repository.js';
import { EventRepository, type StoredEvent } from '../events/repository.js';
import type { DB } from './schema.js';
import { announceEvents } from '../events/local.js';

export interface Change {
  organizationId: number | null;
  /** `admin:<name>`, `ticket:<id>`, `user:<user@domain>`, `cli`. */
  actor: string;
  /** e.g. `user.created` */
  action: string;
  entity: string;
  entityId: string | number;
  data?: unknown;
  /** The event to publish for this change, if any. */
  event?: { type: string; userId?: number | null; groupId?: number | null; data?: unknown };
}

/**
 * Writes the audit row and (optionally) the event row of a change. Call it with the transaction
 * that makes the change (`db.transaction().execute(trx => ...)`): a rolled-back change leaves
 * neither row, a committed one always has both.
 */
export async function recordChange(
  trx: Kysely<DB>,
  change: Change,
  now = Date.now(),
): Promise<{ audit: AuditEntry; event: StoredEvent | null }> {
  const audit = await new AuditRepository(trx).append({
    organizationId: change.organizationId,
    actor: change.actor,
    action: change.action,
    entity: change.entity,
    entityId: String(change.entityId),
    data: change.data ?? {},
    at: now,
  });
  const event = change.event
    ? await new EventRepository(trx).append({
        organizationId: change.organizationId,
        type: change.event.type,
        time: now,
        userId: change.event.userId ?? null,
        groupId: change.event.groupId ?? null,
        data: change.event.data ?? {},
      })
    : null;
  if (event) announceEvents(event.seq);
  return { audit, event };
}

/** Rows a statement: well under SQLite's and PostgreSQL's bound-parameter limits. */
const ROWS_PER_STATEMENT = 500;

/**
 * `recordChange` for many changes at once (bulk provisioning): their audit rows and events in
 * multi-row statements, in order, in the caller's transaction. The same rows as one
 * `recordChange` each, in a few statements instead of two per change.
 */
export async function recordChanges(
  trx: Kysely<DB>,
  changes: readonly Change[],
  now = Date.now(),
): Promise<void> {
  const audit = new AuditRepository(trx);
  const events = new EventRepository(trx);
  let lastSeq = 0;
  for (let i = 0; i < changes.length; i += ROWS_PER_STATEMENT) {
    const chunk = changes.slice(i, i + ROWS_PER_STATEMENT);
    await audit.appendMany(
      chunk.map((c) => ({
        organizationId: c.organizationId,
        actor: c.actor,
        action: c.action,
        entity: c.entity,
        entityId: String(c.entityId),
        data: c.data ?? {},
        at: now,
      })),
    );
    const withEvents = chunk.filter((c) => c.event);
    if (withEvents.length === 0) continue;
    const seq = await events.appendBatch(
      withEvents.map((c) => ({
        organizationId: c.organizationId,
        type: c.event!.type,
        time: now,
        userId: c.event!.userId ?? null,
        groupId: c.event!.groupId ?? null,
        data: c.event!.data ?? {},
      })),
      now,
    );
    lastSeq = Math.max(lastSeq, seq);
  }
  if (lastSeq > 0) announceEvents(lastSeq);
}
