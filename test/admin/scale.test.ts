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

  test('a bulk answer lists schema problems and conflicts together, and says how many it left out', async () => {
    const domain = uniqueDomain('bulkerr');
    await admin(t, sys, 'POST', '/api/admin/organizations', { domain, name: 'Bulk errors' });
    await admin(t, sys, 'POST', `/api/admin/users/${domain}`, { userId: 'taken.id' });
    const mixed = await admin<ErrorAnswer>(t, sys, 'POST', `/api/admin/users/${domain}/bulk`, {
      users: [{ userId: 'taken.id', extension: 'x' }, { userId: 'twin' }, { userId: 'twin', email: 'no' }],
    });
    assert.equal(mixed.status, 400, mixed.body);
    assert.deepEqual(
      mixed.json.errors!.map((e) => e.field),
      ['body.users.0.extension', 'body.users.0.userId', 'body.users.2.email', 'body.users.2.userId'],
    );
    assert.match(mixed.json.errors![1]!.message, /"taken\.id" already exists/);
    assert.match(mixed.json.errors![3]!.message, /also given at body\.users\.1/);
    assert.match(mixed.json.validationResult, /^2 of 3 rows cannot be created/);

    // 60 bad extensions and two conflicts: 50 listed, then one entry for the 12 left out.
    const users = Array.from({ length: 70 }, (_, i) => ({
      userId: `many${i}`,
      extension: i < 60 ? 'x' : undefined,
    }));
    users.push({ userId: 'taken.id', extension: undefined }, { userId: 'many0', extension: undefined });
    const many = await admin<ErrorAnswer>(t, sys, 'POST', `/api/admin/users/${domain}/bulk`, { users });
    assert.equal(many.status, 400);
    const errors = many.json.errors!;
    assert.equal(errors.length, 51);
    assert.equal(errors[49]!.field, 'body.users.49.extension');
    assert.deepEqual(errors[50], {
      field: 'body.users',
      message: '12 more problems (12 more rows) not listed; fix these and send again to see them',
    });
    assert.match(
      many.json.validationResult,
      /^62 of 72 rows cannot be created, 62 problems, the first 50 listed/,
    );
    assert.equal((await admin(t, sys, 'GET', `/api/admin/users/${domain}/many65`)).status, 404);
  });

  test('1,000 full rows fit the bulk route, as JSON (over 1 MiB) and as XML', async () => {
    const domain = uniqueDomain('bulkfull');
    await admin(t, sys, 'POST', '/api/admin/organizations', { domain, name: 'Bulk full rows' });
    const group = await admin(t, sys, 'POST', `/api/admin/usergroups/${domain}`, { name: 'Bulk group' });
    const long = (c: string, n: number) => c.repeat(n);
    const row = (prefix: string, i: number) => ({
      userId: `${prefix}${String(i).padStart(4, '0')}.${long('u', 58)}`,
      role: 'USER',
      firstName: long('F', 100),
      lastName: long('L', 100),
      email: `${long('e', 120)}.${i}@${long('m', 60)}.${long('n', 50)}.example.com`,
      language: 'sv-SE-x-private',
      title: long('T', 200),
      department: long('D', 200),
      extension: String(20_000_000 + i + (prefix === 'x' ? 10_000 : 0)),
      groups: [group.json.id as number],
    });
    const users = Array.from({ length: 1000 }, (_, i) => row('j', i));
    const json = JSON.stringify({ users });
    assert.ok(json.length > 1024 * 1024, `the JSON body is over 1 MiB (${json.length} bytes)`);
    const res = await admin<{ created: number }>(t, sys, 'POST', `/api/admin/users/${domain}/bulk`, {
      users,
    });
    assert.equal(res.status, 201, res.body.slice(0, 300));
    assert.equal(res.json.created, 1000);

    const field = (k: string, v: unknown) => `<${k}>${String(v)}</${k}>`;
    const xml =
      '<?xml version="1.0"?><bulk>' +
      Array.from({ length: 1000 }, (_, i) => {
        const r = row('x', i);
        return `<users>${Object.entries(r)
          .map(([k, v]) => (Array.isArray(v) ? v.map((g) => field(k, g)).join('') : field(k, v)))
          .join('')}</users>`;
      }).join('') +
      '</bulk>';
    assert.ok(xml.length > 1024 * 1024, `the XML body is over 1 MiB (${xml.length} bytes)`);
    const viaXml = await admin(t, sys, 'POST', `/api/admin/users/${domain}/bulk`, undefined, { xml });
    assert.equal(viaXml.status, 201, viaXml.body.slice(0, 300));
    assert.equal(viaXml.json.created, 1000);
    const one = await admin(t, sys, 'GET', `/api/admin/users/${domain}/${row('x', 999).userId}`);
    assert.equal(one.json.extension, '20010999', 'XML text stays text');
    assert.deepEqual(one.json.groups, [{ id: group.json.id, name: 'Bulk group' }]);
    // Other routes keep the default limits.
    const big = await admin(t, sys, 'PUT', `/api/admin/users/${domain}/${row('j', 0).userId}`, {
      title: 'x'.repeat(1100 * 1024),
    });
    assert.equal(big.status, 413);
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
