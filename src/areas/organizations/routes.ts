import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import type { AppDeps } from '../../app.js';
import { actorOf } from '../../http/auth.js';
import { decodeCursor, encodeCursor, PageQuery, pageOf } from '../../http/pagination.js';
import { errorResponses } from '../../http/schemas.js';
import { NotFoundError } from '../../errors.js';
import { OrganizationRepository, type Organization } from './repository.js';
import {
  NewOrganizationSchema,
  OrganizationDeletedSchema,
  OrganizationSchema,
  UpdateOrganizationSchema,
} from './schemas.js';
import { createOrganization, deleteOrganization, updateOrganization } from './service.js';
import { orgOf } from '../common/admin.js';

export function viewOrganization(o: Organization) {
  return {
    domain: o.domain,
    name: o.name,
    numberPlan: o.numberPlan,
    sipTrunk: o.sipTrunk,
    createdAt: new Date(o.createdAt).toISOString(),
    updatedAt: new Date(o.updatedAt).toISOString(),
  };
}

/** Admin API: organizations (SNT-HMACv1; a ticket limited to some organizations sees only those). */
export async function organizationAdminRoutes(
  app: FastifyInstance,
  { deps }: { deps: AppDeps },
): Promise<void> {
  const access = { kind: 'admin', scope: 'ADMIN_ORGANIZATIONS' } as const;

  app.get(
    '/api/admin/organizations',
    {
      schema: {
        summary: 'List organizations',
        tags: ['Admin: organizations'],
        querystring: PageQuery,
        response: { 200: pageOf(OrganizationSchema), ...errorResponses },
      },
      config: { access, xmlRoot: 'organizations' },
    },
    async (request) => {
      const q = request.query as { limit?: number; cursor?: string };
      const p = request.principal;
      const limitTo = p.kind === 'system-ticket' ? p.organizations : null;
      const repo = new OrganizationRepository(deps.database.db);
      const after = decodeCursor<number>(q.cursor, 'number') ?? null;
      const limit = q.limit ?? 100;
      if (limitTo !== null) {
        // A ticket limited to some organizations lists just those (a short list), in id order.
        const reachable = (await Promise.all(limitTo.map((id) => repo.getById(id))))
          .filter((o): o is Organization => o !== undefined && (after === null || o.id > after))
          .sort((a, b) => a.id - b.id);
        const items = reachable.slice(0, limit);
        const next = reachable.length > limit ? items[items.length - 1]!.id : null;
        return { items: items.map(viewOrganization), next: encodeCursor(next) };
      }
      const page = await repo.list({ limit, after });
      return { items: page.items.map(viewOrganization), next: encodeCursor(page.next) };
    },
  );

  app.post(
    '/api/admin/organizations',
    {
      schema: {
        summary: 'Create an organization',
        tags: ['Admin: organizations'],
        body: NewOrganizationSchema,
        response: { 201: OrganizationSchema, ...errorResponses },
      },
      config: { access, xmlRoot: 'organization' },
    },
    async (request, reply) => {
      const p = request.principal;
      if (p.kind === 'system-ticket' && p.organizations !== null) {
        throw new NotFoundError('a system ticket limited to some organizations cannot create others');
      }
      const org = await createOrganization(deps.database, actorOf(p), request.body);
      reply.code(201).header('location', `/api/admin/organizations/${encodeURIComponent(org.domain)}`);
      return viewOrganization(org);
    },
  );

  app.get(
    '/api/admin/organizations/:domain',
    {
      schema: {
        summary: 'One organization',
        tags: ['Admin: organizations'],
        params: Type.Object({ domain: Type.String({ maxLength: 253 }) }),
        response: { 200: OrganizationSchema, ...errorResponses },
      },
      config: { access, xmlRoot: 'organization' },
    },
    async (request) => viewOrganization(request.organization!),
  );

  app.put(
    '/api/admin/organizations/:domain',
    {
      schema: {
        summary: 'Update an organization (name, number plan, SIP trunk)',
        tags: ['Admin: organizations'],
        params: Type.Object({ domain: Type.String({ maxLength: 253 }) }),
        body: UpdateOrganizationSchema,
        response: { 200: OrganizationSchema, ...errorResponses },
      },
      config: { access, xmlRoot: 'organization' },
    },
    async (request) =>
      viewOrganization(
        await updateOrganization(deps.database, actorOf(request.principal), orgOf(request), request.body),
      ),
  );

  app.delete(
    '/api/admin/organizations/:domain',
    {
      schema: {
        summary: 'Delete an organization',
        description:
          'Refused with 409 while the organization has users, unless `force=true`: then its users, devices, ' +
          'groups, numbers, tickets and grants are deleted with it. The audit log and the event log keep its history.',
        tags: ['Admin: organizations'],
        params: Type.Object({ domain: Type.String({ maxLength: 253 }) }),
        querystring: Type.Object({ force: Type.Optional(Type.Boolean({ default: false })) }),
        response: { 200: OrganizationDeletedSchema, ...errorResponses },
      },
      config: { access, xmlRoot: 'deleted' },
    },
    async (request) => {
      const { force } = request.query as { force?: boolean };
      const done = await deleteOrganization(
        deps.database,
        actorOf(request.principal),
        orgOf(request),
        force === true,
      );
      return { deleted: done.domain, removed: done.removed };
    },
  );
}
