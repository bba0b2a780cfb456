import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import type { AppDeps } from '../../app.js';
import { actorOf } from '../../http/auth.js';
import { encodeCursor, PageQuery, pageOf } from '../../http/pagination.js';
import { errorResponses } from '../../http/schemas.js';
import { adminAccess, adminLocation, DomainParams, iso, orgOf, pageRequest } from '../common/admin.js';
import { IdSchema } from '../common/schemas.js';
import type { Organization } from '../organizations/repository.js';
import { AcdRepository, type AcdAgent, type AcdGroup } from './repository.js';
import {
  AcdGroupDeletedSchema,
  AcdGroupSchema,
  AgentSchema,
  NewAcdGroupSchema,
  NewAgentSchema,
  UpdateAcdGroupSchema,
  UpdateAgentSchema,
} from './schemas.js';
import {
  addAgent,
  createAcdGroup,
  deleteAcdGroup,
  removeAgent,
  requireAcdGroup,
  requireAgent,
  updateAcdGroup,
  updateAgent,
} from './service.js';

const GroupParams = Type.Object({
  domain: Type.String({ maxLength: 253 }),
  group: IdSchema,
});
const AgentParams = Type.Object({
  domain: Type.String({ maxLength: 253 }),
  group: IdSchema,
  agent: Type.String({ maxLength: 64, description: 'the agent’s user id' }),
});

/** Admin API: ACD and attendant groups (function numbers) and their agents (ADMIN_GROUPS). */
export async function acdAdminRoutes(app: FastifyInstance, { deps }: { deps: AppDeps }): Promise<void> {
  const access = adminAccess('ADMIN_GROUPS');
  const tags = ['Admin: ACD/attendant groups'];
  const db = deps.database.db;
  const base = '/api/admin/acd-attendant-group/:domain';

  const view = (g: AcdGroup, agentCount: number) => ({
    id: g.id,
    name: g.name,
    type: g.type,
    distributionType: g.distributionType,
    nightMode: g.nightMode,
    number: g.number,
    queueTimeoutSeconds: g.queueTimeoutSeconds,
    overflowDestination: g.overflowDestination,
    allowUsingFunctionNumber: g.allowUsingFunctionNumber,
    agentCount,
    createdAt: iso(g.createdAt),
    updatedAt: iso(g.updatedAt),
  });
  const viewOne = async (org: Organization, g: AcdGroup) =>
    view(g, (await new AcdRepository(db).countAgents(org.id, [g.id])).get(g.id) ?? 0);
  const viewAgent = (org: Organization, a: AcdAgent) => ({
    id: `${a.userName}@${org.domain}`,
    userId: a.userName,
    firstName: a.firstName,
    lastName: a.lastName,
    skillLevel: a.skillLevel,
    loggedIn: a.loggedIn,
  });
  const p = (request: { params: unknown }) => request.params as { group: number; agent: string };

  app.get(
    base,
    {
      schema: {
        summary: 'List ACD/attendant groups',
        tags,
        params: DomainParams,
        querystring: PageQuery,
        response: { 200: pageOf(AcdGroupSchema), ...errorResponses },
      },
      config: { access, xmlRoot: 'groups' },
    },
    async (request) => {
      const org = orgOf(request);
      const repo = new AcdRepository(db);
      const page = await repo.listGroups(org.id, pageRequest<number>(request.query, 'number'));
      const counts = await repo.countAgents(
        org.id,
        page.items.map((g) => g.id),
      );
      return { items: page.items.map((g) => view(g, counts.get(g.id) ?? 0)), next: encodeCursor(page.next) };
    },
  );

  app.post(
    base,
    {
      schema: {
        summary: 'Create an ACD/attendant group',
        description:
          '`number` (the function number) must be a number of the organization that no user or other group has: ' +
          'otherwise 409 names the number and its owner (release it, or move it with PUT /api/admin/numbers/{domain}/{number} ' +
          'and `"move": true`). The group’s number is the one the numbers API shows assigned to it.',
        tags,
        params: DomainParams,
        body: NewAcdGroupSchema,
        response: { 201: AcdGroupSchema, ...errorResponses },
      },
      config: { access, xmlRoot: 'group' },
    },
    async (request, reply) => {
      const org = orgOf(request);
      const g = await createAcdGroup(deps.database, actorOf(request.principal), org, request.body);
      reply.code(201).header('location', adminLocation('acd-attendant-group', org.domain, g.id));
      return viewOne(org, g);
    },
  );

  app.get(
    `${base}/:group`,
    {
      schema: {
        summary: 'One ACD/attendant group',
        tags,
        params: GroupParams,
        response: { 200: AcdGroupSchema, ...errorResponses },
      },
      config: { access, xmlRoot: 'group' },
    },
    async (request) => {
      const org = orgOf(request);
      return viewOne(org, await requireAcdGroup(db, org, p(request).group));
    },
  );

  app.put(
    `${base}/:group`,
    {
      schema: {
        summary: 'Update an ACD/attendant group (fields given replace the stored ones)',
        tags,
        description:
          '`number` replaces the function number (the previous one is released to the organization; null releases it). ' +
          'A number another user or group has is 409 naming the number and its owner, as on the numbers API.',
        params: GroupParams,
        body: UpdateAcdGroupSchema,
        response: { 200: AcdGroupSchema, ...errorResponses },
      },
      config: { access, xmlRoot: 'group' },
    },
    async (request) => {
      const org = orgOf(request);
      return viewOne(
        org,
        await updateAcdGroup(deps.database, actorOf(request.principal), org, p(request).group, request.body),
      );
    },
  );

  app.delete(
    `${base}/:group`,
    {
      schema: {
        summary: 'Delete an ACD/attendant group (agents removed, numbers released)',
        tags,
        params: GroupParams,
        response: { 200: AcdGroupDeletedSchema, ...errorResponses },
      },
      config: { access, xmlRoot: 'deleted' },
    },
    async (request) => {
      const { group } = p(request);
      const removed = await deleteAcdGroup(deps.database, actorOf(request.principal), orgOf(request), group);
      return { deleted: group, removed };
    },
  );

  app.get(
    `${base}/:group/agents`,
    {
      schema: {
        summary: 'Agents of a group (by user id)',
        tags,
        params: GroupParams,
        querystring: PageQuery,
        response: { 200: pageOf(AgentSchema), ...errorResponses },
      },
      config: { access, xmlRoot: 'agents' },
    },
    async (request) => {
      const org = orgOf(request);
      const { group } = p(request);
      await requireAcdGroup(db, org, group);
      const page = await new AcdRepository(db).listAgentsPage(
        org.id,
        group,
        pageRequest<string>(request.query, 'string'),
      );
      return { items: page.items.map((a) => viewAgent(org, a)), next: encodeCursor(page.next) };
    },
  );

  app.post(
    `${base}/:group/agents`,
    {
      schema: {
        summary: 'Add an agent (409 when the user already is one)',
        tags,
        params: GroupParams,
        body: NewAgentSchema,
        response: { 201: AgentSchema, ...errorResponses },
      },
      config: { access, xmlRoot: 'agent' },
    },
    async (request, reply) => {
      const org = orgOf(request);
      const { group } = p(request);
      const a = await addAgent(deps.database, actorOf(request.principal), org, group, request.body);
      reply
        .code(201)
        .header('location', adminLocation('acd-attendant-group', org.domain, group, 'agents', a.userName));
      return viewAgent(org, a);
    },
  );

  app.get(
    `${base}/:group/agents/:agent`,
    {
      schema: {
        summary: 'One agent',
        tags,
        params: AgentParams,
        response: { 200: AgentSchema, ...errorResponses },
      },
      config: { access, xmlRoot: 'agent' },
    },
    async (request) => {
      const org = orgOf(request);
      return viewAgent(org, await requireAgent(db, org, p(request).group, p(request).agent));
    },
  );

  app.put(
    `${base}/:group/agents/:agent`,
    {
      schema: {
        summary: 'Change an agent’s skill level',
        tags,
        params: AgentParams,
        body: UpdateAgentSchema,
        response: { 200: AgentSchema, ...errorResponses },
      },
      config: { access, xmlRoot: 'agent' },
    },
    async (request) => {
      const org = orgOf(request);
      const { group, agent } = p(request);
      return viewAgent(
        org,
        await updateAgent(deps.database, actorOf(request.principal), org, group, agent, request.body),
      );
    },
  );

  app.delete(
    `${base}/:group/agents/:agent`,
    {
      schema: {
        summary: 'Remove an agent from the group (the user stays)',
        tags,
        params: AgentParams,
        response: { 200: Type.Object({ deleted: Type.String() }), ...errorResponses },
      },
      config: { access, xmlRoot: 'deleted' },
    },
    async (request) => {
      const org = orgOf(request);
      const { group, agent } = p(request);
      await removeAgent(deps.database, actorOf(request.principal), org, group, agent);
      return { deleted: `${agent}@${org.domain}` };
    },
  );
}
