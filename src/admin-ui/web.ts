import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Config } from '../config.js';
import type { DatabaseHandle } from '../db/database.js';
import { AppError } from '../errors.js';
import type { Principal } from '../http/auth.js';
import type { Html } from './html.js';
import { errorFlash, type Flash } from './layout.js';
import type { Who } from './session.js';

export interface WebDeps {
  config: Config;
  database: DatabaseHandle;
}

export type FormBody = Record<string, string>;

export type Handler = (request: FastifyRequest, reply: FastifyReply) => Promise<Html | void>;

export function sendHtml(reply: FastifyReply, body: Html, status = 200): void {
  reply.code(status).type('text/html; charset=utf-8').send(body.value);
}

export function redirect(reply: FastifyReply, location: string): void {
  reply.code(303).header('location', location).send();
}

export function formBody(request: FastifyRequest): FormBody {
  const b = request.body;
  return b && typeof b === 'object' ? (b as FormBody) : {};
}

/** The values ticked among checkboxes named `<prefix>.<value>`. */
export function ticked(body: FormBody, prefix: string): string[] {
  return Object.keys(body)
    .filter((k) => k.startsWith(`${prefix}.`))
    .map((k) => k.slice(prefix.length + 1));
}

export function field(body: FormBody, name: string): string {
  const v = body[name];
  return typeof v === 'string' ? v : '';
}

/** A page of the web interface: GET, checked by the auth layer (a session of `who`), or public. */
export function getPage(app: FastifyInstance, url: string, who: Who | 'public', handler: Handler): void {
  app.get(
    url,
    {
      schema: { hide: true },
      config: {
        formats: 'raw',
        access: who === 'public' ? { kind: 'public' } : { kind: 'session', who },
      },
    },
    async (request, reply) => {
      const page = await handler(request, reply);
      if (page) sendHtml(reply, page);
      return reply;
    },
  );
}

/**
 * A form post: the auth layer checks the session of `who` and, once the body is read, the form's
 * CSRF token (`_csrf`).
 */
export function postForm(app: FastifyInstance, url: string, who: Who | 'public', handler: Handler): void {
  app.post(
    url,
    {
      schema: { hide: true },
      config: {
        formats: 'raw',
        forms: true,
        access: who === 'public' ? { kind: 'public' } : { kind: 'session', who },
      },
    },
    async (request, reply) => {
      const page = await handler(request, reply);
      if (page) sendHtml(reply, page);
      return reply;
    },
  );
}

/**
 * Runs a form action; a refusal (4xx from a service: validation, conflict, not allowed) shows
 * the form again with the message, with that status.
 */
export async function attempt(
  reply: FastifyReply,
  action: () => Promise<void>,
  again: (flash: Flash) => Promise<Html>,
): Promise<Html | void> {
  try {
    await action();
  } catch (err) {
    if (err instanceof AppError && err.statusCode >= 400 && err.statusCode < 500 && err.statusCode !== 401) {
      for (const [k, v] of Object.entries(err.details?.headers ?? {})) reply.header(k, v);
      const body = await again(errorFlash(err));
      sendHtml(reply, body, err.statusCode);
      return;
    }
    throw err;
  }
}

export interface SessionInfo {
  csrf: string;
  name: string;
}

export function sessionOf(p: Principal): SessionInfo {
  if (p.kind === 'admin-session') return { csrf: p.csrfToken, name: p.username };
  if (p.kind === 'user-session') return { csrf: p.csrfToken, name: `${p.user.userId}@${p.user.domain}` };
  throw new AppError(401, 'log in first');
}

/** Fixed success messages, chosen by `?done=` after a redirect (nothing from the URL is shown). */
export const DONE: Record<string, string> = {
  'org-created': 'Organization created.',
  'user-created': 'User created.',
  'group-created': 'User group created.',
  saved: 'Saved.',
  'role-saved': 'Role saved.',
  'groups-saved': 'Group membership saved.',
  'members-saved': 'Members saved.',
  'apis-saved': 'External API authorization saved. It applies from the next request on.',
  revoked: 'Ticket revoked. It stops working at once.',
};

export function doneFlash(request: FastifyRequest): Flash | undefined {
  const done = (request.query as Record<string, unknown> | undefined)?.done;
  const text = typeof done === 'string' && Object.hasOwn(DONE, done) ? DONE[done] : undefined;
  return text ? { kind: 'ok', text } : undefined;
}
