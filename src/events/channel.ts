import fp from 'fastify-plugin';
import type { FastifyInstance } from 'fastify';
import { Gauge } from 'prom-client';
import type { Config } from '../config.js';
import type { DatabaseHandle } from '../db/database.js';
import { TicketAuthRepository } from '../areas/tickets/repository.js';
import { EventHub } from './hub.js';
import { createEventNotifier, InProcessNotifier, type EventNotifier } from './notifier.js';
import { EventRetention } from './retention.js';
import { WebhookDispatcher } from './webhook-dispatcher.js';

/** Open streams and long-polls of one ticket, for limits and for closing them on revocation. */
interface OpenStream {
  ticketId: number;
  organizationId: number;
}

/** Event types after which open streams of the organization are re-authorized at once. */
const ACCESS_CHANGES = /^(ticket\.revoked|externalapi\.|user\.(deleted|updated)|usergroup\.)/;

/**
 * The event channel of one process: the hub that reads the log and fans it out, the notifier that
 * wakes it (LISTEN/NOTIFY on PostgreSQL), retention, the webhook dispatcher, and the registry of
 * open streams (limits per ticket and per organization; revocation closes them within a second).
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
  private readonly withdrawn = new Set<number>();
  /** When (performance.now()) each organization's last access change was read from the log. */
  private readonly accessChangedAt = new Map<number, number>();
  private unlisten: (() => void) | null = null;

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
    this.hub = new EventHub({ db: database.db, notifier: this.notifier, pollIntervalMs: 1000, onError });
    this.retention = new EventRetention(database.db, {
      maxAgeMs: config.eventRetentionDays * 86_400_000,
      maxCount: config.eventRetentionCount,
      onError,
    });
    this.webhooks = new WebhookDispatcher({ db: database.db, serverKey: config.secretKey, onError });
  }

  async start(): Promise<void> {
    await this.notifier.start();
    await this.hub.start();
    this.retention.start();
    this.webhooks.start(this.hub);
    this.unlisten = this.hub.onAnyEvent((events) => {
      for (const e of events) {
        if (e.organizationId !== null && ACCESS_CHANGES.test(e.type)) {
          this.accessChangedAt.set(e.organizationId, performance.now());
          void this.reauthorize(e.organizationId);
        }
      }
    });
  }

  async stop(): Promise<void> {
    this.unlisten?.();
    await this.webhooks.stop();
    await this.retention.stop();
    await this.hub.stop();
    await this.notifier.stop();
  }

  /** Registers a stream; undefined when a limit is reached (the route answers 429). */
  enter(ticketId: number, organizationId: number): (() => void) | undefined {
    if ((this.perTicket.get(ticketId) ?? 0) >= this.config.eventStreamsPerTicket) return undefined;
    if ((this.perOrg.get(organizationId) ?? 0) >= this.config.eventStreamsPerOrganization) return undefined;
    const id = Symbol('stream');
    this.open.set(id, { ticketId, organizationId });
    this.perTicket.set(ticketId, (this.perTicket.get(ticketId) ?? 0) + 1);
    this.perOrg.set(organizationId, (this.perOrg.get(organizationId) ?? 0) + 1);
    this.withdrawn.delete(ticketId);
    let left = false;
    return () => {
      if (left) return;
      left = true;
      this.open.delete(id);
      decrement(this.perTicket, ticketId);
      decrement(this.perOrg, organizationId);
    };
  }

  /**
   * Closes the window between authentication and `enter`: when an access change of the
   * organization was read after `authenticatedAt` (performance.now() of the request's start), the
   * stream just entered is re-checked now, since that change's re-authorization could not see it.
   */
  async recheckIfChangedSince(
    ticketId: number,
    organizationId: number,
    authenticatedAt: number,
  ): Promise<void> {
    if ((this.accessChangedAt.get(organizationId) ?? -Infinity) >= authenticatedAt) {
      await this.reauthorizeTickets([ticketId]);
    }
  }

  wasWithdrawn(ticketId: number): boolean {
    return this.withdrawn.has(ticketId);
  }

  get openStreams(): number {
    return this.open.size;
  }

  /** Re-checks every open stream of the organization; closes those that lost access. */
  private async reauthorize(organizationId: number): Promise<void> {
    const tickets = new Set(
      [...this.open.values()].filter((s) => s.organizationId === organizationId).map((s) => s.ticketId),
    );
    await this.reauthorizeTickets(tickets);
  }

  private async reauthorizeTickets(tickets: Iterable<number>): Promise<void> {
    const repo = new TicketAuthRepository(this.database.db);
    for (const ticketId of tickets) {
      try {
        const found = await repo.forUserApi(ticketId, 'EVENT_CHANNEL');
        const ok =
          found !== undefined &&
          found.ticket.revokedAt === null &&
          found.ticket.expiresAt > Date.now() &&
          found.ticket.scopes.includes('EVENT_CHANNEL') &&
          found.user !== null &&
          found.user.role !== 'SUPERUSER' &&
          found.granted;
        if (!ok) {
          this.withdrawn.add(ticketId);
          this.hub.closeByKey(`ticket:${ticketId}`, 'ticket-revoked');
        }
      } catch (err) {
        this.log.error({ err, ticketId }, 'could not re-authorize an event stream');
      }
    }
  }
}

function decrement(map: Map<number, number>, key: number): void {
  const n = (map.get(key) ?? 1) - 1;
  if (n <= 0) map.delete(key);
  else map.set(key, n);
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
  },
  { name: 'onecloud-events', dependencies: ['onecloud-metrics'] },
);
