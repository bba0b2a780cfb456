import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import type { AppDeps } from '../../app.js';
import { actorOf } from '../../http/auth.js';
import { MAX_PROBLEMS, validatorCompiler } from '../../http/validation.js';
import { encodeCursor, PageQuery, pageOf } from '../../http/pagination.js';
import { errorResponses } from '../../http/schemas.js';
import { adminAccess, adminLocation, DomainParams, iso, orgOf, pageRequest } from '../common/admin.js';
import type { Organization } from '../organizations/repository.js';
import { UserRepository, type User } from './repository.js';
import {
  AdminUserSchema,
  BulkResultSchema,
  BulkUsersSchema,
  NewUserSchema,
  PasswordSetSchema,
  SetPasswordSchema,
  UpdateUserSchema,
  UserDeletedSchema,
} from './schemas.js';
import {
  bulkCreateUsers,
  createUser,
  deleteUser,
  requireUser,
  setUserPassword,
  updateUser,
} from './service.js';

export function viewAdminUser(org: Organization, u: User, groups: { id: number; name: string }[]) {
  return {
    id: `${u.userId}@${org.domain}`,
    userId: u.userId,
    domain: org.domain,
    role: u.role,
    firstName: u.firstName,
    lastName: u.lastName,
    email: u.email,
    language: u.language,
    title: u.title,
    department: u.department,
    extension: u.extension,
    availability: u.availability,
    availabilityMessage: u.availabilityMessage,
    hasPassword: u.hasPassword,
    groups,
    createdAt: iso(u.createdAt),
    updatedAt: iso(u.updatedAt),
  };
}

/** The bulk route's body limit: 1,000 rows with every field long, as XML, fit. */
export const BULK_BODY_LIMIT = 8 * 1024 * 1024;

const UserParams = Type.Object({
  domain: Type.String({ maxLength: 253 }),
  user: Type.String({ maxLength: 64 }),
});

/** Admin API: users of an organization (ADMIN_USERS). */
export async function userAdminRoutes(app: FastifyInstance, { deps }: { deps: AppDeps }): Promise<void> {
  const access = adminAccess('ADMIN_USERS');
  const tags = ['Admin: users'];
  const db = deps.database.db;
  const options = { legacyPasswordTokens: deps.config.legacyPasswordTokens };

  const view = async (org: Organization, u: User) =>
    viewAdminUser(org, u, (await new UserRepository(db).groupsOfUsers(org.id, [u.id])).get(u.id) ?? []);

  app.get(
    '/api/admin/users/:domain',
    {
      schema: {
        summary: 'List the users of an organization (by creation order)',
        tags,
        params: DomainParams,
        querystring: PageQuery,
        response: { 200: pageOf(AdminUserSchema), ...errorResponses },
      },
      config: { access, xmlRoot: 'users' },
    },
    async (request) => {
      const org = orgOf(request);
      const repo = new UserRepository(db);
      const page = await repo.list(org.id, pageRequest<number>(request.query, 'number'));
      const groups = await repo.groupsOfUsers(
        org.id,
        page.items.map((u) => u.id),
      );
      return {
        items: page.items.map((u) => viewAdminUser(org, u, groups.get(u.id) ?? [])),
        next: encodeCursor(page.next),
      };
    },
  );

  app.post(
    '/api/admin/users/:domain',
    {
      schema: {
        summary: 'Create a user',
        description: '409 names the user id or extension already used. `groups` are user group ids.',
        tags,
        params: DomainParams,
        body: NewUserSchema,
        response: { 201: AdminUserSchema, ...errorResponses },
      },
      config: { access, xmlRoot: 'user' },
    },
    async (request, reply) => {
      const org = orgOf(request);
      const { user } = await createUser(
        deps.database,
        actorOf(request.principal),
        org.domain,
        request.body,
        'body',
        options,
      );
      reply.code(201).header('location', adminLocation('users', org.domain, user.userId));
      return view(org, user);
    },
  );

  app.post(
    '/api/admin/users/:domain/bulk',
    {
      schema: {
        summary: 'Create up to 1,000 users at once, all or nothing',
        description:
          'Every row is checked before anything is written. Any bad row (invalid, a duplicate in the request, ' +
          'a user id or extension already used, an unknown group) answers 400 (409 when all problems are conflicts) ' +
          'with the problems named `body.users.<index>.<field>`, schema problems and conflicts together, and nothing is created. ' +
          `At most ${MAX_PROBLEMS} problems are listed: then a last entry (field \`body.users\`) and the validation result ` +
          'say how many more there are. The body may be up to 8 MiB (JSON or XML), enough for 1,000 rows with every field. ' +
          'Passwords are optional: leaving them out makes a large import much faster (scrypt is the cost); set them later ' +
          'with POST .../{user}/password.',
        tags,
        params: DomainParams,
        body: BulkUsersSchema,
        response: { 201: BulkResultSchema, ...errorResponses },
      },
      config: { access, xmlRoot: 'bulk', xmlItem: 'user' },
      // 1,000 full rows are more than the default body limits (JSON 1 MiB, XML 256 KiB): this
      // route has its own, for JSON and XML alike (a route's bodyLimit overrides the parsers').
      bodyLimit: Math.max(deps.config.bodyLimit, BULK_BODY_LIMIT),
      // The rows are checked by the service, all of them, with conflicts reported beside schema
      // problems; the schema above still documents the body and types XML bodies.
      validatorCompiler: (route) => (route.httpPart === 'body' ? () => true : validatorCompiler(route)),
    },
    async (request, reply) => {
      const org = orgOf(request);
      const done = await bulkCreateUsers(
        deps.database,
        actorOf(request.principal),
        org,
        request.body,
        options,
      );
      reply.code(201);
      return {
        created: done.users.length,
        users: done.users.map(({ index, user }) => ({
          index,
          id: `${user.userId}@${org.domain}`,
          status: 'created' as const,
        })),
      };
    },
  );

  app.get(
    '/api/admin/users/:domain/:user',
    {
      schema: {
        summary: 'One user',
        tags,
        params: UserParams,
        response: { 200: AdminUserSchema, ...errorResponses },
      },
      config: { access, xmlRoot: 'user' },
    },
    async (request) => {
      const org = orgOf(request);
      const { user } = request.params as { user: string };
      return view(org, await requireUser(deps.database, org, user));
    },
  );

  app.put(
    '/api/admin/users/:domain/:user',
    {
      schema: {
        summary: 'Update a user',
        description:
          'Fields given replace the stored ones (null clears an optional one); fields left out stay. ' +
          '`groups` replaces the user’s group memberships. The password is set with POST .../password.',
        tags,
        params: UserParams,
        body: UpdateUserSchema,
        response: { 200: AdminUserSchema, ...errorResponses },
      },
      config: { access, xmlRoot: 'user' },
    },
    async (request) => {
      const org = orgOf(request);
      const { user } = request.params as { user: string };
      return view(org, await updateUser(deps.database, actorOf(request.principal), org, user, request.body));
    },
  );

  app.delete(
    '/api/admin/users/:domain/:user',
    {
      schema: {
        summary: 'Delete a user',
        description:
          'Its live tickets are revoked first (audited), its devices and SIP accounts deleted, its numbers released ' +
          'to the organization, its group and agent memberships and user-level External API grants removed. ' +
          'The answer lists them.',
        tags,
        params: UserParams,
        response: { 200: UserDeletedSchema, ...errorResponses },
      },
      config: { access, xmlRoot: 'deleted' },
    },
    async (request) => {
      const org = orgOf(request);
      const { user } = request.params as { user: string };
      const done = await deleteUser(deps.database, actorOf(request.principal), org, user);
      const { id, ...removed } = done;
      return { deleted: id, removed };
    },
  );

  app.post(
    '/api/admin/users/:domain/:user/password',
    {
      schema: {
        summary: 'Set or reset a user’s password',
        description:
          '`{"password": "..."}` sets it; `{"generate": true}` generates one and answers it once. ' +
          'The user’s tickets stay valid (revoke them with DELETE /api/admin/tickets/{domain}/{ticketId}).',
        tags,
        params: UserParams,
        body: SetPasswordSchema,
        response: { 200: PasswordSetSchema, ...errorResponses },
      },
      config: { access, xmlRoot: 'password' },
    },
    async (request) => {
      const org = orgOf(request);
      const { user } = request.params as { user: string };
      const done = await setUserPassword(
        deps.database,
        actorOf(request.principal),
        org,
        user,
        request.body,
        options,
      );
      return {
        id: `${done.user.userId}@${org.domain}`,
        passwordSet: true,
        ...(done.generated !== undefined ? { password: done.generated } : {}),
      };
    },
  );
}
