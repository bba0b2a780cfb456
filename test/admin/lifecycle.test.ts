import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { forEachDialect, uniqueDomain } from '../db/helpers.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { systemTicket } from '../helpers/fixtures.js';
import { admin, http, type ErrorAnswer, type Page, type Rec, type Ticket } from './helpers.js';
import { AuditRepository } from '../../src/areas/audit/repository.js';

interface UserView {
  id: string;
  userId: string;
  role: string;
  firstName: string;
  email: string | null;
  extension: string | null;
  hasPassword: boolean;
  groups: { id: number; name: string }[];
}
interface AuditView {
  id: number;
  at: string;
  actor: string;
  action: string;
  entityId: string;
  data: Rec;
}

const basic = (user: string, domain: string, password: string) =>
  `Basic ${Buffer.from(`${user}@${domain}:${password}`).toString('base64')}`;

forEachDialect('admin API lifecycle', (ctx) => {
  let t: TestApp;
  let sys: Ticket;
  let actor: string;

  before(async () => {
    t = await startTestApp({ database: ctx.handle });
    const created = await systemTicket(ctx.handle, t.config, ['ADMIN']);
    sys = created;
    actor = `ticket:${created.id}`;
  });
  after(async () => t.close());

  const eventsOf = async (type: string) =>
    ctx.handle.db.selectFrom('events').select(['type', 'data']).where('type', '=', type).execute();

  async function newOrg(): Promise<string> {
    const domain = uniqueDomain('adm');
    const res = await admin(t, sys, 'POST', '/api/admin/organizations', { domain, name: `Org ${domain}` });
    assert.equal(res.status, 201, res.body);
    return domain;
  }

  test('organizations: create, get, update with validation, delete refused while it has users, forced delete', async () => {
    const domain = await newOrg();
    const got = await admin(t, sys, 'GET', `/api/admin/organizations/${domain}`);
    assert.equal(got.json.name, `Org ${domain}`);

    const bad = await admin<ErrorAnswer>(t, sys, 'PUT', `/api/admin/organizations/${domain}`, {
      name: '',
      numberPlan: [{ prefix: 'x', replace: '+468' }],
      colour: 'red',
    });
    assert.equal(bad.status, 400);
    const fields = bad.json.errors!.map((e) => e.field).sort();
    assert.deepEqual(fields, ['body.colour', 'body.name', 'body.numberPlan.0.prefix']);
    assert.match(bad.json.errors!.find((e) => e.field === 'body.numberPlan.0.prefix')!.message, /digits/);

    const renamed = await admin(t, sys, 'PUT', `/api/admin/organizations/${domain}`, {
      name: 'Renamed',
      numberPlan: [{ prefix: '0', replace: '+468' }],
    });
    assert.equal(renamed.status, 200, renamed.body);
    assert.equal(renamed.json.name, 'Renamed');
    const domainChange = await admin<ErrorAnswer>(t, sys, 'PUT', `/api/admin/organizations/${domain}`, {
      domain: 'other.example.com',
    });
    assert.equal(domainChange.status, 400);
    assert.equal(domainChange.json.errors![0]!.field, 'body.domain');

    const dup = await admin(t, sys, 'POST', '/api/admin/organizations', { domain, name: 'again' });
    assert.equal(dup.status, 409);
    assert.match(dup.body, new RegExp(domain.replace(/\./g, '\\.')));

    assert.equal((await admin(t, sys, 'POST', `/api/admin/users/${domain}`, { userId: 'u1' })).status, 201);
    const refused = await admin(t, sys, 'DELETE', `/api/admin/organizations/${domain}`);
    assert.equal(refused.status, 409);
    assert.match(refused.body, /1 user.*force=true/);

    const forced = await admin(t, sys, 'DELETE', `/api/admin/organizations/${domain}?force=true`);
    assert.equal(forced.status, 200, forced.body);
    assert.deepEqual(forced.json.deleted, domain);
    assert.equal((forced.json.removed as Rec).users, 1);
    assert.equal((await admin(t, sys, 'GET', `/api/admin/organizations/${domain}`)).status, 404);
    const deletedEvents = await eventsOf('organization.deleted');
    assert.ok(deletedEvents.some((e) => e.data.includes(domain)));
  });

  test('organizations: Location of a created one is its own URL (domain lowercased), and it answers there', async () => {
    const domain = uniqueDomain('Loc-Upper');
    const created = await admin(t, sys, 'POST', '/api/admin/organizations', { domain, name: 'Located' });
    assert.equal(created.status, 201, created.body);
    const location = created.headers.location!;
    assert.equal(location, `/api/admin/organizations/${domain.toLowerCase()}`);
    assert.equal(created.json.domain, domain.toLowerCase());
    const there = await admin(t, sys, 'GET', location);
    assert.equal(there.status, 200, there.body);
    assert.equal(there.json.name, 'Located');
  });

  test('a forced organization delete removes its devices and ends its tickets, not only its users', async () => {
    const domain = await newOrg();
    await admin(t, sys, 'PUT', `/api/admin/externalapi/${domain}`, { apis: ['USER_INFO'] });
    await admin(t, sys, 'POST', `/api/admin/users/${domain}`, { userId: 'owner' });
    const phone = await admin(t, sys, 'POST', `/api/admin/devices/${domain}/owner`, {
      deviceType: 'SOFTPHONE',
    });
    assert.equal(phone.status, 201, phone.body);
    const sipUser = (phone.json.sip as { username: string }).username;
    const ticket = await admin(t, sys, 'POST', `/api/admin/tickets/${domain}`, {
      user: 'owner',
      apis: ['USER_INFO'],
    });
    assert.equal(ticket.status, 201, ticket.body);
    const bearer = { authorization: `Bearer ${String(ticket.json.token)}` };
    const info = `/api/user/info/v1/${domain}/owner`;
    assert.equal((await http(t, 'GET', info, bearer)).status, 200);

    const forced = await admin(t, sys, 'DELETE', `/api/admin/organizations/${domain}?force=true`);
    assert.equal(forced.status, 200, forced.body);
    assert.deepEqual(forced.json.removed, {
      users: 1,
      devices: 1,
      userGroups: 0,
      acdGroups: 0,
      numbers: 0,
      tickets: 1,
    });
    assert.equal((await http(t, 'GET', info, bearer)).status, 401, 'the ticket no longer works');
    const devices = await ctx.handle.db
      .selectFrom('devices')
      .select('id')
      .where('sip_username', '=', sipUser)
      .execute();
    assert.equal(devices.length, 0, 'the SIP account is gone');
    const tickets = await ctx.handle.db
      .selectFrom('tickets')
      .select('id')
      .where('id', '=', ticket.json.id as number)
      .execute();
    assert.equal(tickets.length, 0, 'the ticket row is gone');
  });

  test('users: create, 409 naming the id, get, update, groups, password, method override, list, delete', async () => {
    const domain = await newOrg();
    const group = await admin(t, sys, 'POST', `/api/admin/usergroups/${domain}`, { name: 'Sales' });
    assert.equal(group.status, 201, group.body);
    const groupId = group.json.id as number;

    const created = await admin<UserView>(t, sys, 'POST', `/api/admin/users/${domain}`, {
      userId: 'aki.huolman',
      firstName: 'Aki',
      lastName: 'Huolman',
      email: 'aki@example.com',
      extension: '2001',
      groups: [groupId],
    });
    assert.equal(created.status, 201, created.body);
    assert.equal(created.headers.location, `/api/admin/users/${domain}/aki.huolman`);
    assert.equal(created.json.id, `aki.huolman@${domain}`);
    assert.deepEqual(created.json.groups, [{ id: groupId, name: 'Sales' }]);
    assert.equal(created.json.hasPassword, false);

    const dup = await admin(t, sys, 'POST', `/api/admin/users/${domain}`, { userId: 'aki.huolman' });
    assert.equal(dup.status, 409);
    assert.match(String(dup.json.validationResult), /"aki\.huolman" already exists/);
    const dupExt = await admin(t, sys, 'POST', `/api/admin/users/${domain}`, {
      userId: 'other',
      extension: '2001',
    });
    assert.equal(dupExt.status, 409);
    assert.match(String(dupExt.json.validationResult), /extension "2001"/);

    const invalid = await admin<ErrorAnswer>(t, sys, 'POST', `/api/admin/users/${domain}`, {
      userId: '-bad',
      email: 'not-an-email',
      role: 'ROOT',
    });
    assert.equal(invalid.status, 400);
    const byField = new Map(invalid.json.errors!.map((e) => [e.field, e.message]));
    assert.match(byField.get('body.userId')!, /letters, digits/);
    assert.match(byField.get('body.email')!, /email/);
    assert.match(byField.get('body.role')!, /USER, SUPERUSER/);

    const got = await admin<UserView>(t, sys, 'GET', `/api/admin/users/${domain}/aki.huolman`);
    assert.equal(got.json.email, 'aki@example.com');
    assert.equal((await admin(t, sys, 'GET', `/api/admin/users/${domain}/nobody`)).status, 404);

    const updated = await admin<UserView>(t, sys, 'PUT', `/api/admin/users/${domain}/aki.huolman`, {
      role: 'SUPERUSER',
      email: null,
      groups: [],
    });
    assert.equal(updated.status, 200, updated.body);
    assert.equal(updated.json.role, 'SUPERUSER');
    assert.equal(updated.json.email, null);
    assert.deepEqual(updated.json.groups, []);
    assert.equal(updated.json.firstName, 'Aki', 'fields left out stay');

    const pwInPut = await admin<ErrorAnswer>(t, sys, 'PUT', `/api/admin/users/${domain}/aki.huolman`, {
      password: 'x',
    });
    assert.equal(pwInPut.status, 400);
    assert.equal(pwInPut.json.errors![0]!.field, 'body.password');

    // Method override: POST + X-HTTP-Method-Override: PUT is answered as a PUT.
    const overridden = await admin<UserView>(
      t,
      sys,
      'POST',
      `/api/admin/users/${domain}/aki.huolman`,
      { firstName: 'Akseli' },
      { headers: { 'x-http-method-override': 'PUT' } },
    );
    assert.equal(overridden.status, 200, overridden.body);
    assert.equal(overridden.json.firstName, 'Akseli');

    // Password: set, then HTTP Basic works on the ticket API; generate, shown once.
    const set = await admin(t, sys, 'POST', `/api/admin/users/${domain}/aki.huolman/password`, {
      password: 'a new password',
    });
    assert.equal(set.status, 200, set.body);
    assert.equal(set.json.password, undefined);
    await admin(t, sys, 'PUT', `/api/admin/users/${domain}/aki.huolman`, { role: 'USER' });
    const basicOk = await http(t, 'GET', `/api/tickets/${domain}/aki.huolman`, {
      authorization: basic('aki.huolman', domain, 'a new password'),
    });
    assert.equal(basicOk.status, 200, basicOk.body);
    const gen = await admin(t, sys, 'POST', `/api/admin/users/${domain}/aki.huolman/password`, {
      generate: true,
    });
    assert.equal(gen.status, 200);
    const generated = gen.json.password as string;
    assert.ok(generated.length >= 16);
    const oldFails = await http(t, 'GET', `/api/tickets/${domain}/aki.huolman`, {
      authorization: basic('aki.huolman', domain, 'a new password'),
    });
    assert.equal(oldFails.status, 401);
    const neither = await admin(t, sys, 'POST', `/api/admin/users/${domain}/aki.huolman/password`, {});
    assert.equal(neither.status, 400);

    const list = await admin<Page<UserView>>(t, sys, 'GET', `/api/admin/users/${domain}`);
    assert.deepEqual(
      list.json.items.map((u) => u.userId),
      ['aki.huolman'],
    );

    // Every change is in the audit log and the event log.
    const audit = await new AuditRepository(ctx.handle.db).list(
      (
        await ctx.handle.db
          .selectFrom('organizations')
          .select('id')
          .where('domain', '=', domain)
          .executeTakeFirstOrThrow()
      ).id,
      { limit: 100 },
    );
    const actions = audit.items.map((a) => a.action);
    for (const a of ['user.created', 'user.updated', 'user.password_changed', 'usergroup.created'])
      assert.ok(actions.includes(a), `audit has ${a}: ${actions.join(', ')}`);
    assert.ok(audit.items.every((a) => a.actor === actor || a.action === 'organization.created'));
    assert.ok((await eventsOf('user.password_changed')).length > 0);
  });

  test('deleting a user revokes its tickets (audited), deletes its devices and releases its numbers', async () => {
    const domain = await newOrg();
    await admin(t, sys, 'PUT', `/api/admin/externalapi/${domain}`, { apis: ['CONTACT', 'USER_INFO'] });
    await admin(t, sys, 'POST', `/api/admin/users/${domain}`, { userId: 'leaver' });
    const ticket = await admin(t, sys, 'POST', `/api/admin/tickets/${domain}`, {
      user: 'leaver',
      apis: ['USER_INFO'],
    });
    assert.equal(ticket.status, 201, ticket.body);
    const token = ticket.json.token as string;
    const info = `/api/user/info/v1/${domain}/leaver`;
    assert.equal((await http(t, 'GET', info, { authorization: `Bearer ${token}` })).status, 200);
    const phone = await admin(t, sys, 'POST', `/api/admin/devices/${domain}/leaver`, {
      deviceType: 'SOFTPHONE',
    });
    assert.equal(phone.status, 201, phone.body);
    await admin(t, sys, 'POST', `/api/admin/numbers/${domain}`, { number: '+46855500100' });
    await admin(t, sys, 'PUT', `/api/admin/numbers/${domain}/%2B46855500100`, { user: 'leaver' });

    const del = await admin(t, sys, 'DELETE', `/api/admin/users/${domain}/leaver`);
    assert.equal(del.status, 200, del.body);
    const removed = del.json.removed as {
      devices: string[];
      ticketsRevoked: number[];
      numbersReleased: string[];
    };
    assert.deepEqual(removed.devices, [phone.json.deviceId]);
    assert.deepEqual(removed.ticketsRevoked, [ticket.json.id]);
    assert.deepEqual(removed.numbersReleased, ['+46855500100']);

    assert.equal((await admin(t, sys, 'GET', `/api/admin/users/${domain}/leaver`)).status, 404);
    assert.equal((await http(t, 'GET', info, { authorization: `Bearer ${token}` })).status, 401);
    const n = await admin(t, sys, 'GET', `/api/admin/numbers/${domain}/%2B46855500100`);
    assert.equal(n.json.user, null);
    const audit = await admin<Page<AuditView>>(t, sys, 'GET', `/api/admin/audit/${domain}?limit=500`);
    const actions = audit.json.items.map((a) => `${a.action} ${a.entityId}`);
    assert.ok(actions.includes(`ticket.revoked ${String(ticket.json.id)}`), actions.join('\n'));
    assert.ok(actions.includes(`device.deleted ${String(phone.json.deviceId)}`));
    assert.ok(actions.includes(`user.deleted leaver@${domain}`));
    const types = (await eventsOf('device.deleted')).length + (await eventsOf('user.deleted')).length;
    assert.ok(types >= 2);
  });

  test('user groups: members and roles', async () => {
    const domain = await newOrg();
    for (const u of ['ann', 'ben', 'cid'])
      await admin(t, sys, 'POST', `/api/admin/users/${domain}`, { userId: u });
    const g = await admin(t, sys, 'POST', `/api/admin/usergroups/${domain}`, {
      name: 'Support',
      roles: ['ACD_SUPERVISOR'],
      members: ['ann', 'ben'],
    });
    assert.equal(g.status, 201, g.body);
    const id = g.json.id as number;
    assert.equal(g.headers.location, `/api/admin/usergroups/${domain}/${id}`);
    assert.equal(g.json.memberCount, 2);
    const dup = await admin(t, sys, 'POST', `/api/admin/usergroups/${domain}`, { name: 'Support' });
    assert.equal(dup.status, 409);
    assert.match(String(dup.json.validationResult), /"Support"/);
    const unknown = await admin<ErrorAnswer>(t, sys, 'POST', `/api/admin/usergroups/${domain}`, {
      name: 'X',
      members: ['ghost'],
    });
    assert.equal(unknown.status, 400);
    assert.match(unknown.json.errors![0]!.message, /"ghost"/);

    const members = await admin<Page<{ userId: string }>>(
      t,
      sys,
      'GET',
      `/api/admin/usergroups/${domain}/${id}/members`,
    );
    assert.deepEqual(
      members.json.items.map((m) => m.userId),
      ['ann', 'ben'],
    );
    assert.equal(
      (await admin(t, sys, 'PUT', `/api/admin/usergroups/${domain}/${id}/members/cid`)).json.added,
      true,
    );
    assert.equal(
      (await admin(t, sys, 'DELETE', `/api/admin/usergroups/${domain}/${id}/members/ann`)).status,
      200,
    );
    assert.equal(
      (await admin(t, sys, 'DELETE', `/api/admin/usergroups/${domain}/${id}/members/ann`)).status,
      404,
    );
    const replaced = await admin(t, sys, 'PUT', `/api/admin/usergroups/${domain}/${id}/members`, {
      members: ['cid'],
    });
    assert.equal(replaced.json.memberCount, 1);

    const roles = await admin(t, sys, 'PUT', `/api/admin/usergroups/${domain}/${id}/roles`, {
      roles: ['ACD_SUPERVISOR', 'REPORTS_VIEWER'],
    });
    assert.deepEqual(roles.json.roles, ['ACD_SUPERVISOR', 'REPORTS_VIEWER']);
    const badRole = await admin<ErrorAnswer>(t, sys, 'PUT', `/api/admin/usergroups/${domain}/${id}/roles`, {
      roles: ['lower'],
    });
    assert.equal(badRole.status, 400);
    assert.equal(badRole.json.errors![0]!.field, 'body.roles.0');

    const renamed = await admin(t, sys, 'PUT', `/api/admin/usergroups/${domain}/${id}`, {
      name: 'Support 2',
    });
    assert.equal(renamed.json.name, 'Support 2');
    const user = await admin<UserView>(t, sys, 'GET', `/api/admin/users/${domain}/cid`);
    assert.deepEqual(user.json.groups, [{ id, name: 'Support 2' }]);

    const del = await admin(t, sys, 'DELETE', `/api/admin/usergroups/${domain}/${id}`);
    assert.equal(del.status, 200);
    assert.equal((del.json.removed as Rec).memberships, 1);
    assert.equal((await admin(t, sys, 'GET', `/api/admin/usergroups/${domain}/${id}`)).status, 404);
    assert.equal((await admin(t, sys, 'GET', `/api/admin/users/${domain}/cid`)).status, 200, 'users stay');
  });

  test('External API authorization at three levels, and the effective set with its sources', async () => {
    const domain = await newOrg();
    await admin(t, sys, 'POST', `/api/admin/users/${domain}`, { userId: 'eve' });
    const g = await admin(t, sys, 'POST', `/api/admin/usergroups/${domain}`, {
      name: 'Callers',
      members: ['eve'],
    });
    const gid = g.json.id as number;
    assert.deepEqual(
      (await admin(t, sys, 'PUT', `/api/admin/externalapi/${domain}`, { apis: ['CONTACT'] })).json.apis,
      ['CONTACT'],
    );
    assert.equal(
      (
        await admin(t, sys, 'PUT', `/api/admin/externalapi/${domain}/usergroups/${gid}`, {
          apis: ['CALL_CONTROL', 'CONTACT'],
        })
      ).status,
      200,
    );
    assert.equal(
      (await admin(t, sys, 'PUT', `/api/admin/externalapi/${domain}/users/eve`, { apis: ['SMS'] })).status,
      200,
    );
    const bad = await admin<ErrorAnswer>(t, sys, 'PUT', `/api/admin/externalapi/${domain}/users/eve`, {
      apis: ['NOPE'],
    });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.errors![0]!.field, 'body.apis.0');

    assert.deepEqual((await admin(t, sys, 'GET', `/api/admin/externalapi/${domain}/users/eve`)).json.apis, [
      'SMS',
    ]);
    assert.deepEqual(
      (await admin(t, sys, 'GET', `/api/admin/externalapi/${domain}/usergroups/${gid}`)).json.apis,
      ['CALL_CONTROL', 'CONTACT'],
    );
    const eff = await admin<{ apis: string[]; sources: { api: string; level: string; target: string }[] }>(
      t,
      sys,
      'GET',
      `/api/admin/externalapi/${domain}/users/eve/effective`,
    );
    assert.deepEqual(eff.json.apis, ['CALL_CONTROL', 'CONTACT', 'SMS']);
    const contact = eff.json.sources.filter((s) => s.api === 'CONTACT').map((s) => `${s.level}:${s.target}`);
    assert.deepEqual(contact.sort(), [`ORGANIZATION:${domain}`, `USER_GROUP:${gid}`]);
    assert.deepEqual(
      eff.json.sources.filter((s) => s.api === 'SMS').map((s) => `${s.level}:${s.target}`),
      [`USER:eve@${domain}`],
    );
    assert.equal(
      (await admin(t, sys, 'GET', `/api/admin/externalapi/${domain}/usergroups/99999`)).status,
      404,
    );
  });

  test('tickets: created for a user with the token once, listed without tokens, revoked', async () => {
    const domain = await newOrg();
    await admin(t, sys, 'POST', `/api/admin/users/${domain}`, { userId: 'tia' });
    await admin(t, sys, 'PUT', `/api/admin/externalapi/${domain}`, { apis: ['USER_INFO'] });
    const refused = await admin(t, sys, 'POST', `/api/admin/tickets/${domain}`, {
      user: 'tia',
      apis: ['SMS'],
    });
    assert.equal(refused.status, 403);
    assert.match(refused.body, /SMS/);
    const created = await admin(t, sys, 'POST', `/api/admin/tickets/${domain}`, {
      user: 'tia',
      apis: ['USER_INFO'],
      name: 'integration',
      days: 30,
    });
    assert.equal(created.status, 201, created.body);
    const id = created.json.id as number;
    assert.equal(created.headers.location, `/api/admin/tickets/${domain}/${id}`);
    assert.match(created.json.token as string, new RegExp(`^${id}\\.`));
    assert.equal(created.json.owner, `tia@${domain}`);

    const list = await admin<Page>(t, sys, 'GET', `/api/admin/tickets/${domain}?user=tia`);
    assert.equal(list.json.items.length, 1);
    assert.ok(!list.body.includes(created.json.token as string), 'never the token');
    assert.equal(list.json.items[0]!.token, undefined);
    const one = await admin(t, sys, 'GET', `/api/admin/tickets/${domain}/${id}`);
    assert.equal(one.json.status, 'active');
    assert.equal(one.json.token, undefined);

    const revoked = await admin(t, sys, 'DELETE', `/api/admin/tickets/${domain}/${id}`);
    assert.equal(revoked.json.status, 'revoked');
    const use = await http(t, 'GET', `/api/user/info/v1/${domain}/tia`, {
      authorization: `Bearer ${String(created.json.token)}`,
    });
    assert.equal(use.status, 401);
    assert.equal((await admin(t, sys, 'GET', `/api/admin/tickets/${domain}/999999`)).status, 404);
  });

  test('numbers: ranges, one organization at most (409 naming it), assign, release, remove', async () => {
    const domain = await newOrg();
    const other = await newOrg();
    await admin(t, sys, 'POST', `/api/admin/users/${domain}`, { userId: 'nina' });
    const added = await admin(t, sys, 'POST', `/api/admin/numbers/${domain}`, {
      number: '+46866600000',
      count: 5,
    });
    assert.equal(added.status, 201, added.body);
    assert.equal(added.json.count, 5);
    assert.equal(added.headers.location, `/api/admin/numbers/${domain}/%2B46866600000`);
    const taken = await admin(t, sys, 'POST', `/api/admin/numbers/${other}`, {
      number: '+46866600003',
      count: 10,
    });
    assert.equal(taken.status, 409);
    assert.match(taken.body, /\+46866600003/);
    const otherList = await admin<Page>(t, sys, 'GET', `/api/admin/numbers/${other}`);
    assert.equal(otherList.json.items.length, 0, 'all or nothing');
    const badNumber = await admin<ErrorAnswer>(t, sys, 'POST', `/api/admin/numbers/${domain}`, {
      number: '0701234',
    });
    assert.equal(badNumber.status, 400);
    assert.match(badNumber.json.errors![0]!.message, /E\.164/);

    const assigned = await admin(t, sys, 'PUT', `/api/admin/numbers/${domain}/%2B46866600001`, {
      user: 'nina',
    });
    assert.equal(assigned.status, 200, assigned.body);
    assert.equal(assigned.json.user, `nina@${domain}`);
    const acd = await admin(t, sys, 'POST', `/api/admin/acd-attendant-group/${domain}`, { name: 'Queue' });
    const toGroup = await admin(t, sys, 'PUT', `/api/admin/numbers/${domain}/%2B46866600002`, {
      acdGroup: acd.json.id,
    });
    assert.equal(toGroup.json.acdGroup, acd.json.id);
    const both = await admin(t, sys, 'PUT', `/api/admin/numbers/${domain}/%2B46866600002`, {
      user: 'nina',
      acdGroup: 1,
    });
    assert.equal(both.status, 400);
    const released = await admin(t, sys, 'PUT', `/api/admin/numbers/${domain}/%2B46866600001`, {
      user: null,
    });
    assert.equal(released.json.user, null);
    const list = await admin<Page<{ number: string }>>(t, sys, 'GET', `/api/admin/numbers/${domain}?limit=2`);
    assert.deepEqual(
      list.json.items.map((n) => n.number),
      ['+46866600000', '+46866600001'],
    );
    assert.ok(list.json.next);
    assert.equal((await admin(t, sys, 'DELETE', `/api/admin/numbers/${domain}/%2B46866600004`)).status, 200);
    assert.equal((await admin(t, sys, 'GET', `/api/admin/numbers/${domain}/%2B46866600004`)).status, 404);
    const reAdd = await admin(t, sys, 'POST', `/api/admin/numbers/${other}`, { number: '+46866600004' });
    assert.equal(reAdd.status, 201, 'a removed number can be added elsewhere');
  });

  test('devices: SIP accounts with the password once, mobiles, update, rotate, delete', async () => {
    const domain = await newOrg();
    await admin(t, sys, 'POST', `/api/admin/users/${domain}`, { userId: 'dan' });
    await admin(t, sys, 'POST', `/api/admin/users/${domain}`, { userId: 'dora' });
    const soft = await admin(t, sys, 'POST', `/api/admin/devices/${domain}/dan`, {
      deviceType: 'SOFTPHONE',
      deviceName: 'Laptop',
    });
    assert.equal(soft.status, 201, soft.body);
    const deviceId = soft.json.deviceId as string;
    assert.match(deviceId, /^2\./);
    assert.equal(soft.headers.location, `/api/admin/devices/${domain}/dan/${deviceId}`);
    const sip = soft.json.sip as { username: string; password: string };
    assert.ok(sip.password.length >= 20);
    const got = await admin(t, sys, 'GET', `/api/admin/devices/${domain}/dan/${deviceId}`);
    assert.equal(got.json.sip, undefined);
    assert.ok(!got.body.includes(sip.password));
    assert.equal((await admin(t, sys, 'GET', `/api/admin/devices/${domain}/dora/${deviceId}`)).status, 404);

    const mobile = await admin(t, sys, 'POST', `/api/admin/devices/${domain}/dan`, {
      deviceType: 'MOBILE',
      number: '+46701112233',
    });
    assert.equal(mobile.status, 201, mobile.body);
    assert.equal(mobile.json.deviceId, '0.+46701112233');
    assert.equal(mobile.json.sip, undefined);
    const dupMobile = await admin(t, sys, 'POST', `/api/admin/devices/${domain}/dora`, {
      deviceType: 'MOBILE',
      number: '+46701112233',
    });
    assert.equal(dupMobile.status, 409);
    assert.match(dupMobile.body, /\+46701112233/);
    const noNumber = await admin<ErrorAnswer>(t, sys, 'POST', `/api/admin/devices/${domain}/dan`, {
      deviceType: 'MOBILE',
    });
    assert.equal(noNumber.status, 400);
    assert.equal(noNumber.json.errors![0]!.field, 'body.number');

    const renamed = await admin(t, sys, 'PUT', `/api/admin/devices/${domain}/dan/${deviceId}`, {
      deviceName: 'Desk',
    });
    assert.equal(renamed.json.deviceName, 'Desk');
    const typeChange = await admin(t, sys, 'PUT', `/api/admin/devices/${domain}/dan/${deviceId}`, {
      deviceType: 'DESKPHONE',
    });
    assert.equal(typeChange.status, 400);

    const ha1 = async () =>
      (
        await ctx.handle.db
          .selectFrom('devices')
          .select('ha1_md5')
          .where('sip_username', '=', sip.username)
          .executeTakeFirstOrThrow()
      ).ha1_md5;
    const before = await ha1();
    const rotated = await admin(t, sys, 'POST', `/api/admin/devices/${domain}/dan/${deviceId}/password`);
    assert.equal(rotated.status, 200, rotated.body);
    const newSip = rotated.json.sip as { username: string; password: string };
    assert.equal(newSip.username, sip.username);
    assert.notEqual(newSip.password, sip.password);
    assert.notEqual(await ha1(), before);
    const mobileRotate = await admin(
      t,
      sys,
      'POST',
      `/api/admin/devices/${domain}/dan/0.%2B46701112233/password`,
    );
    assert.equal(mobileRotate.status, 409);

    const list = await admin<Page<{ deviceId: string }>>(t, sys, 'GET', `/api/admin/devices/${domain}/dan`);
    assert.deepEqual(
      list.json.items.map((d) => d.deviceId),
      [deviceId, '0.+46701112233'],
    );
    assert.equal((await admin(t, sys, 'DELETE', `/api/admin/devices/${domain}/dan/${deviceId}`)).status, 200);
    assert.equal((await admin(t, sys, 'GET', `/api/admin/devices/${domain}/dan/${deviceId}`)).status, 404);
    assert.ok((await eventsOf('device.password_rotated')).length > 0);
  });

  test('ACD/attendant groups: function number, settings, agents with skill levels', async () => {
    const domain = await newOrg();
    for (const u of ['agent1', 'agent2'])
      await admin(t, sys, 'POST', `/api/admin/users/${domain}`, { userId: u });
    await admin(t, sys, 'POST', `/api/admin/numbers/${domain}`, { number: '+46877700000', count: 2 });
    await admin(t, sys, 'PUT', `/api/admin/numbers/${domain}/%2B46877700001`, { user: 'agent1' });
    const taken = await admin(t, sys, 'POST', `/api/admin/acd-attendant-group/${domain}`, {
      name: 'Support',
      number: '+46877700001',
    });
    assert.equal(taken.status, 409);
    assert.match(taken.body, /\+46877700001.*agent1/);
    const created = await admin(t, sys, 'POST', `/api/admin/acd-attendant-group/${domain}`, {
      name: 'Support',
      type: 'ATTENDANT',
      distributionType: 'LONGEST_IDLE',
      number: '+46877700000',
      queueTimeoutSeconds: 120,
      overflowDestination: '+46850000000',
    });
    assert.equal(created.status, 201, created.body);
    const id = created.json.id as number;
    assert.equal(created.headers.location, `/api/admin/acd-attendant-group/${domain}/${id}`);
    assert.equal(created.json.number, '+46877700000');
    assert.equal(
      (await admin(t, sys, 'GET', `/api/admin/numbers/${domain}/%2B46877700000`)).json.acdGroup,
      id,
    );
    const bad = await admin<ErrorAnswer>(t, sys, 'POST', `/api/admin/acd-attendant-group/${domain}`, {
      name: 'X',
      type: 'QUEUE',
      queueTimeoutSeconds: -1,
    });
    assert.equal(bad.status, 400);
    assert.deepEqual(bad.json.errors!.map((e) => e.field).sort(), ['body.queueTimeoutSeconds', 'body.type']);

    const night = await admin(t, sys, 'PUT', `/api/admin/acd-attendant-group/${domain}/${id}`, {
      nightMode: true,
      number: null,
    });
    assert.equal(night.json.nightMode, true);
    assert.equal(night.json.number, null);
    assert.equal(
      (await admin(t, sys, 'GET', `/api/admin/numbers/${domain}/%2B46877700000`)).json.acdGroup,
      null,
    );

    const agent = await admin(t, sys, 'POST', `/api/admin/acd-attendant-group/${domain}/${id}/agents`, {
      user: 'agent1',
      skillLevel: 7,
    });
    assert.equal(agent.status, 201, agent.body);
    assert.equal(agent.headers.location, `/api/admin/acd-attendant-group/${domain}/${id}/agents/agent1`);
    assert.equal(agent.json.skillLevel, 7);
    const again = await admin(t, sys, 'POST', `/api/admin/acd-attendant-group/${domain}/${id}/agents`, {
      user: 'agent1',
    });
    assert.equal(again.status, 409);
    assert.match(again.body, /agent1/);
    await admin(t, sys, 'POST', `/api/admin/acd-attendant-group/${domain}/${id}/agents`, { user: 'agent2' });
    const skill = await admin(t, sys, 'PUT', `/api/admin/acd-attendant-group/${domain}/${id}/agents/agent2`, {
      skillLevel: 11,
    });
    assert.equal(skill.status, 400);
    const skillOk = await admin(
      t,
      sys,
      'PUT',
      `/api/admin/acd-attendant-group/${domain}/${id}/agents/agent2`,
      {
        skillLevel: 3,
      },
    );
    assert.equal(skillOk.json.skillLevel, 3);
    const agents = await admin<Page<{ userId: string; skillLevel: number }>>(
      t,
      sys,
      'GET',
      `/api/admin/acd-attendant-group/${domain}/${id}/agents`,
    );
    assert.deepEqual(
      agents.json.items.map((a) => `${a.userId}:${a.skillLevel}`),
      ['agent1:7', 'agent2:3'],
    );
    assert.equal(
      (await admin(t, sys, 'DELETE', `/api/admin/acd-attendant-group/${domain}/${id}/agents/agent1`)).status,
      200,
    );
    assert.equal(
      (await admin(t, sys, 'GET', `/api/admin/acd-attendant-group/${domain}/${id}/agents/agent1`)).status,
      404,
    );
    const group = await admin(t, sys, 'GET', `/api/admin/acd-attendant-group/${domain}/${id}`);
    assert.equal(group.json.agentCount, 1);

    await admin(t, sys, 'PUT', `/api/admin/acd-attendant-group/${domain}/${id}`, { number: '+46877700000' });
    const del = await admin(t, sys, 'DELETE', `/api/admin/acd-attendant-group/${domain}/${id}`);
    assert.equal(del.status, 200);
    assert.deepEqual(del.json.removed, { agents: 1, numbersReleased: ['+46877700000'] });
    const list = await admin<Page>(t, sys, 'GET', `/api/admin/acd-attendant-group/${domain}`);
    assert.equal(list.json.items.length, 0);
    assert.ok((await eventsOf('acd.agent.added')).length > 0);
  });

  test('audit: filtered by time and actor', async () => {
    const domain = await newOrg();
    const start = Date.now();
    await admin(t, sys, 'POST', `/api/admin/users/${domain}`, { userId: 'audited' });
    const all = await admin<Page<AuditView>>(t, sys, 'GET', `/api/admin/audit/${domain}`);
    assert.ok(all.json.items.length >= 2);
    const since = await admin<Page<AuditView>>(
      t,
      sys,
      'GET',
      `/api/admin/audit/${domain}?from=${new Date(start).toISOString()}&actor=${encodeURIComponent(actor)}`,
    );
    assert.ok(
      since.json.items.some((a) => a.action === 'user.created' && a.entityId === `audited@${domain}`),
    );
    const none = await admin<Page>(t, sys, 'GET', `/api/admin/audit/${domain}?actor=cli`);
    assert.equal(none.json.items.length, 0);
    const before = await admin<Page>(t, sys, 'GET', `/api/admin/audit/${domain}?to=${start - 60_000}`);
    assert.equal(before.json.items.length, 0);
    const bad = await admin<ErrorAnswer>(t, sys, 'GET', `/api/admin/audit/${domain}?from=yesterday`);
    assert.equal(bad.status, 400);
    assert.equal(bad.json.errors![0]!.field, 'query.from');
  });
});
