import fp from 'fastify-plugin';
import type { FastifyInstance } from 'fastify';
import { Counter, Gauge } from 'prom-client';
import type { Config } from '../config.js';
import type { DatabaseHandle } from '../db/database.js';
import { TicketAuthRepository } from '../areas/tickets/repository.js';
import { UnauthorizedError } from '../errors.js';
import { EventHub, type CloseReason } from './hub.js';
import { createEventNotifier, InProcessNotifier, type EventNotifier } from './notifier.js';
import { EventRepository, type StoredEvent } from './repository.js';
import { EventRetention } from './retention.js';
import { changesAccess, type AccessBasis, type Viewer } from './visibility.js';
import { WebhookDispatcher } from './webhook-dispatcher.js';

/** Open streams and long-polls of one ticket, for limits and for closing them on revocation. */
interface OpenStream {
  ticketId: number;
  organizationId: number;
}

/** Event types after which open streams of the organization are re-authorized at once. */
const ACCESS_CHANGES = /^(ticket\.revoked|externalapi\.|user\.(deleted|updated)|usergroup\.)/;

/** Why a ticket's streams were ended by the channel (SSE sends a final event for each). */
export type WithdrawReason = 'ticket-revoked' | 'ticket-expired';

/** Longest single timer (setTimeout takes at most 2^31-1 ms); longer waits are re-armed. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** What an admitted stream or long-poll of a user ticket may see, and when that ends. */
export interface StreamAccess {
  viewer: Viewer;
  /**
   * For the hub's `stopAt`: `access-changed` at the first event after the viewer was resolved
   * that may change its visibility (agent added/removed, supervisor role or membership changed).
   */
  stopAt: (event: StoredEvent) => CloseReason | undefined;
}

/**
 * The event channel of one process: the hub that reads the log and fans it out, the notifier that
 * wakes it (LISTEN/NOTIFY on PostgreSQL), retention, the webhook dispatcher, and the registry of
 * open streams (limits per ticket and per organization; revocation and expiry close them within
 * a second).
 */
export class EventChannel {
  readonly hub: EventHub;
  private readonly notifier: EventNotifier;
  private readonly retention: EventRetention;
  readonly webhooks: WebhookDispatcher;
  private readonly open = new Map<symbol, OpenStream>();
  private readonly perTicket = new Map<number, number>();
  private readonly perOrg = new Map<number, number>();
  /** Tickets whose streams were closed because access was withdrawn (long-polls answer 401). */
  private readonly withdrawn = new Map<number, WithdrawReason>();
  /** Per ticket with open streams: the timer that ends them when the ticket expires. */
  private readonly expiries = new Map<number, NodeJS.Timeout>();
  private unlisten: (() => void) | null = null;
  /** Streams whose client was gone before the stream opened (metrics). */
  abandonedStreams = 0;

  constructor(
    private readonly database: DatabaseHandle,
    readonly config: Config,
    private readonly log: FastifyInstance['log'],
  ) {
    const onError = (err: Error) => this.log.error({ err }, 'event channel');
    // PostgreSQL: LISTEN/NOTIFY wakes every process. Without the database URL (tests handing in a
    // handle) the hub relies on this process's own announcements and its poll.
    this.notifier =
      database.dialect === 'postgres' && /^postgres(ql)?:\/\//.test(config.databaseUrl)
        ? createEventNotifier(database, { url: config.databaseUrl, onError })
        : new InProcessNotifier();
    this.hub = new EventHub({
      db: database.db,
      notifier: this.notifier,
      pollIntervalMs: 1000,
      maxQueue: config.eventStreamMaxQueue,
      onError,
    });
    this.retention = new EventRetention(database.db, {
      maxAgeMs: config.eventRetentionDays * 86_400_000,
      maxCount: config.eventRetentionCount,
      onError,
    });
    this.webhooks = new WebhookDispatcher({
      db: database.db,
      serverKey: config.secretKey,
      allowPrivateTargets: config.webhookAllowPrivate,
      onError,
    });
  }

  /** The SSE heartbeat interval (ms). */
  get heartbeatMs(): number {
    return this.config.eventHeartbeatMs;
  }

  async start(): Promise<void> {
    await this.notifier.start();
    await this.hub.start();
    this.retention.start();
    this.webhooks.start(this.hub);
    this.unlisten = this.hub.onAnyEvent((events) => {
      const orgs = new Set<number>();
      for (const e of events) {
        if (e.organizationId !== null && ACCESS_CHANGES.test(e.type)) orgs.add(e.organizationId);
      }
      for (const org of orgs) void this.reauthorize(org);
    });
  }

  async stop(): Promise<void> {
    this.unlisten?.();
    for (const timer of this.expiries.values()) clearTimeout(timer);
    this.expiries.clear();
    await this.webhooks.stop();
    await this.retention.stop();
    await this.hub.stop();
    await this.notifier.stop();
  }

  /**
   * Registers a stream; undefined when a limit is reached (the route answers 429). The returned
   * function releases the slot (idempotent): call it on every path, whether the stream opened or not.
   */
  enter(ticketId: number, organizationId: number): (() => void) | undefined {
    if ((this.perTicket.get(ticketId) ?? 0) >= this.config.eventStreamsPerTicket) return undefined;
    if ((this.perOrg.get(organizationId) ?? 0) >= this.config.eventStreamsPerOrganization) return undefined;
    const id = Symbol('stream');
    this.open.set(id, { ticketId, organizationId });
    this.perTicket.set(ticketId, (this.perTicket.get(ticketId) ?? 0) + 1);
    this.perOrg.set(organizationId, (this.perOrg.get(organizationId) ?? 0) + 1);
    let left = false;
    return () => {
      if (left) return;
      left = true;
      this.open.delete(id);
      decrement(this.perOrg, organizationId);
      if (decrement(this.perTicket, ticketId) === 0) {
        // The ticket's last stream is gone: nothing is left to expire or to answer 401.
        const timer = this.expiries.get(ticketId);
        if (timer) clearTimeout(timer);
        this.expiries.delete(ticketId);
        this.withdrawn.delete(ticketId);
      }
    };
  }

  /**
   * Admits a stream or long-poll that `enter` registered: checks the ticket again (revoked,
   * expired, EVENT_CHANNEL withdrawn since the request was authenticated: 401), arms the ticket's
   * expiry, and resolves what the user may see. A change read after `enter` re-checks this stream
   * too (it is registered), so nothing slips between authentication and the subscription.
   */
  async admit(
    ticketId: number,
    user: { id: number; userId: string; organizationId: number; domain: string },
  ): Promise<StreamAccess> {
    const ticket = await this.check(ticketId);
    if (!ticket.ok) {
      this.withdraw(ticketId, ticket.reason);
      throw new UnauthorizedError(describeWithdrawal(ticket.reason));
    }
    this.armExpiry(ticketId, ticket.expiresAt);
    const repo = new EventRepository(this.database.db);
    // Read first: every change with seq <= asOf is committed, so the groups read next include it;
    // a change after it may or may not be included, and ends the stream (conservatively).
    const asOf = (await repo.latestSeq()) ?? 0;
    const groups = await repo.viewerGroups(user.organizationId, user.id);
    const viewer: Viewer = {
      kind: 'user',
      organizationId: user.organizationId,
      userId: user.id,
      groupIds: groups.groupIds,
      supervisedGroupIds: groups.supervisedGroupIds,
      watchedUserIds: [],
    };
    const basis: AccessBasis = {
      userId: user.id,
      login: user.userId,
      address: `${user.userId}@${user.domain}`,
      supervisor: groups.supervisor,
      groupIds: groups.groupIds,
      supervisedGroupIds: groups.supervisedGroupIds,
    };
    return {
      viewer,
      stopAt: (event) => (event.seq > asOf && changesAccess(event, basis) ? 'access-changed' : undefined),
    };
  }

  /** Why the ticket's streams were ended, if they were (long-polls then answer 401). */
  withdrawal(ticketId: number): WithdrawReason | undefined {
    return this.withdrawn.get(ticketId);
  }

  get openStreams(): number {
    return this.open.size;
  }

  private withdraw(ticketId: number, reason: WithdrawReason): void {
    if ((this.perTicket.get(ticketId) ?? 0) > 0) this.withdrawn.set(ticketId, reason);
    this.hub.closeByKey(`ticket:${ticketId}`, reason);
  }

  /** Ends the ticket's streams when it expires (at that time; re-armed for far expiries). */
  private armExpiry(ticketId: number, expiresAt: number): void {
    if (this.expiries.has(ticketId) || (this.perTicket.get(ticketId) ?? 0) === 0) return;
    const wait = expiresAt - Date.now();
    if (wait <= 0) {
      this.expiries.delete(ticketId);
      this.withdraw(ticketId, 'ticket-expired');
      return;
    }
    const timer = setTimeout(
      () => {
        this.expiries.delete(ticketId);
        this.armExpiry(ticketId, expiresAt);
      },
      Math.min(wait, MAX_TIMER_MS),
    );
    timer.unref();
    this.expiries.set(ticketId, timer);
  }

  /** Re-checks every open stream of the organization; closes those that lost access. */
  private async reauthorize(organizationId: number): Promise<void> {
    const tickets = new Set(
      [...this.open.values()].filter((s) => s.organizationId === organizationId).map((s) => s.ticketId),
    );
    for (const ticketId of tickets) {
      try {
        const r = await this.check(ticketId);
        if (!r.ok) this.withdraw(ticketId, r.reason);
      } catch (err) {
        this.log.error({ err, ticketId }, 'could not re-authorize an event stream');
      }
    }
  }

  private async check(
    ticketId: number,
  ): Promise<{ ok: true; expiresAt: number } | { ok: false; reason: WithdrawReason }> {
    const found = await new TicketAuthRepository(this.database.db).forUserApi(ticketId, 'EVENT_CHANNEL');
    if (!found || found.ticket.revokedAt !== null) return { ok: false, reason: 'ticket-revoked' };
    if (found.ticket.expiresAt <= Date.now()) return { ok: false, reason: 'ticket-expired' };
    const ok =
      found.ticket.scopes.includes('EVENT_CHANNEL') &&
      found.user !== null &&
      found.user.role !== 'SUPERUSER' &&
      found.granted;
    return ok ? { ok: true, expiresAt: found.ticket.expiresAt } : { ok: false, reason: 'ticket-revoked' };
  }
}

/** The message of a 401 after a withdrawal. */
export function describeWithdrawal(reason: WithdrawReason): string {
  return reason === 'ticket-expired' ? 'ticket expired' : 'ticket revoked or access withdrawn';
}

/** Decrements a count; returns what is left (0: the key is gone). */
function decrement(map: Map<number, number>, key: number): number {
  const n = (map.get(key) ?? 1) - 1;
  if (n <= 0) map.delete(key);
  else map.set(key, n);
  return Math.max(0, n);
}

declare module 'fastify' {
  interface FastifyInstance {
    events: EventChannel;
  }
}

/** Starts the event channel with the app and stops it when the app closes. */
export const eventChannel = fp<{ database: DatabaseHandle; config: Config }>(
  async (app, { database, config }) => {
    const channel = new EventChannel(database, config, app.log);
    app.decorate('events', channel);
    await channel.start();
    app.addHook('onClose', async () => channel.stop());
    const registers = [app.metrics];
    new Gauge({
      name: 'onecloud_event_subscribers',
      help: 'Open event streams (Server-Sent Events)',
      registers,
      collect() {
        this.set(channel.hub.subscriberCount);
      },
    });
    new Gauge({
      name: 'onecloud_event_waiters',
      help: 'Long-polls waiting for events',
      registers,
      collect() {
        this.set(channel.hub.waiterCount);
      },
    });
    new Gauge({
      name: 'onecloud_event_queued',
      help: 'Events queued for slow subscribers, not yet written to their sockets',
      registers,
      collect() {
        this.set(channel.hub.queuedEvents);
      },
    });
    new Counter({
      name: 'onecloud_event_streams_abandoned_total',
      help: 'Event streams whose client left before the stream opened',
      registers,
      collect() {
        this.reset();
        this.inc(channel.abandonedStreams);
      },
    });
  },
  { name: 'onecloud-events', dependencies: ['onecloud-metrics'] },
);
