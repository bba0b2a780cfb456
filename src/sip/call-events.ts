/**
 * Writes call events and call records in batches: one transaction per batch keeps the database
 * (SQLite is synchronous) from stalling SIP at high call rates. Order is preserved; {@link flush}
 * waits until everything queued is committed.
 */
import type { Kysely } from 'kysely';
import type { DatabaseHandle } from '../db/database.js';
import type { DB } from '../db/schema.js';
import type { SipLogger } from './transport.js';

export type WriteJob = (trx: Kysely<DB>) => Promise<unknown>;

export class BatchedWriter {
  private readonly queue: WriteJob[] = [];
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(
    private readonly database: DatabaseHandle,
    private readonly logger: SipLogger,
    private readonly delayMs = 10,
    private readonly maxBatch = 500,
  ) {}

  push(job: WriteJob): void {
    this.queue.push(job);
    this.schedule();
  }

  private schedule(): void {
    if (this.timer || this.running || this.queue.length === 0) return;
    this.timer = setTimeout(() => this.run(), this.delayMs);
    this.timer.unref();
  }

  private run(): void {
    this.timer = undefined;
    if (this.running || this.queue.length === 0) return;
    const jobs = this.queue.splice(0, this.maxBatch);
    this.running = this.database.db
      .transaction()
      .execute(async (trx) => {
        for (const job of jobs) await job(trx);
      })
      .catch((err: unknown) =>
        this.logger.error({ err, jobs: jobs.length }, 'SIP: writing call events failed'),
      )
      .finally(() => {
        this.running = undefined;
        this.schedule();
      });
  }

  /** Resolves once every job queued so far is written (or failed and logged). */
  async flush(): Promise<void> {
    for (let i = 0; i < 10_000; i++) {
      if (this.timer) {
        clearTimeout(this.timer);
        this.run();
      }
      if (this.running) await this.running;
      else if (this.queue.length > 0) this.run();
      else return;
    }
  }
}
