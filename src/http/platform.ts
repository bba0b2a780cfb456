import fp from 'fastify-plugin';
import FindMyWay from 'find-my-way';
import {
  LogController,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type FastifyServerOptions,
} from 'fastify';
import type { IncomingMessage } from 'node:http';
import type { Logger } from 'pino';
import { randomBytes } from 'node:crypto';
import type { ErrorObject } from 'ajv';
import { AppError, ValidationError, type FieldProblem } from '../errors.js';
import { contentTypeOf, negotiate } from './negotiation.js';
import { buildXml, coerceXmlBody, parseXmlBody } from './xml.js';
import { toProblems, validatorCompiler } from './validation.js';
import './route-config.js';
import type {} from '@fastify/swagger';

export interface PlatformOptions {
  bodyLimit: number;
  xmlBodyLimit: number;
}

/** Methods a POST may be turned into with X-HTTP-Method-Override. */
const OVERRIDABLE = new Set(['PUT', 'DELETE', 'PATCH']);
const BAD_OVERRIDE_PATH = '/_onecloud/bad-method-override';
const badOverrides = new WeakMap<IncomingMessage, string>();
const overridden = new WeakMap<IncomingMessage, string>();

/** The method as sent on the wire (POST for an overridden request). */
export function originalMethod(req: IncomingMessage): string {
  return overridden.get(req) ?? req.method ?? 'GET';
}

/**
 * X-HTTP-Method-Override, applied before routing so the request is routed, authorized and
 * answered exactly as if the overriding method had been sent. A bad override is sent to an
 * internal route that answers 400 with the reason.
 */
export function rewriteUrl(req: IncomingMessage): string {
  const raw = req.headers['x-http-method-override'];
  const url = req.url ?? '/';
  if (raw === undefined) return url;
  const value = (Array.isArray(raw) ? raw.join(',') : raw).trim().toUpperCase();
  if (req.method !== 'POST') {
    badOverrides.set(req, `X-HTTP-Method-Override is only accepted on POST, not on ${req.method ?? '?'}`);
    return BAD_OVERRIDE_PATH;
  }
  if (!OVERRIDABLE.has(value)) {
    badOverrides.set(
      req,
      `X-HTTP-Method-Override must be PUT, DELETE or PATCH, not ${JSON.stringify(value.slice(0, 40))}`,
    );
    return BAD_OVERRIDE_PATH;
  }
  overridden.set(req, req.method);
  req.method = value;
  return url;
}

/** Log tokens: a random per-process prefix and a counter; unique across processes, cheap. */
const tokenPrefix = randomBytes(4).toString('hex');
let tokenCounter = 0;
export function nextLogToken(): string {
  tokenCounter = (tokenCounter + 1) % 0x7fffffff;
  return `${tokenPrefix}-${tokenCounter.toString(36)}`;
}

export function platformServerOptions(logger: Logger, opts: PlatformOptions): FastifyServerOptions {
  return {
    loggerInstance: logger,
    // One line per request, written by the platform's onResponse hook (not two by Fastify).
    logController: new LogController({ requestIdLogLabel: 'logToken', disableRequestLogging: true }),
    genReqId: nextLogToken,
    requestIdHeader: false,
    rewriteUrl,
    bodyLimit: opts.bodyLimit,
    return503OnClosing: true,
    routerOptions: { maxParamLength: 500 },
  };
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  406: 'Not Acceptable',
  409: 'Conflict',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  503: 'Service Unavailable',
};

export interface ErrorBody {
  validationResult: string;
  status: number;
  logToken: string;
  errors?: FieldProblem[];
  [extra: string]: unknown;
}

function isApiRoute(request: FastifyRequest): boolean {
  return request.routeOptions.config?.formats === 'api';
}

/**
 * The platform layer as one plugin: body parsers (JSON, XML, empty bodies), content negotiation,
 * schema validation, errors with the Warning 703 log token, 404/405.
 */
export const platform = fp<PlatformOptions>(
  async (app: FastifyInstance, opts) => {
    app.decorateRequest('format', 'json');
    app.decorateRequest('bodyIsXml', false);
    app.decorateRequest('wantsEventStream', false);
    app.decorateRequest('rawBody', undefined);
    app.setValidatorCompiler(validatorCompiler);

    // --- Request bodies -------------------------------------------------------------------
    app.removeAllContentTypeParsers();
    const jsonParser = app.getDefaultJsonParser('error', 'error');
    app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (req, body, done) => {
      req.rawBody = body as Buffer;
      const text = (body as Buffer).toString('utf8');
      if (text.trim() === '') return done(null, undefined);
      void jsonParser(req, text, (err: Error | null, value?: unknown) => {
        if (err)
          done(
            new ValidationError([{ field: 'body', message: `malformed JSON: ${err.message}` }]),
            undefined,
          );
        else done(null, value);
      });
    });
    app.addContentTypeParser(
      ['application/xml', 'text/xml'],
      { parseAs: 'buffer', bodyLimit: opts.xmlBodyLimit },
      (req, body, done) => {
        req.rawBody = body as Buffer;
        try {
          const value = parseXmlBody((body as Buffer).toString('utf8'));
          if (value !== undefined) req.bodyIsXml = true;
          done(null, value);
        } catch (err) {
          done(err as Error, undefined);
        }
      },
    );
    // Any other type: an empty body is "no body" (real clients POST actions that way);
    // anything else is 415.
    app.addContentTypeParser('*', { parseAs: 'buffer' }, (req, body, done) => {
      req.rawBody = body as Buffer;
      if ((body as Buffer).length === 0) return done(null, undefined);
      const type = String(req.headers['content-type'] ?? '')
        .split(';')[0]!
        .trim()
        .toLowerCase();
      if (type === 'application/x-www-form-urlencoded' && req.routeOptions.config?.forms) {
        return done(null, Object.fromEntries(new URLSearchParams((body as Buffer).toString('utf8'))));
      }
      const ct = String(req.headers['content-type'] ?? '').slice(0, 100);
      done(
        new AppError(
          415,
          `Content-Type ${JSON.stringify(ct)} is not supported; send application/json or application/xml`,
        ),
        undefined,
      );
    });

    // --- The request log: one line per request, with its log token ---------------------------
    app.addHook('onResponse', (request, reply, done) => {
      request.log.info(
        { req: request.raw, res: { statusCode: reply.statusCode }, responseTime: reply.elapsedTime },
        'request completed',
      );
      done();
    });

    // --- Negotiation ----------------------------------------------------------------------
    app.addHook('onRequest', async (request) => {
      const accept = request.headers.accept;
      if (
        request.routeOptions.config?.sse &&
        accept &&
        /(^|,)\s*text\/event-stream\s*(;|,|$)/i.test(accept)
      ) {
        request.wantsEventStream = true;
        return;
      }
      const format = negotiate(accept);
      if (format) {
        request.format = format;
      } else if (isApiRoute(request) && !request.is404) {
        throw new AppError(
          406,
          `cannot answer in ${JSON.stringify(String(request.headers.accept).slice(0, 100))}; accept application/json or application/xml`,
        );
      }
    });

    app.addHook('preValidation', async (request) => {
      if (request.bodyIsXml) {
        const schema = request.routeOptions.schema?.body;
        if (schema) request.body = coerceXmlBody(request.body, schema);
      }
    });

    // --- Responses: XML from the serialized JSON, Warning on errors -----------------------
    app.addHook('onSend', async (request, reply, payload) => {
      if (reply.statusCode >= 400 && !reply.hasHeader('warning')) {
        reply.header('warning', `703 - "Error occurred, see ${request.id}"`);
      }
      if (request.format !== 'xml' || (!isApiRoute(request) && reply.statusCode < 400)) return payload;
      const ct = reply.getHeader('content-type');
      if (typeof payload !== 'string' || typeof ct !== 'string' || !ct.startsWith('application/json'))
        return payload;
      const config = request.routeOptions.config;
      const root = reply.statusCode >= 400 ? 'error' : (config?.xmlRoot ?? 'response');
      reply.header('content-type', contentTypeOf('xml'));
      return buildXml(payload === '' ? {} : JSON.parse(payload), root, config?.xmlItem);
    });

    // --- Errors ---------------------------------------------------------------------------
    app.setErrorHandler(async (error: FastifyError, request, reply) => sendError(error, request, reply));

    // 405 needs to know which methods exist for a path: keep our own route table.
    const table = FindMyWay({ ignoreTrailingSlash: false, maxParamLength: 500 });
    app.addHook('onRoute', (route) => {
      const methods = Array.isArray(route.method) ? route.method : [route.method];
      for (const m of methods) {
        try {
          table.on(m as 'GET', route.url, () => undefined);
        } catch {
          // Same method and path registered twice (HEAD for GET): already known.
        }
      }
    });
    app.setNotFoundHandler(async (request, reply) => {
      const path = (request.raw.url ?? '/').split('?')[0] ?? '/';
      const allowed = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'].filter(
        (m) => table.find(m as 'GET', path) !== null,
      );
      if (allowed.length > 0) {
        reply.header('allow', allowed.join(', '));
        throw new AppError(405, `${request.method} is not allowed here; allowed: ${allowed.join(', ')}`);
      }
      throw new AppError(404, `no such resource: ${request.method} ${path.slice(0, 200)}`);
    });

    app.route({
      method: ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'],
      url: BAD_OVERRIDE_PATH,
      schema: { hide: true },
      config: { formats: 'api' },
      handler: async (request) => {
        throw new ValidationError([
          {
            field: 'header.x-http-method-override',
            message: badOverrides.get(request.raw) ?? 'invalid X-HTTP-Method-Override',
          },
        ]);
      },
    });
  },
  { name: 'onecloud-platform' },
);

/** Maps any error to its status and the error body; logs it with the request's log token. */
export async function sendError(
  error: unknown,
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<ErrorBody> {
  let status = 500;
  let message = 'internal error';
  let problems: FieldProblem[] | undefined;
  const fe = error as Partial<FastifyError> & { validation?: ErrorObject[]; validationContext?: string };
  if (error instanceof AppError) {
    status = error.statusCode;
    message = error.message;
    problems = error.details?.problems;
    for (const [k, v] of Object.entries(error.details?.headers ?? {})) reply.header(k, v);
  } else if (Array.isArray(fe.validation)) {
    status = 400;
    problems = toProblems(fe.validation, fe.validationContext ?? 'body');
    message = new ValidationError(problems).message;
  } else if (fe.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    status = 413;
    message = 'request body is too large';
  } else if (fe.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
    status = 415;
    message = 'unsupported Content-Type; send application/json or application/xml';
  } else if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    // Fastify's own client errors (bad content-length, aborted body, ...).
    status = fe.statusCode;
    message = fe.message ?? 'bad request';
  }
  if (status >= 500 && !(error instanceof AppError)) {
    // Unexpected: the stack goes to the log, never to the client.
    request.log.error({ err: error, logToken: request.id }, `request failed with ${status}`);
    message = `internal error; report log token ${request.id}`;
  } else if (status >= 500) {
    // A deliberate answer (501 not built yet, 503 ...): no stack to chase.
    request.log.warn({ logToken: request.id, status, problem: message }, `request answered ${status}`);
  } else {
    request.log.info({ logToken: request.id, status, problem: message }, `request refused with ${status}`);
  }
  if (status === 400 && !problems) problems = [{ field: 'request', message }];
  const extra = error instanceof AppError ? (error.details?.extra ?? {}) : {};
  const body: ErrorBody = { ...extra, validationResult: message, status, logToken: request.id };
  if (problems) body.errors = problems;
  reply.code(status);
  reply.type('application/json; charset=utf-8');
  return body;
}

export { STATUS_TEXT };
