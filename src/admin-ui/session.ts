import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { DatabaseHandle } from '../db/database.js';
import { AppError, ForbiddenError } from '../errors.js';
import { hashSessionId, newSessionId, readCookie, SESSION_COOKIE, type Principal } from '../http/auth.js';
import { WebSessionRepository } from '../areas/sessions/repository.js';

export type Who = 'admin' | 'user';

/** Where each kind of session lives: its cookie is scoped to that path, so both can coexist. */
export const AREA_PATH: Record<Who, string> = { admin: '/admin', user: '/portal' };

export const SESSION_TTL_MS = 8 * 3_600_000;

function cookie(request: FastifyRequest, value: string, path: string, maxAgeS: number): string {
  const secure = request.protocol === 'https' ? '; Secure' : '';
  return `${SESSION_COOKIE}=${value}; Path=${path}; Max-Age=${maxAgeS}; HttpOnly; SameSite=Strict${secure}`;
}

/** Starts a session after a successful login and sets its cookie. */
export async function startSession(
  database: DatabaseHandle,
  request: FastifyRequest,
  reply: FastifyReply,
  who: Who,
  owner: { adminId: number } | { organizationId: number; userId: number },
  ttlMs = SESSION_TTL_MS,
): Promise<void> {
  const repo = new WebSessionRepository(database.db);
  const now = Date.now();
  // Expired sessions are cleaned up as new ones start: the table stays small without a timer.
  await repo.prune(now);
  const id = newSessionId();
  await repo.create({
    idHash: hashSessionId(id),
    kind: who === 'admin' ? 'ADMIN' : 'USER',
    ...('adminId' in owner ? { adminId: owner.adminId } : owner),
    csrfToken: randomBytes(24).toString('base64url'),
    now,
    expiresAt: now + ttlMs,
  });
  reply.header('set-cookie', cookie(request, id, AREA_PATH[who], Math.floor(ttlMs / 1000)));
}

/** Ends the session of this request (if any) and clears its cookie. */
export async function endSession(
  database: DatabaseHandle,
  request: FastifyRequest,
  reply: FastifyReply,
  who: Who,
): Promise<void> {
  const id = readCookie(request.headers.cookie, SESSION_COOKIE);
  if (id) await new WebSessionRepository(database.db).delete(hashSessionId(id));
  reply.header('set-cookie', cookie(request, '', AREA_PATH[who], 0));
}

function sameToken(given: unknown, expected: string): boolean {
  if (typeof given !== 'string') return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * The session check of form posts. The auth layer checks sessions in `onRequest`, before the
 * body is parsed, so there the CSRF token can only come from the `x-csrf-token` header, which a
 * plain HTML form cannot send. Form posts are therefore declared `public` to the auth layer and
 * checked here, once the body is read: the same session lookup, then the `_csrf` form field (or
 * the header) against the session's token. 401 with `x-login-required` without a session, 403
 * on a CSRF mismatch.
 */
export async function authenticateFormPost(
  database: DatabaseHandle,
  request: FastifyRequest,
  who: Who,
): Promise<Principal> {
  const id = readCookie(request.headers.cookie, SESSION_COOKIE);
  const session = id
    ? await new WebSessionRepository(database.db).get(hashSessionId(id), Date.now())
    : undefined;
  if (!session || session.kind !== (who === 'admin' ? 'ADMIN' : 'USER')) {
    throw new AppError(401, 'log in first', { headers: { 'x-login-required': who } });
  }
  const body = request.body as Record<string, unknown> | undefined;
  const given = request.headers['x-csrf-token'] ?? body?._csrf;
  if (!sameToken(given, session.csrfToken)) {
    throw new ForbiddenError('the form has expired; reload the page and try again');
  }
  if (session.kind === 'ADMIN') {
    return {
      kind: 'admin-session',
      adminId: session.adminId!,
      username: session.username!,
      csrfToken: session.csrfToken,
    };
  }
  return { kind: 'user-session', user: session.user!, csrfToken: session.csrfToken };
}
