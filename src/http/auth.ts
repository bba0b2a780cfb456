import fp from 'fastify-plugin';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Config } from '../config.js';
import type { DatabaseHandle } from '../db/database.js';
import { AppError, ForbiddenError, NotFoundError, UnauthorizedError } from '../errors.js';
import {
  decryptSecret,
  parseLegacyToken,
  parseSntHeader,
  parseToken,
  sntCanonical,
  sntVerify,
  verifyLegacyToken,
  verifyTokenSecret,
} from '../security/tokens.js';
import { verifyLoginPassword } from '../security/passwords.js';
import { TicketAuthRepository, TicketRepository, type Ticket } from '../areas/tickets/repository.js';
import { OrganizationRepository, type Organization } from '../areas/organizations/repository.js';
import { UserRepository } from '../areas/users/repository.js';
import { WebSessionRepository } from '../areas/sessions/repository.js';
import type { AdminScope, UserApi } from '../areas/common/schemas.js';
import type { Role } from '../db/schema.js';
import { FailureLimiter, RequestLimiter } from './rate-limit.js';
import { originalMethod } from './platform.js';

/**
 * Who may call a route, declared in its `config.access`; this plugin enforces it before the
 * route runs. Every route under the API plugin must declare one (checked at registration).
 */
export type Access =
  /** Anyone. */
  | { kind: 'public' }
  /** A user ticket (Bearer or `t=`) with this scope, for its own `{domain}/{user}`. */
  | { kind: 'user'; scope: UserApi }
  /** A system ticket (SNT-HMACv1) with ADMIN or this scope; `{domain}` must be one it reaches. */
  | { kind: 'admin'; scope: AdminScope }
  /** The user's password: HTTP Basic `user@domain:password`, or the legacy `t=D...` token. */
  | { kind: 'password' }
  /** A web session of a system administrator, or of a user of an organization. */
  | { kind: 'session'; who: 'admin' | 'user' };

export interface AuthUser {
  id: number;
  userId: string;
  role: Role;
  organizationId: number;
  domain: string;
}

export type Principal =
  | { kind: 'anonymous' }
  | { kind: 'user-ticket'; ticketId: number; scopes: string[]; user: AuthUser }
  | { kind: 'user-password'; via: 'basic' | 'legacy'; legacyApis?: string[]; user: AuthUser }
  | { kind: 'system-ticket'; ticketId: number; scopes: string[]; organizations: number[] | null }
  | { kind: 'admin-session'; adminId: number; username: string; csrfToken: string }
  | { kind: 'user-session'; user: AuthUser; csrfToken: string };

declare module 'fastify' {
  interface FastifyContextConfig {
    access?: Access;
    /** The route takes HTML form posts (web interface only). */
    forms?: boolean;
  }
  interface FastifyRequest {
    principal: Principal;
    /** The organization named by `{domain}`, resolved and access-checked by the auth layer. */
    organization: Organization | undefined;
    /** An admin request's ticket, identified before its body was read (signature checked after). */
    systemTicket: PendingSystemTicket | undefined;
  }
}

interface PendingSystemTicket {
  snt: NonNullable<ReturnType<typeof parseSntHeader>>;
  ticket: Ticket;
}

/** The audit actor of a request's principal. */
export function actorOf(p: Principal): string {
  switch (p.kind) {
    case 'user-ticket':
      return `ticket:${p.ticketId}`;
    case 'system-ticket':
      return `ticket:${p.ticketId}`;
    case 'user-password':
    case 'user-session':
      return `user:${p.user.userId}@${p.user.domain}`;
    case 'admin-session':
      return `admin:${p.username}`;
    default:
      return 'anonymous';
  }
}

export const SNT_WINDOW_S = 300;
/** The one answer to an SNT-HMACv1 request whose signature is not proven (unknown ticket included). */
export const SNT_BAD_CREDENTIALS =
  'invalid credentials: no such system ticket, or the signature does not match';
export const SESSION_COOKIE = 'onecloud_session';

export interface AuthOptions {
  config: Config;
  database: DatabaseHandle;
}

export const auth = fp<AuthOptions>(
  async (app: FastifyInstance, { config, database }) => {
    const tickets = new TicketAuthRepository(database.db);
    const orgs = new OrganizationRepository(database.db);
    // Repeated authentication failures from one address block it for a minute. A success does
    // not reset the count: one valid ticket must not buy unlimited guesses at others.
    const failures = new FailureLimiter(config.authFailureLimit, 60_000, 60_000);
    // Password checks (Basic, legacy, logins) are slow by design: limited per user and per address.
    const passwordTries = new RequestLimiter(config.passwordTryLimit, 60_000);
    const passwordTriesByAddress = new RequestLimiter(config.passwordTryLimit * 6, 60_000);
    // Ticket creation per user, one budget for the ticket API and the portal together.
    const ticketCreations = new RequestLimiter(config.ticketCreateLimit, 3_600_000);
    const lastTouched = new Map<number, number>();

    app.decorateRequest('principal', null as never);
    app.decorateRequest('organization', undefined);
    app.decorateRequest('systemTicket', undefined);
    app.decorate('authLimits', {
      failures,
      passwordTries,
      ticketCreation(user: { organizationId: number; id: number }): void {
        const wait = ticketCreations.hit(`${user.organizationId}:${user.id}`);
        if (wait > 0) {
          throw new AppError(429, `too many tickets created for this user; try again in ${wait} s`, {
            headers: { 'retry-after': String(wait) },
          });
        }
      },
    });

    // Used SNT-HMACv1 nonces are kept until their expiry (twice the window after use: a replay
    // inside the window is always refused), then deleted on a timer that lives with the app.
    let nonceTimer: NodeJS.Timeout | undefined;
    let pruning: Promise<unknown> | undefined;
    app.addHook('onReady', async () => {
      nonceTimer = setInterval(() => {
        if (pruning) return;
        pruning = tickets
          .pruneNonces(Date.now())
          .catch((err: unknown) => app.log.warn({ err }, 'could not prune used SNT-HMACv1 nonces'))
          .finally(() => {
            pruning = undefined;
          });
      }, config.noncePruneIntervalMs);
      nonceTimer.unref();
    });
    app.addHook('onClose', async () => {
      clearInterval(nonceTimer);
      await pruning;
    });

    const refuse = (request: FastifyRequest, err: AppError): never => {
      if (err.statusCode === 401) failures.fail(request.ip);
      throw err;
    };

    const touch = (ticketId: number) => {
      const now = Date.now();
      if ((lastTouched.get(ticketId) ?? 0) > now - 60_000) return;
      lastTouched.set(ticketId, now);
      if (lastTouched.size > 100_000) lastTouched.clear();
      new TicketRepository(database.db).touchLastUsed(ticketId, now).catch((err: unknown) => {
        app.log.warn({ err, ticketId }, 'could not record ticket use');
      });
    };

    app.addHook('onRequest', async (request, reply) => {
      request.principal = { kind: 'anonymous' };
      const access = request.routeOptions.config?.access;
      if (!access || access.kind === 'public') return;
      const wait = failures.retryAfter(request.ip);
      if (wait > 0) {
        reply.header('retry-after', String(wait));
        throw new AppError(429, `too many failed authentications from this address; try again in ${wait} s`);
      }
      // The admin API: what can be checked without the body (header, ticket, token) is checked
      // before the body is read, so an unsigned caller never makes the server take in a body.
      if (access.kind === 'admin') request.systemTicket = await identifySystemTicket(request);
      else if (access.kind === 'user') await authenticateUserTicket(request, access.scope);
      else if (access.kind === 'password') await authenticatePassword(request);
      else if (access.kind === 'session') await authenticateSession(request, access.who);
    });

    // The admin API's signature and a form's CSRF token are in the body: checked once it is read.
    app.addHook('preValidation', async (request) => {
      const access = request.routeOptions.config?.access;
      if (access?.kind === 'session') {
        checkCsrf(request);
        return;
      }
      if (access?.kind !== 'admin') return;
      await authenticateSystemTicket(request, access.scope);
    });

    // Every API route declares who may call it: a forgotten declaration fails at start-up.
    // (Checked when ready: the API plugin's own onRoute hook marks its routes after this one runs.)
    const routes: RouteEntry[] = [];
    app.decorate('routeTable', routes);
    app.addHook('onRoute', (route) => {
      routes.push(route);
    });
    app.addHook('onReady', async () => {
      const missing = routes.filter(
        (r) => r.config?.formats === 'api' && !r.config.access && !r.url.startsWith('/_onecloud/'),
      );
      if (missing.length > 0) {
        throw new Error(
          `routes without config.access: ${missing.map((r) => `${String(r.method)} ${r.url}`).join(', ')}`,
        );
      }
    });

    async function authenticateUserTicket(request: FastifyRequest, scope: UserApi): Promise<void> {
      const header = request.headers.authorization;
      let token: string | undefined;
      if (typeof header === 'string' && /^Bearer\s+/i.test(header))
        token = header.replace(/^Bearer\s+/i, '').trim();
      else token = (request.query as Record<string, unknown> | undefined)?.t as string | undefined;
      if (typeof token !== 'string' || token === '')
        refuse(request, new UnauthorizedError('credentials missing: send Authorization: Bearer {token}'));
      const parsed = parseToken(token!);
      if (!parsed) refuse(request, new UnauthorizedError('invalid credentials'));
      const found = await tickets.forUserApi(parsed!.ticketId, scope);
      if (!found || !verifyTokenSecret(config.secretKey, parsed!.secretPart, found.ticket.secretHash)) {
        refuse(request, new UnauthorizedError('invalid credentials'));
      }
      const { ticket, user, granted } = found!;
      // From here on the caller holds the ticket's real secret: it may learn the ticket's state.
      if (ticket.revokedAt !== null) refuse(request, new UnauthorizedError('ticket revoked'));
      if (ticket.expiresAt <= Date.now()) refuse(request, new UnauthorizedError('ticket expired'));
      if (ticket.kind !== 'USER' || !user)
        refuse(request, new UnauthorizedError('a system ticket cannot be used on the user API'));
      touch(ticket.id);
      const u = user!;
      if (!ticket.scopes.includes(scope))
        throw new ForbiddenError(`this ticket is not granted the ${scope} API`);
      if (u.role === 'SUPERUSER') {
        throw new ForbiddenError(
          "a superuser's ticket cannot use the user APIs; use a ticket of an ordinary user",
        );
      }
      assertOwnPath(request, u);
      if (!granted) {
        throw new ForbiddenError(
          `External API authorization does not allow ${scope} for ${u.userId}@${u.domain}`,
        );
      }
      request.principal = { kind: 'user-ticket', ticketId: ticket.id, scopes: ticket.scopes, user: u };
    }

    async function authenticatePassword(request: FastifyRequest): Promise<void> {
      const header = request.headers.authorization;
      const params = request.params as Record<string, string | undefined>;
      if (typeof header === 'string' && /^Basic\s+/i.test(header)) {
        const decoded = Buffer.from(header.replace(/^Basic\s+/i, ''), 'base64').toString('utf8');
        const colon = decoded.indexOf(':');
        const at = decoded.lastIndexOf('@', colon);
        if (colon < 0 || at < 1) {
          refuse(
            request,
            new UnauthorizedError('invalid credentials: HTTP Basic needs user@domain:password'),
          );
        }
        const userId = decoded.slice(0, at);
        const domain = decoded.slice(at + 1, colon).toLowerCase();
        const password = decoded.slice(colon + 1);
        limitPasswordTries(request, `${userId}@${domain}`);
        const user = await findUser(domain, userId);
        const hash = user
          ? await new UserRepository(database.db).getPasswordHash(user.organizationId, user.userId)
          : null;
        // An unknown user still costs one scrypt (against a throwaway hash): timing tells nothing.
        if (!(await verifyLoginPassword(password, hash)) || !user) {
          refuse(request, new UnauthorizedError('invalid credentials'));
        }
        assertOwnPath(request, user!);
        request.principal = { kind: 'user-password', via: 'basic', user: user! };
        return;
      }
      const t = (request.query as Record<string, unknown> | undefined)?.t;
      if (typeof t === 'string' && t.startsWith('D')) {
        if (!config.legacyPasswordTokens) {
          refuse(
            request,
            new UnauthorizedError('legacy password tokens are switched off here; use HTTP Basic'),
          );
        }
        const legacy = parseLegacyToken(t);
        if (!legacy) refuse(request, new UnauthorizedError('invalid credentials'));
        limitPasswordTries(request, `${legacy!.user}@${legacy!.domain}`);
        const user = await findUser(legacy!.domain.toLowerCase(), legacy!.user);
        const ha1 = user
          ? await new UserRepository(database.db).getLegacyHa1(user.organizationId, user.id)
          : null;
        if (!user || !ha1 || !verifyLegacyToken(legacy!, ha1))
          refuse(request, new UnauthorizedError('invalid credentials'));
        assertOwnPath(request, user!);
        request.principal = { kind: 'user-password', via: 'legacy', legacyApis: legacy!.apis, user: user! };
        return;
      }
      void params;
      refuse(
        request,
        new UnauthorizedError('credentials missing: send Authorization: Basic base64(user@domain:password)'),
      );
    }

    function limitPasswordTries(request: FastifyRequest, who: string): void {
      const wait = Math.max(passwordTries.hit(who), passwordTriesByAddress.hit(request.ip));
      if (wait > 0) {
        throw new AppError(429, `too many password attempts; try again in ${wait} s`, {
          headers: { 'retry-after': String(wait) },
        });
      }
    }

    async function findUser(domain: string, userId: string): Promise<AuthUser | undefined> {
      const org = await orgs.getByDomain(domain);
      if (!org) return undefined;
      const u = await new UserRepository(database.db).get(org.id, userId);
      return u && { id: u.id, userId: u.userId, role: u.role, organizationId: org.id, domain: org.domain };
    }

    /**
     * The first half of SNT-HMACv1, before the body: the header, the ticket it names (a system
     * ticket) and, when the whole token is given, its secret. Every failure answers the same text.
     */
    async function identifySystemTicket(request: FastifyRequest): Promise<PendingSystemTicket> {
      const header = request.headers.authorization;
      if (typeof header !== 'string' || !/^SNT-HMACv1\s/i.test(header)) {
        refuse(
          request,
          new UnauthorizedError('credentials missing: sign the request with Authorization: SNT-HMACv1 ...'),
        );
      }
      const snt = parseSntHeader(header!);
      if (!snt) {
        refuse(
          request,
          new UnauthorizedError(
            'malformed SNT-HMACv1 header: token=, ts=, nonce= (8+ characters), sig= are all required',
          ),
        );
      }
      // Until the signature is proven, every failure answers the same text: an unsigned caller
      // must not learn whether a ticket id exists (nor anything about its state or the clock).
      const badCredentials = () => refuse(request, new UnauthorizedError(SNT_BAD_CREDENTIALS));
      const parsedToken = parseToken(snt!.token);
      const idOnly = /^[1-9]\d{0,15}$/.test(snt!.token) ? Number(snt!.token) : undefined;
      const ticketId = parsedToken?.ticketId ?? (Number.isSafeInteger(idOnly) ? idOnly : undefined);
      if (ticketId === undefined) badCredentials();
      const ticket = await new TicketRepository(database.db).getById(ticketId!);
      if (!ticket || ticket.kind !== 'SYSTEM' || !ticket.signingSecretEnc) badCredentials();
      if (parsedToken && !verifyTokenSecret(config.secretKey, parsedToken.secretPart, ticket!.secretHash)) {
        badCredentials();
      }
      return { snt: snt!, ticket: ticket! };
    }

    /** The second half, once the body is read: the signature, then the ticket's state and scope. */
    async function authenticateSystemTicket(request: FastifyRequest, scope: AdminScope): Promise<void> {
      const pending = request.systemTicket;
      if (!pending) throw new UnauthorizedError(SNT_BAD_CREDENTIALS);
      const { snt, ticket } = pending;
      const badCredentials = () => refuse(request, new UnauthorizedError(SNT_BAD_CREDENTIALS));
      const secret = decryptSecret(config.secretKey, ticket.signingSecretEnc!);
      const pathAndQuery = request.raw.url ?? request.url;
      const body = request.rawBody ?? Buffer.alloc(0);
      const sentMethod = originalMethod(request.raw);
      const ok =
        sntVerify(secret, sntCanonical(sentMethod, pathAndQuery, snt.ts, snt.nonce, body), snt.sig) ||
        (sentMethod !== request.method &&
          sntVerify(secret, sntCanonical(request.method, pathAndQuery, snt.ts, snt.nonce, body), snt.sig));
      if (!ok) badCredentials();
      // Signed with the ticket's secret: the caller may now learn what else is wrong.
      const now = Date.now();
      if (Math.abs(now / 1000 - snt.ts) > SNT_WINDOW_S) {
        refuse(
          request,
          new UnauthorizedError(
            `signature timestamp is more than ${SNT_WINDOW_S} s away from the server's clock (${Math.floor(now / 1000)})`,
          ),
        );
      }
      if (ticket.revokedAt !== null) refuse(request, new UnauthorizedError('ticket revoked'));
      if (ticket.expiresAt <= now) refuse(request, new UnauthorizedError('ticket expired'));
      if (!(await tickets.useNonce(ticket.id, snt.nonce, now + 2 * SNT_WINDOW_S * 1000))) {
        refuse(request, new UnauthorizedError('nonce already used: send a new nonce with every request'));
      }
      touch(ticket.id);
      if (!ticket.scopes.includes('ADMIN') && !ticket.scopes.includes(scope)) {
        throw new ForbiddenError(`this system ticket is not granted ${scope}`);
      }
      request.principal = {
        kind: 'system-ticket',
        ticketId: ticket.id,
        scopes: ticket.scopes,
        organizations: ticket.organizations,
      };
      const domain = (request.params as Record<string, string | undefined>).domain;
      if (domain !== undefined) {
        const org = await orgs.getByDomain(domain.toLowerCase());
        if (!org || (ticket.organizations !== null && !ticket.organizations.includes(org.id))) {
          throw new NotFoundError(`no organization with domain "${domain}"`);
        }
        request.organization = org;
      }
    }

    async function authenticateSession(request: FastifyRequest, who: 'admin' | 'user'): Promise<void> {
      const id = readCookie(request.headers.cookie, SESSION_COOKIE);
      const session = id
        ? await new WebSessionRepository(database.db).get(hashSessionId(id), Date.now())
        : undefined;
      if (!session || (who === 'admin' ? session.kind !== 'ADMIN' : session.kind !== 'USER')) {
        throw new AppError(401, 'log in first', { headers: { 'x-login-required': who } });
      }
      if (session.kind === 'ADMIN') {
        request.principal = {
          kind: 'admin-session',
          adminId: session.adminId!,
          username: session.username!,
          csrfToken: session.csrfToken,
        };
      } else {
        request.principal = { kind: 'user-session', user: session.user!, csrfToken: session.csrfToken };
      }
    }
  },
  { name: 'onecloud-auth', dependencies: ['onecloud-platform'] },
);

/**
 * Every state-changing request of a web session carries the session's CSRF token, as the form
 * field `_csrf` or the header `x-csrf-token` (compared in constant time); else 403.
 */
function checkCsrf(request: FastifyRequest): void {
  if (request.method === 'GET' || request.method === 'HEAD') return;
  const p = request.principal;
  if (p.kind !== 'admin-session' && p.kind !== 'user-session') return;
  const body = request.body as Record<string, unknown> | undefined;
  const given = request.headers['x-csrf-token'] ?? body?._csrf;
  const a = Buffer.from(typeof given === 'string' ? given : '');
  const b = Buffer.from(p.csrfToken);
  if (a.length !== b.length || !timingSafeEqual(a, b)) {
    throw new ForbiddenError('the form has expired; reload the page and try again');
  }
}

/** `{domain}/{user}` in the path must be the authenticated user's own (else 403). */
function assertOwnPath(request: FastifyRequest, user: AuthUser): void {
  const params = request.params as Record<string, string | undefined>;
  if (params.domain === undefined && params.user === undefined) return;
  const same = params.domain?.toLowerCase() === user.domain && params.user === user.userId;
  if (!same) {
    throw new ForbiddenError(
      `this ticket belongs to ${user.userId}@${user.domain}; it cannot act for ${params.user ?? '?'}@${params.domain ?? '?'}`,
    );
  }
}

export function hashSessionId(id: string): string {
  return createHash('sha256').update(id).digest('hex');
}

export function newSessionId(): string {
  return randomBytes(32).toString('base64url');
}

/**
 * The value of cookie `name`, percent-decoded; `undefined` when absent or not decodable (a
 * malformed cookie is no session: the login page or 401, never a 500).
 */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) {
      try {
        return decodeURIComponent(part.slice(eq + 1).trim());
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}

/** A registered route as the auth layer saw it (the authorization matrix test reads these). */
export interface RouteEntry {
  method: string | string[];
  url: string;
  config?: { formats?: string; access?: Access };
}

declare module 'fastify' {
  interface FastifyInstance {
    authLimits: {
      failures: FailureLimiter;
      passwordTries: RequestLimiter;
      /** Counts a ticket creation for the user; 429 with Retry-After beyond the hourly limit. */
      ticketCreation(user: { organizationId: number; id: number }): void;
    };
    routeTable: RouteEntry[];
  }
}
