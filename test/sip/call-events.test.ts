/**
 * The call-event writer: batches commit events and call records together, in order; a batch that
 * fails is tried again (and is not lost when the database comes back); one that keeps failing is
 * dropped and counted, and the writer goes on. Both dialects, with a real failure (a trigger that
 * refuses call records while a flag row exists).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'kysely';
import { forEachDialect } from '../db/helpers.js';
import { BatchedWriter } from '../../src/sip/call-events.js';
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

  async function setup(): Promise<{ orgId: number }> {
    const db = ctx.handle.db;
    const now = Date.now();
    const org = await db
      .insertInto('organizations')
      .values({ domain: `w${now}.example`, name: 'W', number_plan: '[]', created_at: now, updated_at: now })
      .returning('id')
      .executeTakeFirstOrThrow();
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

  test('a failed batch is tried again; one that keeps failing is dropped, counted, and the writer goes on', async () => {
    const db = ctx.handle.db;
    const { orgId } = await setup();
    const errors: string[] = [];
    let failedOnce!: () => void;
    const firstFailure = new Promise<void>((r) => (failedOnce = r));
    const logger = {
      debug() {},
      warn() {},
      error(_o: object, msg: string) {
        errors.push(msg);
        failedOnce();
      },
    };
    const writer = new BatchedWriter(ctx.handle, logger, 5);
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
    }
  });
});
