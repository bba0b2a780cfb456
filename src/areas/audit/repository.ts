import type { Kysely, Selectable } from 'kysely';
import { pageLimit, toPage, type Page, type PageRequest } from '../../db/common.js';
import { fromJson, toJson } from '../../db/dialects/index.js';
import type { AuditLogTable, DB } from '../../db/schema.js';

export interface AuditEntry {
  id: number;
  organizationId: number | null;
  /** `admin:<name>`, `ticket:<id>`, `user:<user@domain>`, `cli`, ... */
  actor: string;
  /** e.g. `user.created` */
  action: string;
  entity: string;
  entityId: string;
  data: unknown;
  at: number;
}

export interface NewAuditEntry {
  organizationId: number | null;
  actor: string;
  action: string;
  entity: string;
  entityId: string;
  data?: unknown;
  at?: number;
}

export interface AuditQuery extends PageRequest {
  from?: number;
  to?: number;
  actor?: string;
}

function toEntry(r: Selectable<AuditLogTable>): AuditEntry {
  return {
    id: r.id,
    organizationId: r.organization_id,
    actor: r.actor,
    action: r.action,
    entity: r.entity,
    entityId: r.entity_id,
    data: fromJson<unknown>(r.data, null),
    at: r.at,
  };
}

function auditRow(entry: NewAuditEntry) {
  return {
    organization_id: entry.organizationId,
    actor: entry.actor,
    action: entry.action,
    entity: entry.entity,
    entity_id: entry.entityId,
    data: toJson(entry.data ?? {}),
    at: entry.at ?? Date.now(),
  };
}

export class AuditRepository {
  constructor(private readonly db: Kysely<DB>) {}

  async append(entry: NewAuditEntry): Promise<AuditEntry> {
    const r = await this.db
      .insertInto('audit_log')
      .values(auditRow(entry))
      .returningAll()
      .executeTakeFirstOrThrow();
    return toEntry(r);
  }

  /** Several entries in one statement, in order (bulk changes). */
  async appendMany(entries: readonly NewAuditEntry[]): Promise<void> {
    if (entries.length === 0) return;
    await this.db.insertInto('audit_log').values(entries.map(auditRow)).execute();
  }

  /** Entries of an organization (null: installation-wide ones), oldest first; `from`/`to` in ms inclusive/exclusive. */
  async list(organizationId: number | null, query: AuditQuery = {}): Promise<Page<AuditEntry>> {
    const limit = pageLimit(query.limit);
    let q = this.db
      .selectFrom('audit_log')
      .selectAll()
      .orderBy('id')
      .limit(limit + 1);
    q =
      organizationId === null
        ? q.where('organization_id', 'is', null)
        : q.where('organization_id', '=', organizationId);
    if (query.from !== undefined) q = q.where('at', '>=', query.from);
    if (query.to !== undefined) q = q.where('at', '<', query.to);
    if (query.actor !== undefined) q = q.where('actor', '=', query.actor);
    if (query.after != null) q = q.where('id', '>', query.after);
    return toPage(await q.execute(), limit, toEntry, (r) => r.id);
  }
}
