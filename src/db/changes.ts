import type { Kysely } from 'kysely';
import { AuditRepository, type AuditEntry, type NewAuditEntry } from '../areas/audit/repository.js';
import { EventRepository, type NewEvent, type StoredEvent } from '../events/repository.js';
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
  const audit = await new AuditRepository(trx).append(auditOf(change, now));
  const newEvent = eventOf(change, now);
  const event = newEvent ? await new EventRepository(trx).append(newEvent) : null;
  if (event) announceEvents(event.seq);
  return { audit, event };
}

function auditOf(change: Change, now: number): NewAuditEntry {
  return {
    organizationId: change.organizationId,
    actor: change.actor,
    action: change.action,
    entity: change.entity,
    entityId: String(change.entityId),
    data: change.data ?? {},
    at: now,
  };
}

function eventOf(change: Change, now: number): NewEvent | undefined {
  if (!change.event) return undefined;
  return {
    organizationId: change.organizationId,
    type: change.event.type,
    time: now,
    userId: change.event.userId ?? null,
    groupId: change.event.groupId ?? null,
    data: change.event.data ?? {},
  };
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
    await audit.appendMany(chunk.map((c) => auditOf(c, now)));
    const rows = chunk.flatMap((c) => eventOf(c, now) ?? []);
    if (rows.length > 0) lastSeq = Math.max(lastSeq, await events.appendBatch(rows, now));
  }
  if (lastSeq > 0) announceEvents(lastSeq);
}
