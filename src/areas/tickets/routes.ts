import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import type { AppDeps } from '../../app.js';
import { ForbiddenError } from '../../errors.js';
import { actorOf, type AuthUser } from '../../http/auth.js';
import { DomainUserParams, errorResponses } from '../../http/schemas.js';
import { IdSchema, UserApiSchema } from '../common/schemas.js';
import { OrganizationRepository } from '../organizations/repository.js';
import { UserRepository } from '../users/repository.js';
import { TicketRepository } from './repository.js';
import { createUserTicket, revokeTicket, viewTicket } from './service.js';

export const TicketViewSchema = Type.Object({
  id: Type.Integer(),
  name: Type.String(),
  kind: Type.String(),
  owner: Type.String(),
  allowedApis: Type.Array(Type.String()),
  platform: Type.Union([Type.String(), Type.Null()]),
  createdBy: Type.String(),
  created: Type.String({ format: 'date-time' }),
  expires: Type.String({ format: 'date-time' }),
  revoked: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  lastUsed: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  status: Type.Enum(['active', 'expired', 'revoked']),
});

/**
 * The ticket API [real]: a user creates tickets for its own user with its password (HTTP Basic
 * `user@domain:password`, or the deprecated legacy `t=D...` token), lists and revokes them.
 */
export async function ticketRoutes(app: FastifyInstance, { deps }: { deps: AppDeps }): Promise<void> {
  const ownUser = (p: AuthUser | undefined): AuthUser => {
    if (!p) throw new ForbiddenError();
    return p;
  };

  app.post(
    '/api/tickets/:domain/:user',
    {
      schema: {
        summary: 'Create a ticket for my user [real]',
        description:
          'Authenticate with HTTP Basic `user@domain:password` (or the deprecated legacy password token in `t=`). ' +
          'Asking for an API that External API authorization does not allow is 403, naming it. The token is shown once. ' +
          'The legacy token signs a list of APIs: without `api=` those are asked; with `api=`, every API asked must be ' +
          'in the signed list, else 403 naming those that are not (the password was right; the request goes beyond what it signed). ' +
          'Answers 200 like the real platform (clients read the body).',
        tags: ['Tickets'],
        params: DomainUserParams,
        querystring: Type.Object({
          api: Type.Optional(Type.Array(UserApiSchema, { maxItems: 14 })),
          name: Type.Optional(Type.String({ maxLength: 200 })),
          platform: Type.Optional(Type.String({ maxLength: 50 })),
          days: Type.Optional(Type.Integer({ minimum: 1 })),
        }),
        response: {
          200: Type.Object({
            name: Type.String(),
            expires: Type.String({ format: 'date-time' }),
            allowedApis: Type.Array(Type.String()),
            token: Type.String(),
          }),
          ...errorResponses,
        },
      },
      config: { access: { kind: 'password' }, xmlRoot: 'ticket' },
    },
    async (request) => {
      const p = request.principal;
      const user = ownUser(p.kind === 'user-password' ? p.user : undefined);
      app.authLimits.ticketCreation(user);
      const q = request.query as { api?: string[]; name?: string; platform?: string; days?: number };
      const apis = q.api ?? (p.kind === 'user-password' ? (p.legacyApis ?? []) : []);
      if (p.kind === 'user-password' && p.via === 'legacy') {
        // The legacy token's hash covers its list of APIs: it vouches for those and no others.
        const signed = p.legacyApis ?? [];
        const unsigned = [...new Set(apis)].filter((a) => !signed.includes(a));
        if (unsigned.length > 0) {
          throw new ForbiddenError(
            `the legacy password token was signed for ${signed.length > 0 ? signed.join(', ') : 'no API'}; ` +
              `it cannot create a ticket for: ${unsigned.join(', ')}`,
          );
        }
      }
      const organization = (await new OrganizationRepository(deps.database.db).getById(user.organizationId))!;
      const full = (await new UserRepository(deps.database.db).getById(user.organizationId, user.id))!;
      const created = await createUserTicket(deps.database, deps.config, actorOf(p), {
        organization,
        user: full,
        apis,
        ...(q.name !== undefined ? { name: q.name } : {}),
        ...(q.platform !== undefined ? { platform: q.platform } : {}),
        ...(q.days !== undefined ? { days: q.days } : {}),
      });
      return created.answer;
    },
  );

  app.get(
    '/api/tickets/:domain/:user',
    {
      schema: {
        summary: 'My tickets (never their tokens)',
        tags: ['Tickets'],
        params: DomainUserParams,
        response: { 200: Type.Object({ tickets: Type.Array(TicketViewSchema) }), ...errorResponses },
      },
      config: { access: { kind: 'password' }, xmlRoot: 'tickets' },
    },
    async (request) => {
      const p = request.principal;
      const user = ownUser(p.kind === 'user-password' ? p.user : undefined);
      const list = await new TicketRepository(deps.database.db).listByUser(user.organizationId, user.id, {
        includeRevoked: true,
      });
      return { tickets: list.map((t) => viewTicket(t, `${user.userId}@${user.domain}`)) };
    },
  );

  app.delete(
    '/api/tickets/:domain/:user/:ticketId',
    {
      schema: {
        summary: 'Revoke one of my tickets (takes effect on the next request)',
        tags: ['Tickets'],
        params: Type.Object({
          domain: Type.String({ maxLength: 253 }),
          user: Type.String({ maxLength: 64 }),
          ticketId: IdSchema,
        }),
        response: { 200: TicketViewSchema, ...errorResponses },
      },
      config: { access: { kind: 'password' }, xmlRoot: 'ticket' },
    },
    async (request) => {
      const p = request.principal;
      const user = ownUser(p.kind === 'user-password' ? p.user : undefined);
      const { ticketId } = request.params as { ticketId: number };
      const t = await revokeTicket(
        deps.database,
        actorOf(p),
        { organizationId: user.organizationId, userId: user.id },
        ticketId,
      );
      return viewTicket(t, `${user.userId}@${user.domain}`);
    },
  );
}
