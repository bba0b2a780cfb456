import type { Kysely } from 'kysely';
import type { DB } from '../db/schema.js';
import { ConflictError } from '../errors.js';
import type { EventNotifier } from './notifier.js';
import { EventRepository, type StoredEvent } from './repository.js';

/**
 * `since` is older than the retained log: the events after it may be gone. The route answers 409
 * with `oldestSeq`; the client resyncs its state and resumes with `since = resumeSince`.
 */
export class EventGapError extends ConflictError {
  constructor(
    readonly since: number,
    /** The oldest seq still in the log (prunedThrough + 1 when the log is empty). */
    readonly oldestSeq: number,
    /** Every event with seq <= this may have been pruned. */
    readonly prunedThrough: number,
  ) {
    super(`events after ${since} are no longer retained; the oldest available is ${oldestSeq}`);
  }
}

/**
 * Why a subscription ended: `closed` (its owner closed it), `slow-consumer` (its queue passed
 * maxQueue; resume from `lastSeq`), `gap` (retention overtook a lagging reader), `error`
 * (onEvents threw), `hub-stopped`, or a reason given to `close`/`closeByKey` (e.g. `ticket-revoked`).
 */
export type CloseReason = 'closed' | 'slow-consumer' | 'gap' | 'error' | 'hub-stopped' | (string & {});

export interface SubscribeOptions {
  /** Only this organization's events (null: every organization; narrow further with `filter`). */
  organizationId: number | null;
  /** Deliver events with seq > since (resume point). Omitted: only events committed from now on. */
  since?: number | undefined;
  /** Which events this subscriber may and wants to see (visibility + types), see `eventFilter`. */
  filter?: ((event: StoredEvent) => boolean) | undefined;
  /** Called with each batch, in seq order; the next batch waits until a returned promise settles. */
  onEvents: (events: StoredEvent[]) => void | Promise<void>;
  /** Called once when the subscription ends, whatever the reason. */
  onClose?: ((reason: CloseReason) => void) | undefined;
  /** Events queued but not yet handed to onEvents beyond which the subscriber is closed. */
  maxQueue?: number | undefined;
  /** Largest batch handed to onEvents. */
  maxBatch?: number | undefined;
  /** A key for `closeByKey` (e.g. `ticket:42`). */
  key?: string | undefined;
  /**
   * An event at which the subscription ends: checked for every event of its organization after
   * its start (before `filter`); when it returns a reason, the events before that one are still
   * handed over, none after it, and the subscription then closes with that reason. Its `lastSeq`
   * is the resume point, as for any close (e.g. `access-changed`: resume with the new visibility).
   */
  stopAt?: ((event: StoredEvent) => CloseReason | undefined) | undefined;
}

export interface Subscription {
  readonly id: number;
  /** The seq of the last event handed to onEvents (or `since`/the start position). */
  readonly lastSeq: number;
  readonly closed: boolean;
  /** Events waiting to be handed to onEvents. */
  readonly queued: number;
  close(reason?: CloseReason): void;
}

export interface WaitOptions {
  organizationId: number | null;
  since?: number | undefined;
  filter?: ((event: StoredEvent) => boolean) | undefined;
  /** Give up after this long with an empty list. */
  timeoutMs: number;
  /** At most this many events (default 100). */
  limit?: number | undefined;
  /** Aborting answers an empty list at once (check `signal.aborted` to tell why). */
  signal?: AbortSignal | undefined;
  key?: string | undefined;
  /** As for subscribe: the long-poll answers with the events before it (maybe none). */
  stopAt?: SubscribeOptions['stopAt'];
}

export interface EventHubOptions {
  db: Kysely<DB>;
  /** Wake-ups (LISTEN/NOTIFY or in-process). Without one, only polling and publishCommitted. */
  notifier?: EventNotifier | undefined;
  /** Safety-net poll of the log (default 1000 ms; 0 disables). */
  pollIntervalMs?: number | undefined;
  /** Rows read per query (default 500). */
  batchSize?: number | undefined;
  /** Default subscriber queue limit (default 10,000 events). */
  maxQueue?: number | undefined;
  onError?: ((err: Error) => void) | undefined;
}

type Kind = 'subscriber' | 'waiter';

class Sub implements Subscription {
  /** Every event with seq <= position has been considered for this subscriber. */
  position: number;
  lastSeq: number;
  live = false;
  closed = false;
  queue: StoredEvent[] = [];
  pumping = false;
  /** Settles when the backlog after `since` has been read (at once without `since`). */
  caughtUp: Promise<void> = Promise.resolve();
  /** Set when `stopAt` matched: nothing after that event is accepted; closes once handed over. */
  stopReason: CloseReason | null = null;

  constructor(
    readonly id: number,
    readonly kind: Kind,
    readonly opts: SubscribeOptions,
    start: number,
    private readonly onClosed: (sub: Sub) => void,
  ) {
    this.position = start;
    this.lastSeq = start;
  }

  get queued(): number {
    return this.queue.length;
  }

  accepts(event: StoredEvent): boolean {
    if (this.stopReason !== null || event.seq <= this.position) return false;
    if (this.opts.organizationId !== null && event.organizationId !== this.opts.organizationId) return false;
    if (this.opts.stopAt) {
      const reason = this.opts.stopAt(event);
      if (reason !== undefined) {
        this.stopReason = reason;
        return false;
      }
    }
    return this.opts.filter ? this.opts.filter(event) : true;
  }

  close(reason: CloseReason = 'closed'): void {
    if (this.closed) return;
    this.closed = true;
    this.queue = [];
    this.onClosed(this);
    try {
      this.opts.onClose?.(reason);
    } catch {
      // the owner's close handler failing changes nothing here
    }
  }
}

/**
 * Fans the event log out to subscribers. One reader per process follows the log (`cursor`): woken
 * by the notifier, by `publishCommitted`, or by the poll, it reads every event after its cursor in
 * batches and hands each live subscriber the ones it accepts. A new subscriber first catches up
 * from the database on its own (paced by its onEvents), then joins the live feed without a gap or
 * a duplicate. Delivery is in seq order, at most once per subscription; a subscription closed for
 * any reason resumes losslessly from its `lastSeq` with a new one.
 *
 * "A committed event is never missed": seq order is commit order (SQLite has one writer;
 * PostgreSQL draws the seq under a transaction lock, migration 0003), so when the reader has seen
 * seq N, every event that will ever commit has seq > N. Wake-ups are hints only: the poll reads
 * the log every `pollIntervalMs` even if every notification were lost.
 */
export class EventHub {
  private readonly repo: EventRepository;
  private readonly batchSize: number;
  private readonly pollIntervalMs: number;
  private readonly defaultMaxQueue: number;
  private readonly subs = new Map<number | null, Set<Sub>>();
  private readonly rawListeners = new Set<(events: StoredEvent[]) => void>();
  private nextId = 1;
  private started = false;
  private cursorSeq = 0;
  private draining: Promise<void> | null = null;
  private again = false;
  private timer: NodeJS.Timeout | null = null;
  private unlisten: (() => void) | null = null;
  private subscribers = 0;
  private waiters = 0;
  /** Events read from the log by this hub (metrics). */
  eventsRead = 0;
  /** Subscriptions closed as slow consumers (metrics). */
  slowConsumerCloses = 0;

  constructor(private readonly options: EventHubOptions) {
    this.repo = new EventRepository(options.db);
    this.batchSize = options.batchSize ?? 500;
    this.pollIntervalMs = options.pollIntervalMs ?? 1000;
    this.defaultMaxQueue = options.maxQueue ?? 10_000;
  }

  /** The highest seq this hub has read and dispatched. */
  get cursor(): number {
    return this.cursorSeq;
  }
  /** Open streaming subscriptions (SSE). */
  get subscriberCount(): number {
    return this.subscribers;
  }
  /** Pending long-polls. */
  get waiterCount(): number {
    return this.waiters;
  }
  /** Events queued for subscribers and not yet handed to them (slow readers; each bounded by maxQueue). */
  get queuedEvents(): number {
    let n = 0;
    for (const set of this.subs.values()) for (const s of set) n += s.queue.length;
    return n;
  }

  async start(): Promise<void> {
    if (this.started) return;
    this.cursorSeq = (await this.repo.latestSeq()) ?? 0;
    this.started = true;
    if (this.options.notifier) {
      this.unlisten = this.options.notifier.onEvent((seq) => {
        if (seq === 0 || seq > this.cursorSeq) void this.wake();
      });
    }
    if (this.pollIntervalMs > 0) {
      this.timer = setInterval(() => void this.wake(), this.pollIntervalMs);
      this.timer.unref();
    }
  }

  /** Closes every subscription (`hub-stopped`) and stops following the log. */
  async stop(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.unlisten?.();
    this.unlisten = null;
    for (const set of [...this.subs.values()]) for (const s of [...set]) s.close('hub-stopped');
    await this.draining?.catch(() => undefined);
  }

  /** Call after a transaction that wrote events commits (in-process fast path). */
  publishCommitted(seq = 0): void {
    this.options.notifier?.notify(seq);
    if (!this.options.notifier) void this.wake();
  }

  /** Reads the log now; resolves when every event committed before the call is dispatched. */
  async wake(): Promise<void> {
    if (!this.started) return;
    if (this.draining) {
      this.again = true;
      return this.draining;
    }
    const run = async () => {
      do {
        this.again = false;
        try {
          await this.drainOnce();
        } catch (err) {
          this.options.onError?.(err instanceof Error ? err : new Error(String(err)));
          return;
        }
      } while (this.again && this.started);
    };
    this.draining = run().finally(() => {
      this.draining = null;
    });
    return this.draining;
  }

  /** Every batch of events the hub reads, before fan-out (revocation watchers, webhook wake-ups). */
  onAnyEvent(listener: (events: StoredEvent[]) => void): () => void {
    this.rawListeners.add(listener);
    return () => this.rawListeners.delete(listener);
  }

  /** Closes the subscriptions and long-polls opened with `key`; returns how many. */
  closeByKey(key: string, reason: CloseReason): number {
    let n = 0;
    for (const set of [...this.subs.values()])
      for (const s of [...set])
        if (s.opts.key === key) {
          s.close(reason);
          n += 1;
        }
    return n;
  }

  /**
   * Opens a subscription. Throws EventGapError when `since` is older than the retained log.
   * Events after `since` already in the log are delivered first, then live ones.
   */
  async subscribe(opts: SubscribeOptions): Promise<Subscription> {
    return this.open(opts, 'subscriber');
  }

  /**
   * Long-poll: the events after `since` this caller accepts (at most `limit`), at once when there
   * are some, else the first ones to commit, else [] after `timeoutMs` or when `signal` aborts.
   * Throws EventGapError like subscribe.
   */
  async waitForEvents(opts: WaitOptions): Promise<StoredEvent[]> {
    const limit = Math.max(1, opts.limit ?? 100);
    if (opts.signal?.aborted) return [];
    let resolve!: (events: StoredEvent[]) => void;
    const result = new Promise<StoredEvent[]>((r) => (resolve = r));
    let timer: NodeJS.Timeout | null = null;
    let sub: Sub | null = null;
    let done = false;
    const finish = (events: StoredEvent[]) => {
      if (done) return;
      done = true;
      if (timer) clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      sub?.close('closed');
      resolve(events);
    };
    const onAbort = () => finish([]);
    sub = await this.open(
      {
        organizationId: opts.organizationId,
        since: opts.since,
        filter: opts.filter,
        key: opts.key,
        stopAt: opts.stopAt,
        maxBatch: limit,
        maxQueue: Number.MAX_SAFE_INTEGER,
        onEvents: (events) => finish(events.slice(0, limit)),
        onClose: () => finish([]),
      },
      'waiter',
    );
    if (done) sub.close('closed');
    else {
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      // The wait starts once the backlog is read: events already in the log after `since` are
      // answered even with a zero timeout.
      const waiting = sub;
      void waiting.caughtUp.then(() => {
        if (!done) timer = setTimeout(() => finish([]), Math.max(0, opts.timeoutMs));
      });
    }
    return result;
  }

  private async open(opts: SubscribeOptions, kind: Kind): Promise<Sub> {
    if (!this.started) throw new Error('the event hub is not started');
    let start = this.cursorSeq;
    if (opts.since !== undefined) {
      if (!Number.isInteger(opts.since) || opts.since < 0) throw new RangeError('since must be a seq (>= 0)');
      const prunedThrough = (await this.repo.getPosition('pruned_through')) ?? 0;
      if (opts.since < prunedThrough) {
        const oldest = (await this.repo.oldestSeq()) ?? prunedThrough + 1;
        throw new EventGapError(opts.since, oldest, prunedThrough);
      }
      start = opts.since;
    }
    const sub = new Sub(this.nextId++, kind, opts, start, (s) => this.remove(s));
    let set = this.subs.get(opts.organizationId);
    if (!set) this.subs.set(opts.organizationId, (set = new Set()));
    set.add(sub);
    if (kind === 'waiter') this.waiters += 1;
    else this.subscribers += 1;
    // Without `since` the subscriber starts at the hub's cursor; with one, it reads the log first
    // (even when since >= cursor: events may be committed that the hub has not read yet).
    if (opts.since === undefined) sub.live = true;
    else sub.caughtUp = this.catchUp(sub);
    return sub;
  }

  private remove(sub: Sub): void {
    const set = this.subs.get(sub.opts.organizationId);
    if (!set?.delete(sub)) return;
    if (set.size === 0) this.subs.delete(sub.opts.organizationId);
    if (sub.kind === 'waiter') this.waiters -= 1;
    else this.subscribers -= 1;
  }

  /** Reads a new subscriber's backlog from the log, then makes it live. */
  private async catchUp(sub: Sub): Promise<void> {
    const maxBatch = sub.opts.maxBatch ?? this.batchSize;
    try {
      for (;;) {
        if (sub.closed) return;
        const seen = this.cursorSeq;
        const from = sub.position;
        const rows = await this.repo.readRange({
          organizationId: sub.opts.organizationId,
          afterSeq: from,
          limit: this.batchSize,
        });
        if (sub.closed) return;
        if (rows.length > 0) {
          const prunedThrough = (await this.repo.getPosition('pruned_through')) ?? 0;
          if (prunedThrough > from) return sub.close('gap');
        }
        const matched = rows.filter((e) => sub.accepts(e));
        if (rows.length > 0) sub.position = rows[rows.length - 1]!.seq;
        for (let i = 0; i < matched.length && !sub.closed; i += maxBatch) {
          const batch = matched.slice(i, i + maxBatch);
          await sub.opts.onEvents(batch);
          sub.lastSeq = batch[batch.length - 1]!.seq;
        }
        if (sub.stopReason !== null) return sub.close(sub.stopReason);
        if (rows.length < this.batchSize) {
          // Every event of this organization with seq <= `seen` was committed before the read.
          if (seen > sub.position) sub.position = seen;
          if (sub.position >= this.cursorSeq) {
            sub.live = true;
            return;
          }
        }
      }
    } catch (err) {
      this.options.onError?.(err instanceof Error ? err : new Error(String(err)));
      sub.close('error');
    }
  }

  private async drainOnce(): Promise<void> {
    for (;;) {
      const rows = await this.repo.readRange({
        organizationId: null,
        afterSeq: this.cursorSeq,
        limit: this.batchSize,
      });
      if (rows.length === 0) return;
      this.cursorSeq = rows[rows.length - 1]!.seq;
      this.eventsRead += rows.length;
      for (const l of [...this.rawListeners]) {
        try {
          l(rows);
        } catch (err) {
          this.options.onError?.(err instanceof Error ? err : new Error(String(err)));
        }
      }
      this.dispatch(rows);
      if (rows.length < this.batchSize) return;
    }
  }

  private dispatch(rows: StoredEvent[]): void {
    const byOrg = new Map<number | null, StoredEvent[]>();
    for (const e of rows) {
      let list = byOrg.get(e.organizationId);
      if (!list) byOrg.set(e.organizationId, (list = []));
      list.push(e);
    }
    const last = rows[rows.length - 1]!.seq;
    const deliver = (sub: Sub, events: StoredEvent[]) => {
      if (!sub.live || sub.closed) return;
      const matched = events.filter((e) => sub.accepts(e));
      if (last > sub.position) sub.position = last;
      if (matched.length === 0 && sub.stopReason === null) return;
      sub.queue.push(...matched);
      // Handed over first: a reader that keeps up takes a burst larger than its limit at once
      // (the pump is synchronous while onEvents returns nothing); what stays queued is what the
      // reader has not taken, and past the limit it is closed.
      this.pump(sub);
      const max = sub.opts.maxQueue ?? this.defaultMaxQueue;
      if (!sub.closed && sub.queue.length > max) {
        this.slowConsumerCloses += 1;
        sub.close('slow-consumer');
      }
    };
    for (const sub of [...(this.subs.get(null) ?? [])]) deliver(sub, rows);
    for (const [org, events] of byOrg) {
      if (org === null) continue;
      for (const sub of [...(this.subs.get(org) ?? [])]) deliver(sub, events);
    }
  }

  /**
   * Hands a subscriber its queue, batch by batch. Synchronous while onEvents returns nothing (an
   * SSE write that the socket took): the common case costs no promise per subscriber and event.
   * When onEvents returns a promise (backpressure), the rest waits for it.
   */
  private pump(sub: Sub): void {
    if (sub.pumping) return;
    // Also set while the synchronous loop runs, so nothing re-enters it out of order.
    sub.pumping = true;
    const maxBatch = sub.opts.maxBatch ?? this.batchSize;
    try {
      while (sub.queue.length > 0 && !sub.closed) {
        const batch = sub.queue.splice(0, maxBatch);
        const pending = sub.opts.onEvents(batch);
        const last = batch[batch.length - 1]!.seq;
        if (pending) {
          pending.then(
            () => {
              sub.pumping = false;
              sub.lastSeq = last;
              this.pump(sub);
            },
            (err: unknown) => {
              sub.pumping = false;
              this.failed(sub, err);
            },
          );
          return;
        }
        sub.lastSeq = last;
      }
      sub.pumping = false;
      if (sub.stopReason !== null && !sub.closed) sub.close(sub.stopReason);
    } catch (err) {
      sub.pumping = false;
      this.failed(sub, err);
    }
  }

  private failed(sub: Sub, err: unknown): void {
    this.options.onError?.(err instanceof Error ? err : new Error(String(err)));
    sub.close('error');
  }
}
