/**
 * Writes the call model's events and call records in batches: one transaction per batch, and
 * multi-row statements in it, keep the database (SQLite is synchronous) from stalling SIP at high
 * call rates. Order is preserved (events get their seq in the order they were pushed); a batch's
 * call records and events commit together. {@link flush} waits until everything queued is
 * committed.
 *
 * Call events carry no audit row: the audit log records changes made through the API, the CLI
 * and the web interface; what calls did is in the event log and the call records.
 */
import type { DatabaseHandle } from '../db/database.js';
import { CallRepository, type NewCallRecord } from '../areas/calls/repository.js';
import { EventRepository, type NewEvent } from '../events/repository.js';
import { announceEvents } from '../events/local.js';
import type { SipLogger } from './transport.js';

/** 6 columns an event: well under SQLite's and PostgreSQL's bound-parameter limits. */
const EVENTS_PER_STATEMENT = 1000;

export type CallWrite = { event: NewEvent } | { record: NewCallRecord };

/** A failed batch is tried this many times in all (with a growing pause) before it is dropped. */
const ATTEMPTS = 4;

export class BatchedWriter {
  private queue: CallWrite[] = [];
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  /** Failed attempts of the batch at the head of the queue. */
  private failures = 0;
  /** Writes dropped: their batch failed every attempt, or the queue was full (logged; metrics). */
  failed = 0;

  constructor(
    private readonly database: DatabaseHandle,
    private readonly logger: SipLogger,
    private readonly delayMs = 10,
    private readonly maxBatch = 2000,
    /** Writes waiting at most (the database is down or too slow): beyond, the oldest go. */
    private readonly maxQueue = 200_000,
  ) {}

  push(write: CallWrite): void {
    if (this.queue.length >= this.maxQueue) {
      // The oldest after the batch being written, if one is.
      const dropped = this.queue.splice(this.running ? this.maxBatch : 0, this.maxBatch).length;
      this.failed += dropped;
      this.logger.error(
        { dropped, waiting: this.queue.length },
        'SIP: the database is not keeping up: the oldest call events and records were dropped',
      );
    }
    this.queue.push(write);
    this.schedule();
  }

  /** Writes waiting for their batch. */
  get pending(): number {
    return this.queue.length;
  }

  private schedule(): void {
    if (this.timer || this.running || this.queue.length === 0) return;
    // After a failure, wait longer before trying the same batch again.
    this.timer = setTimeout(() => this.run(), this.delayMs * (1 + 20 * this.failures));
    this.timer.unref();
  }

  private run(): void {
    this.timer = undefined;
    if (this.running || this.queue.length === 0) return;
    // The batch stays at the head of the queue until it is written (or given up on).
    const batch = this.queue.slice(0, this.maxBatch);
    const events: NewEvent[] = [];
    const records: NewCallRecord[] = [];
    for (const w of batch) {
      if ('event' in w) events.push(w.event);
      else records.push(w.record);
    }
    this.running = this.database.db
      .transaction()
      .execute(async (trx) => {
        const repo = new EventRepository(trx);
        let lastSeq = 0;
        for (let i = 0; i < events.length; i += EVENTS_PER_STATEMENT) {
          lastSeq = Math.max(lastSeq, await repo.appendBatch(events.slice(i, i + EVENTS_PER_STATEMENT)));
        }
        if (records.length > 0) await new CallRepository(trx).insertRecords(records);
        return lastSeq;
      })
      .then(
        (lastSeq) => {
          this.dequeue(batch);
          this.failures = 0;
          if (lastSeq > 0) announceEvents(lastSeq);
        },
        (err: unknown) => {
          this.failures += 1;
          const givenUp = this.failures >= ATTEMPTS;
          this.logger.error(
            { err, events: events.length, records: records.length, attempt: this.failures },
            givenUp
              ? 'SIP: writing call events and records failed; this batch is dropped'
              : 'SIP: writing call events and records failed; trying again',
          );
          if (givenUp) {
            this.dequeue(batch);
            this.failed += batch.length;
            this.failures = 0;
          }
        },
      )
      .finally(() => {
        this.running = undefined;
        this.schedule();
      });
  }

  /** Takes the batch just written (or given up on) off the head of the queue. */
  private dequeue(batch: CallWrite[]): void {
    this.queue.splice(0, batch.length);
  }

  /** Resolves once every write queued so far is committed (or failed and logged). */
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
