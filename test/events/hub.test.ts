import assert from 'node:assert/strict';
import { test } from 'node:test';
import { recordChange } from '../../src/db/changes.js';
import { EventGapError, EventHub, type CloseReason } from '../../src/events/hub.js';
import { InProcessNotifier } from '../../src/events/notifier.js';
import { EventRepository, type StoredEvent } from '../../src/events/repository.js';
import { EventRetention } from '../../src/events/retention.js';
import { forEachDialect } from '../db/helpers.js';
import { appendEvents, newOrg, until } from './helpers.js';

forEachDialect('event hub', (t) => {
  test('10,000 events in order, none lost or repeated across forced slow-consumer closes', async () => {
    const { db } = t.handle;
    const org = await newOrg(db);
    const other = await newOrg(db);
    const notifier = new InProcessNotifier();
    const hub = new EventHub({ db, notifier, pollIntervalMs: 50, batchSize: 300 });
    await hub.start();
    const start = hub.cursor;
    const received: number[] = [];
    const closes: CloseReason[] = [];
    const total = 10_000;
    const expected: number[] = [];
    let closedOnce: (() => void) | null = null;

    const waitDone = until(() => received.length >= total && received.length, '10,000 events', 60_000);
    // A consumer that is slow at first (its onEvents waits), so its queue overflows and the hub
    // closes it; it then resumes from lastSeq with a fresh subscription.
    let slow = true;
    const open = async (since: number): Promise<void> => {
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      await hub.subscribe({
        organizationId: org.id,
        since,
        maxQueue: 500,
        maxBatch: 200,
        onEvents: async (events) => {
          for (const e of events) received.push(e.seq);
          waitDone.check();
          if (slow) await gate;
        },
        onClose: (reason) => {
          closes.push(reason);
          release();
          if (reason === 'slow-consumer') {
            slow = false;
            closedOnce?.();
            void open(received[received.length - 1] ?? since);
          }
        },
      });
    };
    const closed = new Promise<void>((r) => (closedOnce = r));
    await open(start);
    // Interleave another organization's events: they must not show up.
    const writer = (async () => {
      for (let i = 0; i < total; i += 500) {
        const mine = await appendEvents(db, 500, (j) => ({
          organizationId: org.id,
          type: 'test.tick',
          data: { i: i + j },
        }));
        expected.push(...mine.map((e) => e.seq));
        await appendEvents(db, 7, () => ({ organizationId: other.id, type: 'test.other' }));
        notifier.notify(mine[mine.length - 1]!.seq);
      }
    })();
    await writer;
    await closed;
    await waitDone.done;
    assert.ok(closes.includes('slow-consumer'), `closes: ${closes.join(',')}`);
    assert.equal(received.length, total);
    assert.deepEqual(received, expected);
    assert.equal(new Set(received).size, total);
    await hub.stop();
    assert.equal(hub.subscriberCount, 0);
  });

  test('long-poll answers at once, waits for the first event, and times out empty', async () => {
    const { db } = t.handle;
    const org = await newOrg(db);
    const notifier = new InProcessNotifier();
    const hub = new EventHub({ db, notifier, pollIntervalMs: 0 });
    await hub.start();
    const before = hub.cursor;
    const [e1, e2] = await appendEvents(db, 2, (i) => ({
      organizationId: org.id,
      type: 'test.a',
      data: { i },
    }));
    // Immediate: events after `since` exist.
    const now = await hub.waitForEvents({ organizationId: org.id, since: before, timeoutMs: 5000 });
    assert.deepEqual(
      now.map((e) => e.seq),
      [e1!.seq, e2!.seq],
    );
    const limited = await hub.waitForEvents({
      organizationId: org.id,
      since: before,
      timeoutMs: 5000,
      limit: 1,
    });
    assert.deepEqual(
      limited.map((e) => e.seq),
      [e1!.seq],
    );
    // Waiting: nothing after e2 yet; the first event committed through recordChange answers.
    const waiting = hub.waitForEvents({ organizationId: org.id, since: e2!.seq, timeoutMs: 10_000 });
    for (let i = 0; i < 400 && hub.waiterCount === 0; i += 1) await new Promise((r) => setTimeout(r, 5));
    assert.equal(hub.waiterCount, 1);
    const { event } = await db.transaction().execute((trx) =>
      recordChange(trx, {
        organizationId: org.id,
        actor: 'test',
        action: 'test.changed',
        entity: 'test',
        entityId: 1,
        event: { type: 'test.changed', data: { x: 1 } },
      }),
    );
    hub.publishCommitted(event!.seq);
    const got = await waiting;
    assert.deepEqual(
      got.map((e) => [e.seq, e.type]),
      [[event!.seq, 'test.changed']],
    );
    assert.equal(hub.waiterCount, 0);
    // A rolled-back change publishes nothing.
    await assert.rejects(
      db.transaction().execute(async (trx) => {
        await recordChange(trx, {
          organizationId: org.id,
          actor: 'test',
          action: 'test.changed',
          entity: 'test',
          entityId: 2,
          event: { type: 'test.rolledback' },
        });
        throw new Error('roll back');
      }),
    );
    // Timeout: an empty list; filters apply (another type does not answer).
    await appendEvents(db, 1, () => ({ organizationId: org.id, type: 'test.other' }));
    const empty = await hub.waitForEvents({
      organizationId: org.id,
      since: event!.seq,
      filter: (e) => e.type === 'test.wanted',
      timeoutMs: 150,
    });
    assert.deepEqual(empty, []);
    // Abort answers at once.
    const ac = new AbortController();
    const aborted = hub.waitForEvents({ organizationId: org.id, timeoutMs: 60_000, signal: ac.signal });
    ac.abort();
    assert.deepEqual(await aborted, []);
    assert.equal(hub.waiterCount, 0);
    await hub.stop();
  });

  test('subscriptions close by key and when the hub stops; the poll finds events nobody announced', async () => {
    const { db } = t.handle;
    const org = await newOrg(db);
    const hub = new EventHub({ db, pollIntervalMs: 20 });
    await hub.start();
    const seen: StoredEvent[] = [];
    const reasons: CloseReason[] = [];
    const w = until(() => seen.length === 3, 'polled events');
    await hub.subscribe({
      organizationId: org.id,
      key: 'ticket:1',
      onEvents: (e) => {
        seen.push(...e);
        w.check();
      },
      onClose: (r) => reasons.push(r),
    });
    await hub.subscribe({ organizationId: null, onEvents: () => undefined, onClose: (r) => reasons.push(r) });
    assert.equal(hub.subscriberCount, 2);
    await appendEvents(db, 3, () => ({ organizationId: org.id, type: 'test.x' }));
    await w.done; // no notify: the poll found them
    assert.equal(hub.closeByKey('ticket:1', 'ticket-revoked'), 1);
    assert.equal(hub.subscriberCount, 1);
    await hub.stop();
    assert.deepEqual(reasons, ['ticket-revoked', 'hub-stopped']);
    assert.equal(hub.subscriberCount, 0);
  });
});

forEachDialect('event retention', (t) => {
  test('a since below the retained log is a gap (EventGapError with the oldest seq); retention by count and age', async () => {
    const { db } = t.handle;
    const org = await newOrg(db);
    const hub = new EventHub({ db, pollIntervalMs: 0 });
    await hub.start();
    const old = await appendEvents(db, 50, (i) => ({
      organizationId: org.id,
      type: 'test.old',
      time: 1_000 + i,
    }));
    const fresh = await appendEvents(db, 30, () => ({ organizationId: org.id, type: 'test.new' }));
    const all = [...old, ...fresh];
    const retention = new EventRetention(db, {
      maxAgeMs: 60_000,
      maxCount: null,
      batchSize: 7,
      maxBatchesPerRun: 1000,
    });
    const r1 = await retention.runOnce();
    assert.ok(r1.deleted >= 50);
    assert.equal(r1.prunedThrough, old[old.length - 1]!.seq);
    const repo = new EventRepository(db);
    assert.deepEqual(
      (await repo.readAfter(org.id, 0, 1000)).map((e) => e.seq),
      fresh.map((e) => e.seq),
    );
    // By count: keep the newest 10.
    const r2 = await new EventRetention(db, {
      maxAgeMs: null,
      maxCount: 10,
      batchSize: 997,
      maxBatchesPerRun: 1000,
    }).runOnce();
    assert.equal(r2.prunedThrough, all[all.length - 11]!.seq);
    assert.equal((await repo.readAfterAll(0, 10_000)).length, 10);

    await assert.rejects(
      hub.waitForEvents({ organizationId: org.id, since: old[3]!.seq, timeoutMs: 1000 }),
      (err: unknown) => {
        assert.ok(err instanceof EventGapError);
        assert.equal(err.statusCode, 409);
        assert.equal(err.oldestSeq, all[all.length - 10]!.seq);
        assert.equal(err.prunedThrough, r2.prunedThrough);
        return true;
      },
    );
    await assert.rejects(
      hub.subscribe({ organizationId: org.id, since: 0, onEvents: () => undefined }),
      EventGapError,
    );
    // Resuming exactly at pruned_through is fine.
    const got = await hub.waitForEvents({ organizationId: org.id, since: r2.prunedThrough, timeoutMs: 1000 });
    assert.deepEqual(
      got.map((e) => e.seq),
      all.slice(-10).map((e) => e.seq),
    );
    await hub.stop();
  });
});

forEachDialect('event retention and writers', (t) => {
  test('pruning a large log runs in bounded batches and yields: writers committing meanwhile wait for at most one batch', async () => {
    const { db } = t.handle;
    const org = await newOrg(db, 'prune');
    const BATCH = 100;
    await appendEvents(db, 5000, (i) => ({ organizationId: org.id, type: 'test.old', time: 1_000 + i }));
    const batches: number[] = [];
    const retention = new EventRetention(db, {
      maxAgeMs: 60_000,
      maxCount: null,
      batchSize: BATCH,
      maxBatchesPerRun: 1000,
      onBatch: (b) => batches.push(b.deleted),
    });
    let pruning = true;
    const writes: { startedAt: number; committedAt: number }[] = [];
    const writer = (async () => {
      // A steady writer: one event per turn of the event loop, as requests arrive.
      while (pruning) {
        await new Promise<void>((resolve) => setImmediate(resolve));
        const startedAt = batches.length;
        await db
          .transaction()
          .execute((trx) =>
            new EventRepository(trx).appendMany([{ organizationId: org.id, type: 'test.live' }]),
          );
        writes.push({ startedAt, committedAt: batches.length });
      }
    })();
    const report = await retention.runOnce();
    pruning = false;
    await writer;
    assert.equal(report.deleted, 5000);
    assert.ok(
      batches.every((n) => n <= BATCH),
      'no batch deletes more than the batch size',
    );
    assert.ok(batches.length >= 5000 / BATCH, `${batches.length} batches`);
    const during = writes.filter((w) => w.committedAt < batches.length);
    assert.ok(
      during.length >= 10,
      `writers committed while pruning ran (${during.length} of ${writes.length})`,
    );
    if (t.dialect === 'sqlite') {
      // One connection: a writer queues behind at most the batch in progress.
      const waited = Math.max(...writes.map((w) => w.committedAt - w.startedAt));
      assert.ok(waited <= 1, `a writer waited for ${waited} batches`);
    } else {
      // PostgreSQL: a batch holds nothing a writer needs; one commits while a batch is still open.
      await appendEvents(db, 500, (i) => ({ organizationId: org.id, type: 'test.old', time: 2_000 + i }));
      let releaseBatch!: () => void;
      const held = new Promise<void>((r) => (releaseBatch = r));
      let batchRan!: () => void;
      const ran = new Promise<void>((r) => (batchRan = r));
      const open = db.transaction().execute(async (trx) => {
        const r = await new EventRepository(trx).pruneThrough(Number.MAX_SAFE_INTEGER, BATCH);
        batchRan();
        await held;
        return r;
      });
      await ran;
      const written = await db
        .transaction()
        .execute((trx) =>
          new EventRepository(trx).appendMany([{ organizationId: org.id, type: 'test.live' }]),
        );
      assert.equal(written.length, 1, 'the writer committed while the batch was open');
      releaseBatch();
      assert.equal((await open).deleted, BATCH);
    }
  });
});
