import type { Kysely } from 'kysely';
import type { DB } from '../db/schema.js';
import { EventRepository } from './repository.js';

export interface RetentionOptions {
  /** Keep events younger than this (ms). Default 7 days; null: no age limit. */
  maxAgeMs?: number | null;
  /** Keep at most this many events. Default 1,000,000; null: no count limit. */
  maxCount?: number | null;
  /** Rows deleted per statement (short transactions: writers are never held up long). Default 1000. */
  batchSize?: number;
  /** Batches per run, so one run stays bounded (the next run continues). Default 100. */
  maxBatchesPerRun?: number;
  /** Run interval (default 60 s). */
  intervalMs?: number;
  now?: () => number;
  onError?: (err: Error) => void;
  /** Called after each batch's transaction commits (observability, tests). */
  onBatch?: (batch: { deleted: number; through: number | null }) => void;
}

export const DEFAULT_RETENTION = {
  maxAgeMs: 7 * 86_400_000,
  maxCount: 1_000_000,
  batchSize: 1000,
  maxBatchesPerRun: 100,
  intervalMs: 60_000,
} as const;

export interface PruneReport {
  deleted: number;
  /** Every event with seq <= prunedThrough may be gone (a `since` below it is a gap). */
  prunedThrough: number;
}

/**
 * Prunes the event log by age and by count, oldest first, in small batches: each batch is one
 * short transaction (delete up to `batchSize` rows, move `pruned_through`), and the run yields to
 * the event loop between batches, so writers and readers never wait behind more than one batch. A reader whose `since` falls below `pruned_through` gets an
 * explicit gap (EventGapError), never a silent jump.
 */
export class EventRetention {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<PruneReport> | null = null;

  constructor(
    private readonly db: Kysely<DB>,
    private readonly options: RetentionOptions = {},
  ) {}

  /** One bounded pruning run. */
  async runOnce(): Promise<PruneReport> {
    if (this.running) return this.running;
    const p = this.prune().finally(() => {
      this.running = null;
    });
    this.running = p;
    return p;
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      this.runOnce().catch((err: unknown) =>
        this.options.onError?.(err instanceof Error ? err : new Error(String(err))),
      );
    }, this.options.intervalMs ?? DEFAULT_RETENTION.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running?.catch(() => undefined);
  }

  private async prune(): Promise<PruneReport> {
    const repo = new EventRepository(this.db);
    const now = (this.options.now ?? Date.now)();
    const maxAge = this.options.maxAgeMs === undefined ? DEFAULT_RETENTION.maxAgeMs : this.options.maxAgeMs;
    const maxCount = this.options.maxCount === undefined ? DEFAULT_RETENTION.maxCount : this.options.maxCount;
    const batch = Math.max(1, this.options.batchSize ?? DEFAULT_RETENTION.batchSize);
    const maxBatches = Math.max(1, this.options.maxBatchesPerRun ?? DEFAULT_RETENTION.maxBatchesPerRun);

    let through = -1;
    if (maxAge !== null) through = Math.max(through, (await repo.lastSeqBefore(now - maxAge)) ?? -1);
    if (maxCount !== null) through = Math.max(through, (await repo.seqKeepingNewest(maxCount)) ?? -1);
    let deleted = 0;
    if (through >= 0) {
      for (let i = 0; i < maxBatches; i += 1) {
        if (i > 0) {
          // Yield between batches: writers queued behind this one (SQLite has one connection)
          // commit before the next batch, so none waits longer than one small batch.
          await new Promise<void>((resolve) => setImmediate(resolve));
        }
        const r = await this.db
          .transaction()
          .execute((trx) => new EventRepository(trx).pruneThrough(through, batch));
        deleted += r.deleted;
        this.options.onBatch?.(r);
        if (r.deleted < batch) break;
      }
    }
    return { deleted, prunedThrough: (await repo.getPosition('pruned_through')) ?? 0 };
  }
}
