import type { FastifyInstance } from 'fastify';
import { Type, type Static } from 'typebox';
import type { AppDeps } from '../../app.js';
import { actorOf } from '../../http/auth.js';
import { encodeCursor, PageQuery, pageOf } from '../../http/pagination.js';
import { errorResponses } from '../../http/schemas.js';
import { WEBHOOK_EVENT_TYPES } from '../../events/webhook-dispatcher.js';
import { adminAccess, DomainParams, NullableString, orgOf, pageRequest } from '../common/admin.js';
import { configureWebhook, deleteWebhook, enableWebhook, getWebhook, listDeliveries } from './service.js';

const WebhookSchema = Type.Object({
  domain: Type.String(),
  url: Type.String(),
  eventTypes: Type.Array(Type.String()),
  enabled: Type.Boolean(),
  consecutiveFailures: Type.Integer(),
  disabledAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  disabledReason: NullableString,
  created: Type.String({ format: 'date-time' }),
  updated: Type.String({ format: 'date-time' }),
});

const ConfiguredWebhookSchema = Type.Object({
  ...WebhookSchema.properties,
  secret: Type.Optional(
    Type.String({ description: 'the signing secret the server generated: shown this once, never again' }),
  ),
});

const WebhookInputSchema = Type.Object(
  {
    url: Type.String({ maxLength: 2048, description: 'http(s) URL the call states are POSTed to' }),
    secret: Type.Optional(
      Type.String({
        minLength: 16,
        maxLength: 256,
        description: 'signing secret; omitted: generated on create (and shown once), kept on update',
      }),
    ),
    eventTypes: Type.Optional(
      Type.Array(Type.Enum([...WEBHOOK_EVENT_TYPES]), {
        minItems: 1,
        maxItems: WEBHOOK_EVENT_TYPES.length,
        description: 'which call states are sent (default all)',
      }),
    ),
    enabled: Type.Optional(Type.Boolean({ default: true })),
    rotateSecret: Type.Optional(
      Type.Boolean({ description: 'generate a new signing secret (returned once)' }),
    ),
  },
  { additionalProperties: false },
);

const DeliverySchema = Type.Object({
  id: Type.Integer({ description: 'also sent as the X-OneCloud-Delivery header' }),
  eventSeq: Type.Integer(),
  eventType: Type.String(),
  status: Type.Enum(['pending', 'delivered', 'failed', 'dead']),
  attempts: Type.Integer(),
  nextAttempt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  lastStatusCode: Type.Union([Type.Integer(), Type.Null()]),
  lastError: NullableString,
  created: Type.String({ format: 'date-time' }),
  delivered: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  payload: Type.Unknown({ description: 'the JSON array that is (or was) POSTed' }),
});

/**
 * Admin API: the organization's CRM webhook connector (ADMIN_WEBHOOKS, spec §5): configuration,
 * the delivery log, re-enabling after it was disabled for consecutive failures.
 */
export async function webhookAdminRoutes(app: FastifyInstance, { deps }: { deps: AppDeps }): Promise<void> {
  const access = adminAccess('ADMIN_WEBHOOKS');
  const tags = ['Admin: webhooks'];

  app.get(
    '/api/admin/webhooks/:domain',
    {
      schema: {
        summary: 'The CRM webhook of an organization (never its secret)',
        tags,
        params: DomainParams,
        response: { 200: WebhookSchema, ...errorResponses },
      },
      config: { access, xmlRoot: 'webhook' },
    },
    async (request) => getWebhook(deps.database, orgOf(request).domain),
  );

  app.put(
    '/api/admin/webhooks/:domain',
    {
      schema: {
        summary: 'Create or replace the CRM webhook of an organization',
        description:
          'Each call state (EARLY, CONFIRMED, TERMINATED) of the organization’s users’ calls is POSTed to `url` as a JSON array ' +
          '`[{"seq_num","call_id","branch_id","timestamp","state","termination-reason","direction","local_user_id","local_number","device_type","remote_number"}]` ' +
          '(`termination-reason` in TERMINATED only: HANGUP, BUSY, NO_ANSWER, CANCELLED, DECLINED, UNAVAILABLE, NOT_FOUND, FAILED, TRANSFERRED, SHUTDOWN; ' +
          '`direction` INCOMING or OUTGOING; `local_user_id` user@domain; `device_type` DESK, SOFT or MOBILE), ' +
          'signed `X-OneCloud-Signature: t={unix},v1={hex HMAC-SHA256(secret, t + "." + body)}`, with `X-OneCloud-Delivery` (the delivery id, the same on every attempt). ' +
          'A delivery is attempted up to 10 times with exponential backoff and jitter (30 s doubling to 1 h: at least 8 attempts over more than an hour); ' +
          'after 10 consecutive failed attempts the webhook is disabled (audit entry and `webhook.disabled` event). ' +
          'While disabled, its call events are still queued, up to 10,000 waiting deliveries (later ones are dropped, with a `webhook.queue_full` event), ' +
          'and sent in order after `POST .../enable`. `enabled: false` pauses it the same way. ' +
          '`url` must not point at a loopback, private or link-local address unless the server sets ONECLOUD_WEBHOOK_ALLOW_PRIVATE=true (400 on `url`; a name resolving to one fails at delivery). ' +
          'A secret the server generates is in the answer this once.',
        tags,
        params: DomainParams,
        body: WebhookInputSchema,
        response: { 200: ConfiguredWebhookSchema, ...errorResponses },
      },
      config: { access, xmlRoot: 'webhook' },
    },
    async (request) => {
      const { webhook, secret } = await configureWebhook(
        deps.database,
        deps.config.secretKey,
        actorOf(request.principal),
        orgOf(request).domain,
        request.body as Static<typeof WebhookInputSchema>,
        { allowPrivateTargets: deps.config.webhookAllowPrivate },
      );
      return { ...webhook, ...(secret !== undefined ? { secret } : {}) };
    },
  );

  app.delete(
    '/api/admin/webhooks/:domain',
    {
      schema: {
        summary: 'Remove the CRM webhook, with its delivery log and waiting deliveries',
        tags,
        params: DomainParams,
        response: { 200: Type.Object({ deleted: Type.String() }), ...errorResponses },
      },
      config: { access, xmlRoot: 'deleted' },
    },
    async (request) => {
      const org = orgOf(request);
      await deleteWebhook(deps.database, actorOf(request.principal), org.domain);
      return { deleted: org.domain };
    },
  );

  app.post(
    '/api/admin/webhooks/:domain/enable',
    {
      schema: {
        summary: 'Re-enable a webhook (disabled after 10 consecutive failures, or by configuration)',
        description:
          'The deliveries held while it was disabled (up to 10,000; call events past that were dropped) become due at once and are sent oldest first. ' +
          'The webhook is disabled again after 10 consecutive failed attempts. A webhook that is enabled stays as it is.',
        tags,
        params: DomainParams,
        response: { 200: WebhookSchema, ...errorResponses },
      },
      config: { access, xmlRoot: 'webhook' },
    },
    async (request) => enableWebhook(deps.database, actorOf(request.principal), orgOf(request).domain),
  );

  app.get(
    '/api/admin/webhooks/:domain/deliveries',
    {
      schema: {
        summary: 'The delivery log, newest first',
        tags,
        params: DomainParams,
        querystring: Type.Object({
          ...PageQuery.properties,
          status: Type.Optional(Type.Enum(['pending', 'delivered', 'failed', 'dead'])),
        }),
        response: { 200: pageOf(DeliverySchema), ...errorResponses },
      },
      config: { access, xmlRoot: 'deliveries' },
    },
    async (request) => {
      const { status } = request.query as { status?: string };
      const page = await listDeliveries(deps.database, orgOf(request).domain, {
        ...pageRequest<number>(request.query, 'number'),
        ...(status !== undefined ? { status } : {}),
      });
      return { items: page.items, next: encodeCursor(page.next) };
    },
  );
}
