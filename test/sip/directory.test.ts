/**
 * The SIP directory (devices, users, number owners in memory): cached lookups, emptied by the
 * events that change them and only by those, never storing a value read across a change; and over
 * real SIP, a password rotated a moment ago works at once (the failing digest is checked against
 * the database) while the old one is refused, and the server's own follower of the log empties
 * the directory.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { forEachDialect } from '../db/helpers.js';
import { testConfig } from '../helpers/app.js';
import { addSoftphone, seedOrg, type SeededOrg } from '../helpers/fixtures.js';
import { SipDirectory, changesDirectory } from '../../src/sip/directory.js';
import { Router } from '../../src/sip/routing.js';
import { createUser } from '../../src/areas/users/service.js';
import { rotateSipPassword } from '../../src/areas/devices/service.js';
import { telephony, type Telephony } from './peers.js';
import { contact, register, ua, type Ua } from './node-ua.js';
import { until } from '../events/helpers.js';

test('which events change the directory', () => {
  for (const type of ['user.created', 'user.deleted', 'device.password_rotated', 'number.assigned']) {
    assert.equal(changesDirectory(type), true, type);
  }
  for (const type of ['acd.agent.added', 'organization.updated', 'device.deleted']) {
    assert.equal(changesDirectory(type), true, type);
  }
  for (const type of ['call.early', 'call.terminated', 'device.registered', 'device.unregistered']) {
    assert.equal(changesDirectory(type), false, type);
  }
  assert.equal(changesDirectory('ticket.created'), false);
});

forEachDialect('SIP directory', (ctx) => {
  let o: SeededOrg;
  let username: string;
  before(async () => {
    o = await seedOrg(ctx.handle, testConfig(), [{ userId: 'alice' }]);
    const { sip } = await addSoftphone(ctx.handle, o, 'alice');
    username = sip!.username;
  });

  test('lookups are cached until an event that changes them', async () => {
    const dir = new SipDirectory(ctx.handle);
    const first = await dir.device(o.org.id, username);
    assert.equal(first?.device.userId, o.users.alice!.id);
    assert.deepEqual(await dir.device(o.org.id, username), first);
    assert.equal(dir.stats.misses, 1);
    assert.equal(dir.stats.hits, 1);

    dir.onEvents([{ type: 'call.confirmed' }, { type: 'device.registered' }]);
    await dir.device(o.org.id, username);
    assert.equal(dir.stats.hits, 2, 'call and registration events leave the cache alone');

    dir.onEvents([{ type: 'call.early' }, { type: 'device.password_rotated' }]);
    assert.equal(dir.size, 0);
    await dir.device(o.org.id, username);
    assert.equal(dir.stats.misses, 2);
  });

  test('a lookup under way when the directory is emptied is not stored', async () => {
    const dir = new SipDirectory(ctx.handle);
    const reading = dir.user(o.org.id, 'userId', 'alice');
    dir.invalidate();
    assert.equal((await reading)?.userId, 'alice');
    assert.equal(dir.size, 0, 'what was read may predate the change');
    await dir.user(o.org.id, 'userId', 'alice');
    assert.equal(dir.size, 1);
  });

  test('a dialled string that matched nothing in memory is looked up again before not-found', async () => {
    const dir = new SipDirectory(ctx.handle);
    const router = new Router(ctx.handle, () => undefined, dir);
    assert.deepEqual(await router.resolve(o.org, 'zoe'), { kind: 'not-found' });
    // Created without the directory hearing of it (its event has not reached it yet).
    await createUser(ctx.handle, 'test', o.domain, { userId: 'zoe', firstName: 'Zoe', lastName: 'Z' });
    const found = await router.resolve(o.org, 'zoe');
    assert.equal(found.kind, 'user');
  });
});

describe('SIP directory over real SIP', () => {
  let t: Telephony;
  let deaf: Telephony;
  let client: Ua;
  let deafClient: Ua;
  before(async () => {
    t = await telephony(['alice']);
    // A server whose directory hears no event at all: only the database re-check can help it.
    deaf = await telephony(['alice'], { changes: () => () => undefined });
    client = await ua(() => t.server.port);
    deafClient = await ua(() => deaf.server.port);
  });
  after(async () => {
    await client.close();
    await deafClient.close();
    await t.close();
    await deaf.close();
  });

  test('a rotated password works at once and the old one is refused, even before the event arrives', async () => {
    const alice = deaf.accounts.alice!;
    const ok = await register(deafClient, alice, [contact(deafClient, 'a1', 120)]);
    assert.equal(ok.res.status, 200);
    assert.ok(deaf.server.stats.directory.size > 0, 'the device is in the directory');
    const { sip } = await rotateSipPassword(
      deaf.tdb.handle,
      'test',
      deaf.seeded.org,
      deaf.seeded.users.alice!,
      alice.deviceId,
    );
    const fresh = await register(deafClient, alice, [contact(deafClient, 'a1', 120)], {
      password: sip.password,
    });
    assert.equal(fresh.res.status, 200, 'the new password works at once');
    const old = await register(deafClient, alice, [contact(deafClient, 'a1', 120)]);
    assert.equal(old.res.status, 403, 'the old password is refused');
    assert.equal(deaf.server.stats.directory.invalidations, 0);
  });

  test('the server follows the log: a change empties its directory', async () => {
    const alice = t.accounts.alice!;
    assert.equal((await register(client, alice, [contact(client, 'a1', 120)])).res.status, 200);
    const before = t.server.stats.directory;
    assert.ok(before.size > 0);
    await rotateSipPassword(t.tdb.handle, 'test', t.seeded.org, t.seeded.users.alice!, alice.deviceId);
    const emptied = until(
      () => t.server.stats.directory.invalidations > before.invalidations,
      'the directory to hear of the rotation',
    );
    const timer = setInterval(emptied.check, 5);
    try {
      await emptied.done;
    } finally {
      clearInterval(timer);
    }
    assert.equal(t.server.stats.directory.size, 0);
  });
});
