import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import type { AppDeps } from '../../app.js';
import { ValidationError, type FieldProblem } from '../../errors.js';
import { encodeCursor, PageQuery, pageOf } from '../../http/pagination.js';
import { errorResponses } from '../../http/schemas.js';
import { adminAccess, DomainParams, iso, orgOf, pageRequest } from '../common/admin.js';
import { AuditRepository } from './repository.js';

const Time = Type.String({
  maxLength: 40,
  description: 'an ISO 8601 date or date-time (2026-03-21, 2026-03-21T10:00:00Z) or epoch milliseconds',
});

export const AuditEntrySchema = Type.Object({
  id: Type.Integer(),
  at: Type.String({ format: 'date-time' }),
  actor: Type.String({ description: '`ticket:<id>`, `admin:<name>`, `user:<user@domain>`, `cli`' }),
  action: Type.String({ description: 'e.g. user.created, device.deleted' }),
  entity: Type.String(),
  entityId: Type.String(),
  data: Type.Unknown(),
});

/** Parses a time bound: epoch ms digits or an ISO 8601 date/date-time; a 400 naming the field otherwise. */
export function parseTime(
  value: string | undefined,
  field: string,
  problems: FieldProblem[],
): number | undefined {
  if (value === undefined || value === '') return undefined;
  if (/^\d{1,15}$/.test(value)) return Number(value);
  const ms = /^\d{4}-\d{2}-\d{2}(T[\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(value) ? Date.parse(value) : NaN;
  if (Number.isNaN(ms)) {
    problems.push({
      field,
      message: 'must be an ISO 8601 date or date-time (e.g. 2026-03-21T10:00:00Z) or epoch milliseconds',
    });
    return undefined;
  }
  return ms;
}

/** Admin API: an organization's audit log, oldest first (ADMIN_AUDIT). */
export async function auditAdminRoutes(app: FastifyInstance, { deps }: { deps: AppDeps }): Promise<void> {
  app.get(
    '/api/admin/audit/:domain',
    {
      schema: {
        summary: 'The audit log of an organization',
        description: '`from` is inclusive, `to` exclusive; `actor` matches exactly (e.g. `ticket:12`).',
        tags: ['Admin: audit'],
        params: DomainParams,
        querystring: Type.Object({
          ...PageQuery.properties,
          from: Type.Optional(Time),
          to: Type.Optional(Time),
          actor: Type.Optional(Type.String({ maxLength: 300 })),
        }),
        response: { 200: pageOf(AuditEntrySchema), ...errorResponses },
      },
      config: { access: adminAccess('ADMIN_AUDIT'), xmlRoot: 'audit' },
    },
    async (request) => {
      const org = orgOf(request);
      const q = request.query as { from?: string; to?: string; actor?: string };
      const problems: FieldProblem[] = [];
      const from = parseTime(q.from, 'query.from', problems);
      const to = parseTime(q.to, 'query.to', problems);
      if (problems.length > 0) throw new ValidationError(problems);
      const page = await new AuditRepository(deps.database.db).list(org.id, {
        ...pageRequest<number>(request.query, 'number'),
        ...(from !== undefined ? { from } : {}),
        ...(to !== undefined ? { to } : {}),
        ...(q.actor !== undefined ? { actor: q.actor } : {}),
      });
      return {
        items: page.items.map((e) => ({
          id: e.id,
          at: iso(e.at),
          actor: e.actor,
          action: e.action,
          entity: e.entity,
          entityId: e.entityId,
          data: e.data,
        })),
        next: encodeCursor(page.next),
      };
    },
  );
}
