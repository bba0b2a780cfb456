/**
 * Writes the call model's events and call records in batches: one transaction per batch, and
 * multi-row statements in it, keep the database from stalling SIP at high call rates. Order is
 * preserved (events get their seq in the order they were pushed); a batch's call records and
 * events commit together. {@link flush} waits until everything queued is committed.
 *
 * On SQLite (a file) the batches are written by a worker thread on a connection of its own:
 * better-sqlite3 is synchronous, and writing in the SIP thread took about a fifth of that thread
 * at high call rates. The SIP thread only hands the batch over; the hub, woken by the seq the
 * worker returns, reads the events from the main connection as it reads any other. If the
 * worker cannot start or dies, batches are written in this thread again (logged). PostgreSQL
 * writes asynchronously anyway and stays in this thread.
 *
 * Call events carry no audit row: the audit log records changes made through the API, the CLI
 * and the web interface; what calls did is in the event log and the call records.
 */
import { randomInt } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import type { Kysely } from 'kysely';
import type { DatabaseHandle } from '../db/database.js';
import type { DB } from '../db/schema.js';
import { CallRepository, type NewCallRecord } from '../areas/calls/repository.js';
import { EventRepository, type NewEvent } from '../events/repository.js';
import { announceEvents } from '../events/local.js';
import type { SipLogger } from './transport.js';

/** 6 columns an event: well under SQLite's and PostgreSQL's bound-parameter limits. */
const EVENTS_PER_STATEMENT = 1000;

export type CallWrite = { event: NewEvent } | { record: NewCallRecord };

/** A failed batch is tried this many times in all (with a growing pause) before it is dropped. */
const ATTEMPTS = 4;

/**
 * The position (in event_log_state) where the writer thread leaves the mark of the last batch it
 * committed, in the batch's own transaction: if the thread dies before it answers, the mark says
 * whether that batch is in the database (then it is not written again) or not (then it is).
 */
const THREAD_MARK = 'call_writer_thread_batch';

/**
 * Writes one batch in one transaction, with the thread's `mark` if given; the highest seq given
 * to its events (0 without events).
 */
export async function writeCallBatch(
  db: Kysely<DB>,
  events: readonly NewEvent[],
  records: readonly NewCallRecord[],
  mark?: number,
): Promise<number> {
  return db.transaction().execute(async (trx) => {
    const repo = new EventRepository(trx);
    let lastSeq = 0;
    for (let i = 0; i < events.length; i += EVENTS_PER_STATEMENT) {
      lastSeq = Math.max(lastSeq, await repo.appendBatch(events.slice(i, i + EVENTS_PER_STATEMENT)));
    }
    if (records.length > 0) await new CallRepository(trx).insertRecords(records);
    if (mark !== undefined) await repo.setPosition(THREAD_MARK, mark);
    return lastSeq;
  });
}

/** What the worker is sent, and what it answers. */
export interface WorkerBatch {
  id: number;
  events: NewEvent[];
  records: NewCallRecord[];
  /** Left in the database with the batch (see THREAD_MARK). */
  mark: number;
}
export type WorkerReply =
  | { id: number; lastSeq: number }
  | { id: number; error: string }
  /** Sent once, when the thread has its connection (its code is loaded and compiled). */
  | { ready: true };

/**
 * The writer thread: a worker on its own SQLite connection. One batch at a time (the writer waits
 * for each answer before it sends the next).
 */
class WriterThread {
  private readonly worker: Worker;
  private waiting: { id: number; resolve: (seq: number) => void; reject: (e: Error) => void } | undefined;
  private nextId = 1;
  /** Set once the worker is gone (failed to start, crashed, or closed). */
  dead: Error | undefined;
  /** Resolves when the thread is ready to write, or is gone. */
  readonly ready: Promise<void>;
  /** Whether the thread said it is ready. */
  isReady = false;

  constructor(file: string, onDeath: (err: Error) => void, exitAfterCommit: boolean) {
    this.worker = startWorker(file, exitAfterCommit);
    let ready = (): void => {};
    this.ready = new Promise((resolve) => (ready = resolve));
    this.worker.on('message', (reply: WorkerReply) => {
      if ('ready' in reply) {
        this.isReady = true;
        ready();
        return;
      }
      const w = this.waiting;
      if (!w || w.id !== reply.id) return;
      this.waiting = undefined;
      this.worker.unref();
      if ('error' in reply) w.reject(new Error(reply.error));
      else w.resolve(reply.lastSeq);
    });
    const die = (err: Error): void => {
      if (this.dead) return;
      this.dead = err;
      // Whether a batch in flight was committed is unknown here: it fails, and the writer reads
      // its mark before it writes it again (see BatchedWriter.run).
      this.waiting?.reject(err);
      this.waiting = undefined;
      ready();
      onDeath(err);
    };
    this.worker.on('error', die);
    this.worker.on('exit', (code) => die(new Error(`the call-event writer thread exited (code ${code})`)));
    // Idle, the thread is never what keeps the process alive; a batch in flight is (whoever
    // waits for it must see its answer). After the listeners: adding one refs the port again.
    this.worker.unref();
  }

  write(events: NewEvent[], records: NewCallRecord[], mark: number): Promise<number> {
    if (this.dead) return Promise.reject(this.dead);
    return new Promise<number>((resolve, reject) => {
      const id = this.nextId++;
      this.waiting = { id, resolve, reject };
      this.worker.ref();
      const batch: WorkerBatch = { id, events, records, mark };
      this.worker.postMessage(batch);
    });
  }

  async close(): Promise<void> {
    this.dead ??= new Error('closed');
    await this.worker.terminate();
  }
}

/**
 * The worker, from the .ts source (through tsx's loader, registered inside the worker, so it
 * works however the main thread was started) or from compiled .js.
 */
function startWorker(file: string, exitAfterCommit: boolean): Worker {
  const typescript = import.meta.url.endsWith('.ts');
  const entry = new URL(`./call-writer-worker.${typescript ? 'ts' : 'js'}`, import.meta.url);
  const options = { workerData: { file, exitAfterCommit }, execArgv: [] as string[] };
  if (!typescript) return new Worker(entry, options);
  const tsxApi = import.meta.resolve('tsx/esm/api');
  const bootstrap =
    `import(${JSON.stringify(tsxApi)})` +
    `.then((tsx) => { tsx.register(); return import(${JSON.stringify(entry.href)}); })` +
    `.catch((err) => { throw err; });`;
  return new Worker(bootstrap, { ...options, eval: true });
}

export interface BatchedWriterOptions {
  /** How long a write waits for others to join its batch, ms (default 10). */
  delayMs?: number;
  /** Writes in one batch at most (default 2,000). */
  maxBatch?: number;
  /** Writes waiting at most (the database is down or too slow): beyond, the oldest go. */
  maxQueue?: number;
  /** Write in a worker thread when the database is an SQLite file (see above; default true). */
  useThread?: boolean;
  /** Tests: the thread ends itself after its first commit, before it answers (a crash there). */
  threadExitsAfterCommit?: boolean;
}

export class BatchedWriter {
  private queue: CallWrite[] = [];
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  /** Failed attempts of the batch at the head of the queue. */
  private failures = 0;
  /**
   * The batch at the head of the queue was in flight when the thread died: its mark and size
   * (it may be in the database already; see writeUnlessCommitted).
   */
  private uncertain: { mark: number; length: number } | undefined;
  /** Writes dropped: their batch failed every attempt, or the queue was full (logged; metrics). */
  failed = 0;

  private readonly delayMs: number;
  private readonly maxBatch: number;
  private readonly maxQueue: number;

  constructor(
    private readonly database: DatabaseHandle,
    private readonly logger: SipLogger,
    options: BatchedWriterOptions = {},
  ) {
    this.delayMs = options.delayMs ?? 10;
    this.maxBatch = options.maxBatch ?? 2000;
    this.maxQueue = options.maxQueue ?? 200_000;
    if ((options.useThread ?? true) && database.sqliteFile !== undefined) {
      this.thread = new WriterThread(
        database.sqliteFile,
        (err) => {
          if (this.closing) return;
          this.logger.error({ err }, 'SIP: the call-event writer thread stopped; writing in the SIP thread');
        },
        options.threadExitsAfterCommit ?? false,
      );
    }
  }

  private thread: WriterThread | undefined;
  private closing = false;

  /**
   * Resolves when the writer thread (if any) has loaded its code and opened its connection, or is
   * gone, or after `timeoutMs`. Starting it takes about 2 s of CPU under tsx (compiling its modules),
   * which, overlapping the first calls, made a new server shed calls it could take a moment later.
   */
  async ready(timeoutMs: number): Promise<void> {
    if (!this.thread) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.thread.ready,
      // Not unref'd: whoever waits for the thread keeps the process alive (the worker does not).
      new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs))),
    ]);
    clearTimeout(timer);
  }

  /** Whether the writer thread is up and has its connection (false without a thread). */
  get threadReady(): boolean {
    return this.thread !== undefined && !this.thread.dead && this.thread.isReady;
  }

  /** Where batches are written: `thread` (a worker on its own SQLite connection) or `inline`. */
  get mode(): 'thread' | 'inline' {
    return this.thread && !this.thread.dead ? 'thread' : 'inline';
  }

  push(write: CallWrite): void {
    if (this.queue.length >= this.maxQueue) {
      // The oldest after the batch being written, if one is.
      const from = this.running ? this.maxBatch : 0;
      const dropped = this.queue.splice(from, this.maxBatch).length;
      if (from === 0) this.uncertain = undefined;
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
    // The batch stays at the head of the queue until it is written (or given up on). After the
    // thread died with a batch in flight, the next batch is that one, exactly.
    const uncertain = this.uncertain;
    const batch = this.queue.slice(0, uncertain?.length ?? this.maxBatch);
    const events: NewEvent[] = [];
    const records: NewCallRecord[] = [];
    for (const w of batch) {
      if ('event' in w) events.push(w.event);
      else records.push(w.record);
    }
    let written: Promise<number>;
    if (this.thread && this.mode === 'thread') {
      const mark = randomInt(1, 2 ** 47);
      written = this.thread.write(events, records, mark).catch((err: unknown) => {
        if (this.thread?.dead) this.uncertain = { mark, length: batch.length };
        throw err;
      });
    } else if (uncertain) {
      written = this.writeUnlessCommitted(uncertain.mark, events, records);
    } else {
      written = writeCallBatch(this.database.db, events, records);
    }
    this.running = written
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

  /**
   * The batch the thread had in flight when it died may have committed before the answer. Its
   * mark says so: then it counts as written (its seq is not known, so the hub is woken with the
   * log's latest); otherwise it is written here.
   */
  private async writeUnlessCommitted(
    mark: number,
    events: NewEvent[],
    records: NewCallRecord[],
  ): Promise<number> {
    const repo = new EventRepository(this.database.db);
    if ((await repo.getPosition(THREAD_MARK)) !== mark)
      return writeCallBatch(this.database.db, events, records);
    this.logger.error(
      { events: events.length, records: records.length },
      'SIP: the call-event writer thread stopped after committing its last batch; not writing it again',
    );
    return (await repo.latestSeq()) ?? 0;
  }

  /** Takes the batch just written (or given up on) off the head of the queue. */
  private dequeue(batch: CallWrite[]): void {
    this.queue.splice(0, batch.length);
    this.uncertain = undefined;
  }

  /** Writes what is queued, then stops the writer thread (if any). */
  async close(): Promise<void> {
    await this.flush();
    this.closing = true;
    await this.thread?.close();
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
