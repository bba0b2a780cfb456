/**
 * Process-wide announcement that events were written: `recordChange` calls `announceEvents`
 * once the statement ran; every event notifier of this process wakes its hub, which re-reads the
 * log from its own last seq. The announcement is deferred to the next turn of the event loop, so
 * the read queues behind the writing transaction (SQLite: one connection, serialized; PostgreSQL:
 * an early read simply finds nothing yet and the commit's NOTIFY wakes it again). A rolled-back
 * change thus wakes readers for nothing, and a committed one is never waited for longer than the
 * poll interval even if this hint were lost.
 */
type Listener = (seq: number) => void;
const listeners = new Set<Listener>();
let pending = 0;
let scheduled = false;

export function announceEvents(seq: number): void {
  pending = Math.max(pending, seq);
  if (scheduled) return;
  scheduled = true;
  setImmediate(() => {
    scheduled = false;
    const seqNow = pending;
    pending = 0;
    for (const l of [...listeners]) {
      try {
        l(seqNow);
      } catch {
        // one listener's failure does not stop the others
      }
    }
  });
}

export function onLocalEvents(listener: Listener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}
