import pg from 'pg';
import type { DatabaseHandle } from '../db/database.js';
import { onLocalEvents } from './local.js';

/** The PostgreSQL channel the `events` trigger notifies (payload: the highest new seq). */
export const EVENTS_CHANNEL = 'onecloud_events';

/**
 * Wakes the event hub when events were committed. A wake-up is only a hint: the hub always
 * re-reads the log from its own last seq, so a lost, duplicated or reordered notification can
 * delay an event but never lose or repeat one. `seq` is the highest committed seq the sender knows
 * (0 when unknown, e.g. after a reconnect).
 */
export interface EventNotifier {
  /** Tells this process's listeners that events up to `seq` are committed (call after commit). */
  notify(seq: number): void;
  /** Registers a listener; returns the function that removes it. */
  onEvent(listener: (seq: number) => void): () => void;
  start(): Promise<void>;
  stop(): Promise<void>;
}

class Listeners {
  private readonly set = new Set<(seq: number) => void>();
  add(listener: (seq: number) => void): () => void {
    this.set.add(listener);
    return () => this.set.delete(listener);
  }
  emit(seq: number): void {
    for (const l of [...this.set]) {
      try {
        l(seq);
      } catch {
        // a listener's failure is its own; the others still wake
      }
    }
  }
}

/**
 * One process (SQLite, tests): `notify` wakes the listeners directly, and so does every event
 * that `recordChange` writes in this process (src/events/local.ts).
 */
export class InProcessNotifier implements EventNotifier {
  private readonly listeners = new Listeners();
  private unsubscribe: (() => void) | null = null;
  notify(seq: number): void {
    this.listeners.emit(seq);
  }
  onEvent(listener: (seq: number) => void): () => void {
    return this.listeners.add(listener);
  }
  async start(): Promise<void> {
    this.unsubscribe ??= onLocalEvents((seq) => this.listeners.emit(seq));
  }
  async stop(): Promise<void> {
    this.unsubscribe?.();
    this.unsubscribe = null;
  }
}

export interface PgNotifierOptions {
  /** postgres:// URL of the database (`schema=` and `pool=` parameters are ignored). */
  url: string;
  channel?: string;
  /** First reconnect delay; doubles up to `maxReconnectMs`. Default 100 ms, max 5 s. */
  reconnectMs?: number;
  maxReconnectMs?: number;
  /** Called with connection errors (logging). */
  onError?: (err: Error) => void;
}

/**
 * PostgreSQL: one dedicated `LISTEN onecloud_events` connection per process. The `events`
 * trigger (migration 0003) sends `NOTIFY` in the writing transaction, which PostgreSQL delivers
 * at commit only, to every listening process. A lost listening connection is reconnected with
 * backoff; once it listens again, listeners get a wake-up (seq 0) so the hub re-reads from its
 * last seq: whatever was committed while it was deaf is read then.
 * `notify(seq)` wakes this process's listeners at once (the trigger's NOTIFY reaches the others).
 */
export class PgNotifier implements EventNotifier {
  private readonly listeners = new Listeners();
  private client: pg.Client | null = null;
  private stopped = true;
  private timer: NodeJS.Timeout | null = null;
  private delay: number;
  private connecting: Promise<void> | null = null;
  private readonly channel: string;
  /** How many times the listening connection was (re)established. */
  connects = 0;

  constructor(private readonly options: PgNotifierOptions) {
    this.channel = options.channel ?? EVENTS_CHANNEL;
    if (!/^[a-z_][a-z0-9_]*$/.test(this.channel)) throw new Error(`invalid channel name "${this.channel}"`);
    this.delay = options.reconnectMs ?? 100;
  }

  notify(seq: number): void {
    this.listeners.emit(seq);
  }

  onEvent(listener: (seq: number) => void): () => void {
    return this.listeners.add(listener);
  }

  /** Resolves once listening (rejects when the first connection fails; later ones are retried). */
  async start(): Promise<void> {
    if (!this.stopped) return;
    this.stopped = false;
    try {
      await this.connect();
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.connecting?.catch(() => undefined);
    const c = this.client;
    this.client = null;
    if (c) await c.end().catch(() => undefined);
  }

  /** Test hook: kills the listening connection as a network failure would. */
  async dropConnection(): Promise<void> {
    const c = this.client;
    if (!c) return;
    // Ends the socket without the client's orderly shutdown, as a lost connection would.
    (c as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
    await new Promise<void>((resolve) => c.once('end', () => resolve()));
  }

  private connect(): Promise<void> {
    const run = async () => {
      const u = new URL(this.options.url);
      u.searchParams.delete('schema');
      u.searchParams.delete('pool');
      const client = new pg.Client({ connectionString: u.toString(), connectionTimeoutMillis: 10_000 });
      client.on('error', (err) => this.options.onError?.(err));
      client.on('notification', (msg) => {
        if (msg.channel !== this.channel) return;
        const seq = Number(msg.payload ?? 0);
        this.listeners.emit(Number.isFinite(seq) ? seq : 0);
      });
      client.on('end', () => {
        if (this.client === client) this.client = null;
        if (!this.stopped) this.scheduleReconnect();
      });
      await client.connect();
      await client.query(`LISTEN ${this.channel}`);
      if (this.stopped) {
        await client.end().catch(() => undefined);
        return;
      }
      this.client = client;
      this.connects += 1;
      this.delay = this.options.reconnectMs ?? 100;
      // Anything committed while no connection listened is read now.
      this.listeners.emit(0);
    };
    const p = run().finally(() => {
      if (this.connecting === p) this.connecting = null;
    });
    this.connecting = p;
    return p;
  }

  private scheduleReconnect(): void {
    if (this.stopped || this.timer) return;
    const wait = this.delay;
    this.delay = Math.min(this.delay * 2, this.options.maxReconnectMs ?? 5000);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.connect().catch((err: unknown) => {
        this.options.onError?.(err instanceof Error ? err : new Error(String(err)));
        this.scheduleReconnect();
      });
    }, wait);
    this.timer.unref();
  }
}

/** The notifier for a database: LISTEN/NOTIFY on PostgreSQL (needs its URL), in-process on SQLite. */
export function createEventNotifier(
  handle: Pick<DatabaseHandle, 'dialect'>,
  options: { url?: string; onError?: (err: Error) => void } = {},
): EventNotifier {
  if (handle.dialect === 'postgres') {
    if (!options.url) throw new Error('the PostgreSQL event notifier needs the database URL');
    return new PgNotifier({ url: options.url, ...(options.onError ? { onError: options.onError } : {}) });
  }
  return new InProcessNotifier();
}
