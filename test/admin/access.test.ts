import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { forEachDialect, uniqueDomain } from '../db/helpers.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { systemTicket } from '../helpers/fixtures.js';
import { admin, type Ticket } from './helpers.js';

forEachDialect('admin API access and formats', (ctx) => {
  let t: TestApp;
  let sys: Ticket;
  let orgA: string;
  let orgB: string;
  let gid: number;

  before(async () => {
    t = await startTestApp({ database: ctx.handle });
    sys = await systemTicket(ctx.handle, t.config, ['ADMIN']);
    orgA = uniqueDomain('a');
    orgB = uniqueDomain('b');
    for (const domain of [orgA, orgB]) {
      await admin(t, sys, 'POST', '/api/admin/organizations', { domain, name: domain });
      await admin(t, sys, 'POST', `/api/admin/users/${domain}`, { userId: 'alice' });
    }
    gid = (await admin(t, sys, 'POST', `/api/admin/usergroups/${orgB}`, { name: 'G' })).json.id as number;
    await admin(t, sys, 'POST', `/api/admin/numbers/${orgB}`, { number: '+46899900000' });
  });
  after(async () => t.close());

  test('a ticket limited to one organization gets 404 for every resource of another', async () => {
    const onlyA = await systemTicket(ctx.handle, t.config, ['ADMIN'], [orgA]);
    assert.equal((await admin(t, onlyA, 'GET', `/api/admin/users/${orgA}/alice`)).status, 200);
    const paths: [string, string, unknown?][] = [
      ['GET', `/api/admin/organizations/${orgB}`],
      ['PUT', `/api/admin/organizations/${orgB}`, { name: 'x' }],
      ['DELETE', `/api/admin/organizations/${orgB}?force=true`],
      ['GET', `/api/admin/users/${orgB}`],
      ['GET', `/api/admin/users/${orgB}/alice`],
      ['DELETE', `/api/admin/users/${orgB}/alice`],
      ['POST', `/api/admin/users/${orgB}`, { userId: 'intruder' }],
      ['POST', `/api/admin/users/${orgB}/bulk`, { users: [{ userId: 'intruder' }] }],
      ['GET', `/api/admin/usergroups/${orgB}/${gid}`],
      ['GET', `/api/admin/externalapi/${orgB}/users/alice/effective`],
      ['PUT', `/api/admin/externalapi/${orgB}`, { apis: ['SMS'] }],
      ['GET', `/api/admin/tickets/${orgB}`],
      ['GET', `/api/admin/numbers/${orgB}/%2B46899900000`],
      ['GET', `/api/admin/devices/${orgB}/alice`],
      ['GET', `/api/admin/acd-attendant-group/${orgB}`],
      ['GET', `/api/admin/audit/${orgB}`],
    ];
    for (const [method, path, body] of paths) {
      const res = await admin(t, onlyA, method, path, body);
      assert.equal(res.status, 404, `${method} ${path}: ${res.status} ${res.body}`);
    }
    // Nothing changed in B.
    assert.equal((await admin(t, sys, 'GET', `/api/admin/users/${orgB}/alice`)).status, 200);
    assert.equal((await admin(t, sys, 'GET', `/api/admin/users/${orgB}/intruder`)).status, 404);
    // Its organization list shows only A, and it may not create organizations.
    const list = await admin<{ items: { domain: string }[] }>(t, onlyA, 'GET', '/api/admin/organizations');
    assert.deepEqual(
      list.json.items.map((o) => o.domain),
      [orgA],
    );
    const create = await admin(t, onlyA, 'POST', '/api/admin/organizations', {
      domain: uniqueDomain(),
      name: 'x',
    });
    assert.equal(create.status, 404);
  });

  test('narrow admin scopes are enforced per resource', async () => {
    const usersOnly = await systemTicket(ctx.handle, t.config, ['ADMIN_USERS']);
    const numbersOnly = await systemTicket(ctx.handle, t.config, ['ADMIN_NUMBERS', 'ADMIN_AUDIT']);
    assert.equal((await admin(t, usersOnly, 'GET', `/api/admin/users/${orgA}`)).status, 200);
    assert.equal((await admin(t, usersOnly, 'GET', `/api/admin/externalapi/${orgA}`)).status, 200);
    for (const path of [
      `/api/admin/numbers/${orgA}`,
      `/api/admin/devices/${orgA}/alice`,
      `/api/admin/usergroups/${orgA}`,
      `/api/admin/acd-attendant-group/${orgA}`,
      `/api/admin/tickets/${orgA}`,
      `/api/admin/audit/${orgA}`,
      `/api/admin/organizations/${orgA}`,
    ]) {
      const res = await admin(t, usersOnly, 'GET', path);
      assert.equal(res.status, 403, `${path}: ${res.body}`);
      assert.match(res.body, /not granted ADMIN_/);
    }
    assert.equal((await admin(t, numbersOnly, 'GET', `/api/admin/numbers/${orgA}`)).status, 200);
    assert.equal((await admin(t, numbersOnly, 'GET', `/api/admin/audit/${orgA}`)).status, 200);
    assert.equal(
      (await admin(t, numbersOnly, 'POST', `/api/admin/users/${orgA}`, { userId: 'x' })).status,
      403,
    );
    assert.equal((await admin(t, numbersOnly, 'DELETE', `/api/admin/users/${orgA}/alice`)).status, 403);
    assert.equal((await admin(t, sys, 'GET', `/api/admin/users/${orgA}/alice`)).status, 200);
  });

  test('XML: create a user from an XML body, and list users as XML', async () => {
    const xml =
      '<?xml version="1.0"?><user><userId>xml.user</userId><firstName>Xa</firstName>' +
      `<extension>0123</extension><groups>${gid}</groups></user>`;
    const wrongOrgGroup = await admin(t, sys, 'POST', `/api/admin/users/${orgA}`, undefined, {
      xml,
      accept: 'application/xml',
    });
    assert.equal(wrongOrgGroup.status, 400, 'the group is of the other organization');
    assert.match(wrongOrgGroup.body, /<error>.*<field>body\.groups<\/field>/s);

    const created = await admin(t, sys, 'POST', `/api/admin/users/${orgB}`, undefined, {
      xml,
      accept: 'application/xml',
    });
    assert.equal(created.status, 201, created.body);
    assert.match(String(created.headers['content-type']), /application\/xml/);
    assert.match(created.body, /^<\?xml/);
    assert.match(created.body, /<user><id>xml\.user@/);
    assert.match(created.body, /<extension>0123<\/extension>/, 'text stays text');
    assert.match(created.body, new RegExp(`<groups><id>${gid}</id><name>G</name></groups>`));

    const list = await admin(t, sys, 'GET', `/api/admin/users/${orgB}?limit=1`, undefined, {
      accept: 'application/xml',
    });
    assert.equal(list.status, 200);
    assert.match(list.body, /^<\?xml version="1.0" encoding="UTF-8"\?>\n<users><items><id>alice@/);
    assert.match(list.body, /<next>[A-Za-z0-9_-]+<\/next><\/users>$/);
  });
});
