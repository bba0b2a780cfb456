import { createHmac, timingSafeEqual } from 'node:crypto';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Kysely } from 'kysely';
import {
  WebhookRepository,
  type NewDelivery,
  type Webhook,
  type WebhookDelivery,
} from '../areas/webhooks/repository.js';
import { recordChange } from '../db/changes.js';
import type { DB } from '../db/schema.js';
import { decryptSecret } from '../security/tokens.js';
import type { EventHub } from './hub.js';
import { EventRepository, type StoredEvent } from './repository.js';
import { hostOf, isPrivateAddress, PrivateTargetError, publicOnlyLookup } from './webhook-target.js';

/** The call events a CRM webhook can carry (produced by the telephony core). */
export const WEBHOOK_EVENT_TYPES = ['call.early', 'call.confirmed', 'call.terminated'] as const;
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

/** The dispatcher's position in the event log (event_log_state). */
export const WEBHOOK_CURSOR = 'webhooks';

/**
 * Defaults. Attempts are spaced base·2^(n-1) (30 s, 1, 2, 4, 8, 16, 32 min, then 1 h), each
 * stretched by a random 0–25 % (jitter only lengthens), so 8 attempts span at least 62.5 minutes
 * and the 10 allowed span about 2 h 45 min. A webhook is disabled after 10 consecutive failed
 * attempts (any delivery; a success resets the count): with one delivery in flight per webhook,
 * that is when its oldest delivery has used all its attempts, i.e. ~2 h 45 min of failures.
 * While a webhook is disabled its call events are still queued, in order, up to `maxHeld` open
 * deliveries (10,000); past that they are dropped and a `webhook.queue_full` event and audit
 * entry say from which seq. `enable` sends the held ones, oldest first.
 */
export const WEBHOOK_DEFAULTS = {
  maxAttempts: 10,
  disableAfterFailures: 10,
  maxHeld: 10_000,
  baseDelayMs: 30_000,
  maxDelayMs: 3_600_000,
  jitter: 0.25,
  requestTimeoutMs: 10_000,
  leaseMs: 60_000,
  pollIntervalMs: 1000,
  batchSize: 500,
} as const;

/**
 * One element of the POSTed JSON array: the real CRM connector's shape (spec §5), e.g.
 * `{"seq_num":3,"call_id":"tvNAazZl…","branch_id":"L1FI…","timestamp":"2021-09-30T10:36:26.018+00:00",
 * "state":"TERMINATED","termination-reason":"HANGUP","direction":"INCOMING",
 * "local_user_id":"setera.test@seteratesting.fi","local_number":"+3589…","device_type":"SOFT","remote_number":"+35840…"}`;
 * `termination-reason` only in TERMINATED, as the real connector sends it.
 */
export interface CrmCallState {
  seq_num: number;
  call_id: string | null;
  branch_id: string | null;
  /** ISO 8601 with the UTC offset, `2021-09-30T10:36:19.315+00:00`. */
  timestamp: string;
  state: 'EARLY' | 'CONFIRMED' | 'TERMINATED';
  'termination-reason'?: string | null;
  /** `INCOMING` or `OUTGOING`, from the user's point of view. */
  direction: string | null;
  /** `user@domain`. */
  local_user_id: string | null;
  local_number: string | null;
  /** `DESK`, `SOFT` or `MOBILE`. */
  device_type: string | null;
  remote_number: string | null;
}

const STATES: Record<WebhookEventType, CrmCallState['state']> = {
  'call.early': 'EARLY',
  'call.confirmed': 'CONFIRMED',
  'call.terminated': 'TERMINATED',
};

/**
 * The telephony core's termination reasons (src/sip/b2bua.ts `TerminationReason`) as the CRM
 * connector names them: a hang-up by either side is `HANGUP` (the value the real connector
 * documents); the others keep their meaning in upper case. Unknown reasons pass upper-cased.
 */
export const CRM_TERMINATION_REASONS: Readonly<Record<string, string>> = {
  local_hangup: 'HANGUP',
  remote_hangup: 'HANGUP',
  hangup_command: 'HANGUP',
  cancelled: 'CANCELLED',
  busy: 'BUSY',
  no_answer: 'NO_ANSWER',
  declined: 'DECLINED',
  unavailable: 'UNAVAILABLE',
  not_found: 'NOT_FOUND',
  failed: 'FAILED',
  transferred: 'TRANSFERRED',
  transfer_failed: 'FAILED',
  shutdown: 'SHUTDOWN',
};

/** Device kinds (DESKPHONE, SOFTPHONE, MOBILE) as the CRM connector names them (`SOFT` is documented). */
export const CRM_DEVICE_TYPES: Readonly<Record<string, string>> = {
  DESKPHONE: 'DESK',
  SOFTPHONE: 'SOFT',
  MOBILE: 'MOBILE',
};

/** Call directions: the core writes INCOMING/OUTGOING; other spellings are normalized. */
const DIRECTIONS: Readonly<Record<string, string>> = {
  incoming: 'INCOMING',
  inbound: 'INCOMING',
  in: 'INCOMING',
  outgoing: 'OUTGOING',
  outbound: 'OUTGOING',
  out: 'OUTGOING',
};

function str(data: Record<string, unknown>, key: string): string | null {
  const v = data[key];
  if (v === undefined || v === null) return null;
  return typeof v === 'string' ? v : typeof v === 'number' || typeof v === 'boolean' ? String(v) : null;
}

/** `2021-09-30T10:36:19.315+00:00` */
function crmTime(ms: number): string {
  return new Date(ms).toISOString().replace(/Z$/, '+00:00');
}

/**
 * Maps a call event, as the telephony core writes it, to the CRM shape; null for any other
 * event and for a leg without a user of the organization (the real connector sends only users'
 * calls, nothing for function numbers or trunks). `domain`: the organization's, for
 * `local_user_id` (`alice` → `alice@domain`).
 */
export function toCrmCallState(event: StoredEvent, domain: string): CrmCallState | null {
  const state = STATES[event.type as WebhookEventType] as CrmCallState['state'] | undefined;
  if (!state) return null;
  const data = (typeof event.data === 'object' && event.data !== null ? event.data : {}) as Record<
    string,
    unknown
  >;
  const user = str(data, 'local_user_id');
  if (user === null) return null;
  const direction = str(data, 'direction');
  const device = str(data, 'device_type');
  const reason = str(data, 'termination_reason');
  return {
    seq_num: event.seq,
    call_id: str(data, 'call_id'),
    branch_id: str(data, 'branch_id'),
    timestamp: crmTime(event.time),
    state,
    ...(state === 'TERMINATED'
      ? {
          'termination-reason':
            reason === null ? null : (CRM_TERMINATION_REASONS[reason] ?? reason.toUpperCase()),
        }
      : {}),
    direction: direction === null ? null : (DIRECTIONS[direction.toLowerCase()] ?? direction.toUpperCase()),
    local_user_id: user.includes('@') ? user : `${user}@${domain}`,
    local_number: str(data, 'local_number'),
    device_type: device === null ? null : (CRM_DEVICE_TYPES[device] ?? device),
    remote_number: str(data, 'remote_number'),
  };
}

/** `t={unix},v1={hex HMAC-SHA256(secret, t + "." + body)}` */
export function signWebhook(secret: string, body: string, unixSeconds: number): string {
  const v1 = createHmac('sha256', secret).update(`${unixSeconds}.${body}`).digest('hex');
  return `t=${unixSeconds},v1=${v1}`;
}

/** Receiver side: checks the signature and that `t` is within `toleranceS` of `nowS`. */
export function verifyWebhookSignature(
  secret: string,
  body: string,
  header: string,
  nowS: number,
  toleranceS = 300,
): boolean {
  const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header.trim());
  if (!m) return false;
  const t = Number(m[1]);
  if (Math.abs(nowS - t) > toleranceS) return false;
  const expected = Buffer.from(signWebhook(secret, body, t).slice(`t=${t},v1=`.length), 'hex');
  return timingSafeEqual(expected, Buffer.from(m[2]!, 'hex'));
}

export interface WebhookClock {
  now(): number;
}

export interface WebhookDispatcherOptions {
  db: Kysely<DB>;
  /** The server key the secrets are encrypted with. */
  serverKey: Buffer;
  /** Deliver to loopback, private and link-local addresses too (default false: refused). */
  allowPrivateTargets?: boolean;
  clock?: WebhookClock;
  /** 0 ≤ random() < 1, for jitter. */
  random?: () => number;
  maxAttempts?: number;
  disableAfterFailures?: number;
  /** Open deliveries kept for a disabled webhook; later events are dropped (default 10,000). */
  maxHeld?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  jitter?: number;
  requestTimeoutMs?: number;
  leaseMs?: number;
  /** Real-time poll of due deliveries and new events when started (default 1 s). */
  pollIntervalMs?: number;
  batchSize?: number;
  onError?: (err: Error) => void;
}

export interface TickReport {
  enqueued: number;
  /** Events not queued because a disabled webhook's queue was full. */
  dropped: number;
  attempted: number;
  delivered: number;
  failed: number;
  disabled: number;
}

/**
 * Sends the organizations' call events to their CRM webhooks.
 *
 * - **Queue**: `tick()` reads call events after the dispatcher's persisted cursor and writes one
 *   `webhook_deliveries` row per (webhook, event of its types), then moves the cursor, in one
 *   transaction; so a restart neither loses nor re-queues (unique (webhook, event)). A disabled
 *   webhook's deliveries are queued too and held until it is enabled, up to `maxHeld`.
 * - **Order**: per webhook, only the oldest open delivery is attempted; the next one waits until
 *   it is delivered or dead. Different webhooks proceed in parallel.
 * - **Retries**: failed attempts (non-2xx, network error, timeout) are rescheduled with
 *   exponential backoff and jitter (`WEBHOOK_DEFAULTS`); after `maxAttempts` the delivery is
 *   `dead`. After `disableAfterFailures` consecutive failures the webhook is disabled, with an
 *   audit entry and a `webhook.disabled` event (recordChange); `enable` resumes its queue.
 * - **Restart**: everything is in the database; a delivery interrupted mid-send is leased for
 *   `leaseMs` and sent again afterwards (at least once: receivers dedupe by X-OneCloud-Delivery).
 * - **Targets**: unless `allowPrivateTargets`, a URL whose host is or resolves to a loopback,
 *   private or link-local address fails its attempt (src/events/webhook-target.ts).
 */
export class WebhookDispatcher {
  private readonly clock: WebhookClock;
  private readonly random: () => number;
  private readonly cfg: Required<
    Pick<
      WebhookDispatcherOptions,
      | 'maxAttempts'
      | 'disableAfterFailures'
      | 'maxHeld'
      | 'baseDelayMs'
      | 'maxDelayMs'
      | 'jitter'
      | 'requestTimeoutMs'
      | 'leaseMs'
      | 'pollIntervalMs'
      | 'batchSize'
    >
  >;
  private timer: NodeJS.Timeout | null = null;
  private unlisten: (() => void) | null = null;
  private running: Promise<TickReport> | null = null;
  private again = false;

  constructor(private readonly options: WebhookDispatcherOptions) {
    this.clock = options.clock ?? { now: () => Date.now() };
    this.random = options.random ?? Math.random;
    this.cfg = {
      maxAttempts: options.maxAttempts ?? WEBHOOK_DEFAULTS.maxAttempts,
      disableAfterFailures: options.disableAfterFailures ?? WEBHOOK_DEFAULTS.disableAfterFailures,
      maxHeld: options.maxHeld ?? WEBHOOK_DEFAULTS.maxHeld,
      baseDelayMs: options.baseDelayMs ?? WEBHOOK_DEFAULTS.baseDelayMs,
      maxDelayMs: options.maxDelayMs ?? WEBHOOK_DEFAULTS.maxDelayMs,
      jitter: options.jitter ?? WEBHOOK_DEFAULTS.jitter,
      requestTimeoutMs: options.requestTimeoutMs ?? WEBHOOK_DEFAULTS.requestTimeoutMs,
      leaseMs: options.leaseMs ?? WEBHOOK_DEFAULTS.leaseMs,
      pollIntervalMs: options.pollIntervalMs ?? WEBHOOK_DEFAULTS.pollIntervalMs,
      batchSize: options.batchSize ?? WEBHOOK_DEFAULTS.batchSize,
    };
  }

  /** The wait before attempt `attempt + 1`, after `attempt` failed attempts (1-based). */
  retryDelay(attempt: number): number {
    const base = Math.min(this.cfg.maxDelayMs, this.cfg.baseDelayMs * 2 ** Math.max(0, attempt - 1));
    return Math.round(base * (1 + this.cfg.jitter * this.random()));
  }

  /** Runs on a timer (and on the hub's wake-ups, when given) until stop(). */
  start(hub?: EventHub): void {
    if (this.timer) return;
    const kick = () => {
      this.tick().catch((err: unknown) =>
        this.options.onError?.(err instanceof Error ? err : new Error(String(err))),
      );
    };
    this.timer = setInterval(kick, this.cfg.pollIntervalMs);
    this.timer.unref();
    if (hub) {
      this.unlisten = hub.onAnyEvent((events) => {
        if (events.some((e) => e.type.startsWith('call.'))) kick();
      });
    }
    kick();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.unlisten?.();
    this.unlisten = null;
    await this.running?.catch(() => undefined);
  }

  /** One pass: queue new call events, then attempt every due delivery (in order per webhook). */
  async tick(): Promise<TickReport> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    const run = async (): Promise<TickReport> => {
      const total: TickReport = {
        enqueued: 0,
        dropped: 0,
        attempted: 0,
        delivered: 0,
        failed: 0,
        disabled: 0,
      };
      do {
        this.again = false;
        for (;;) {
          const n = await this.enqueue();
          total.enqueued += n.enqueued;
          total.dropped += n.dropped;
          if (!n.more) break;
        }
        const r = await this.deliverDue();
        total.attempted += r.attempted;
        total.delivered += r.delivered;
        total.failed += r.failed;
        total.disabled += r.disabled;
      } while (this.again);
      return total;
    };
    this.running = run().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private async enqueue(): Promise<{ enqueued: number; dropped: number; more: boolean }> {
    const now = this.clock.now();
    return this.options.db.transaction().execute(async (trx) => {
      const events = new EventRepository(trx);
      const cursor = (await events.getPosition(WEBHOOK_CURSOR)) ?? 0;
      const top = (await events.latestSeq()) ?? 0;
      const rows = await events.readRange({
        organizationId: null,
        afterSeq: cursor,
        limit: this.cfg.batchSize,
        types: WEBHOOK_EVENT_TYPES,
      });
      const more = rows.length === this.cfg.batchSize;
      const next = more ? rows[rows.length - 1]!.seq : Math.max(top, rows[rows.length - 1]?.seq ?? 0);
      if (rows.length === 0 && next <= cursor) return { enqueued: 0, dropped: 0, more: false };
      const repo = new WebhookRepository(trx);
      const byOrg = new Map<number, Webhook & { domain: string }>();
      if (rows.length > 0) for (const w of await repo.listAll()) byOrg.set(w.organizationId, w);
      const perHook = new Map<number, NewDelivery[]>();
      for (const e of rows) {
        if (e.organizationId === null) continue;
        const w = byOrg.get(e.organizationId);
        if (!w || !w.eventTypes.includes(e.type)) continue;
        const state = toCrmCallState(e, w.domain);
        if (!state) continue;
        let list = perHook.get(w.id);
        if (!list) perHook.set(w.id, (list = []));
        list.push({
          webhookId: w.id,
          organizationId: e.organizationId,
          eventSeq: e.seq,
          eventType: e.type,
          payload: JSON.stringify([state]),
        });
      }
      const deliveries: NewDelivery[] = [];
      let dropped = 0;
      for (const [id, list] of perHook) {
        const w = [...byOrg.values()].find((h) => h.id === id)!;
        if (w.enabled) {
          deliveries.push(...list);
          continue;
        }
        // Disabled: held for `enable`, up to maxHeld open deliveries; the rest are dropped.
        const open = await repo.countOpen(w.id);
        const room = Math.max(0, this.cfg.maxHeld - open);
        deliveries.push(...list.slice(0, room));
        const over = list.slice(room);
        if (over.length === 0) continue;
        dropped += over.length;
        // Recorded once per disabled period: the first drop since the webhook was disabled.
        if (!(await events.hasEvent(w.organizationId, 'webhook.queue_full', w.disabledAt ?? 0))) {
          const data = {
            webhookId: w.id,
            url: w.url,
            held: this.cfg.maxHeld,
            firstDroppedSeq: over[0]!.eventSeq,
            reason: `the webhook is disabled and ${this.cfg.maxHeld} deliveries are waiting; later call events are not queued until it is enabled`,
          };
          await recordChange(
            trx,
            {
              organizationId: w.organizationId,
              actor: 'system',
              action: 'webhook.queue_full',
              entity: 'webhook',
              entityId: w.id,
              data,
              event: { type: 'webhook.queue_full', data },
            },
            now,
          );
        }
      }
      const enqueued = await repo.enqueue(deliveries, now);
      await events.advancePosition(WEBHOOK_CURSOR, next);
      return { enqueued, dropped, more };
    });
  }

  private async deliverDue(): Promise<Omit<TickReport, 'enqueued' | 'dropped'>> {
    const repo = new WebhookRepository(this.options.db);
    const hooks = await repo.listEnabled();
    const reports = await Promise.all(hooks.map((w) => this.deliverFor(w)));
    return reports.reduce(
      (a, r) => ({
        attempted: a.attempted + r.attempted,
        delivered: a.delivered + r.delivered,
        failed: a.failed + r.failed,
        disabled: a.disabled + r.disabled,
      }),
      { attempted: 0, delivered: 0, failed: 0, disabled: 0 },
    );
  }

  /** Sends a webhook's due deliveries in order; stops at the first failure (it waits its turn). */
  private async deliverFor(webhook: Webhook): Promise<Omit<TickReport, 'enqueued' | 'dropped'>> {
    const repo = new WebhookRepository(this.options.db);
    const r = { attempted: 0, delivered: 0, failed: 0, disabled: 0 };
    let secret: string;
    try {
      secret = decryptSecret(this.options.serverKey, webhook.secretEnc);
    } catch (err) {
      this.options.onError?.(new Error(`webhook ${webhook.id}: cannot decrypt its secret`, { cause: err }));
      return r;
    }
    for (let i = 0; i < this.cfg.batchSize; i += 1) {
      const now = this.clock.now();
      const head = await repo.head(webhook.id);
      if (!head || head.nextAttemptAt > now) break;
      if (!(await repo.claim(head.id, now, this.cfg.leaseMs))) break;
      r.attempted += 1;
      const outcome = await this.send(webhook, secret, head);
      if (outcome.ok) {
        await repo.markDelivered(head.id, outcome.statusCode, this.clock.now());
        await repo.resetFailures(webhook.id);
        r.delivered += 1;
        continue;
      }
      r.failed += 1;
      const disabled = await this.fail(webhook, head, outcome);
      if (disabled) r.disabled += 1;
      break;
    }
    return r;
  }

  private async fail(
    webhook: Webhook,
    delivery: WebhookDelivery,
    outcome: { statusCode: number | null; error: string },
  ): Promise<boolean> {
    const now = this.clock.now();
    const attempts = delivery.attempts + 1;
    const dead = attempts >= this.cfg.maxAttempts;
    return this.options.db.transaction().execute(async (trx) => {
      const repo = new WebhookRepository(trx);
      await repo.markFailed(delivery.id, {
        status: dead ? 'dead' : 'failed',
        nextAttemptAt: dead ? now : now + this.retryDelay(attempts),
        statusCode: outcome.statusCode,
        error: outcome.error,
      });
      const failures = await repo.addFailure(webhook.id);
      if (failures < this.cfg.disableAfterFailures) return false;
      const reason = `${failures} consecutive failed deliveries (last: ${outcome.error})`.slice(0, 300);
      if (!(await repo.disable(webhook.id, reason, now))) return false;
      const data = { webhookId: webhook.id, url: webhook.url, failures, reason };
      await recordChange(
        trx,
        {
          organizationId: webhook.organizationId,
          actor: 'system',
          action: 'webhook.disabled',
          entity: 'webhook',
          entityId: webhook.id,
          data,
          event: { type: 'webhook.disabled', data },
        },
        now,
      );
      return true;
    });
  }

  private async send(
    webhook: Webhook,
    secret: string,
    d: WebhookDelivery,
  ): Promise<{ ok: true; statusCode: number } | { ok: false; statusCode: number | null; error: string }> {
    const t = Math.floor(this.clock.now() / 1000);
    try {
      const status = await this.post(webhook.url, d.payload, {
        'content-type': 'application/json',
        'user-agent': 'OneCloud-Webhooks/1',
        'x-onecloud-signature': signWebhook(secret, d.payload, t),
        'x-onecloud-delivery': String(d.id),
        'x-onecloud-event': d.eventType,
        'x-onecloud-attempt': String(d.attempts + 1),
      });
      if (status >= 200 && status < 300) return { ok: true, statusCode: status };
      return { ok: false, statusCode: status, error: `HTTP ${status}` };
    } catch (err) {
      if (err instanceof PrivateTargetError)
        return { ok: false, statusCode: null, error: `refused: ${err.message}` };
      const e = err as { code?: string; message?: string };
      return { ok: false, statusCode: null, error: `network: ${e.code ?? e.message ?? String(err)}` };
    }
  }

  /**
   * One POST; resolves with the status (redirects are not followed: a 3xx is a failure). Unless
   * private targets are allowed, an IP literal is checked here and a name on the connection's
   * own lookup, so the address connected to is the one checked.
   */
  private post(target: string, body: string, headers: Record<string, string>): Promise<number> {
    const url = new URL(target);
    const host = hostOf(url);
    if (!this.options.allowPrivateTargets && isPrivateAddress(host))
      return Promise.reject(new PrivateTargetError(host, host));
    const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise<number>((resolve, reject) => {
      const req = request(
        url,
        {
          method: 'POST',
          headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) },
          ...(this.options.allowPrivateTargets ? {} : { lookup: publicOnlyLookup }),
        },
        (res: IncomingMessage) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
          res.on('error', reject);
        },
      );
      const timer = setTimeout(
        () => req.destroy(Object.assign(new Error('timeout'), { code: 'timeout' })),
        this.cfg.requestTimeoutMs,
      );
      timer.unref();
      req.on('close', () => clearTimeout(timer));
      req.on('error', reject);
      req.end(body);
    });
  }
}
