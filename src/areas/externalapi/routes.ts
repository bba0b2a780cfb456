import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import type { AppDeps } from '../../app.js';
import { actorOf } from '../../http/auth.js';
import { errorResponses } from '../../http/schemas.js';
import { adminAccess, DomainParams, IdParams, orgOf } from '../common/admin.js';
import { UserApiSchema } from '../common/schemas.js';
import { requireGroup } from '../usergroups/service.js';
import { UserGroupRepository } from '../usergroups/repository.js';
import { requireUser } from '../users/service.js';
import { UserRepository } from '../users/repository.js';
import { ExternalApiRepository } from './repository.js';
import { setExternalApiGrants } from './service.js';

const GrantsBody = Type.Object(
  { apis: Type.Array(UserApiSchema, { maxItems: 14, description: 'the user APIs allowed at this level' }) },
  { additionalProperties: false },
);
const GrantsSchema = Type.Object({
  level: Type.Enum(['ORGANIZATION', 'USER_GROUP', 'USER']),
  target: Type.String({ description: 'the domain, the user group id or user@domain' }),
  apis: Type.Array(Type.String()),
});
const EffectiveSchema = Type.Object({
  user: Type.String({ description: 'user@domain' }),
  apis: Type.Array(Type.String(), { description: 'what the user may use and grant to its tickets now' }),
  sources: Type.Array(
    Type.Object({
      api: Type.String(),
      level: Type.Enum(['ORGANIZATION', 'USER_GROUP', 'USER']),
      target: Type.String({ description: 'the domain, the user group id or user@domain' }),
      name: Type.String({ description: 'the organization, group or user name' }),
    }),
  ),
});
const UserParams = Type.Object({
  domain: Type.String({ maxLength: 253 }),
  user: Type.String({ maxLength: 64 }),
});

/**
 * Admin API: External API authorization (ADMIN_USERS). Which user APIs are allowed for the
 * whole organization, for a user group and for a user; a user may use the union of the levels
 * that apply to it, and a ticket its scopes intersected with that (checked on every request).
 */
export async function externalApiAdminRoutes(
  app: FastifyInstance,
  { deps }: { deps: AppDeps },
): Promise<void> {
  const access = adminAccess('ADMIN_USERS');
  const tags = ['Admin: External API authorization'];
  const db = deps.database.db;
  const body = (b: unknown) => (b as { apis: string[] }).apis;

  app.get(
    '/api/admin/externalapi/:domain',
    {
      schema: {
        summary: 'User APIs allowed for everyone in the organization',
        tags,
        params: DomainParams,
        response: { 200: GrantsSchema, ...errorResponses },
      },
      config: { access, xmlRoot: 'externalapi' },
    },
    async (request) => {
      const org = orgOf(request);
      const apis = await new ExternalApiRepository(db).listGrants(org.id, 'ORGANIZATION', 0);
      return { level: 'ORGANIZATION' as const, target: org.domain, apis };
    },
  );

  app.put(
    '/api/admin/externalapi/:domain',
    {
      schema: {
        summary: 'Set the user APIs allowed for everyone in the organization',
        tags,
        params: DomainParams,
        body: GrantsBody,
        response: { 200: GrantsSchema, ...errorResponses },
      },
      config: { access, xmlRoot: 'externalapi' },
    },
    async (request) => {
      const org = orgOf(request);
      const apis = await setExternalApiGrants(
        deps.database,
        actorOf(request.principal),
        org,
        'ORGANIZATION',
        0,
        body(request.body),
      );
      return { level: 'ORGANIZATION' as const, target: org.domain, apis };
    },
  );

  app.get(
    '/api/admin/externalapi/:domain/usergroups/:id',
    {
      schema: {
        summary: 'User APIs allowed for the members of a user group',
        tags,
        params: IdParams,
        response: { 200: GrantsSchema, ...errorResponses },
      },
      config: { access, xmlRoot: 'externalapi' },
    },
    async (request) => {
      const org = orgOf(request);
      const { id } = request.params as { id: number };
      await requireGroup(db, org, id);
      const apis = await new ExternalApiRepository(db).listGrants(org.id, 'USER_GROUP', id);
      return { level: 'USER_GROUP' as const, target: String(id), apis };
    },
  );

  app.put(
    '/api/admin/externalapi/:domain/usergroups/:id',
    {
      schema: {
        summary: 'Set the user APIs allowed for the members of a user group',
        tags,
        params: IdParams,
        body: GrantsBody,
        response: { 200: GrantsSchema, ...errorResponses },
      },
      config: { access, xmlRoot: 'externalapi' },
    },
    async (request) => {
      const org = orgOf(request);
      const { id } = request.params as { id: number };
      await requireGroup(db, org, id);
      const apis = await setExternalApiGrants(
        deps.database,
        actorOf(request.principal),
        org,
        'USER_GROUP',
        id,
        body(request.body),
      );
      return { level: 'USER_GROUP' as const, target: String(id), apis };
    },
  );

  app.get(
    '/api/admin/externalapi/:domain/users/:user',
    {
      schema: {
        summary: 'User APIs allowed for one user (the user level only; see .../effective)',
        tags,
        params: UserParams,
        response: { 200: GrantsSchema, ...errorResponses },
      },
      config: { access, xmlRoot: 'externalapi' },
    },
    async (request) => {
      const org = orgOf(request);
      const user = await requireUser(deps.database, org, (request.params as { user: string }).user);
      const apis = await new ExternalApiRepository(db).listGrants(org.id, 'USER', user.id);
      return { level: 'USER' as const, target: `${user.userId}@${org.domain}`, apis };
    },
  );

  app.put(
    '/api/admin/externalapi/:domain/users/:user',
    {
      schema: {
        summary: 'Set the user APIs allowed for one user',
        tags,
        params: UserParams,
        body: GrantsBody,
        response: { 200: GrantsSchema, ...errorResponses },
      },
      config: { access, xmlRoot: 'externalapi' },
    },
    async (request) => {
      const org = orgOf(request);
      const user = await requireUser(deps.database, org, (request.params as { user: string }).user);
      const apis = await setExternalApiGrants(
        deps.database,
        actorOf(request.principal),
        org,
        'USER',
        user.id,
        body(request.body),
      );
      return { level: 'USER' as const, target: `${user.userId}@${org.domain}`, apis };
    },
  );

  app.get(
    '/api/admin/externalapi/:domain/users/:user/effective',
    {
      schema: {
        summary: 'What a user may use now, and where each grant comes from',
        tags,
        params: UserParams,
        response: { 200: EffectiveSchema, ...errorResponses },
      },
      config: { access, xmlRoot: 'effective' },
    },
    async (request) => {
      const org = orgOf(request);
      const user = await requireUser(deps.database, org, (request.params as { user: string }).user);
      const effective = await new ExternalApiRepository(db).effective(org.id, user.id);
      const groupNames = new Map(
        (await new UserRepository(db).groupsOf(org.id, user.id)).map((g) => [g.id, g.name]),
      );
      const groups = new UserGroupRepository(db);
      const sources = [];
      for (const api of effective.apis) {
        for (const s of effective.sources[api] ?? []) {
          if (s.level === 'ORGANIZATION') {
            sources.push({ api, level: s.level, target: org.domain, name: org.name });
          } else if (s.level === 'USER_GROUP') {
            const name = groupNames.get(s.targetId) ?? (await groups.get(org.id, s.targetId))?.name ?? '';
            sources.push({ api, level: s.level, target: String(s.targetId), name });
          } else {
            const name = `${user.firstName} ${user.lastName}`.trim() || user.userId;
            sources.push({ api, level: s.level, target: `${user.userId}@${org.domain}`, name });
          }
        }
      }
      return { user: `${user.userId}@${org.domain}`, apis: effective.apis, sources };
    },
  );
}
