/**
 * The call-event writer's thread (see BatchedWriter in call-events.ts): its own connection to the
 * SQLite file, one batch per message, each answered with the last seq written or the error. Each
 * batch leaves its mark in the same transaction (see THREAD_MARK in call-events.ts).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { createDatabase } from '../db/database.js';
import { writeCallBatch, type WorkerBatch, type WorkerReply } from './call-events.js';

const { file, exitAfterCommit } = workerData as { file: string; exitAfterCommit: boolean };
const port = parentPort;
if (!port) throw new Error('call-writer-worker runs as a worker thread');
const handle = await createDatabase(`sqlite:${file}`);
port.postMessage({ ready: true } satisfies WorkerReply);

// Batches come one at a time (the writer waits for each answer), so they are written in order.
port.on('message', (batch: WorkerBatch) => {
  writeCallBatch(handle.db, batch.events, batch.records, batch.mark).then(
    (lastSeq) => {
      // Tests: a crash between the commit and the answer.
      if (exitAfterCommit) process.exit(1);
      port.postMessage({ id: batch.id, lastSeq } satisfies WorkerReply);
    },
    (err: unknown) =>
      port.postMessage({
        id: batch.id,
        error: err instanceof Error ? err.message : String(err),
      } satisfies WorkerReply),
  );
});
