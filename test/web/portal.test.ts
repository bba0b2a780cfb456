import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { forEachDialect } from '../db/helpers.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { PASSWORD, seedOrg, type SeededOrg } from '../helpers/fixtures.js';
import { setExternalApiGrants } from '../../src/areas/externalapi/service.js';
import { ExternalApiRepository } from '../../src/areas/externalapi/repository.js';
import { TicketRepository } from '../../src/areas/tickets/repository.js';
import { UserRepository } from '../../src/areas/users/repository.js';
import { WebClient } from './helpers.js';

/** Every page and action of the user portal, over HTTP (inject). */
forEachDialect('user portal', (ctx) => {
  let t: TestApp;
  let org: SeededOrg;
  let other: SeededOrg;
  let alice: WebClient;
  let boss: WebClient;

  before(async () => {
    t = await startTestApp({ database: ctx.handle });
    org = await seedOrg(
      ctx.handle,
      t.config,
      [{ userId: 'alice' }, { userId: 'bob' }, { userId: 'boss', superuser: true }],
      {
        grantAll: false,
      },
    );
    other = await seedOrg(ctx.handle, t.config, [{ userId: 'carl' }]);
    await setExternalApiGrants(ctx.handle, 'test', org.org, 'ORGANIZATION', 0, ['USER_INFO', 'CONTACT']);
    alice = new WebClient(t.app, '/portal');
    boss = new WebClient(t.app, '/portal');
  });
  after(async () => {
    await t.close();
  });

  test('login as user@domain; wrong password, unknown user and a bare user id are refused', async () => {
    const page = await alice.get('/portal/login');
    assert.equal(page.status, 200);
    assert.match(page.body, /User \(user@domain\)/);
    for (const [username, password] of [
      [`alice@${org.domain}`, 'wrong password'],
      [`nobody@${org.domain}`, PASSWORD],
      [`alice@missing.example.com`, PASSWORD],
    ] as const) {
      const r = await alice.login(username, password);
      assert.equal(r.status, 401, username);
      assert.match(r.body, /Wrong user or password\./);
      assert.equal(r.headers['set-cookie'], undefined);
    }
    const bare = await alice.login('alice', PASSWORD);
    assert.equal(bare.status, 401);
    assert.match(bare.body, /full user id: user@domain/);
    // The domain is matched without case, the user id with case.
    const upper = await alice.login(`Alice@${org.domain}`, PASSWORD);
    assert.equal(upper.status, 401);
    const ok = await alice.login(`alice@${org.domain.toUpperCase()}`, PASSWORD);
    assert.equal(ok.status, 303);
    assert.equal(ok.location, '/portal');
    assert.match(String(ok.headers['set-cookie']), /Path=\/portal; Max-Age=28800; HttpOnly; SameSite=Strict/);
  });

  test('home shows the APIs allowed to me; no admin view for an ordinary user', async () => {
    const home = await alice.open('/portal');
    assert.match(home.body, /Welcome, alice Test/);
    assert.match(home.body, /<span class="pill" title="User info">USER_INFO<\/span>/);
    assert.doesNotMatch(home.body, /Admin view/);
    const admin = await alice.get('/portal/admin');
    assert.equal(admin.status, 403);
    assert.match(admin.body, /for superusers/);
    const post = await alice.post('/portal/admin/external-api', { 'api.SMS': 'on' });
    assert.equal(post.status, 403);
    assert.deepEqual(
      await new ExternalApiRepository(ctx.handle.db).listGrants(org.org.id, 'ORGANIZATION', 0),
      ['CONTACT', 'USER_INFO'],
    );
  });

  test('tickets: create among my allowed APIs, token and expiry shown once, works, listed, revoked', async () => {
    const page = await alice.open('/portal/tickets');
    assert.match(page.body, /You have no tickets\./);
    assert.match(page.body, /name="api\.USER_INFO"/);
    assert.doesNotMatch(page.body, /name="api\.SMS"/, 'APIs not allowed to me are not offered');

    const refused = await alice.post('/portal/tickets', { name: 'sms', 'api.SMS': 'on' });
    assert.equal(refused.status, 403);
    assert.match(refused.body, /does not allow alice@[^ ]+ to use: SMS/);
    const none = await alice.post('/portal/tickets', { name: 'nothing' });
    assert.equal(none.status, 400);
    assert.match(none.body, /name at least one API/);
    assert.match(none.body, /value="nothing"/, 'the form keeps the name');

    const created = await alice.post('/portal/tickets', {
      name: 'crm-ticket-1',
      'api.USER_INFO': 'on',
      days: '7',
    });
    assert.equal(created.status, 200, created.body.slice(0, 400));
    assert.equal(created.headers['cache-control'], 'no-store');
    const token = /id="ticket-token" readonly value="([^"]+)"/.exec(created.body)?.[1];
    assert.ok(token);
    const expires = /id="ticket-expires">([^<]+)</.exec(created.body)?.[1];
    assert.match(expires!, /^\d{4}-\d\d-\d\d \d\d:\d\d UTC$/);
    const id = Number(token.split('.')[0]);
    const stored = (await new TicketRepository(ctx.handle.db).getById(id))!;
    assert.equal(stored.platform, 'portal');
    assert.equal(stored.createdBy, `user:alice@${org.domain}`);
    assert.ok(Math.abs(stored.expiresAt - (Date.now() + 7 * 86_400_000)) < 60_000);

    const url = `/api/device/info/v1/shortlist/${org.domain}/alice`;
    const used = await t.app.inject({ url, headers: { authorization: `Bearer ${token}` } });
    assert.equal(used.statusCode, 200, used.body);

    const list = await alice.open('/portal/tickets');
    assert.doesNotMatch(list.body, new RegExp(token.split('.')[1]!), 'the token is not shown again');
    assert.match(list.body, /crm-ticket-1/);
    assert.doesNotMatch(list.body, /<span class="muted">never<\/span>/, 'last use is shown once used');

    // Another user's ticket cannot be revoked from my session.
    const bobTicket = await t.app.inject({
      method: 'POST',
      url: `/api/tickets/${org.domain}/bob?api=USER_INFO&name=bob`,
      headers: { authorization: `Basic ${Buffer.from(`bob@${org.domain}:${PASSWORD}`).toString('base64')}` },
    });
    const bobId = Number((JSON.parse(bobTicket.body) as { token: string }).token.split('.')[0]);
    const notMine = await alice.post(`/portal/tickets/${bobId}/revoke`, {});
    assert.equal(notMine.status, 404);
    assert.equal((await new TicketRepository(ctx.handle.db).getById(bobId))!.revokedAt, null);

    const revoked = await alice.post(`/portal/tickets/${id}/revoke`, {});
    assert.equal(revoked.status, 303);
    assert.equal(revoked.location, '/portal/tickets?done=revoked');
    const after = await alice.open('/portal/tickets?done=revoked');
    assert.match(after.body, /Ticket revoked\./);
    assert.doesNotMatch(after.body, /crm-ticket-1/);
    const refusedNow = await t.app.inject({ url, headers: { authorization: `Bearer ${token}` } });
    assert.equal(refusedNow.statusCode, 401);
  });

  test('a user with no allowed API is told so and offered no form', async () => {
    const carl = new WebClient(t.app, '/portal');
    await setExternalApiGrants(ctx.handle, 'test', other.org, 'ORGANIZATION', 0, []);
    assert.equal((await carl.login(`carl@${other.domain}`, PASSWORD)).status, 303);
    const page = await carl.get('/portal/tickets');
    assert.match(page.body, /No API is allowed to you yet/);
    assert.doesNotMatch(page.body, /action="\/portal\/tickets"/);
  });

  test("a superuser's admin view: its own organization's users, groups and External API authorization", async () => {
    assert.equal((await boss.login(`boss@${org.domain}`, PASSWORD)).status, 303);
    const home = await boss.open('/portal');
    assert.match(home.body, /href="\/portal\/admin"/);
    const tickets = await boss.open('/portal/tickets');
    assert.match(tickets.body, /tickets of a superuser cannot use the user APIs/);

    const users = await boss.open('/portal/admin');
    assert.match(users.body, /alice/);
    assert.doesNotMatch(users.body, /carl/, 'only its own organization');
    const created = await boss.post('/portal/admin/users', {
      userId: 'dana',
      password: 'dana password',
      role: 'USER',
    });
    assert.equal(created.status, 303);
    assert.equal(created.location, '/portal/admin/users/dana?done=user-created');
    const dana = (await new UserRepository(ctx.handle.db).get(org.org.id, 'dana'))!;
    assert.ok(dana);
    await boss.open('/portal/admin/users/dana');
    const apis = await boss.post('/portal/admin/users/dana/external-api', { 'api.SMS': 'on' });
    assert.equal(apis.status, 303);
    assert.deepEqual(await new ExternalApiRepository(ctx.handle.db).listGrants(org.org.id, 'USER', dana.id), [
      'SMS',
    ]);

    await boss.open('/portal/admin/groups');
    const group = await boss.post('/portal/admin/groups', { name: 'Night shift' });
    assert.equal(group.status, 303);
    const groupUrl = group.location!.split('?')[0]!;
    assert.match(groupUrl, /^\/portal\/admin\/groups\/\d+$/);
    await boss.open(groupUrl);
    const members = await boss.post(`${groupUrl}/members`, { [`member.${dana.userId}`]: 'on' });
    assert.equal(members.status, 303);
    const page = await boss.open('/portal/admin/users/dana');
    assert.match(page.body, /name="group\.\d+"\s+value="on"\s+checked/);

    const orgLevel = await boss.open('/portal/admin/external-api');
    assert.match(orgLevel.body, /name="api\.CONTACT" value="on"\s+checked/);
    const saved = await boss.post('/portal/admin/external-api', { 'api.USER_INFO': 'on' });
    assert.equal(saved.status, 303);
    assert.deepEqual(
      await new ExternalApiRepository(ctx.handle.db).listGrants(org.org.id, 'ORGANIZATION', 0),
      ['USER_INFO'],
    );
    // Another organization's user is simply not there.
    const carl = await boss.get('/portal/admin/users/carl');
    assert.equal(carl.status, 404);

    // Demoted, the same session loses the admin view at once.
    await boss.post('/portal/admin/users/boss/role', { role: 'USER' });
    const gone = await boss.get('/portal/admin');
    assert.equal(gone.status, 403);
  });

  test('an administrator session does not open the portal, nor a user session the administration', async () => {
    const r = await t.app.inject({ url: '/admin/organizations', headers: { cookie: alice.cookie! } });
    assert.equal(r.statusCode, 303);
    assert.equal(r.headers.location, '/admin/login?next=%2Fadmin%2Forganizations');
    const out = await alice.post('/portal/logout', {});
    assert.equal(out.status, 303);
    assert.equal(out.location, '/portal/login');
    const after = await alice.get('/portal/tickets');
    assert.equal(after.status, 303);
  });
});
