import { randomBytes } from 'node:crypto';
import type { DatabaseHandle } from '../../db/database.js';
import { recordChange } from '../../db/changes.js';
import type { Page } from '../../db/common.js';
import { NotFoundError, ValidationError, type FieldProblem } from '../../errors.js';
import { WEBHOOK_EVENT_TYPES } from '../../events/webhook-dispatcher.js';
import { privateTargetProblem } from '../../events/webhook-target.js';
import { encryptSecret } from '../../security/tokens.js';
import type { Actor } from '../common/actor.js';
import { requireOrganization } from '../organizations/service.js';
import {
  WebhookRepository,
  type Webhook,
  type WebhookDelivery,
  type WebhookDeliveryStatus,
} from './repository.js';

/** A webhook as the admin API shows it: never its secret. */
export interface WebhookView {
  domain: string;
  url: string;
  eventTypes: string[];
  enabled: boolean;
  consecutiveFailures: number;
  disabledAt: string | null;
  disabledReason: string | null;
  created: string;
  updated: string;
}

export interface DeliveryView {
  id: number;
  eventSeq: number;
  eventType: string;
  status: WebhookDeliveryStatus;
  attempts: number;
  nextAttempt: string | null;
  lastStatusCode: number | null;
  lastError: string | null;
  created: string;
  delivered: string | null;
  /** The JSON array that is (or was) POSTed. */
  payload: unknown;
}

export interface WebhookInput {
  /** http(s) URL the call states are POSTed to. */
  url: string;
  /** Signing secret (16–256 characters); omitted: a new one is generated (on create) or kept. */
  secret?: string | undefined;
  /** Subset of WEBHOOK_EVENT_TYPES; default all. */
  eventTypes?: string[] | undefined;
  /** Default true. */
  enabled?: boolean | undefined;
  /** Generate a new secret (returned once). */
  rotateSecret?: boolean | undefined;
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export function viewWebhook(w: Webhook, domain: string): WebhookView {
  return {
    domain,
    url: w.url,
    eventTypes: w.eventTypes,
    enabled: w.enabled,
    consecutiveFailures: w.consecutiveFailures,
    disabledAt: iso(w.disabledAt),
    disabledReason: w.disabledReason,
    created: new Date(w.createdAt).toISOString(),
    updated: new Date(w.updatedAt).toISOString(),
  };
}

export function viewDelivery(d: WebhookDelivery): DeliveryView {
  let payload: unknown = d.payload;
  try {
    payload = JSON.parse(d.payload) as unknown;
  } catch {
    // keep the text
  }
  const open = d.status === 'pending' || d.status === 'failed';
  return {
    id: d.id,
    eventSeq: d.eventSeq,
    eventType: d.eventType,
    status: d.status,
    attempts: d.attempts,
    nextAttempt: open ? iso(d.nextAttemptAt) : null,
    lastStatusCode: d.lastStatusCode,
    lastError: d.lastError,
    created: new Date(d.createdAt).toISOString(),
    delivered: iso(d.deliveredAt),
    payload,
  };
}

function validate(input: WebhookInput, allowPrivateTargets: boolean): FieldProblem[] {
  const problems: FieldProblem[] = [];
  let url: URL | null = null;
  try {
    url = new URL(input.url);
  } catch {
    problems.push({
      field: 'url',
      message: 'must be an absolute http(s) URL, e.g. https://crm.example.com/onecloud',
    });
  }
  if (url && url.protocol !== 'https:' && url.protocol !== 'http:')
    problems.push({ field: 'url', message: 'must use https (or http)' });
  if (url && (url.username || url.password))
    problems.push({ field: 'url', message: 'must not carry credentials; the signature authenticates' });
  if (url && !allowPrivateTargets && (url.protocol === 'https:' || url.protocol === 'http:')) {
    const problem = privateTargetProblem(url);
    if (problem) problems.push({ field: 'url', message: problem });
  }
  if (input.url.length > 2048) problems.push({ field: 'url', message: 'must be at most 2048 characters' });
  if (input.secret !== undefined && (input.secret.length < 16 || input.secret.length > 256))
    problems.push({ field: 'secret', message: 'must be 16 to 256 characters' });
  if (input.eventTypes !== undefined) {
    if (input.eventTypes.length === 0)
      problems.push({
        field: 'eventTypes',
        message: `name at least one of ${WEBHOOK_EVENT_TYPES.join(', ')}`,
      });
    for (const t of input.eventTypes)
      if (!(WEBHOOK_EVENT_TYPES as readonly string[]).includes(t))
        problems.push({
          field: 'eventTypes',
          message: `${JSON.stringify(t)} is not a webhook event type; use ${WEBHOOK_EVENT_TYPES.join(', ')}`,
        });
  }
  return problems;
}

/**
 * Creates or replaces the organization's CRM webhook. Returns the view and, when the server
 * generated or rotated the secret, that secret (shown once; stored encrypted with the server key).
 * Unless `allowPrivateTargets` (ONECLOUD_WEBHOOK_ALLOW_PRIVATE), a URL naming a loopback,
 * private or link-local address is refused (400 on `url`); names are checked at each delivery.
 */
export async function configureWebhook(
  database: DatabaseHandle,
  serverKey: Buffer,
  actor: Actor,
  domain: string,
  input: WebhookInput,
  options: { allowPrivateTargets?: boolean } = {},
): Promise<{ webhook: WebhookView; secret?: string }> {
  const problems = validate(input, options.allowPrivateTargets === true);
  if (problems.length > 0) throw new ValidationError(problems);
  const org = await requireOrganization(database, domain);
  return database.db.transaction().execute(async (trx) => {
    const repo = new WebhookRepository(trx);
    const existing = await repo.getByOrganization(org.id);
    const generated =
      input.secret === undefined && (!existing || input.rotateSecret === true)
        ? randomBytes(32).toString('base64url')
        : undefined;
    const secret = input.secret ?? generated;
    const eventTypes = [...new Set(input.eventTypes ?? [...WEBHOOK_EVENT_TYPES])].sort();
    const w = await repo.upsert(org.id, {
      url: input.url,
      secretEnc: secret === undefined ? undefined : encryptSecret(serverKey, secret),
      eventTypes,
      enabled: input.enabled ?? true,
    });
    const data = { url: w.url, eventTypes, enabled: w.enabled, secretChanged: secret !== undefined };
    await recordChange(trx, {
      organizationId: org.id,
      actor,
      action: existing ? 'webhook.updated' : 'webhook.created',
      entity: 'webhook',
      entityId: w.id,
      data,
      event: { type: existing ? 'webhook.updated' : 'webhook.created', data },
    });
    return { webhook: viewWebhook(w, org.domain), ...(generated ? { secret: generated } : {}) };
  });
}

export async function getWebhook(database: DatabaseHandle, domain: string): Promise<WebhookView> {
  const org = await requireOrganization(database, domain);
  const w = await new WebhookRepository(database.db).getByOrganization(org.id);
  if (!w) throw new NotFoundError(`organization "${org.domain}" has no webhook`);
  return viewWebhook(w, org.domain);
}

export async function deleteWebhook(database: DatabaseHandle, actor: Actor, domain: string): Promise<void> {
  const org = await requireOrganization(database, domain);
  await database.db.transaction().execute(async (trx) => {
    const repo = new WebhookRepository(trx);
    const w = await repo.getByOrganization(org.id);
    if (!w) throw new NotFoundError(`organization "${org.domain}" has no webhook`);
    await repo.delete(org.id);
    await recordChange(trx, {
      organizationId: org.id,
      actor,
      action: 'webhook.deleted',
      entity: 'webhook',
      entityId: w.id,
      event: { type: 'webhook.deleted', data: { url: w.url } },
    });
  });
}

/** `POST /api/admin/webhooks/{domain}/enable`: re-enables; waiting deliveries are due at once. */
export async function enableWebhook(
  database: DatabaseHandle,
  actor: Actor,
  domain: string,
  now = Date.now(),
): Promise<WebhookView> {
  const org = await requireOrganization(database, domain);
  return database.db.transaction().execute(async (trx) => {
    const repo = new WebhookRepository(trx);
    const w = await repo.getByOrganization(org.id);
    if (!w) throw new NotFoundError(`organization "${org.domain}" has no webhook`);
    if (w.enabled) return viewWebhook(w, org.domain);
    const enabled = await repo.enable(w.id, now);
    const data = { url: w.url, previousReason: w.disabledReason };
    await recordChange(
      trx,
      {
        organizationId: org.id,
        actor,
        action: 'webhook.enabled',
        entity: 'webhook',
        entityId: w.id,
        data,
        event: { type: 'webhook.enabled', data },
      },
      now,
    );
    return viewWebhook(enabled, org.domain);
  });
}

const STATUSES: readonly WebhookDeliveryStatus[] = ['pending', 'delivered', 'failed', 'dead'];

/** `GET /api/admin/webhooks/{domain}/deliveries`: the delivery log, newest first. */
export async function listDeliveries(
  database: DatabaseHandle,
  domain: string,
  page: { limit?: number; after?: number | null; status?: string } = {},
): Promise<Page<DeliveryView>> {
  if (page.status !== undefined && !(STATUSES as readonly string[]).includes(page.status))
    throw new ValidationError([{ field: 'query.status', message: `use one of ${STATUSES.join(', ')}` }]);
  const org = await requireOrganization(database, domain);
  const r = await new WebhookRepository(database.db).listDeliveries(org.id, {
    ...(page.limit !== undefined ? { limit: page.limit } : {}),
    ...(page.after != null ? { after: page.after } : {}),
    ...(page.status !== undefined ? { status: page.status as WebhookDeliveryStatus } : {}),
  });
  return { items: r.items.map(viewDelivery), next: r.next };
}
