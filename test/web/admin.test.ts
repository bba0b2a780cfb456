import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { forEachDialect, uniqueDomain } from '../db/helpers.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { signed } from '../helpers/fixtures.js';
import { OrganizationRepository } from '../../src/areas/organizations/repository.js';
import { UserRepository } from '../../src/areas/users/repository.js';
import { UserGroupRepository } from '../../src/areas/usergroups/repository.js';
import { ExternalApiRepository } from '../../src/areas/externalapi/repository.js';
import { TicketRepository } from '../../src/areas/tickets/repository.js';
import { AuditRepository } from '../../src/areas/audit/repository.js';
import { ADMIN_PASSWORD, ensureAdmin, WebClient } from './helpers.js';

/** Every page and action of the administrator web interface, over HTTP (inject). */
forEachDialect('admin web interface', (ctx) => {
  let t: TestApp;
  let c: WebClient;
  const domain = uniqueDomain('web');

  before(async () => {
    t = await startTestApp({ database: ctx.handle });
    await ensureAdmin(ctx.handle);
    c = new WebClient(t.app, '/admin');
  });
  after(async () => {
    await t.close();
  });

  const org = async () => (await new OrganizationRepository(ctx.handle.db).getByDomain(domain))!;
  const user = async (userId: string) =>
    (await new UserRepository(ctx.handle.db).get((await org()).id, userId))!;

  test('without a session every page sends the browser to the login page, remembering where it was', async () => {
    for (const path of [
      '/admin',
      '/admin/organizations',
      '/admin/tickets',
      `/admin/organizations/${domain}/groups`,
    ]) {
      const r = await c.get(path);
      assert.equal(r.status, 303, path);
      assert.match(r.location!, /^\/admin\/login/);
    }
    const r = await c.get('/admin/tickets');
    assert.equal(r.location, '/admin/login?next=%2Fadmin%2Ftickets');
    const login = await c.get('/admin/login?next=%2Fadmin%2Ftickets');
    assert.equal(login.status, 200);
    assert.match(login.body, /name="next" value="\/admin\/tickets"/);
    // A form post without a session is sent to the login page too (nothing is done).
    const post = await c.post(
      '/admin/organizations',
      { domain: 'never.example.com', name: 'x' },
      { csrf: 'x' },
    );
    assert.equal(post.status, 303);
    assert.equal(post.location, '/admin/login');
  });

  test('login: a wrong password is refused with the form again, the right one starts a session', async () => {
    const wrong = await c.login('admin', 'not the password');
    assert.equal(wrong.status, 401);
    assert.match(wrong.body, /Wrong user name or password\./);
    assert.equal(wrong.headers['set-cookie'], undefined);
    const unknown = await c.login('nobody', ADMIN_PASSWORD);
    assert.equal(unknown.status, 401);
    assert.match(unknown.body, /Wrong user name or password\./, 'the same answer for an unknown name');

    const ok = await c.post(
      '/admin/login',
      { username: 'admin', password: ADMIN_PASSWORD, next: '/admin/tickets' },
      { csrf: null },
    );
    assert.equal(ok.status, 303);
    assert.equal(ok.location, '/admin/tickets');
    const cookie = String(ok.headers['set-cookie']);
    assert.match(
      cookie,
      /^onecloud_session=[A-Za-z0-9_-]{43}; Path=\/admin; Max-Age=28800; HttpOnly; SameSite=Strict$/,
    );
    const home = await c.get('/admin');
    assert.equal(home.status, 303);
    assert.equal(home.location, '/admin/organizations');
  });

  test('organizations: list, create, refuse a bad or duplicate domain with the form again', async () => {
    const empty = await c.open('/admin/organizations');
    assert.match(empty.body, /<h1>Organizations<\/h1>/);
    const created = await c.post('/admin/organizations', { domain: domain.toUpperCase(), name: 'Web & Co' });
    assert.equal(created.status, 303);
    assert.equal(created.location, `/admin/organizations/${domain}?done=org-created`);
    const list = await c.open('/admin/organizations');
    assert.match(list.body, new RegExp(`href="/admin/organizations/${domain}"`));
    assert.match(list.body, /Web &amp; Co/);

    const bad = await c.post('/admin/organizations', { domain: 'not a domain', name: 'Bad' });
    assert.equal(bad.status, 400);
    assert.match(bad.body, /class="flash error"/);
    assert.match(bad.body, /domain/);
    assert.match(bad.body, /value="not a domain"/, 'the form keeps what was typed');
    const dup = await c.post('/admin/organizations', { domain, name: 'Again' });
    assert.equal(dup.status, 409);
    assert.match(dup.body, /class="flash error"/);
  });

  test('users: list, create, show, refuse a duplicate; edit role and groups', async () => {
    const page = await c.open(`/admin/organizations/${domain}?done=org-created`);
    assert.match(page.body, /Organization created\./);
    assert.match(page.body, /No users yet\./);
    const created = await c.post(`/admin/organizations/${domain}/users`, {
      userId: 'aki.huolman',
      firstName: 'Aki',
      lastName: 'Huolman',
      email: '',
      password: 'user password 1',
      role: 'USER',
    });
    assert.equal(created.status, 303, created.body);
    assert.equal(created.location, `/admin/organizations/${domain}/users/aki.huolman?done=user-created`);
    const aki = await user('aki.huolman');
    assert.equal(aki.firstName, 'Aki');
    assert.equal(aki.email, null, 'an empty field is no value');
    assert.ok(aki.hasPassword);

    const dup = await c.post(`/admin/organizations/${domain}/users`, { userId: 'aki.huolman', role: 'USER' });
    assert.equal(dup.status, 409);
    assert.match(dup.body, /already exists/);
    const badPw = await c.post(`/admin/organizations/${domain}/users`, {
      userId: 'bea',
      password: 'short',
      role: 'USER',
    });
    assert.equal(badPw.status, 400);
    assert.match(badPw.body, /password/);
    assert.doesNotMatch(badPw.body, /value="short"/, 'a password is never written back into the page');

    const list = await c.open(`/admin/organizations/${domain}`);
    assert.match(list.body, /aki\.huolman/);
    const show = await c.open(`/admin/organizations/${domain}/users/aki.huolman`);
    assert.match(show.body, /Aki Huolman/);
    assert.match(show.body, /No API is allowed to this user/);

    const role = await c.post(`/admin/organizations/${domain}/users/aki.huolman/role`, { role: 'SUPERUSER' });
    assert.equal(role.status, 303);
    assert.equal((await user('aki.huolman')).role, 'SUPERUSER');
    const badRole = await c.post(`/admin/organizations/${domain}/users/aki.huolman/role`, { role: 'GOD' });
    assert.equal(badRole.status, 400);
    await c.post(`/admin/organizations/${domain}/users/aki.huolman/role`, { role: 'USER' });

    const missing = await c.get(`/admin/organizations/${domain}/users/nobody`);
    assert.equal(missing.status, 404);
    assert.match(missing.headers['content-type'] as string, /^text\/html/);
    assert.match(missing.body, /no user &quot;nobody&quot;/);
    const noOrg = await c.get('/admin/organizations/missing.example.com');
    assert.equal(noOrg.status, 404);
  });

  test('user groups: create, members from both sides, refuse an empty name', async () => {
    const page = await c.open(`/admin/organizations/${domain}/groups`);
    assert.match(page.body, /No user groups yet\./);
    const created = await c.post(`/admin/organizations/${domain}/groups`, { name: 'Support' });
    assert.equal(created.status, 303);
    const o = await org();
    const group = (await new UserGroupRepository(ctx.handle.db).getByName(o.id, 'Support'))!;
    assert.equal(created.location, `/admin/organizations/${domain}/groups/${group.id}?done=group-created`);
    const empty = await c.post(`/admin/organizations/${domain}/groups`, { name: '  ' });
    assert.equal(empty.status, 400);

    const aki = await user('aki.huolman');
    await c.open(`/admin/organizations/${domain}/groups/${group.id}`);
    const members = await c.post(`/admin/organizations/${domain}/groups/${group.id}/members`, {
      [`member.${aki.userId}`]: 'on',
    });
    assert.equal(members.status, 303);
    assert.deepEqual(
      (await new UserGroupRepository(ctx.handle.db).listMembers(o.id, group.id)).map((m) => m.userId),
      ['aki.huolman'],
    );
    const list = await c.open(`/admin/organizations/${domain}/groups`);
    assert.match(list.body, /<span class="pill">aki\.huolman<\/span>/);

    // From the user's side: untick the group.
    const none = await c.post(`/admin/organizations/${domain}/users/aki.huolman/groups`, {});
    assert.equal(none.status, 303);
    assert.deepEqual(await new UserRepository(ctx.handle.db).groupsOf(o.id, aki.id), []);
    await c.post(`/admin/organizations/${domain}/users/aki.huolman/groups`, { [`group.${group.id}`]: 'on' });
    assert.deepEqual(
      (await new UserRepository(ctx.handle.db).groupsOf(o.id, aki.id)).map((g) => g.name),
      ['Support'],
    );
    const missing = await c.get(`/admin/organizations/${domain}/groups/99999`);
    assert.equal(missing.status, 404);
    const notNumber = await c.get(`/admin/organizations/${domain}/groups/abc`);
    assert.equal(notNumber.status, 404);
    const audit = await new AuditRepository(ctx.handle.db).list(o.id, { limit: 100 });
    const actions = audit.items.map((a) => `${a.actor} ${a.action}`);
    assert.ok(actions.includes('admin:admin usergroup.created'), actions.join(', '));
    // The same changes, and so the same audit actions, as through the admin API.
    assert.ok(actions.includes('admin:admin usergroup.members_changed'), actions.join(', '));
    assert.ok(actions.includes('admin:admin user.updated'), actions.join(', '));
  });

  test('External API authorization at the three levels, shown as allowed-now with sources', async () => {
    const o = await org();
    const aki = await user('aki.huolman');
    const group = (await new UserGroupRepository(ctx.handle.db).getByName(o.id, 'Support'))!;
    await c.open(`/admin/organizations/${domain}/external-api`);
    const orgLevel = await c.post(`/admin/organizations/${domain}/external-api`, { 'api.USER_INFO': 'on' });
    assert.equal(orgLevel.status, 303);
    assert.equal(orgLevel.location, `/admin/organizations/${domain}/external-api?done=apis-saved`);
    const groupLevel = await c.post(`/admin/organizations/${domain}/groups/${group.id}/external-api`, {
      'api.CONTACT': 'on',
    });
    assert.equal(groupLevel.status, 303);
    const userLevel = await c.post(`/admin/organizations/${domain}/users/aki.huolman/external-api`, {
      'api.SMS': 'on',
      'api.VOICEMAIL': 'on',
    });
    assert.equal(userLevel.status, 303);
    const grants = new ExternalApiRepository(ctx.handle.db);
    assert.deepEqual(await grants.listGrants(o.id, 'ORGANIZATION', 0), ['USER_INFO']);
    assert.deepEqual(await grants.listGrants(o.id, 'USER_GROUP', group.id), ['CONTACT']);
    assert.deepEqual(await grants.listGrants(o.id, 'USER', aki.id), ['SMS', 'VOICEMAIL']);
    assert.deepEqual((await grants.effective(o.id, aki.id)).apis, [
      'CONTACT',
      'SMS',
      'USER_INFO',
      'VOICEMAIL',
    ]);

    const page = await c.open(`/admin/organizations/${domain}/external-api?done=apis-saved`);
    assert.match(page.body, /External API authorization saved/);
    assert.match(page.body, /name="api\.USER_INFO" value="on"\s+checked/);
    assert.match(page.body, /group <a [^>]+>Support<\/a>/);
    assert.match(page.body, /user <a [^>]+>aki\.huolman<\/a>/);
    const show = await c.open(`/admin/organizations/${domain}/users/aki.huolman`);
    assert.match(show.body, /<td>group Support<\/td>/);
    assert.match(show.body, /<td>organization<\/td>/);
    assert.match(show.body, /<td>this user<\/td>/);

    const bogus = await c.post(`/admin/organizations/${domain}/external-api`, { 'api.NOT_AN_API': 'on' });
    assert.equal(bogus.status, 400);
    assert.match(bogus.body, /is not a user API id/);
    assert.deepEqual(await grants.listGrants(o.id, 'ORGANIZATION', 0), ['USER_INFO'], 'unchanged');
  });

  test('system tickets: create shows token and secret once; they sign admin requests; list; revoke', async () => {
    const page = await c.open('/admin/tickets');
    assert.match(page.body, /No system tickets yet\.|<h2>Tickets<\/h2>/);
    const refused = await c.post('/admin/tickets', { name: 'nothing' });
    assert.equal(refused.status, 400);
    assert.match(refused.body, /name at least one API/);
    const unknownOrg = await c.post('/admin/tickets', {
      name: 'x',
      'scope.ADMIN': 'on',
      'org.missing.example.com': 'on',
    });
    assert.equal(unknownOrg.status, 404);
    const badDays = await c.post('/admin/tickets', { name: 'x', 'scope.ADMIN': 'on', days: '99999' });
    assert.equal(badDays.status, 400);

    const created = await c.post('/admin/tickets', {
      name: 'provisioning',
      'scope.ADMIN_ORGANIZATIONS': 'on',
      [`org.${domain}`]: 'on',
      days: '30',
    });
    assert.equal(created.status, 200, created.body.slice(0, 500));
    assert.equal(created.headers['cache-control'], 'no-store');
    const token = /id="ticket-token" readonly value="([^"]+)"/.exec(created.body)?.[1];
    const secret = /id="ticket-secret" readonly value="([^"]+)"/.exec(created.body)?.[1];
    assert.ok(token && secret, 'token and secret shown');
    assert.match(token, /^\d+\.[A-Za-z0-9_-]{43}$/);
    assert.match(created.body, /data-copy="ticket-token"/);
    const ticketId = Number(token.split('.')[0]);
    const stored = (await new TicketRepository(ctx.handle.db).getById(ticketId))!;
    assert.deepEqual(stored.scopes, ['ADMIN_ORGANIZATIONS']);
    assert.deepEqual(stored.organizations, [(await org()).id]);
    assert.ok(Math.abs(stored.expiresAt - (Date.now() + 30 * 86_400_000)) < 60_000);

    const path = `/api/admin/organizations/${domain}`;
    const call = await t.app.inject({ url: path, headers: signed({ token, secret }, 'GET', path) });
    assert.equal(call.statusCode, 200, call.body);

    const list = await c.open('/admin/tickets');
    assert.doesNotMatch(list.body, new RegExp(token.split('.')[1]!), 'the token is never shown again');
    assert.doesNotMatch(list.body, new RegExp(secret.replace(/[^A-Za-z0-9]/g, '.')));
    assert.match(list.body, /provisioning/);
    assert.match(list.body, new RegExp(`action="/admin/tickets/${ticketId}/revoke"`));

    const revoked = await c.post(`/admin/tickets/${ticketId}/revoke`, {});
    assert.equal(revoked.status, 303);
    assert.equal(revoked.location, '/admin/tickets?done=revoked');
    const after = await c.open('/admin/tickets?done=revoked');
    assert.match(after.body, /Ticket revoked\./);
    assert.match(after.body, /<span class="pill revoked">revoked<\/span>/);
    const call2 = await t.app.inject({ url: path, headers: signed({ token, secret }, 'GET', path) });
    assert.equal(call2.statusCode, 401);
    const missing = await c.post('/admin/tickets/99999/revoke', {});
    assert.equal(missing.status, 404);
  });

  test('logout ends the session on the server, not only the cookie', async () => {
    const cookie = c.cookie!;
    await c.open('/admin/organizations');
    const out = await c.post('/admin/logout', {});
    assert.equal(out.status, 303);
    assert.equal(out.location, '/admin/login');
    assert.match(String(out.headers['set-cookie']), /^onecloud_session=; Path=\/admin; Max-Age=0/);
    const replay = await t.app.inject({ url: '/admin/organizations', headers: { cookie } });
    assert.equal(replay.statusCode, 303, 'the old cookie no longer works');
  });
});
