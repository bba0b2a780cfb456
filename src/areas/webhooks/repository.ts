import type { Kysely, Selectable } from 'kysely';
import { pageLimit, toPage, type Page, type PageRequest } from '../../db/common.js';
import { fromJson, toBool, toJson } from '../../db/dialects/index.js';
import type { DB, WebhookDeliveriesTable, WebhookDeliveryStatus, WebhooksTable } from '../../db/schema.js';

export type { WebhookDeliveryStatus } from '../../db/schema.js';

export interface Webhook {
  id: number;
  organizationId: number;
  url: string;
  /** Encrypted with the server key (`decryptSecret` to sign). */
  secretEnc: string;
  eventTypes: string[];
  enabled: boolean;
  consecutiveFailures: number;
  disabledAt: number | null;
  disabledReason: string | null;
  createdAt: number;
  updatedAt: number;
}

export interface WebhookDelivery {
  id: number;
  webhookId: number;
  organizationId: number;
  eventSeq: number;
  eventType: string;
  payload: string;
  attempts: number;
  nextAttemptAt: number;
  status: WebhookDeliveryStatus;
  lastStatusCode: number | null;
  lastError: string | null;
  leaseUntil: number | null;
  createdAt: number;
  deliveredAt: number | null;
}

export interface NewDelivery {
  webhookId: number;
  organizationId: number;
  eventSeq: number;
  eventType: string;
  payload: string;
}

function toWebhook(r: Selectable<WebhooksTable>): Webhook {
  return {
    id: r.id,
    organizationId: r.organization_id,
    url: r.url,
    secretEnc: r.secret_enc,
    eventTypes: fromJson<string[]>(r.event_types, []),
    enabled: toBool(r.enabled),
    consecutiveFailures: Number(r.consecutive_failures),
    disabledAt: r.disabled_at,
    disabledReason: r.disabled_reason,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

function toDelivery(r: Selectable<WebhookDeliveriesTable>): WebhookDelivery {
  return {
    id: r.id,
    webhookId: r.webhook_id,
    organizationId: r.organization_id,
    eventSeq: r.event_seq,
    eventType: r.event_type,
    payload: r.payload,
    attempts: Number(r.attempts),
    nextAttemptAt: r.next_attempt_at,
    status: r.status,
    lastStatusCode: r.last_status_code,
    lastError: r.last_error,
    leaseUntil: r.lease_until,
    createdAt: r.created_at,
    deliveredAt: r.delivered_at,
  };
}

const OPEN: WebhookDeliveryStatus[] = ['pending', 'failed'];

/** CRM webhooks (one per organization) and their delivery log / retry queue. */
export class WebhookRepository {
  constructor(private readonly db: Kysely<DB>) {}

  async getByOrganization(organizationId: number): Promise<Webhook | undefined> {
    const r = await this.db
      .selectFrom('webhooks')
      .selectAll()
      .where('organization_id', '=', organizationId)
      .executeTakeFirst();
    return r ? toWebhook(r) : undefined;
  }

  async getById(id: number): Promise<Webhook | undefined> {
    const r = await this.db.selectFrom('webhooks').selectAll().where('id', '=', id).executeTakeFirst();
    return r ? toWebhook(r) : undefined;
  }

  /** Every webhook, enabled or not, with its organization's domain (the dispatcher's queue). */
  async listAll(): Promise<(Webhook & { domain: string })[]> {
    const rows = await this.db
      .selectFrom('webhooks')
      .innerJoin('organizations', 'organizations.id', 'webhooks.organization_id')
      .selectAll('webhooks')
      .select('organizations.domain as domain')
      .orderBy('webhooks.id')
      .execute();
    return rows.map((r) => ({ ...toWebhook(r), domain: r.domain }));
  }

  /** Deliveries of a webhook not yet delivered or given up. */
  async countOpen(webhookId: number): Promise<number> {
    const r = await this.db
      .selectFrom('webhook_deliveries')
      .select((eb) => eb.fn.countAll().as('n'))
      .where('webhook_id', '=', webhookId)
      .where('status', 'in', OPEN)
      .executeTakeFirst();
    return Number(r?.n ?? 0);
  }

  async listEnabled(): Promise<Webhook[]> {
    const rows = await this.db
      .selectFrom('webhooks')
      .selectAll()
      .where('enabled', '=', true)
      .orderBy('id')
      .execute();
    return rows.map(toWebhook);
  }

  /** Creates or replaces the organization's webhook (keeps the secret when `secretEnc` is absent). */
  async upsert(
    organizationId: number,
    input: { url: string; secretEnc?: string | undefined; eventTypes: string[]; enabled: boolean },
    now = Date.now(),
  ): Promise<Webhook> {
    const existing = await this.getByOrganization(organizationId);
    if (!existing) {
      if (input.secretEnc === undefined) throw new Error('a new webhook needs a secret');
      const r = await this.db
        .insertInto('webhooks')
        .values({
          organization_id: organizationId,
          url: input.url,
          secret_enc: input.secretEnc,
          event_types: toJson(input.eventTypes),
          enabled: input.enabled,
          consecutive_failures: 0,
          disabled_at: input.enabled ? null : now,
          disabled_reason: input.enabled ? null : 'disabled by configuration',
          created_at: now,
          updated_at: now,
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      return toWebhook(r);
    }
    const r = await this.db
      .updateTable('webhooks')
      .set({
        url: input.url,
        ...(input.secretEnc !== undefined ? { secret_enc: input.secretEnc } : {}),
        event_types: toJson(input.eventTypes),
        enabled: input.enabled,
        ...(input.enabled
          ? { consecutive_failures: 0, disabled_at: null, disabled_reason: null }
          : existing.enabled
            ? { disabled_at: now, disabled_reason: 'disabled by configuration' }
            : {}),
        updated_at: now,
      })
      .where('id', '=', existing.id)
      .returningAll()
      .executeTakeFirstOrThrow();
    return toWebhook(r);
  }

  async delete(organizationId: number): Promise<boolean> {
    const r = await this.db
      .deleteFrom('webhooks')
      .where('organization_id', '=', organizationId)
      .executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  }

  /** Re-enables: failures reset, waiting deliveries due now. */
  async enable(id: number, now = Date.now()): Promise<Webhook> {
    await this.db
      .updateTable('webhook_deliveries')
      .set({ next_attempt_at: now, lease_until: null })
      .where('webhook_id', '=', id)
      .where('status', 'in', OPEN)
      .execute();
    const r = await this.db
      .updateTable('webhooks')
      .set({
        enabled: true,
        consecutive_failures: 0,
        disabled_at: null,
        disabled_reason: null,
        updated_at: now,
      })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirstOrThrow();
    return toWebhook(r);
  }

  /** Disables after failures; false when it was already disabled (someone else did it). */
  async disable(id: number, reason: string, now = Date.now()): Promise<boolean> {
    const r = await this.db
      .updateTable('webhooks')
      .set({ enabled: false, disabled_at: now, disabled_reason: reason, updated_at: now })
      .where('id', '=', id)
      .where('enabled', '=', true)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  /** Counts one more failed attempt; returns the new count. */
  async addFailure(id: number): Promise<number> {
    const r = await this.db
      .updateTable('webhooks')
      .set((eb) => ({ consecutive_failures: eb('consecutive_failures', '+', 1) }))
      .where('id', '=', id)
      .returning('consecutive_failures')
      .executeTakeFirst();
    return r ? Number(r.consecutive_failures) : 0;
  }

  async resetFailures(id: number): Promise<void> {
    await this.db
      .updateTable('webhooks')
      .set({ consecutive_failures: 0 })
      .where('id', '=', id)
      .where('consecutive_failures', '<>', 0)
      .execute();
  }

  // --- deliveries ------------------------------------------------------------------------------

  /** Queues deliveries; a (webhook, event) pair already queued is skipped. Returns how many were new. */
  async enqueue(deliveries: NewDelivery[], now = Date.now()): Promise<number> {
    if (deliveries.length === 0) return 0;
    const r = await this.db
      .insertInto('webhook_deliveries')
      .values(
        deliveries.map((d) => ({
          webhook_id: d.webhookId,
          organization_id: d.organizationId,
          event_seq: d.eventSeq,
          event_type: d.eventType,
          payload: d.payload,
          attempts: 0,
          next_attempt_at: now,
          status: 'pending' as const,
          created_at: now,
        })),
      )
      .onConflict((oc) => oc.columns(['webhook_id', 'event_seq']).doNothing())
      .executeTakeFirst();
    return Number(r.numInsertedOrUpdatedRows ?? 0);
  }

  /** The head of a webhook's queue: its oldest delivery not yet delivered or given up. */
  async head(webhookId: number): Promise<WebhookDelivery | undefined> {
    const r = await this.db
      .selectFrom('webhook_deliveries')
      .selectAll()
      .where('webhook_id', '=', webhookId)
      .where('status', 'in', OPEN)
      .orderBy('event_seq')
      .orderBy('id')
      .limit(1)
      .executeTakeFirst();
    return r ? toDelivery(r) : undefined;
  }

  /** Takes a delivery for `leaseMs` (one sender at a time, across processes); false when taken. */
  async claim(id: number, now: number, leaseMs: number): Promise<boolean> {
    const r = await this.db
      .updateTable('webhook_deliveries')
      .set({ lease_until: now + leaseMs })
      .where('id', '=', id)
      .where('status', 'in', OPEN)
      .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<', now)]))
      .executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }

  async markDelivered(id: number, statusCode: number, now: number): Promise<void> {
    await this.db
      .updateTable('webhook_deliveries')
      .set((eb) => ({
        status: 'delivered' as const,
        attempts: eb('attempts', '+', 1),
        last_status_code: statusCode,
        last_error: null,
        lease_until: null,
        delivered_at: now,
      }))
      .where('id', '=', id)
      .execute();
  }

  async markFailed(
    id: number,
    outcome: { status: 'failed' | 'dead'; nextAttemptAt: number; statusCode: number | null; error: string },
  ): Promise<void> {
    await this.db
      .updateTable('webhook_deliveries')
      .set((eb) => ({
        status: outcome.status,
        attempts: eb('attempts', '+', 1),
        next_attempt_at: outcome.nextAttemptAt,
        last_status_code: outcome.statusCode,
        last_error: outcome.error.slice(0, 500),
        lease_until: null,
      }))
      .where('id', '=', id)
      .execute();
  }

  async getDelivery(id: number): Promise<WebhookDelivery | undefined> {
    const r = await this.db
      .selectFrom('webhook_deliveries')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirst();
    return r ? toDelivery(r) : undefined;
  }

  /** The delivery log of an organization, newest first (`after`: the `next` of the previous page). */
  async listDeliveries(
    organizationId: number,
    page: PageRequest & { status?: WebhookDeliveryStatus | undefined } = {},
  ): Promise<Page<WebhookDelivery>> {
    const limit = pageLimit(page.limit);
    let q = this.db
      .selectFrom('webhook_deliveries')
      .selectAll()
      .where('organization_id', '=', organizationId)
      .orderBy('id', 'desc')
      .limit(limit + 1);
    if (page.after != null) q = q.where('id', '<', page.after);
    if (page.status) q = q.where('status', '=', page.status);
    const rows = await q.execute();
    return toPage(rows, limit, toDelivery, (r) => r.id);
  }
}
