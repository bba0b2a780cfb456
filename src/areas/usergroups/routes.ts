import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import type { AppDeps } from '../../app.js';
import { actorOf } from '../../http/auth.js';
import { encodeCursor, PageQuery, pageOf } from '../../http/pagination.js';
import { errorResponses } from '../../http/schemas.js';
import {
  adminAccess,
  adminLocation,
  DomainParams,
  IdParams,
  iso,
  orgOf,
  pageRequest,
} from '../common/admin.js';
import { IdSchema } from '../common/schemas.js';
import type { Organization } from '../organizations/repository.js';
import { UserGroupRepository, type UserGroup } from './repository.js';
import {
  GroupMemberSchema,
  MembersSchema,
  NewUserGroupSchema,
  RolesSchema,
  UpdateUserGroupSchema,
  UserGroupDeletedSchema,
  UserGroupSchema,
} from './schemas.js';
import {
  changeGroupMember,
  createUserGroup,
  deleteUserGroup,
  requireGroup,
  setGroupMembers,
  setGroupRoles,
  updateUserGroup,
} from './service.js';

const MemberParams = Type.Object({
  domain: Type.String({ maxLength: 253 }),
  id: IdSchema,
  user: Type.String({ maxLength: 64 }),
});

/** Admin API: user groups, their members and roles (ADMIN_GROUPS). */
export async function userGroupAdminRoutes(app: FastifyInstance, { deps }: { deps: AppDeps }): Promise<void> {
  const access = adminAccess('ADMIN_GROUPS');
  const tags = ['Admin: user groups'];
  const db = deps.database.db;

  const view = (g: UserGroup, memberCount: number) => ({
    id: g.id,
    name: g.name,
    roles: g.roles,
    memberCount,
    createdAt: iso(g.createdAt),
    updatedAt: iso(g.updatedAt),
  });
  const viewOne = async (org: Organization, g: UserGroup) =>
    view(g, (await new UserGroupRepository(db).countMembers(org.id, [g.id])).get(g.id) ?? 0);
  const params = (request: { params: unknown }) => request.params as { id: number; user?: string };

  app.get(
    '/api/admin/usergroups/:domain',
    {
      schema: {
        summary: 'List user groups',
        tags,
        params: DomainParams,
        querystring: PageQuery,
        response: { 200: pageOf(UserGroupSchema), ...errorResponses },
      },
      config: { access, xmlRoot: 'usergroups' },
    },
    async (request) => {
      const org = orgOf(request);
      const repo = new UserGroupRepository(db);
      const page = await repo.list(org.id, pageRequest<number>(request.query, 'number'));
      const counts = await repo.countMembers(
        org.id,
        page.items.map((g) => g.id),
      );
      return { items: page.items.map((g) => view(g, counts.get(g.id) ?? 0)), next: encodeCursor(page.next) };
    },
  );

  app.post(
    '/api/admin/usergroups/:domain',
    {
      schema: {
        summary: 'Create a user group',
        description: '409 names a group name already used. `members` are user ids.',
        tags,
        params: DomainParams,
        body: NewUserGroupSchema,
        response: { 201: UserGroupSchema, ...errorResponses },
      },
      config: { access, xmlRoot: 'usergroup' },
    },
    async (request, reply) => {
      const org = orgOf(request);
      const g = await createUserGroup(deps.database, actorOf(request.principal), org, request.body);
      reply.code(201).header('location', adminLocation('usergroups', org.domain, g.id));
      return viewOne(org, g);
    },
  );

  app.get(
    '/api/admin/usergroups/:domain/:id',
    {
      schema: {
        summary: 'One user group',
        tags,
        params: IdParams,
        response: { 200: UserGroupSchema, ...errorResponses },
      },
      config: { access, xmlRoot: 'usergroup' },
    },
    async (request) => {
      const org = orgOf(request);
      return viewOne(org, await requireGroup(db, org, params(request).id));
    },
  );

  app.put(
    '/api/admin/usergroups/:domain/:id',
    {
      schema: {
        summary: 'Update a user group (name, roles, members: each replaces when given)',
        tags,
        params: IdParams,
        body: UpdateUserGroupSchema,
        response: { 200: UserGroupSchema, ...errorResponses },
      },
      config: { access, xmlRoot: 'usergroup' },
    },
    async (request) => {
      const org = orgOf(request);
      const g = await updateUserGroup(
        deps.database,
        actorOf(request.principal),
        org,
        params(request).id,
        request.body,
      );
      return viewOne(org, g);
    },
  );

  app.delete(
    '/api/admin/usergroups/:domain/:id',
    {
      schema: {
        summary: 'Delete a user group',
        description: 'Its memberships and its group-level External API grants go with it; the users stay.',
        tags,
        params: IdParams,
        response: { 200: UserGroupDeletedSchema, ...errorResponses },
      },
      config: { access, xmlRoot: 'deleted' },
    },
    async (request) => {
      const org = orgOf(request);
      const { id } = params(request);
      const removed = await deleteUserGroup(deps.database, actorOf(request.principal), org, id);
      return { deleted: id, removed };
    },
  );

  app.get(
    '/api/admin/usergroups/:domain/:id/members',
    {
      schema: {
        summary: 'Members of a user group (by user id)',
        tags,
        params: IdParams,
        querystring: PageQuery,
        response: { 200: pageOf(GroupMemberSchema), ...errorResponses },
      },
      config: { access, xmlRoot: 'members' },
    },
    async (request) => {
      const org = orgOf(request);
      const { id } = params(request);
      await requireGroup(db, org, id);
      const page = await new UserGroupRepository(db).listMembersPage(
        org.id,
        id,
        pageRequest<string>(request.query, 'string'),
      );
      return {
        items: page.items.map((m) => ({
          id: `${m.userId}@${org.domain}`,
          userId: m.userId,
          firstName: m.firstName,
          lastName: m.lastName,
        })),
        next: encodeCursor(page.next),
      };
    },
  );

  app.put(
    '/api/admin/usergroups/:domain/:id/members',
    {
      schema: {
        summary: 'Replace the members of a user group',
        tags,
        params: IdParams,
        body: MembersSchema,
        response: { 200: UserGroupSchema, ...errorResponses },
      },
      config: { access, xmlRoot: 'usergroup' },
    },
    async (request) => {
      const org = orgOf(request);
      const g = await setGroupMembers(
        deps.database,
        actorOf(request.principal),
        org,
        params(request).id,
        request.body,
      );
      return viewOne(org, g);
    },
  );

  app.put(
    '/api/admin/usergroups/:domain/:id/members/:user',
    {
      schema: {
        summary: 'Add a member (idempotent)',
        tags,
        params: MemberParams,
        response: { 200: Type.Object({ member: Type.String(), added: Type.Boolean() }), ...errorResponses },
      },
      config: { access, xmlRoot: 'member' },
    },
    async (request) => {
      const org = orgOf(request);
      const { id, user } = params(request);
      const added = await changeGroupMember(deps.database, actorOf(request.principal), org, id, user!, true);
      return { member: `${user!}@${org.domain}`, added };
    },
  );

  app.delete(
    '/api/admin/usergroups/:domain/:id/members/:user',
    {
      schema: {
        summary: 'Remove a member',
        tags,
        params: MemberParams,
        response: { 200: Type.Object({ member: Type.String(), removed: Type.Boolean() }), ...errorResponses },
      },
      config: { access, xmlRoot: 'member' },
    },
    async (request) => {
      const org = orgOf(request);
      const { id, user } = params(request);
      const removed = await changeGroupMember(
        deps.database,
        actorOf(request.principal),
        org,
        id,
        user!,
        false,
      );
      return { member: `${user!}@${org.domain}`, removed };
    },
  );

  app.get(
    '/api/admin/usergroups/:domain/:id/roles',
    {
      schema: {
        summary: 'Roles of a user group',
        tags,
        params: IdParams,
        response: { 200: Type.Object({ roles: Type.Array(Type.String()) }), ...errorResponses },
      },
      config: { access, xmlRoot: 'roles', xmlItem: 'role' },
    },
    async (request) => ({ roles: (await requireGroup(db, orgOf(request), params(request).id)).roles }),
  );

  app.put(
    '/api/admin/usergroups/:domain/:id/roles',
    {
      schema: {
        summary: 'Replace the roles of a user group (e.g. ACD_SUPERVISOR)',
        tags,
        params: IdParams,
        body: RolesSchema,
        response: { 200: Type.Object({ roles: Type.Array(Type.String()) }), ...errorResponses },
      },
      config: { access, xmlRoot: 'roles', xmlItem: 'role' },
    },
    async (request) => {
      const g = await setGroupRoles(
        deps.database,
        actorOf(request.principal),
        orgOf(request),
        params(request).id,
        request.body,
      );
      return { roles: g.roles };
    },
  );
}
