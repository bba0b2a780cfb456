import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../errors.js';
import { sendError } from '../http/platform.js';
import { adminArea } from './admin.js';
import { errorPage } from './layout.js';
import { portalArea } from './portal.js';
import { AREA_PATH, type Who } from './session.js';
import { COPY_ETAG, COPY_JS, STYLE_CSS, STYLE_ETAG } from './static.js';
import { redirect, sendHtml, type WebDeps } from './web.js';

export type WebUiOptions = WebDeps;

/**
 * Content Security Policy of every page: no inline script or style, nothing from elsewhere,
 * forms post only to this server, no framing.
 */
export const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
  "form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

function loginRequired(error: unknown): Who | undefined {
  if (!(error instanceof AppError) || error.statusCode !== 401) return undefined;
  const who = error.details?.headers?.['x-login-required'];
  return who === 'admin' || who === 'user' ? who : undefined;
}

/** Errors of the pages are pages: no session → the login page; anything else → an error page. */
function installPages(app: FastifyInstance, area: Who): void {
  const base = AREA_PATH[area];
  app.addHook('onSend', async (_request, reply, payload) => {
    reply.header('content-security-policy', CSP);
    reply.header('x-content-type-options', 'nosniff');
    reply.header('x-frame-options', 'DENY');
    reply.header('referrer-policy', 'same-origin');
    if (!reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store');
    return payload;
  });
  app.setErrorHandler(async (error: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    if (loginRequired(error)) {
      const path = (request.raw.url ?? base).split('#')[0]!;
      const next = request.method === 'GET' && path !== base ? `?next=${encodeURIComponent(path)}` : '';
      redirect(reply, `${base}/login${next}`);
      return reply;
    }
    const body = await sendError(error, request, reply);
    sendHtml(reply, errorPage(area, body.status, body.validationResult, body.logToken), body.status);
    return reply;
  });
  app.setNotFoundHandler(async (request, reply) => {
    const path = (request.raw.url ?? '/').split('?')[0] ?? '/';
    const err = new AppError(404, `There is no page ${path.slice(0, 200)}.`);
    const body = await sendError(err, request, reply);
    sendHtml(reply, errorPage(area, 404, body.validationResult, body.logToken), 404);
    return reply;
  });
  for (const [file, type, text, etag] of [
    ['style.css', 'text/css; charset=utf-8', STYLE_CSS, STYLE_ETAG],
    ['copy.js', 'text/javascript; charset=utf-8', COPY_JS, COPY_ETAG],
  ] as const) {
    app.get(
      `/static/${file}`,
      { schema: { hide: true }, config: { formats: 'raw', access: { kind: 'public' } } },
      async (request, reply) => {
        reply.header('cache-control', 'public, max-age=3600').header('etag', etag);
        if (request.headers['if-none-match'] === etag) return reply.code(304).send();
        return reply.type(type).send(text);
      },
    );
  }
}

/**
 * The web interface: the administrator pages under `/admin` and the user portal under
 * `/portal`. Server-rendered HTML with cookie sessions; works without JavaScript.
 */
export async function webUi(app: FastifyInstance, opts: WebUiOptions): Promise<void> {
  const deps: WebDeps = { config: opts.config, database: opts.database };
  await app.register(
    async (admin) => {
      installPages(admin, 'admin');
      await adminArea(admin, deps);
    },
    { prefix: '/admin' },
  );
  await app.register(
    async (portal) => {
      installPages(portal, 'user');
      await portalArea(portal, deps);
    },
    { prefix: '/portal' },
  );
}
