import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import type { AppDeps } from '../../app.js';
import { NotFoundError } from '../../errors.js';
import { actorOf } from '../../http/auth.js';
import { encodeCursor, PageQuery, pageOf } from '../../http/pagination.js';
import { errorResponses } from '../../http/schemas.js';
import { adminAccess, adminLocation, DomainParams, orgOf, pageRequest } from '../common/admin.js';
import { IdSchema, UserApiSchema, UserId } from '../common/schemas.js';
import type { Organization } from '../organizations/repository.js';
import { UserRepository } from '../users/repository.js';
import { requireUser } from '../users/service.js';
import { TicketRepository, type Ticket } from './repository.js';
import { TicketViewSchema } from './routes.js';
import { BODY_TICKET_FIELDS, createUserTicket, revokeTicket, viewTicket } from './service.js';

const NewTicketSchema = Type.Object(
  {
    user: UserId,
    apis: Type.Array(UserApiSchema, { minItems: 1, maxItems: 14 }),
    name: Type.Optional(Type.String({ maxLength: 200 })),
    platform: Type.Optional(Type.String({ maxLength: 50 })),
    days: Type.Optional(Type.Integer({ minimum: 1, description: 'lifetime in days (default 365)' })),
  },
  { additionalProperties: false },
);
const CreatedTicketSchema = Type.Object({
  ...TicketViewSchema.properties,
  token: Type.String({ description: 'shown this once; never stored' }),
});
const TicketParams = Type.Object({
  domain: Type.String({ maxLength: 253 }),
  ticketId: IdSchema,
});

/** Admin API: user tickets of an organization (ADMIN_TICKETS). Tokens are shown once, at creation. */
export async function ticketAdminRoutes(app: FastifyInstance, { deps }: { deps: AppDeps }): Promise<void> {
  const access = adminAccess('ADMIN_TICKETS');
  const tags = ['Admin: tickets'];
  const db = deps.database.db;

  const owners = async (org: Organization, tickets: Ticket[]): Promise<Map<number, string>> => {
    const out = new Map<number, string>();
    for (const id of new Set(tickets.map((t) => t.userId).filter((u): u is number => u !== null))) {
      const u = await new UserRepository(db).getById(org.id, id);
      out.set(id, u ? `${u.userId}@${org.domain}` : '?');
    }
    return out;
  };
  const requireTicket = async (org: Organization, id: number) => {
    const t = await new TicketRepository(db).getInOrg(org.id, id);
    if (!t || t.kind !== 'USER') throw new NotFoundError(`no ticket ${id} in ${org.domain}`);
    return t;
  };

  app.get(
    '/api/admin/tickets/:domain',
    {
      schema: {
        summary: 'List the user tickets of an organization (never their tokens)',
        tags,
        params: DomainParams,
        querystring: Type.Object({
          ...PageQuery.properties,
          user: Type.Optional(Type.String({ maxLength: 64 })),
        }),
        response: { 200: pageOf(TicketViewSchema), ...errorResponses },
      },
      config: { access, xmlRoot: 'tickets' },
    },
    async (request) => {
      const org = orgOf(request);
      const { user } = request.query as { user?: string };
      const filter = user !== undefined ? { userId: (await requireUser(deps.database, org, user)).id } : {};
      const page = await new TicketRepository(db).listUserTickets(
        org.id,
        filter,
        pageRequest<number>(request.query, 'number'),
      );
      const names = await owners(org, page.items);
      return {
        items: page.items.map((t) => viewTicket(t, names.get(t.userId ?? 0) ?? '?')),
        next: encodeCursor(page.next),
      };
    },
  );

  app.post(
    '/api/admin/tickets/:domain',
    {
      schema: {
        summary: 'Create a user ticket for a user (the token is shown once)',
        description:
          'Only APIs that External API authorization allows the user now can be granted: asking for others is 403 naming them.',
        tags,
        params: DomainParams,
        body: NewTicketSchema,
        response: { 201: CreatedTicketSchema, ...errorResponses },
      },
      config: { access, xmlRoot: 'ticket' },
    },
    async (request, reply) => {
      const org = orgOf(request);
      const body = request.body as {
        user: string;
        apis: string[];
        name?: string;
        platform?: string;
        days?: number;
      };
      const user = await requireUser(deps.database, org, body.user);
      const created = await createUserTicket(
        deps.database,
        deps.config,
        actorOf(request.principal),
        {
          organization: org,
          user,
          apis: body.apis,
          ...(body.name !== undefined ? { name: body.name } : {}),
          ...(body.platform !== undefined ? { platform: body.platform } : {}),
          ...(body.days !== undefined ? { days: body.days } : {}),
        },
        BODY_TICKET_FIELDS,
      );
      reply.code(201).header('location', adminLocation('tickets', org.domain, created.ticket.id));
      return { ...viewTicket(created.ticket, `${user.userId}@${org.domain}`), token: created.token };
    },
  );

  app.get(
    '/api/admin/tickets/:domain/:ticketId',
    {
      schema: {
        summary: 'One user ticket (never its token)',
        tags,
        params: TicketParams,
        response: { 200: TicketViewSchema, ...errorResponses },
      },
      config: { access, xmlRoot: 'ticket' },
    },
    async (request) => {
      const org = orgOf(request);
      const t = await requireTicket(org, (request.params as { ticketId: number }).ticketId);
      return viewTicket(t, (await owners(org, [t])).get(t.userId ?? 0) ?? '?');
    },
  );

  app.delete(
    '/api/admin/tickets/:domain/:ticketId',
    {
      schema: {
        summary: 'Revoke a user ticket (takes effect on its next request)',
        tags,
        params: TicketParams,
        response: { 200: TicketViewSchema, ...errorResponses },
      },
      config: { access, xmlRoot: 'ticket' },
    },
    async (request) => {
      const org = orgOf(request);
      const { ticketId } = request.params as { ticketId: number };
      await requireTicket(org, ticketId);
      const t = await revokeTicket(
        deps.database,
        actorOf(request.principal),
        { organizationId: org.id },
        ticketId,
      );
      return viewTicket(t, (await owners(org, [t])).get(t.userId ?? 0) ?? '?');
    },
  );
}
