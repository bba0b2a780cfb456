import { randomBytes } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { DatabaseHandle } from '../db/database.js';
import { hashSessionId, newSessionId, readCookie, SESSION_COOKIE } from '../http/auth.js';
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
