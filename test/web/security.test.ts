import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { PASSWORD, seedOrg, type SeededOrg } from '../helpers/fixtures.js';
import { OrganizationRepository } from '../../src/areas/organizations/repository.js';
import { UserRepository } from '../../src/areas/users/repository.js';
import { startSession, SESSION_TTL_MS } from '../../src/admin-ui/session.js';
import { escapeHtml, html } from '../../src/admin-ui/html.js';
import { safeNext } from '../../src/admin-ui/admin.js';
import { CSP } from '../../src/admin-ui/index.js';
import { ADMIN_PASSWORD, ensureAdmin, form, WebClient } from './helpers.js';

let t: TestApp;
let org: SeededOrg;
let admin: WebClient;
let user: WebClient;

before(async () => {
  t = await startTestApp();
  await ensureAdmin(t.database);
  org = await seedOrg(t.database, t.config, [{ userId: 'alice' }]);
  admin = new WebClient(t.app, '/admin');
  user = new WebClient(t.app, '/portal');
  assert.equal((await admin.login('admin', ADMIN_PASSWORD)).status, 303);
  assert.equal((await user.login(`alice@${org.domain}`, PASSWORD)).status, 303);
});
after(async () => {
  await t.close();
});

test('form posts without the CSRF token, with a wrong one or with another session’s are refused (403), nothing done', async () => {
  await user.open('/portal/tickets');
  await admin.open('/admin/organizations');
  const orgs = new OrganizationRepository(t.database.db);
  const cases: [string, string | null][] = [
    ['missing', null],
    ['wrong', 'x'.repeat(32)],
    ['empty', ''],
    ['another session’s', user.csrf],
  ];
  for (const [name, csrf] of cases) {
    const r = await admin.post(
      '/admin/organizations',
      { domain: `csrf-${name.length}.example.com`, name },
      { csrf },
    );
    assert.equal(r.status, 403, name);
    assert.match(r.body, /the form has expired; reload the page/);
    assert.match(String(r.headers['content-type']), /^text\/html/);
    assert.equal(await orgs.getByDomain(`csrf-${name.length}.example.com`), undefined, name);
  }
  // Logout, ticket creation and revocation are protected the same way.
  await user.open('/portal/tickets');
  const ticket = await user.post('/portal/tickets', { name: 'x', 'api.USER_INFO': 'on' }, { csrf: 'nope' });
  assert.equal(ticket.status, 403);
  const logout = await user.post('/portal/logout', {}, { csrf: null });
  assert.equal(logout.status, 403);
  // A script may send the token as a header instead.
  const viaHeader = await t.app.inject({
    method: 'POST',
    url: '/admin/organizations',
    headers: {
      cookie: admin.cookie!,
      'x-csrf-token': admin.csrf,
      'content-type': 'application/x-www-form-urlencoded',
    },
    payload: form({ domain: 'via-header.example.com', name: 'Header' }),
  });
  assert.equal(viaHeader.statusCode, 303);
});

test('hostile names are escaped on every page that shows them', async () => {
  const evil = `<script>alert(1)</script>"'><img src=x onerror=alert(2)>`;
  const domain = 'evil.example.com';
  await admin.open('/admin/organizations');
  assert.equal((await admin.post('/admin/organizations', { domain, name: evil })).status, 303);
  await admin.open(`/admin/organizations/${domain}`);
  assert.equal(
    (
      await admin.post(`/admin/organizations/${domain}/users`, {
        userId: 'mallory',
        firstName: evil,
        lastName: evil,
        email: '',
        password: PASSWORD,
        role: 'USER',
      })
    ).status,
    303,
  );
  await admin.open(`/admin/organizations/${domain}/groups`);
  const group = await admin.post(`/admin/organizations/${domain}/groups`, { name: evil });
  assert.equal(group.status, 303);
  await admin.open(`/admin/tickets`);
  const sys = await admin.post('/admin/tickets', { name: evil, 'scope.ADMIN': 'on' });
  assert.equal(sys.status, 200);
  // A refused form shows the typed value back, escaped.
  const refused = await admin.post(`/admin/organizations/${domain}/users`, { userId: evil, role: 'USER' });
  assert.equal(refused.status, 400);

  await admin.open(`/admin/organizations/${domain}/external-api`);
  await admin.post(`/admin/organizations/${domain}/external-api`, { 'api.USER_INFO': 'on' });
  const mallory = new WebClient(t.app, '/portal');
  assert.equal((await mallory.login(`mallory@${domain}`, PASSWORD)).status, 303);
  await mallory.open('/portal/tickets');
  const ticket = await mallory.post('/portal/tickets', { name: evil, 'api.USER_INFO': 'on' });
  assert.equal(ticket.status, 200);

  const pages = [
    refused.body,
    sys.body,
    ticket.body,
    (await admin.open('/admin/organizations')).body,
    (await admin.open(`/admin/organizations/${domain}`)).body,
    (await admin.open(`/admin/organizations/${domain}/users/mallory`)).body,
    (await admin.open(`/admin/organizations/${domain}/groups`)).body,
    (await admin.open(group.location!)).body,
    (await admin.open('/admin/tickets')).body,
    (await mallory.open('/portal')).body,
    (await mallory.open('/portal/tickets')).body,
  ];
  for (const body of pages) {
    assert.doesNotMatch(body, /<script>alert/);
    assert.doesNotMatch(body, /<img src=x/);
    assert.match(
      body,
      /&lt;script&gt;alert\(1\)&lt;\/script&gt;&quot;&#39;&gt;&lt;img src=x onerror=alert\(2\)&gt;/,
    );
  }
  // A path segment is escaped in the 404 page too.
  const missing = await admin.get(`/admin/organizations/${domain}/users/%3Cb%3Ex`);
  assert.equal(missing.status, 404);
  assert.match(missing.body, /&lt;b&gt;x/);
});

test('the escaping helper escapes every value, arrays included, and passes markup through', () => {
  assert.equal(
    escapeHtml(`<a href="x" title='y'>&\``),
    '&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&#96;',
  );
  const name = '<b>';
  assert.equal(
    html`<p>${name}${[name, html`<i>${name}</i>`]}${null}${undefined}${false}${3}</p>`.value,
    '<p>&lt;b&gt;&lt;b&gt;<i>&lt;b&gt;</i>3</p>',
  );
});

test('pages carry a CSP without inline script, and no page has inline script, style or handlers', async () => {
  assert.doesNotMatch(CSP, /unsafe-inline|unsafe-eval|\*/);
  assert.match(CSP, /script-src 'self'/);
  assert.match(CSP, /frame-ancestors 'none'/);
  const bodies: string[] = [];
  for (const [client, path] of [
    [admin, '/admin/login'],
    [admin, '/admin/organizations'],
    [admin, `/admin/organizations/${org.domain}`],
    [admin, `/admin/organizations/${org.domain}/users/alice`],
    [admin, `/admin/organizations/${org.domain}/groups`],
    [admin, `/admin/organizations/${org.domain}/external-api`],
    [admin, '/admin/tickets'],
    [user, '/portal/login'],
    [user, '/portal'],
    [user, '/portal/tickets'],
    [admin, '/admin/nothing-here'],
  ] as const) {
    const r = await client.get(path);
    assert.ok(r.status === 200 || r.status === 404, `${path}: ${r.status}`);
    assert.equal(r.headers['content-security-policy'], CSP, path);
    assert.equal(r.headers['x-frame-options'], 'DENY');
    assert.equal(r.headers['x-content-type-options'], 'nosniff');
    assert.equal(r.headers['cache-control'], 'no-store');
    assert.match(String(r.headers['content-type']), /^text\/html; charset=utf-8/);
    bodies.push(r.body);
  }
  for (const body of bodies) {
    for (const m of body.matchAll(/<script\b[^>]*>/g))
      assert.match(m[0], /src="\/(admin|portal)\/static\/copy\.js"/);
    assert.doesNotMatch(body, /<script[^>]*>[^<]+<\/script>/);
    assert.doesNotMatch(body, /<[^>]*\sstyle=/);
    assert.doesNotMatch(body, /<[^>]*\son[a-z]+=/i);
  }
  const css = await t.app.inject({ url: '/admin/static/style.css' });
  assert.equal(css.statusCode, 200);
  assert.match(String(css.headers['content-type']), /^text\/css/);
  const js = await t.app.inject({ url: '/portal/static/copy.js' });
  assert.match(String(js.headers['content-type']), /^text\/javascript/);
  const again = await t.app.inject({
    url: '/admin/static/style.css',
    headers: { 'if-none-match': String(css.headers.etag) },
  });
  assert.equal(again.statusCode, 304);
});

test('the session cookie is Secure when the request came over TLS', async () => {
  const headers: Record<string, string> = {};
  const reply = {
    header(k: string, v: string) {
      headers[k] = v;
      return reply;
    },
  } as unknown as FastifyReply;
  const alice = (await new UserRepository(t.database.db).get(org.org.id, 'alice'))!;
  for (const protocol of ['https', 'http'] as const) {
    await startSession(t.database, { protocol } as FastifyRequest, reply, 'user', {
      organizationId: org.org.id,
      userId: alice.id,
    });
    if (protocol === 'https') assert.match(headers['set-cookie']!, /; HttpOnly; SameSite=Strict; Secure$/);
    else assert.doesNotMatch(headers['set-cookie']!, /Secure/);
  }
});

test('sessions expire after 8 hours: pages go to the login page and posts do nothing', async () => {
  const c = new WebClient(t.app, '/admin');
  const before = Date.now();
  await c.login('admin', ADMIN_PASSWORD);
  const row = await t.database.db
    .selectFrom('web_sessions')
    .select(['id_hash', 'expires_at'])
    .orderBy('created_at', 'desc')
    .executeTakeFirstOrThrow();
  assert.ok(Math.abs(row.expires_at - (before + SESSION_TTL_MS)) < 5_000);
  await c.open('/admin/organizations');
  await t.database.db
    .updateTable('web_sessions')
    .set({ expires_at: Date.now() - 1 })
    .where('id_hash', '=', row.id_hash)
    .execute();
  const page = await c.get('/admin/organizations');
  assert.equal(page.status, 303);
  assert.equal(page.location, '/admin/login?next=%2Fadmin%2Forganizations');
  const post = await c.post('/admin/organizations', { domain: 'expired.example.com', name: 'Late' });
  assert.equal(post.status, 303);
  assert.equal(post.location, '/admin/login');
  assert.equal(await new OrganizationRepository(t.database.db).getByDomain('expired.example.com'), undefined);
});

test('after login only paths inside the same area are followed (no open redirect)', async () => {
  assert.equal(safeNext('/admin/tickets', '/admin'), '/admin/tickets');
  for (const bad of [
    'https://evil.example',
    '//evil.example',
    '/admin//evil.example',
    '/portal',
    '/admin\\x',
    'x',
    7,
  ]) {
    assert.equal(safeNext(bad, '/admin'), '/admin', String(bad));
  }
  const c = new WebClient(t.app, '/admin');
  const r = await c.post(
    '/admin/login',
    { username: 'admin', password: ADMIN_PASSWORD, next: '//evil.example/' },
    { csrf: null },
  );
  assert.equal(r.location, '/admin');
});

test('success messages come from a fixed list, nothing from the URL is shown', async () => {
  for (const done of ['__proto__', 'constructor', '<b>hi</b>', 'toString']) {
    const r = await admin.get(`/admin/organizations?done=${encodeURIComponent(done)}`);
    assert.equal(r.status, 200);
    assert.doesNotMatch(r.body, /class="flash/);
  }
});

test('logins are rate limited per account and address: 429 with Retry-After, even for the right password', async () => {
  const limited = await startTestApp({ config: { passwordTryLimit: 3 } });
  try {
    await ensureAdmin(limited.database);
    const seeded = await seedOrg(limited.database, limited.config, [{ userId: 'bob' }]);
    const a = new WebClient(limited.app, '/admin');
    for (let i = 0; i < 3; i++) assert.equal((await a.login('admin', 'wrong')).status, 401);
    const blocked = await a.login('admin', ADMIN_PASSWORD);
    assert.equal(blocked.status, 429);
    assert.match(String(blocked.headers['retry-after']), /^\d+$/);
    assert.ok(Number(blocked.headers['retry-after']) > 0 && Number(blocked.headers['retry-after']) <= 60);
    assert.match(blocked.body, /Too many login attempts/);
    assert.equal(blocked.headers['set-cookie'], undefined);

    const u = new WebClient(limited.app, '/portal');
    for (let i = 0; i < 3; i++) assert.equal((await u.login(`bob@${seeded.domain}`, 'wrong')).status, 401);
    const userBlocked = await u.login(`bob@${seeded.domain}`, PASSWORD);
    assert.equal(userBlocked.status, 429);
    assert.ok(Number(userBlocked.headers['retry-after']) > 0);
    // The portal login and the ticket API's HTTP Basic share the per-user budget.
    const basic = await limited.app.inject({
      method: 'POST',
      url: `/api/tickets/${seeded.domain}/bob?api=USER_INFO`,
      headers: {
        authorization: `Basic ${Buffer.from(`bob@${seeded.domain}:${PASSWORD}`).toString('base64')}`,
      },
    });
    assert.equal(basic.statusCode, 429);
  } finally {
    await limited.close();
  }
});

test('a malformed session cookie is no session: the login page (or login redirect), never a 500', async () => {
  for (const bad of ['%', '%E0%A4%A', 'abc%zz', '%%%']) {
    const cookie = `onecloud_session=${bad}`;
    for (const [path, login] of [
      ['/portal', '/portal/login'],
      ['/portal/tickets', '/portal/login?next=%2Fportal%2Ftickets'],
      ['/admin', '/admin/login'],
      ['/admin/organizations', '/admin/login?next=%2Fadmin%2Forganizations'],
    ] as const) {
      const r = await t.app.inject({ url: path, headers: { accept: 'text/html', cookie } });
      assert.equal(r.statusCode, 303, `${path} with cookie ${bad}: ${r.statusCode} ${r.body.slice(0, 200)}`);
      assert.equal(r.headers.location, login);
    }
    // A form post and logout with it do nothing but send the browser to the login page.
    for (const [url, login] of [
      ['/portal/logout', '/portal/login'],
      ['/admin/organizations', '/admin/login'],
    ] as const) {
      const post = await t.app.inject({
        method: 'POST',
        url,
        headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' },
        payload: form({ domain: 'bad-cookie.example.com', name: 'x' }),
      });
      assert.equal(post.statusCode, 303, `${url}: ${post.body.slice(0, 200)}`);
      assert.equal(post.headers.location, login);
    }
  }
  assert.equal(
    await new OrganizationRepository(t.database.db).getByDomain('bad-cookie.example.com'),
    undefined,
  );
});
