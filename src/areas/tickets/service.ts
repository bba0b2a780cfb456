import type { Config } from '../../config.js';
import type { DatabaseHandle } from '../../db/database.js';
import { recordChange } from '../../db/changes.js';
import { ForbiddenError, NotFoundError, ValidationError } from '../../errors.js';
import { encryptSecret, hashTokenSecret, newSigningSecret } from '../../security/tokens.js';
import { randomBytes } from 'node:crypto';
import type { Actor } from '../common/actor.js';
import { ADMIN_SCOPES, USER_APIS, type AdminScope, type UserApi } from '../common/schemas.js';
import { ExternalApiRepository } from '../externalapi/repository.js';
import { OrganizationRepository, type Organization } from '../organizations/repository.js';
import type { User } from '../users/repository.js';
import { TicketRepository, type Ticket } from './repository.js';

export const DEFAULT_TICKET_DAYS = 365;
const DAY_MS = 86_400_000;

/** A ticket as the API and the web pages show it: never its token or secrets. */
export interface TicketView {
  id: number;
  name: string;
  kind: 'USER' | 'SYSTEM';
  owner: string;
  allowedApis: string[];
  organizations: string[] | null;
  platform: string | null;
  createdBy: string;
  created: string;
  expires: string;
  revoked: string | null;
  lastUsed: string | null;
  status: 'active' | 'expired' | 'revoked';
}

export function ticketStatus(
  t: Pick<Ticket, 'revokedAt' | 'expiresAt'>,
  now = Date.now(),
): TicketView['status'] {
  if (t.revokedAt !== null) return 'revoked';
  if (t.expiresAt <= now) return 'expired';
  return 'active';
}

export function viewTicket(t: Ticket, owner: string, orgDomains: string[] | null = null): TicketView {
  const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
  return {
    id: t.id,
    name: t.name,
    kind: t.kind,
    owner,
    allowedApis: t.scopes,
    organizations: orgDomains,
    platform: t.platform,
    createdBy: t.createdBy,
    created: new Date(t.createdAt).toISOString(),
    expires: new Date(t.expiresAt).toISOString(),
    revoked: iso(t.revokedAt),
    lastUsed: iso(t.lastUsedAt),
    status: ticketStatus(t),
  };
}

/**
 * Where the caller took each input from, so problems name the caller's own field: the ticket
 * API [real] reads its query (`query.api`, the default), the admin API its body (`body.apis`).
 */
export interface TicketFields {
  apis: string;
  days: string;
  name: string;
}
export const QUERY_TICKET_FIELDS: TicketFields = {
  apis: 'query.api',
  days: 'query.days',
  name: 'query.name',
};
export const BODY_TICKET_FIELDS: TicketFields = { apis: 'body.apis', days: 'body.days', name: 'body.name' };

function expiry(config: Config, days: number | undefined, now: number, field: string): number {
  const d = days ?? DEFAULT_TICKET_DAYS;
  if (!Number.isInteger(d) || d < 1 || d > config.ticketMaxDays) {
    throw new ValidationError([
      { field, message: `must be a whole number of days from 1 to ${config.ticketMaxDays}` },
    ]);
  }
  return now + d * DAY_MS;
}

function uniqueApis(apis: string[], allowed: readonly string[], field: string): string[] {
  const problems = apis
    .filter((a) => !allowed.includes(a))
    .map((a) => ({
      field,
      message: `${JSON.stringify(a)} is not an API id; use one of ${allowed.join(', ')}`,
    }));
  if (problems.length > 0) throw new ValidationError(problems);
  if (apis.length === 0) throw new ValidationError([{ field, message: 'name at least one API' }]);
  return [...new Set(apis)];
}

export interface CreatedUserTicket {
  ticket: Ticket;
  token: string;
  /** The real answer of the ticket API. */
  answer: { name: string; expires: string; allowedApis: string[]; token: string };
}

/**
 * Creates a user ticket. The user may only grant APIs that External API authorization allows it
 * now; asking for others is 403 naming them. The token is returned once and never stored.
 */
export async function createUserTicket(
  database: DatabaseHandle,
  config: Config,
  actor: Actor,
  input: {
    organization: Organization;
    user: User;
    name?: string;
    apis: string[];
    platform?: string;
    days?: number;
  },
  fields: TicketFields = QUERY_TICKET_FIELDS,
): Promise<CreatedUserTicket> {
  const apis = uniqueApis(input.apis, USER_APIS, fields.apis);
  const effective = await new ExternalApiRepository(database.db).effective(
    input.organization.id,
    input.user.id,
  );
  const refused = apis.filter((a) => !effective.apis.includes(a));
  if (refused.length > 0) {
    throw new ForbiddenError(
      `External API authorization does not allow ${input.user.userId}@${input.organization.domain} to use: ${refused.join(', ')}`,
    );
  }
  const now = Date.now();
  const expiresAt = expiry(config, input.days, now, fields.days);
  const secretPart = randomBytes(32).toString('base64url');
  const name = (input.name ?? '').trim() || `ticket ${new Date(now).toISOString().slice(0, 10)}`;
  if (name.length > 200)
    throw new ValidationError([{ field: fields.name, message: 'must be at most 200 characters long' }]);
  const ticket = await database.db.transaction().execute(async (trx) => {
    const t = await new TicketRepository(trx).insert({
      kind: 'USER',
      organizationId: input.organization.id,
      userId: input.user.id,
      name,
      scopes: apis,
      secretHash: hashTokenSecret(config.secretKey, secretPart),
      platform: input.platform ?? null,
      createdBy: actor,
      createdAt: now,
      expiresAt,
    });
    const data = {
      ticketId: t.id,
      name,
      allowedApis: apis,
      owner: `${input.user.userId}@${input.organization.domain}`,
    };
    await recordChange(trx, {
      organizationId: input.organization.id,
      actor,
      action: 'ticket.created',
      entity: 'ticket',
      entityId: t.id,
      data,
      event: { type: 'ticket.created', userId: input.user.id, data },
    });
    return t;
  });
  const token = `${ticket.id}.${secretPart}`;
  return {
    ticket,
    token,
    answer: {
      name: ticket.name,
      expires: new Date(ticket.expiresAt).toISOString(),
      allowedApis: apis,
      token,
    },
  };
}

export interface CreatedSystemTicket {
  ticket: Ticket;
  token: string;
  secret: string;
}

/** Creates a system ticket for the admin API: token and signing secret, both shown once. */
export async function createSystemTicket(
  database: DatabaseHandle,
  config: Config,
  actor: Actor,
  input: { name?: string; scopes: string[]; domains?: string[]; days?: number },
): Promise<CreatedSystemTicket> {
  const scopes = uniqueApis(input.scopes, ADMIN_SCOPES, 'scope') as AdminScope[];
  let organizations: number[] | null = null;
  if (input.domains && input.domains.length > 0) {
    const repo = new OrganizationRepository(database.db);
    organizations = [];
    for (const d of input.domains) {
      const org = await repo.getByDomain(d.toLowerCase());
      if (!org) throw new NotFoundError(`no organization with domain "${d}"`);
      organizations.push(org.id);
    }
  }
  const now = Date.now();
  const expiresAt = expiry(config, input.days, now, 'days');
  const secretPart = randomBytes(32).toString('base64url');
  const secret = newSigningSecret();
  const name = (input.name ?? '').trim() || `system ticket ${new Date(now).toISOString().slice(0, 10)}`;
  const ticket = await database.db.transaction().execute(async (trx) => {
    const t = await new TicketRepository(trx).insert({
      kind: 'SYSTEM',
      organizationId: null,
      userId: null,
      name,
      scopes,
      organizations,
      secretHash: hashTokenSecret(config.secretKey, secretPart),
      signingSecretEnc: encryptSecret(config.secretKey, secret),
      createdBy: actor,
      createdAt: now,
      expiresAt,
    });
    await recordChange(trx, {
      organizationId: null,
      actor,
      action: 'ticket.created',
      entity: 'ticket',
      entityId: t.id,
      data: { ticketId: t.id, name, scopes, organizations: input.domains ?? null, kind: 'SYSTEM' },
    });
    return t;
  });
  return { ticket, token: `${ticket.id}.${secretPart}`, secret };
}

/**
 * Revokes a ticket: of an organization (user tickets; optionally only one user's) or a system
 * ticket (organizationId null). 404 when there is no such live ticket there.
 */
export async function revokeTicket(
  database: DatabaseHandle,
  actor: Actor,
  scope: { organizationId: number | null; userId?: number },
  ticketId: number,
): Promise<Ticket> {
  return database.db.transaction().execute(async (trx) => {
    const repo = new TicketRepository(trx);
    const t = await repo.getInOrg(scope.organizationId, ticketId);
    if (!t || (scope.userId !== undefined && t.userId !== scope.userId)) {
      throw new NotFoundError(`no ticket ${ticketId} here`);
    }
    if (t.revokedAt === null) {
      await repo.revoke(scope.organizationId, ticketId);
      const data = { ticketId, name: t.name };
      await recordChange(trx, {
        organizationId: scope.organizationId,
        actor,
        action: 'ticket.revoked',
        entity: 'ticket',
        entityId: ticketId,
        data,
        ...(t.userId !== null ? { event: { type: 'ticket.revoked', userId: t.userId, data } } : {}),
      });
    }
    return (await repo.getById(ticketId))!;
  });
}

export type { UserApi };
