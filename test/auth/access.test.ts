import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { forEachDialect } from '../db/helpers.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { addSoftphone, PASSWORD, seedOrg, userToken, type SeededOrg } from '../helpers/fixtures.js';
import { setExternalApiGrants } from '../../src/areas/externalapi/service.js';
import { UserGroupRepository } from '../../src/areas/usergroups/repository.js';
import { TicketRepository } from '../../src/areas/tickets/repository.js';
import { legacyPasswordToken } from '../../src/security/tokens.js';
import { passwordVerifications } from '../../src/security/passwords.js';
import { WebClient } from '../web/helpers.js';

const basic = (user: string, domain: string, password = PASSWORD) =>
  `Basic ${Buffer.from(`${user}@${domain}:${password}`).toString('base64')}`;

forEachDialect('tickets and access', (ctx) => {
  let t: TestApp;
  let o: SeededOrg;
  before(async () => {
    t = await startTestApp({ database: ctx.handle });
    o = await seedOrg(ctx.handle, t.config, [
      { userId: 'alice' },
      { userId: 'bob' },
      { userId: 'boss', superuser: true },
    ]);
    await addSoftphone(ctx.handle, o, 'alice', "Alice's softphone");
  });
  after(async () => t.close());

  const shortlist = (token: string, user = 'alice') =>
    t.app.inject({
      url: `/api/device/info/v1/shortlist/${o.domain}/${user}`,
      headers: { authorization: `Bearer ${token}` },
    });

  test('the ticket API creates a ticket with HTTP Basic; the token works at once', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: `/api/tickets/${o.domain}/alice?platform=other&api=USER_INFO&api=CONTACT&name=CRM%20connector`,
      headers: { authorization: basic('alice', o.domain) },
    });
    assert.equal(res.statusCode, 200, res.body);
    const body = JSON.parse(res.body) as {
      name: string;
      expires: string;
      allowedApis: string[];
      token: string;
    };
    assert.deepEqual(Object.keys(body).sort(), ['allowedApis', 'expires', 'name', 'token']);
    assert.equal(body.name, 'CRM connector');
    assert.deepEqual(body.allowedApis, ['USER_INFO', 'CONTACT']);
    assert.match(body.token, /^\d+\.[A-Za-z0-9_-]{43}$/);
    const days = (Date.parse(body.expires) - Date.now()) / 86_400_000;
    assert.ok(days > 364 && days <= 365, `expires in 365 days (${days})`);
    const list = await shortlist(body.token);
    assert.equal(list.statusCode, 200, list.body);
    const devices = JSON.parse(list.body) as { deviceId: string }[];
    // The real shape, exactly these four fields.
    assert.deepEqual(devices, [
      {
        deviceId: devices[0]!.deviceId,
        deviceType: 'SOFTPHONE',
        deviceName: "Alice's softphone",
        deviceIcon: 'DEFAULT',
      },
    ]);
    assert.match(devices[0]!.deviceId, /^2\.[0-9a-f-]{36}$/);
  });

  test('t= works like Bearer, in JSON and XML, and never reaches a log line', async () => {
    const token = await userToken(ctx.handle, t.config, o, 'alice', ['CONTACT']);
    const res = await t.app.inject({
      url: `/api/contacts/list/${o.domain}/alice?t=${encodeURIComponent(token)}`,
      headers: { accept: 'application/xml' },
    });
    assert.equal(res.statusCode, 200, res.body);
    assert.match(res.body, new RegExp(`<contacts><contact><id>alice@${o.domain.replace(/\./g, '\\.')}</id>`));
    const json = await t.app.inject({ url: `/api/contacts/list/${o.domain}/alice?t=${token}` });
    const contacts = (JSON.parse(json.body) as { contact: { id: string; email: string }[] }).contact;
    assert.deepEqual(
      contacts.map((c) => c.id),
      ['alice', 'bob', 'boss'].map((u) => `${u}@${o.domain}`),
    );
    assert.equal(contacts[0]!.email, `alice@${o.domain}`);
    assert.doesNotMatch(JSON.stringify(t.logs.lines), new RegExp(token.split('.')[1]!.slice(0, 20)));
  });

  test('the t= token never reaches a log line, however the parameter name is spelled', async () => {
    const token = await userToken(ctx.handle, t.config, o, 'alice', ['CONTACT']);
    const secret = token.split('.')[1]!;
    const legacy = legacyPasswordToken('alice', o.domain, PASSWORD, ['CONTACT']);
    const legacySecret = legacy.split('.')[1]!;
    const before = t.logs.lines.length;
    const url = (name: string, value: string) =>
      `/api/contacts/list/${o.domain}/alice?jsonver=2&${name}=${value}`;
    // These authenticate: the query parser decodes the name.
    for (const name of ['t', '%74']) {
      for (const value of [token, encodeURIComponent(token), token.replace(/-/g, '%2D')]) {
        const res = await t.app.inject({ url: url(name, value) });
        assert.equal(res.statusCode, 200, `${name}=${value}: ${res.body}`);
      }
      const created = await t.app.inject({
        method: 'POST',
        url: `/api/tickets/${o.domain}/alice?${name}=${encodeURIComponent(legacy)}`,
      });
      assert.equal(created.statusCode, 200, created.body);
    }
    // These do not authenticate (names are case-sensitive), and are redacted all the same.
    for (const name of ['T', '%54', 'token', 'x']) {
      const res = await t.app.inject({ url: url(name, token) });
      assert.equal(res.statusCode, 401, name);
    }
    const lines = JSON.stringify(t.logs.lines.slice(before));
    assert.match(lines, /\[redacted\]/);
    assert.doesNotMatch(lines, new RegExp(secret.slice(0, 16)));
    assert.doesNotMatch(lines, new RegExp(encodeURIComponent(legacySecret).slice(0, 16)));
    assert.doesNotMatch(lines, new RegExp(legacySecret.slice(0, 16).replace(/[+/]/g, '.')));
  });

  test('HTTP Basic runs scrypt once for an unknown user or domain, as for a wrong password', async () => {
    const cases: [string, string, string, number][] = [
      ['alice', o.domain, PASSWORD, 200],
      ['alice', o.domain, 'wrong password', 401],
      ['nobody', o.domain, PASSWORD, 401],
      ['alice', 'no-such-domain.example', PASSWORD, 401],
    ];
    for (const [user, domain, password, status] of cases) {
      const before = passwordVerifications();
      const res = await t.app.inject({
        url: `/api/tickets/${domain}/${user}`,
        headers: { authorization: basic(user, domain, password) },
      });
      assert.equal(res.statusCode, status, `${user}@${domain}: ${res.body}`);
      assert.equal(passwordVerifications() - before, 1, `${user}@${domain}/${password}: one scrypt`);
      if (status === 401) assert.match(res.body, /"invalid credentials"/);
    }
  });

  test('asking for an API the user is not allowed is 403, naming it', async () => {
    await setExternalApiGrants(ctx.handle, 'test', o.org, 'ORGANIZATION', 0, [
      'USER_INFO',
      'CONTACT',
      'EVENT_CHANNEL',
    ]);
    try {
      const res = await t.app.inject({
        method: 'POST',
        url: `/api/tickets/${o.domain}/alice?api=USER_INFO&api=SMS&api=CALL_CONTROL`,
        headers: { authorization: basic('alice', o.domain) },
      });
      assert.equal(res.statusCode, 403);
      assert.match(res.body, /SMS, CALL_CONTROL/);
      assert.doesNotMatch(res.body, /USER_INFO,/);
    } finally {
      await setExternalApiGrants(ctx.handle, 'test', o.org, 'ORGANIZATION', 0, [
        'USER_INFO',
        'CONTACT',
        'SMS',
        'CALL_CONTROL',
        'EVENT_CHANNEL',
      ]);
    }
  });

  test('revocation takes effect on the very next request', async () => {
    const create = await t.app.inject({
      method: 'POST',
      url: `/api/tickets/${o.domain}/alice?api=USER_INFO`,
      headers: { authorization: basic('alice', o.domain) },
    });
    const { token } = JSON.parse(create.body) as { token: string };
    assert.equal((await shortlist(token)).statusCode, 200);
    const id = token.split('.')[0];
    const del = await t.app.inject({
      method: 'POST',
      url: `/api/tickets/${o.domain}/alice/${id}`,
      headers: { authorization: basic('alice', o.domain), 'x-http-method-override': 'DELETE' },
    });
    assert.equal(del.statusCode, 200, del.body);
    assert.equal((JSON.parse(del.body) as { status: string }).status, 'revoked');
    const after = await shortlist(token);
    assert.equal(after.statusCode, 401);
    assert.match(after.body, /ticket revoked/);
    const listed = await t.app.inject({
      url: `/api/tickets/${o.domain}/alice`,
      headers: { authorization: basic('alice', o.domain) },
    });
    const tickets = (JSON.parse(listed.body) as { tickets: { id: number; status: string }[] }).tickets;
    assert.equal(tickets.find((x) => x.id === Number(id))?.status, 'revoked');
    assert.doesNotMatch(listed.body, /"token"/);
  });

  test('External API authorization is read on every request, at all three levels', async () => {
    const token = await userToken(ctx.handle, t.config, o, 'bob', ['USER_INFO']);
    assert.equal((await shortlist(token, 'bob')).statusCode, 200);
    await setExternalApiGrants(ctx.handle, 'test', o.org, 'ORGANIZATION', 0, ['CONTACT']);
    const denied = await shortlist(token, 'bob');
    assert.equal(denied.statusCode, 403);
    assert.match(denied.body, /External API authorization does not allow USER_INFO/);
    // A user group grant gives it back to the group's members.
    const group = await new UserGroupRepository(ctx.handle.db).create(o.org.id, { name: 'Integrations' });
    await new UserGroupRepository(ctx.handle.db).addMember(o.org.id, group.id, o.users.bob!.id);
    await setExternalApiGrants(ctx.handle, 'test', o.org, 'USER_GROUP', group.id, ['USER_INFO']);
    assert.equal((await shortlist(token, 'bob')).statusCode, 200);
    await setExternalApiGrants(ctx.handle, 'test', o.org, 'USER_GROUP', group.id, []);
    assert.equal((await shortlist(token, 'bob')).statusCode, 403);
    // And a user-level grant, to that user only.
    await setExternalApiGrants(ctx.handle, 'test', o.org, 'USER', o.users.bob!.id, ['USER_INFO']);
    assert.equal((await shortlist(token, 'bob')).statusCode, 200);
    await setExternalApiGrants(ctx.handle, 'test', o.org, 'USER', o.users.bob!.id, []);
    await setExternalApiGrants(ctx.handle, 'test', o.org, 'ORGANIZATION', 0, [
      'USER_INFO',
      'CONTACT',
      'SMS',
      'CALL_CONTROL',
      'EVENT_CHANNEL',
    ]);
  });

  test("a superuser's ticket gets 403 on the user APIs", async () => {
    const token = await userToken(ctx.handle, t.config, o, 'boss', ['CONTACT']);
    const res = await t.app.inject({
      url: `/api/contacts/list/${o.domain}/boss`,
      headers: { authorization: `Bearer ${token}` },
    });
    assert.equal(res.statusCode, 403);
    assert.match(res.body, /superuser/);
  });

  test('the legacy password token creates tickets, and can be switched off', async () => {
    const legacy = legacyPasswordToken('alice', o.domain, PASSWORD, ['CONTACT', 'USER_INFO']);
    const res = await t.app.inject({
      method: 'POST',
      url: `/api/tickets/${o.domain}/alice?t=${encodeURIComponent(legacy)}`,
    });
    assert.equal(res.statusCode, 200, res.body);
    assert.deepEqual((JSON.parse(res.body) as { allowedApis: string[] }).allowedApis, [
      'CONTACT',
      'USER_INFO',
    ]);
    const wrong = legacyPasswordToken('alice', o.domain, 'not the password', ['CONTACT']);
    assert.equal(
      (
        await t.app.inject({
          method: 'POST',
          url: `/api/tickets/${o.domain}/alice?t=${encodeURIComponent(wrong)}`,
        })
      ).statusCode,
      401,
    );
    const off = await startTestApp({ database: ctx.handle, config: { legacyPasswordTokens: false } });
    try {
      const refused = await off.app.inject({
        method: 'POST',
        url: `/api/tickets/${o.domain}/alice?t=${encodeURIComponent(legacy)}`,
      });
      assert.equal(refused.statusCode, 401);
      assert.match(refused.body, /switched off/);
    } finally {
      await off.app.close();
    }
  });

  test('the legacy password token creates tickets only for the APIs it was signed for', async () => {
    const legacy = legacyPasswordToken('alice', o.domain, PASSWORD, ['USER_INFO']);
    const before = await new TicketRepository(ctx.handle.db).listByUser(o.org.id, o.users.alice!.id, {
      includeRevoked: true,
    });
    for (const query of ['api=SMS&api=CALL_CONTROL', 'api=USER_INFO&api=SMS&api=CALL_CONTROL']) {
      const res = await t.app.inject({
        method: 'POST',
        url: `/api/tickets/${o.domain}/alice?${query}&t=${encodeURIComponent(legacy)}`,
      });
      assert.equal(res.statusCode, 403, res.body);
      assert.match(res.body, /signed for USER_INFO; it cannot create a ticket for: SMS, CALL_CONTROL"/);
    }
    const after = await new TicketRepository(ctx.handle.db).listByUser(o.org.id, o.users.alice!.id, {
      includeRevoked: true,
    });
    assert.equal(after.length, before.length, 'no ticket was created');
    // Within the signed list (or without api=) it works.
    for (const query of ['api=USER_INFO&', '']) {
      const ok = await t.app.inject({
        method: 'POST',
        url: `/api/tickets/${o.domain}/alice?${query}t=${encodeURIComponent(legacy)}`,
      });
      assert.equal(ok.statusCode, 200, ok.body);
      assert.deepEqual((JSON.parse(ok.body) as { allowedApis: string[] }).allowedApis, ['USER_INFO']);
    }
    // HTTP Basic has no signed list: it may ask for any API the user is allowed.
    const basicOk = await t.app.inject({
      method: 'POST',
      url: `/api/tickets/${o.domain}/alice?api=SMS&api=CALL_CONTROL`,
      headers: { authorization: basic('alice', o.domain) },
    });
    assert.equal(basicOk.statusCode, 200, basicOk.body);
  });

  test('repeated authentication failures are answered 429 with Retry-After', async () => {
    const strict = await startTestApp({
      database: ctx.handle,
      config: { authFailureLimit: 3, passwordTryLimit: 2 },
    });
    try {
      const post = () =>
        strict.app.inject({
          method: 'POST',
          url: `/api/tickets/${o.domain}/bob?api=CONTACT`,
          headers: { authorization: basic('bob', o.domain) },
        });
      assert.equal((await post()).statusCode, 200);
      assert.equal((await post()).statusCode, 200);
      const tooMany = await post();
      assert.equal(tooMany.statusCode, 429);
      assert.ok(Number(tooMany.headers['retry-after']) > 0);
      // Failures block the address for everything that authenticates.
      const bad = () =>
        strict.app.inject({
          url: `/api/contacts/list/${o.domain}/alice`,
          headers: { authorization: 'Bearer 1.AAAAAAAAAAAAAAAAAAAAAAAA' },
        });
      for (let i = 0; i < 3; i++) assert.equal((await bad()).statusCode, 401);
      const limited = await bad();
      assert.equal(limited.statusCode, 429);
      assert.ok(Number(limited.headers['retry-after']) > 0);
    } finally {
      await strict.app.close();
    }
  });

  test('ticket creation has one hourly budget per user across the ticket API and the portal (429 + Retry-After)', async () => {
    const limited = await startTestApp({ database: ctx.handle, config: { ticketCreateLimit: 2 } });
    try {
      const repo = new TicketRepository(ctx.handle.db);
      const count = async () =>
        (await repo.listByUser(o.org.id, o.users.bob!.id, { includeRevoked: true })).length;
      const before = await count();
      const viaApi = (user = 'bob') =>
        limited.app.inject({
          method: 'POST',
          url: `/api/tickets/${o.domain}/${user}?api=CONTACT`,
          headers: { authorization: basic(user, o.domain) },
        });
      const portal = new WebClient(limited.app, '/portal');
      assert.equal((await portal.login(`bob@${o.domain}`, PASSWORD)).status, 303);
      await portal.open('/portal/tickets');
      const viaPortal = () => portal.post('/portal/tickets', { name: 'p', 'api.CONTACT': 'on' });

      assert.equal((await viaApi()).statusCode, 200);
      assert.equal((await viaPortal()).status, 200);
      // The budget of 2 is spent, whichever way the next one is asked for.
      const api = await viaApi();
      assert.equal(api.statusCode, 429, api.body);
      const wait = Number(api.headers['retry-after']);
      assert.ok(wait > 0 && wait <= 3600, `Retry-After ${String(api.headers['retry-after'])}`);
      assert.match(api.body, /too many tickets created for this user; try again in \d+ s/);
      const page = await viaPortal();
      assert.equal(page.status, 429);
      const pageWait = Number(page.headers['retry-after']);
      assert.ok(pageWait > 0 && pageWait <= 3600, `Retry-After ${String(page.headers['retry-after'])}`);
      assert.match(page.body, /too many tickets created for this user/);
      assert.equal(await count(), before + 2, 'refused requests create nothing');
      // Another user has a budget of its own.
      assert.equal((await viaApi('alice')).statusCode, 200);
    } finally {
      await limited.app.close();
    }
  });

  test('user info shows my profile', async () => {
    const token = await userToken(ctx.handle, t.config, o, 'alice', ['USER_INFO']);
    const res = await t.app.inject({
      url: `/api/user/info/v1/${o.domain}/alice`,
      headers: { authorization: `Bearer ${token}` },
    });
    assert.equal(res.statusCode, 200);
    const body = JSON.parse(res.body) as Record<string, unknown>;
    assert.equal(body.id, `alice@${o.domain}`);
    assert.equal(body.availability, 'AVAILABLE');
    assert.equal(body.password, undefined);
  });
});
