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
