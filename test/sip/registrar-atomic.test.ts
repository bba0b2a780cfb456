/**
 * A registration change and its event are one database transaction (the project rule): a REGISTER
 * stores its binding together with `device.registered`, and the expiry sweep removes a binding
 * together with `device.unregistered`. When the event cannot be written (a trigger refuses it),
 * the binding change is rolled back too. Real REGISTERs over UDP from a Node UA, on both dialects.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'kysely';
import { DIALECTS, PG_SKIP_MESSAGE, PG_URL } from '../db/helpers.js';
import type { DialectName } from '../../src/db/dialects/index.js';
import type { DatabaseHandle } from '../../src/db/database.js';
import { telephony, type Telephony } from './peers.js';
import { contact, register, ua, type Ua } from './node-ua.js';

/** Makes inserting an event of `type` fail, until the returned function is called. */
async function refuseEvents(
  db: DatabaseHandle['db'],
  dialect: DialectName,
  type: string,
): Promise<() => Promise<void>> {
  if (dialect === 'sqlite') {
    await sql
      .raw(
        `CREATE TRIGGER refuse_event BEFORE INSERT ON events WHEN NEW.type = '${type}' BEGIN SELECT RAISE(ABORT, 'event refused'); END`,
      )
      .execute(db);
    return async () => {
      await sql.raw('DROP TRIGGER refuse_event').execute(db);
    };
  }
  await sql
    .raw(
      `CREATE FUNCTION refuse_event() RETURNS trigger AS $$ BEGIN IF NEW.type = '${type}' THEN RAISE EXCEPTION 'event refused'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql`,
    )
    .execute(db);
  await sql
    .raw('CREATE TRIGGER refuse_event BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION refuse_event()')
    .execute(db);
  return async () => {
    await sql.raw('DROP TRIGGER refuse_event ON events').execute(db);
    await sql.raw('DROP FUNCTION refuse_event()').execute(db);
  };
}

for (const dialect of DIALECTS) {
  const skip = dialect === 'postgres' && !PG_URL ? PG_SKIP_MESSAGE : false;
  describe(`registration changes and their events in one transaction [${dialect}]`, { skip }, () => {
    let t: Telephony;
    let client: Ua;
    before(async () => {
      t = await telephony(['alice'], {}, dialect);
      client = await ua(() => t.server.port);
    });
    after(async () => {
      await client.close();
      await t.close();
    });

    const bindings = async (): Promise<number> =>
      (await t.tdb.handle.db.selectFrom('sip_registrations').select('id').execute()).length;
    const events = async (type: string): Promise<number> =>
      (await t.tdb.handle.db.selectFrom('events').select('seq').where('type', '=', type).execute()).length;

    test('REGISTER: the event cannot be written → 500 and no binding; then binding and event both', async () => {
      const restore = await refuseEvents(t.tdb.handle.db, dialect, 'device.registered');
      const refused = await register(client, t.accounts.alice!, [contact(client, 'a1', 120)]);
      await restore();
      assert.equal(refused.res.status, 500);
      assert.equal(await bindings(), 0);
      assert.equal(await events('device.registered'), 0);
      assert.equal(t.server.stats.bindings, 0);

      const { res } = await register(client, t.accounts.alice!, [contact(client, 'a1', 120)]);
      assert.equal(res.status, 200);
      assert.equal(await bindings(), 1);
      assert.equal(await events('device.registered'), 1);
    });

    test('sweep: the event cannot be written → the expired binding stays; then both go together', async () => {
      const restore = await refuseEvents(t.tdb.handle.db, dialect, 'device.unregistered');
      await assert.rejects(t.server.sweepRegistrations(Date.now() + 600_000), /event refused/);
      await restore();
      assert.equal(await bindings(), 1);
      assert.equal(await events('device.unregistered'), 0);

      assert.equal(await t.server.sweepRegistrations(Date.now() + 600_000), 1);
      assert.equal(await bindings(), 0);
      assert.equal(await events('device.unregistered'), 1);
      assert.equal(t.server.stats.bindings, 0);
    });
  });
}
