/**
 * The call-event writer: batches commit events and call records together, in order; a batch that
 * fails is tried again (and is not lost when the database comes back); one that keeps failing is
 * dropped and counted, and the writer goes on. Both dialects, with a real failure (a trigger that
 * refuses call records while a flag row exists). On SQLite the batches are written by a worker
 * thread on a second connection while the main connection keeps writing; a thread that cannot
 * start leaves the writer writing in this thread.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'kysely';
import { forEachDialect } from '../db/helpers.js';
import { BatchedWriter } from '../../src/sip/call-events.js';
import { onLocalEvents } from '../../src/events/local.js';
import type { SipLogger } from '../../src/sip/transport.js';
import type { NewCallRecord } from '../../src/areas/calls/repository.js';

forEachDialect('call-event writer', (ctx) => {
  const record = (callId: string): NewCallRecord => ({
    organizationId: 1,
    callId,
    branchId: `${callId}.1`,
    direction: 'OUTGOING',
    userId: null,
    localNumber: null,
    remoteNumber: '+4681234',
    deviceType: null,
    startedAt: 1,
    answeredAt: null,
    endedAt: 2,
    terminationReason: 'local_hangup',
  });

  let orgs = 0;
  async function newOrg(): Promise<{ orgId: number }> {
    const now = Date.now();
    const org = await ctx.handle.db
      .insertInto('organizations')
      .values({
        domain: `w${now}-${++orgs}.example`,
        name: 'W',
        number_plan: '[]',
        created_at: now,
        updated_at: now,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    return { orgId: org.id };
  }

  async function setup(): Promise<{ orgId: number }> {
    const db = ctx.handle.db;
    const org = { id: (await newOrg()).orgId };
    await sql`create table write_fails (id integer)`.execute(db);
    if (ctx.dialect === 'sqlite') {
      await sql`create trigger refuse_records before insert on call_records
        when (select count(*) from write_fails) > 0
        begin select raise(abort, 'refused by the test'); end`.execute(db);
    } else {
      await sql`create function refuse_records() returns trigger language plpgsql as $$
        begin if (select count(*) from write_fails) > 0 then raise exception 'refused by the test'; end if;
        return new; end $$`.execute(db);
      await sql`create trigger refuse_records before insert on call_records
        for each row execute function refuse_records()`.execute(db);
    }
    return { orgId: org.id };
  }

  /** A logger that keeps its error messages, and resolves `seen` at the first matching `until`. */
  function errorLog(until: RegExp): { errors: string[]; seen: Promise<void>; logger: SipLogger } {
    const errors: string[] = [];
    let resolve!: () => void;
    const seen = new Promise<void>((r) => (resolve = r));
    const logger = {
      debug() {},
      warn() {},
      error(_o: object, msg: string) {
        errors.push(msg);
        if (until.test(msg)) resolve();
      },
    };
    return { errors, seen, logger };
  }

  test('a failed batch is tried again; one that keeps failing is dropped, counted, and the writer goes on', async () => {
    const db = ctx.handle.db;
    const { orgId } = await setup();
    const { errors, seen: firstFailure, logger } = errorLog(/./);
    const writer = new BatchedWriter(ctx.handle, logger, { delayMs: 5 });
    // The writer's timers do not keep a process alive (a server does): this test does.
    const alive = setInterval(() => undefined, 1000);
    try {
      const count = async (table: 'events' | 'call_records') =>
        Number(
          (
            await db
              .selectFrom(table)
              .select((eb) => eb.fn.countAll<number>().as('n'))
              .where('organization_id', '=', orgId)
              .executeTakeFirstOrThrow()
          ).n,
        );

      // The database refuses, then recovers before the next attempt: nothing is lost.
      await db
        .insertInto('write_fails' as never)
        .values({ id: 1 })
        .execute();
      writer.push({ event: { organizationId: orgId, type: 'call.early', data: { n: 1 } } });
      writer.push({ record: { ...record('c1'), organizationId: orgId } });
      await firstFailure;
      assert.match(errors[0]!, /trying again/);
      assert.equal(await count('events'), 0, 'the failed batch left nothing behind');
      await db.deleteFrom('write_fails' as never).execute();
      await writer.flush();
      assert.equal(await count('events'), 1);
      assert.equal(await count('call_records'), 1);
      assert.equal(writer.failed, 0);

      // It keeps refusing: after every attempt the batch is dropped, and later writes go through.
      await db
        .insertInto('write_fails' as never)
        .values({ id: 1 })
        .execute();
      writer.push({ event: { organizationId: orgId, type: 'call.early', data: { n: 2 } } });
      writer.push({ record: { ...record('c2'), organizationId: orgId } });
      await writer.flush();
      assert.equal(writer.failed, 2);
      assert.ok(errors.some((e) => /dropped/.test(e)));
      await db.deleteFrom('write_fails' as never).execute();
      writer.push({ event: { organizationId: orgId, type: 'call.terminated', data: { n: 3 } } });
      writer.push({ record: { ...record('c3'), organizationId: orgId } });
      await writer.flush();
      assert.equal(await count('events'), 2);
      assert.equal(await count('call_records'), 2);
      const types = await db
        .selectFrom('events')
        .select(['type', 'data'])
        .where('organization_id', '=', orgId)
        .orderBy('seq')
        .execute();
      assert.deepEqual(
        types.map((t) => t.type),
        ['call.early', 'call.terminated'],
      );
    } finally {
      clearInterval(alive);
      await writer.close();
    }
  });

  const quiet = { debug() {}, warn() {}, error() {} };

  // (With deferred transactions on the main connection this test stalls on the write lock and
  // fails by its timeout.)
  test(
    'SQLite: a worker thread writes the batches while transactions on the main connection read, then write',
    { timeout: 60_000 },
    async () => {
      const db = ctx.handle.db;
      const { orgId } = await newOrg();
      const writer = new BatchedWriter(ctx.handle, quiet, { delayMs: 1 });
      assert.equal(writer.mode, ctx.dialect === 'sqlite' ? 'thread' : 'inline');
      const announced: number[] = [];
      const stop = onLocalEvents((seq) => announced.push(seq));
      const alive = setInterval(() => undefined, 1000);
      try {
        const CALLS = 400;
        // The main connection's transactions read and then write while the thread commits batch
        // after batch: a deferred transaction would fail when its snapshot went stale (SQLITE_BUSY);
        // these take the write lock when they begin.
        const mainWrites = (async () => {
          for (let i = 0; i < 60; i++) {
            await db.transaction().execute(async (trx) => {
              await trx.selectFrom('events').select('seq').orderBy('seq', 'desc').limit(1).execute();
              await new Promise((r) => setImmediate(r));
              await trx
                .insertInto('organizations')
                .values({
                  domain: `m${i}-${orgId}.example`,
                  name: 'M',
                  number_plan: '[]',
                  created_at: 1,
                  updated_at: 1,
                })
                .execute();
            });
          }
        })();
        for (let i = 0; i < CALLS; i++) {
          writer.push({ event: { organizationId: orgId, type: 'call.early', data: { n: i } } });
          writer.push({ record: { ...record(`t${i}`), organizationId: orgId } });
          if (i % 20 === 0) await new Promise((r) => setImmediate(r));
        }
        await mainWrites;
        await writer.flush();
        assert.equal(writer.failed, 0);
        const rows = await db
          .selectFrom('events')
          .select(['seq', 'data'])
          .where('organization_id', '=', orgId)
          .orderBy('seq')
          .execute();
        assert.deepEqual(
          rows.map((r) => (typeof r.data === 'string' ? (JSON.parse(r.data) as { n: number }) : r.data).n),
          Array.from({ length: CALLS }, (_, i) => i),
          'every event, in the order pushed',
        );
        const records = await db
          .selectFrom('call_records')
          .select((eb) => eb.fn.countAll<number>().as('n'))
          .where('organization_id', '=', orgId)
          .executeTakeFirstOrThrow();
        assert.equal(Number(records.n), CALLS);
        const created = await db
          .selectFrom('organizations')
          .select((eb) => eb.fn.countAll<number>().as('n'))
          .where('domain', 'like', `m%-${orgId}.example`)
          .executeTakeFirstOrThrow();
        assert.equal(Number(created.n), 60, 'every main-connection transaction committed');
        await new Promise((r) => setImmediate(r));
        assert.equal(
          Math.max(...announced),
          rows.at(-1)!.seq,
          'the last seq written is announced to the hub',
        );
      } finally {
        stop();
        clearInterval(alive);
        await writer.close();
      }
    },
  );

  /**
   * The writer thread's death with a batch in flight: an event and a record are pushed, the
   * thread dies, one more event is pushed while it is gone. The organization's event types in
   * order and its number of call records, once flushed.
   */
  async function acrossDeath(
    writer: BatchedWriter,
    orgId: number,
    death: Promise<void>,
  ): Promise<{ types: string[]; records: number }> {
    const db = ctx.handle.db;
    const alive = setInterval(() => undefined, 1000);
    try {
      writer.push({ event: { organizationId: orgId, type: 'call.early', data: { n: 1 } } });
      writer.push({ record: { ...record(`d${orgId}`), organizationId: orgId } });
      await death;
      writer.push({ event: { organizationId: orgId, type: 'call.terminated', data: { n: 2 } } });
      await writer.flush();
      assert.equal(writer.mode, 'inline');
      assert.equal(writer.failed, 0);
      const types = await db
        .selectFrom('events')
        .select('type')
        .where('organization_id', '=', orgId)
        .orderBy('seq')
        .execute();
      const records = await db
        .selectFrom('call_records')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('organization_id', '=', orgId)
        .executeTakeFirstOrThrow();
      return { types: types.map((r) => r.type), records: Number(records.n) };
    } finally {
      clearInterval(alive);
      await writer.close();
    }
  }

  test('a writer thread that dies after its commit, before its answer: the batch is not written twice', async (t) => {
    if (ctx.dialect !== 'sqlite') return t.skip('SQLite only (the writer thread)');
    const { orgId } = await newOrg();
    const { errors, seen: death, logger } = errorLog(/thread stopped/);
    const writer = new BatchedWriter(ctx.handle, logger, { delayMs: 1, threadExitsAfterCommit: true });
    assert.equal(writer.mode, 'thread');
    assert.deepEqual(await acrossDeath(writer, orgId, death), {
      types: ['call.early', 'call.terminated'],
      records: 1,
    });
    assert.ok(
      errors.some((e) => /not writing it again/.test(e)),
      errors.join('\n'),
    );
  });

  test('ready(): waits until the writer thread has loaded and opened its connection; without a thread it does not wait', async () => {
    const writer = new BatchedWriter(ctx.handle, quiet);
    try {
      assert.equal(writer.threadReady, false);
      const started = performance.now();
      await writer.ready(60_000);
      assert.ok(performance.now() - started < 50_000, 'ready() ran into its timeout');
      assert.equal(writer.threadReady, ctx.dialect === 'sqlite');
      // A thread that cannot start: ready() does not wait for it.
      const broken = new BatchedWriter({ ...ctx.handle, sqliteFile: '/dev/null/cannot.db' }, quiet);
      await broken.ready(60_000);
      assert.equal(broken.threadReady, false);
      assert.equal(broken.mode, 'inline');
      await broken.close();
    } finally {
      await writer.close();
    }
  });

  test('a writer thread that cannot start leaves the writer writing in this thread, nothing lost', async (t) => {
    if (ctx.dialect !== 'sqlite') return t.skip('SQLite only (the writer thread)');
    const { orgId } = await newOrg();
    const { errors, seen: death, logger } = errorLog(/thread stopped/);
    // A file the thread cannot open (its parent is not a directory).
    const writer = new BatchedWriter({ ...ctx.handle, sqliteFile: '/dev/null/cannot.db' }, logger, {
      delayMs: 1,
    });
    assert.deepEqual(await acrossDeath(writer, orgId, death), {
      types: ['call.early', 'call.terminated'],
      records: 1,
    });
    assert.ok(errors.some((e) => /writing in the SIP thread/.test(e)));
  });
});
