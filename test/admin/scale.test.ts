import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { forEachDialect, uniqueDomain } from '../db/helpers.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { systemTicket } from '../helpers/fixtures.js';
import { admin, walk, type ErrorAnswer, type Ticket } from './helpers.js';

const count = async (t: TestApp, table: 'users' | 'audit_log' | 'events') =>
  Number(
    (
      await t.database.db
        .selectFrom(table)
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .executeTakeFirstOrThrow()
    ).n,
  );

forEachDialect('admin API at scale', (ctx) => {
  let t: TestApp;
  let sys: Ticket;
  let domain: string;

  before(async () => {
    t = await startTestApp({ database: ctx.handle });
    sys = await systemTicket(ctx.handle, t.config, ['ADMIN']);
    domain = uniqueDomain('scale');
    await admin(t, sys, 'POST', '/api/admin/organizations', { domain, name: 'Scale' });
  });
  after(async () => t.close());

  test('bulk with one invalid row changes nothing and reports that row', async () => {
    const users = Array.from({ length: 50 }, (_, i) => ({ userId: `row${i}`, extension: String(3000 + i) }));
    users[37] = { userId: 'row37', extension: 'x1' };
    const before = [await count(t, 'users'), await count(t, 'audit_log'), await count(t, 'events')];
    const res = await admin<ErrorAnswer>(t, sys, 'POST', `/api/admin/users/${domain}/bulk`, { users });
    assert.equal(res.status, 400, res.body);
    assert.deepEqual(
      res.json.errors!.map((e) => e.field),
      ['body.users.37.extension'],
    );
    assert.match(res.json.errors![0]!.message, /2 to 8 digits/);
    assert.deepEqual(
      [await count(t, 'users'), await count(t, 'audit_log'), await count(t, 'events')],
      before,
    );

    // Conflicts are found before writing too: a duplicate inside the request and an existing user.
    await admin(t, sys, 'POST', `/api/admin/users/${domain}`, { userId: 'exists' });
    const conflict = await admin<ErrorAnswer>(t, sys, 'POST', `/api/admin/users/${domain}/bulk`, {
      users: [{ userId: 'fresh1' }, { userId: 'exists' }, { userId: 'fresh2' }, { userId: 'fresh1' }],
    });
    assert.equal(conflict.status, 409, conflict.body);
    assert.deepEqual(
      conflict.json.errors!.map((e) => e.field),
      ['body.users.1.userId', 'body.users.3.userId'],
    );
    assert.match(conflict.json.errors![0]!.message, /"exists" already exists/);
    assert.match(conflict.json.validationResult, /nothing was created/);
    assert.equal((await admin(t, sys, 'GET', `/api/admin/users/${domain}/fresh1`)).status, 404);

    const tooMany = await admin(t, sys, 'POST', `/api/admin/users/${domain}/bulk`, {
      users: Array.from({ length: 1001 }, (_, i) => ({ userId: `u${i}` })),
    });
    assert.equal(tooMany.status, 400);
    assert.match(tooMany.body, /body\.users/);
  });

  test('bulk creates with a per-item answer; pagination walks 1,200 users without duplicates or gaps', async () => {
    const expected: string[] = ['exists'];
    for (let batch = 0; batch < 2; batch++) {
      const users = Array.from({ length: 600 }, (_, i) => {
        const n = batch * 600 + i;
        return { userId: `p${String(n).padStart(4, '0')}`, firstName: `P${n}`, extension: String(10000 + n) };
      });
      if (batch === 0)
        users[0] = { ...users[0]!, password: 'a password of the first user' } as (typeof users)[0];
      const res = await admin<{ created: number; users: { index: number; id: string; status: string }[] }>(
        t,
        sys,
        'POST',
        `/api/admin/users/${domain}/bulk`,
        { users },
      );
      assert.equal(res.status, 201, res.body.slice(0, 500));
      assert.equal(res.json.created, 600);
      assert.deepEqual(res.json.users[5], {
        index: 5,
        id: `${users[5]!.userId}@${domain}`,
        status: 'created',
      });
      expected.push(...users.map((u) => u.userId));
    }
    assert.equal((await admin(t, sys, 'GET', `/api/admin/users/${domain}/p0000`)).json.hasPassword, true);

    // Two page sizes; the order is creation order (id), stable under concurrent inserts (keyset).
    for (const limit of [500, 97]) {
      const seen = (await walk(t, sys, `/api/admin/users/${domain}`, limit)) as { userId: string }[];
      const ids = seen.map((u) => u.userId);
      assert.equal(new Set(ids).size, ids.length, `no duplicates (limit ${limit})`);
      assert.deepEqual(ids, expected, `no gaps, creation order (limit ${limit})`);
    }
    const tooBig = await admin(t, sys, 'GET', `/api/admin/users/${domain}?limit=501`);
    assert.equal(tooBig.status, 400);
    const badCursor = await admin<ErrorAnswer>(t, sys, 'GET', `/api/admin/users/${domain}?cursor=garbage`);
    assert.equal(badCursor.status, 400);
    assert.equal(badCursor.json.errors![0]!.field, 'query.cursor');

    // Each bulk-created user has its audit row and event.
    const events = await t.database.db
      .selectFrom('events')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('type', '=', 'user.created')
      .executeTakeFirstOrThrow();
    assert.ok(Number(events.n) >= 1201);
  });
});
