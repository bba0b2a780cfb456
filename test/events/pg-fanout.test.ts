import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createDatabase } from '../../src/db/database.js';
import { EventHub } from '../../src/events/hub.js';
import { PgNotifier } from '../../src/events/notifier.js';
import { EventRepository, type StoredEvent } from '../../src/events/repository.js';
import { forEachDialect } from '../db/helpers.js';
import { newOrg, until } from './helpers.js';

forEachDialect('PostgreSQL fan-out', (t) => {
  const skip = t.dialect !== 'postgres' ? 'PostgreSQL only (LISTEN/NOTIFY)' : false;

  test(
    'two processes: an event committed through one reaches the other by NOTIFY; reconnect re-reads',
    { skip },
    async () => {
      const one = t.handle;
      const two = await createDatabase(t.url); // a second pool: the other "process"
      const n1 = new PgNotifier({ url: t.url });
      const n2 = new PgNotifier({ url: t.url, reconnectMs: 20 });
      await n1.start();
      await n2.start();
      // Polling off: only NOTIFY (and the reconnect re-read) can wake the hubs.
      const hub1 = new EventHub({ db: one.db, notifier: n1, pollIntervalMs: 0 });
      const hub2 = new EventHub({ db: two.db, notifier: n2, pollIntervalMs: 0 });
      try {
        await hub1.start();
        await hub2.start();
        const org = await newOrg(one.db);
        const seen1: StoredEvent[] = [];
        const seen2: StoredEvent[] = [];
        const w1 = until(() => seen1.length >= 1, 'hub 1');
        const w2 = until(() => seen2.length >= 1, 'hub 2');
        await hub1.subscribe({ organizationId: org.id, onEvents: (e) => (seen1.push(...e), w1.check()) });
        await hub2.subscribe({ organizationId: org.id, onEvents: (e) => (seen2.push(...e), w2.check()) });
        const e1 = await one.db
          .transaction()
          .execute((trx) => new EventRepository(trx).append({ organizationId: org.id, type: 'test.fanout' }));
        await Promise.all([w1.done, w2.done]);
        assert.deepEqual(
          seen2.map((e) => e.seq),
          [e1.seq],
        );
        assert.deepEqual(
          seen1.map((e) => e.seq),
          [e1.seq],
        );

        // Process 2 loses its listening connection; an event committed meanwhile is read on reconnect.
        const connects = n2.connects;
        await n2.dropConnection();
        const e2 = await one.db
          .transaction()
          .execute((trx) =>
            new EventRepository(trx).append({ organizationId: org.id, type: 'test.while-deaf' }),
          );
        const w3 = until(() => seen2.length >= 2, 'hub 2 after reconnect');
        const unsub = hub2.onAnyEvent(() => setImmediate(w3.check));
        await w3.done;
        unsub();
        assert.ok(n2.connects > connects);
        assert.deepEqual(
          seen2.map((e) => e.seq),
          [e1.seq, e2.seq],
        );
      } finally {
        await hub1.stop();
        await hub2.stop();
        await n1.stop();
        await n2.stop();
        await two.close();
      }
    },
  );

  test('seq order is commit order: a later writer waits for an open one', { skip }, async () => {
    const { db } = t.handle;
    const org = await newOrg(db);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let firstInserted!: () => void;
    const inserted = new Promise<void>((r) => (firstInserted = r));
    const first = db.transaction().execute(async (trx) => {
      const e = await new EventRepository(trx).append({ organizationId: org.id, type: 'test.first' });
      firstInserted();
      await gate;
      return e;
    });
    await inserted;
    let secondDone = false;
    const second = db
      .transaction()
      .execute((trx) => new EventRepository(trx).append({ organizationId: org.id, type: 'test.second' }))
      .then((e) => {
        secondDone = true;
        return e;
      });
    // The second writer is blocked behind the first one's lock (bounded check, no event to await).
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(secondDone, false);
    release();
    const [a, b] = await Promise.all([first, second]);
    assert.ok(a.seq < b.seq);
  });
});
