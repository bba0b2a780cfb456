import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Kysely } from 'kysely';
import { AcdRepository } from '../../src/areas/acd/repository.js';
import { AdminRepository } from '../../src/areas/admins/repository.js';
import { AuditRepository } from '../../src/areas/audit/repository.js';
import { DeviceRepository, parseDeviceId, toDeviceId } from '../../src/areas/devices/repository.js';
import { ExternalApiRepository } from '../../src/areas/externalapi/repository.js';
import { NumberRepository, numberRange } from '../../src/areas/numbers/repository.js';
import { OrganizationRepository } from '../../src/areas/organizations/repository.js';
import { TicketRepository } from '../../src/areas/tickets/repository.js';
import { UserGroupRepository } from '../../src/areas/usergroups/repository.js';
import { UserRepository } from '../../src/areas/users/repository.js';
import { recordChange } from '../../src/db/changes.js';
import type { DB } from '../../src/db/schema.js';
import { ConflictError, NotFoundError } from '../../src/errors.js';
import { EventRepository } from '../../src/events/repository.js';
import { forEachDialect, uniqueDomain } from './helpers.js';

const isConflict = (pattern: RegExp) => (err: unknown) => {
  assert.ok(err instanceof ConflictError, `expected ConflictError, got ${String(err)}`);
  assert.match(err.message, pattern);
  return true;
};
const isNotFound = (err: unknown) => err instanceof NotFoundError;

async function twoOrgs(db: Kysely<DB>) {
  const orgs = new OrganizationRepository(db);
  const a = await orgs.create({ domain: uniqueDomain('a'), name: 'A' });
  const b = await orgs.create({ domain: uniqueDomain('b'), name: 'B' });
  return { a, b };
}

forEachDialect('repositories', (t) => {
  test('organizations: create, get, update, list, count, conflict, delete cascades', async () => {
    const { db } = t.handle;
    const orgs = new OrganizationRepository(db);
    const domain = uniqueDomain('Org').toUpperCase();
    const org = await orgs.create({
      domain,
      name: 'Example',
      numberPlan: [{ prefix: '0', replace: '+468' }],
    });
    assert.equal(typeof org.id, 'number');
    assert.equal(org.domain, domain.toLowerCase());
    assert.deepEqual(org.numberPlan, [{ prefix: '0', replace: '+468' }]);
    assert.equal(typeof org.createdAt, 'number');
    assert.deepEqual(await orgs.getByDomain(domain), org);
    assert.deepEqual(await orgs.getById(org.id), org);
    assert.deepEqual(await orgs.requireByDomain(domain.toLowerCase()), org);
    await assert.rejects(orgs.requireByDomain('nope.example'), isNotFound);
    await assert.rejects(
      orgs.create({ domain: domain.toLowerCase(), name: 'x' }),
      isConflict(new RegExp(domain.toLowerCase())),
    );
    const updated = await orgs.update(org.id, { name: 'Renamed', numberPlan: [] }, org.updatedAt + 5);
    assert.equal(updated.name, 'Renamed');
    assert.deepEqual(updated.numberPlan, []);
    assert.equal(updated.updatedAt, org.updatedAt + 5);
    await assert.rejects(orgs.update(999_999_999, { name: 'x' }), isNotFound);
    const page = await orgs.list({ limit: 1000 });
    assert.ok(page.items.some((o) => o.id === org.id));

    const users = new UserRepository(db);
    const u = await users.create(org.id, { userId: 'bob' });
    assert.equal(await orgs.countUsers(org.id), 1);
    await new DeviceRepository(db).create(org.id, { userId: u.id, kind: 'SOFTPHONE' });
    await new NumberRepository(db).add(org.id, '+46700000001');
    assert.equal(await orgs.delete(org.id), true);
    assert.equal(await orgs.delete(org.id), false);
    assert.equal(await orgs.getById(org.id), undefined);
    assert.equal(await users.get(org.id, 'bob'), undefined);
    assert.equal(
      (await db.selectFrom('devices').select('id').where('organization_id', '=', org.id).execute()).length,
      0,
    );
    assert.equal(await new NumberRepository(db).findOwner('+46700000001'), undefined);
  });

  test('users: CRUD, case-sensitive ids, conflicts, scoping, password, search', async () => {
    const { db } = t.handle;
    const { a, b } = await twoOrgs(db);
    const users = new UserRepository(db);
    const bob = await users.create(a.id, {
      userId: 'bob',
      firstName: 'Bob',
      lastName: 'Builder',
      email: 'bob@example.com',
      extension: '100',
      role: 'SUPERUSER',
      passwordHash: 'scrypt$x',
    });
    assert.equal(bob.role, 'SUPERUSER');
    assert.equal(bob.availability, 'AVAILABLE');
    assert.equal(bob.hasPassword, true);
    assert.equal(typeof bob.id, 'number');
    const bobUpper = await users.create(a.id, { userId: 'Bob' });
    assert.notEqual(bobUpper.id, bob.id);
    assert.equal((await users.get(a.id, 'Bob'))?.id, bobUpper.id);
    await assert.rejects(users.create(a.id, { userId: 'bob' }), isConflict(/user "bob" already exists/));
    await assert.rejects(
      users.create(a.id, { userId: 'other', extension: '100' }),
      isConflict(/extension "100"/),
    );
    // The same user id and extension in another organization are fine.
    const bobB = await users.create(b.id, { userId: 'bob', extension: '100' });
    // Scoping: another organization's id finds nothing.
    assert.equal(await users.getById(b.id, bob.id), undefined);
    assert.equal((await users.get(b.id, 'bob'))?.id, bobB.id);
    assert.equal((await users.getById(a.id, bob.id))?.userId, 'bob');
    await assert.rejects(users.update(b.id, bob.id, { firstName: 'X' }), isNotFound);
    await assert.rejects(users.require(a.id, 'nobody'), isNotFound);

    const upd = await users.update(a.id, bob.id, {
      availability: 'DND',
      availabilityMessage: 'busy',
      title: 'Boss',
    });
    assert.equal(upd.availability, 'DND');
    assert.equal(upd.availabilityMessage, 'busy');
    assert.equal(upd.title, 'Boss');
    assert.equal(upd.email, 'bob@example.com');
    await assert.rejects(
      users.update(a.id, bobUpper.id, { extension: '100' }),
      isConflict(/extension "100"/),
    );

    assert.equal(await users.getPasswordHash(a.id, 'bob'), 'scrypt$x');
    await users.setPassword(a.id, bob.id, 'scrypt$y');
    assert.equal(await users.getPasswordHash(a.id, 'bob'), 'scrypt$y');
    await users.setPassword(a.id, bob.id, null);
    assert.equal((await users.getById(a.id, bob.id))?.hasPassword, false);
    await assert.rejects(users.setPassword(b.id, bob.id, 'z'), isNotFound);

    const found = await users.search(a.id, 'BUILD');
    assert.deepEqual(
      found.map((u) => u.userId),
      ['bob'],
    );
    assert.deepEqual(await users.search(a.id, '%'), []);
    assert.equal((await users.search(b.id, 'builder')).length, 0);
    assert.equal(await users.count(a.id), 2);

    const page = await users.list(a.id, { limit: 1 });
    assert.equal(page.items.length, 1);
    assert.equal(page.next, page.items[0]!.id);
    const page2 = await users.list(a.id, { limit: 1, after: page.next });
    assert.equal(page2.items.length, 1);
    assert.equal(page2.next, null);

    assert.equal(await users.delete(b.id, bob.id), false);
    assert.equal(await users.delete(a.id, bob.id), true);
    assert.equal(await users.get(a.id, 'bob'), undefined);
  });

  test('user groups: CRUD, members, roles, scoping, cascades', async () => {
    const { db } = t.handle;
    const { a, b } = await twoOrgs(db);
    const users = new UserRepository(db);
    const groups = new UserGroupRepository(db);
    const ann = await users.create(a.id, { userId: 'ann', firstName: 'Ann' });
    const ben = await users.create(a.id, { userId: 'ben' });
    const outsider = await users.create(b.id, { userId: 'zed' });
    const g = await groups.create(a.id, { name: 'Supervisors', roles: ['ACD_SUPERVISOR', 'ACD_SUPERVISOR'] });
    assert.deepEqual(g.roles, ['ACD_SUPERVISOR']);
    await assert.rejects(groups.create(a.id, { name: 'Supervisors' }), isConflict(/"Supervisors"/));
    assert.ok(await groups.create(b.id, { name: 'Supervisors' }));
    assert.deepEqual(await groups.get(a.id, g.id), g);
    assert.equal(await groups.get(b.id, g.id), undefined);
    assert.equal((await groups.getByName(a.id, 'Supervisors'))?.id, g.id);

    assert.equal(await groups.addMember(a.id, g.id, ann.id), true);
    assert.equal(await groups.addMember(a.id, g.id, ann.id), false);
    assert.equal(await groups.addMember(a.id, g.id, ben.id), true);
    await assert.rejects(groups.addMember(a.id, g.id, outsider.id), isNotFound);
    await assert.rejects(groups.addMember(b.id, g.id, ann.id), isNotFound);
    assert.deepEqual(
      (await groups.listMembers(a.id, g.id)).map((m) => m.userId),
      ['ann', 'ben'],
    );
    assert.deepEqual(await groups.listMembers(b.id, g.id), []);
    assert.deepEqual(await groups.rolesOfUser(a.id, ann.id), ['ACD_SUPERVISOR']);
    assert.deepEqual(
      (await users.groupsOf(a.id, ann.id)).map((x) => x.name),
      ['Supervisors'],
    );

    const g2 = await groups.setRoles(a.id, g.id, ['X', 'ACD_SUPERVISOR']);
    assert.deepEqual(g2.roles, ['ACD_SUPERVISOR', 'X']);
    const renamed = await groups.update(a.id, g.id, { name: 'Leads' });
    assert.equal(renamed.name, 'Leads');
    await assert.rejects(groups.update(b.id, g.id, { name: 'x' }), isNotFound);
    const page = await groups.list(a.id);
    assert.deepEqual(
      page.items.map((x) => x.id),
      [g.id],
    );

    assert.equal(await groups.removeMember(a.id, g.id, ben.id), true);
    assert.equal(await groups.removeMember(a.id, g.id, ben.id), false);
    // Deleting a user removes its memberships.
    await users.delete(a.id, ann.id);
    assert.deepEqual(await groups.listMembers(a.id, g.id), []);
    await groups.addMember(a.id, g.id, ben.id);
    assert.equal(await groups.delete(b.id, g.id), false);
    assert.equal(await groups.delete(a.id, g.id), true);
    assert.equal(
      (await db.selectFrom('user_group_members').select('user_id').where('group_id', '=', g.id).execute())
        .length,
      0,
    );
  });

  test('numbers: add, range, assign, release, owner lookup, global uniqueness', async () => {
    const { db } = t.handle;
    const { a, b } = await twoOrgs(db);
    const users = new UserRepository(db);
    const acd = new AcdRepository(db);
    const numbers = new NumberRepository(db);
    const base = `+4685${String(a.id).padStart(4, '0')}`;
    const n = await numbers.add(a.id, `${base}000`);
    assert.deepEqual(n, {
      number: `${base}000`,
      organizationId: a.id,
      userId: null,
      acdGroupId: null,
      createdAt: n.createdAt,
    });
    await assert.rejects(
      numbers.add(b.id, `${base}000`),
      isConflict(new RegExp(`\\${base}000 is already taken`)),
    );
    assert.deepEqual(numberRange('+4610099', 3), ['+4610099', '+4610100', '+4610101']);
    assert.throws(() => numberRange('+999', 2), RangeError);
    assert.throws(() => numberRange('12345', 2), RangeError);
    const range = await numbers.addRange(a.id, `${base}001`, 20);
    assert.equal(range.length, 20);
    // A range overlapping a taken number adds nothing and names the taken one.
    await assert.rejects(numbers.addRange(b.id, `${base}015`, 10), isConflict(new RegExp(`\\${base}015`)));
    assert.equal((await numbers.list(b.id)).items.length, 0);

    const u = await users.create(a.id, { userId: 'nina' });
    const g = await acd.createGroup(a.id, { name: 'Support' });
    const assigned = await numbers.assignToUser(a.id, `${base}001`, u.id);
    assert.equal(assigned.userId, u.id);
    assert.deepEqual(
      (await numbers.listByUser(a.id, u.id)).map((x) => x.number),
      [`${base}001`],
    );
    const moved = await numbers.assignToAcdGroup(a.id, `${base}001`, g.id);
    assert.equal(moved.userId, null);
    assert.equal(moved.acdGroupId, g.id);
    assert.deepEqual(
      (await numbers.listByAcdGroup(a.id, g.id)).map((x) => x.number),
      [`${base}001`],
    );
    const owner = await numbers.findOwner(`${base}001`);
    assert.equal(owner?.domain, a.domain);
    assert.equal(owner?.acdGroupId, g.id);
    await numbers.assignToUser(a.id, `${base}002`, u.id);
    assert.equal((await numbers.findOwner(`${base}002`))?.userName, 'nina');
    assert.equal(await numbers.findOwner('+1999999999'), undefined);
    // Scoping.
    await assert.rejects(numbers.assignToUser(b.id, `${base}003`, u.id), isNotFound);
    const bu = await users.create(b.id, { userId: 'x' });
    await assert.rejects(numbers.assignToUser(a.id, `${base}003`, bu.id), isNotFound);
    await assert.rejects(numbers.release(b.id, `${base}001`), isNotFound);
    assert.equal(await numbers.get(b.id, `${base}001`), undefined);
    const released = await numbers.release(a.id, `${base}001`);
    assert.equal(released.acdGroupId, null);
    // Deleting the owner releases the number but keeps it in the organization.
    await users.delete(a.id, u.id);
    assert.equal((await numbers.get(a.id, `${base}002`))?.userId, null);
    assert.equal(await numbers.remove(b.id, `${base}002`), false);
    assert.equal(await numbers.remove(a.id, `${base}002`), true);
    assert.equal(await numbers.get(a.id, `${base}002`), undefined);
    // Pagination by number.
    const p1 = await numbers.list(a.id, { limit: 10 });
    const p2 = await numbers.list(a.id, { limit: 10, after: p1.next });
    assert.equal(p1.items.length + p2.items.length, 20);
    assert.equal(p2.next, null);
  });

  test('devices: deviceId format, create, credentials, lookup, scoping, cascade', async () => {
    const { db } = t.handle;
    const { a, b } = await twoOrgs(db);
    const users = new UserRepository(db);
    const devices = new DeviceRepository(db);
    const u = await users.create(a.id, { userId: 'dan' });
    assert.equal(toDeviceId('MOBILE', '+46701234567'), '0.+46701234567');
    assert.deepEqual(parseDeviceId('2.3f0c-uuid'), { kind: 'SOFTPHONE', deviceKey: '3f0c-uuid' });
    assert.deepEqual(parseDeviceId('1.a.b'), { kind: 'DESKPHONE', deviceKey: 'a.b' });
    assert.equal(parseDeviceId('3.x'), null);
    assert.equal(parseDeviceId('2.'), null);
    assert.equal(parseDeviceId('nodot'), null);

    const soft = await devices.create(a.id, {
      userId: u.id,
      kind: 'SOFTPHONE',
      name: 'Laptop',
      sipUsername: 'dan-soft',
      ha1Md5: 'm',
      ha1Sha256: 's',
    });
    assert.match(soft.deviceId, /^2\.[0-9a-f-]{36}$/);
    assert.equal(soft.icon, 'DEFAULT');
    assert.equal(soft.hasSipCredentials, true);
    const mobile = await devices.create(a.id, { userId: u.id, kind: 'MOBILE', deviceKey: '+46701234567' });
    assert.equal(mobile.deviceId, '0.+46701234567');
    assert.equal(mobile.number, '+46701234567');
    assert.equal(mobile.hasSipCredentials, false);
    await assert.rejects(devices.create(a.id, { userId: u.id, kind: 'MOBILE' }), RangeError);
    await assert.rejects(
      devices.create(a.id, { userId: u.id, kind: 'MOBILE', deviceKey: '+46701234567' }),
      isConflict(/0\.\+46701234567/),
    );
    await assert.rejects(
      devices.create(a.id, { userId: u.id, kind: 'DESKPHONE', sipUsername: 'dan-soft' }),
      isConflict(/SIP username "dan-soft"/),
    );
    await assert.rejects(devices.create(b.id, { userId: u.id, kind: 'DESKPHONE' }), isNotFound);

    assert.deepEqual(
      (await devices.listByUser(a.id, u.id)).map((d) => d.kind),
      ['MOBILE', 'SOFTPHONE'],
    );
    assert.deepEqual(await devices.listByUser(b.id, u.id), []);
    assert.deepEqual(await devices.get(a.id, soft.deviceId), soft);
    assert.equal(await devices.get(b.id, soft.deviceId), undefined);
    assert.equal(await devices.get(a.id, 'garbage'), undefined);

    const sip = await devices.getBySipUsername(a.id, 'dan-soft');
    assert.deepEqual(sip?.credentials, { sipUsername: 'dan-soft', ha1Md5: 'm', ha1Sha256: 's' });
    assert.equal(await devices.getBySipUsername(b.id, 'dan-soft'), undefined);

    const renamed = await devices.update(a.id, soft.deviceId, { name: 'Desk', icon: 'LAPTOP' });
    assert.equal(renamed.name, 'Desk');
    assert.equal(renamed.icon, 'LAPTOP');
    await assert.rejects(devices.update(b.id, soft.deviceId, { name: 'x' }), isNotFound);
    const rotated = await devices.setCredentials(a.id, soft.deviceId, {
      sipUsername: 'dan2',
      ha1Md5: 'm2',
      ha1Sha256: null,
    });
    assert.equal(rotated.sipUsername, 'dan2');
    assert.equal((await devices.getBySipUsername(a.id, 'dan2'))?.credentials.ha1Md5, 'm2');
    await assert.rejects(
      devices.setCredentials(b.id, soft.deviceId, { sipUsername: 'q', ha1Md5: null, ha1Sha256: null }),
      isNotFound,
    );

    assert.equal(await devices.delete(b.id, mobile.deviceId), false);
    assert.equal(await devices.delete(a.id, mobile.deviceId), true);
    await users.delete(a.id, u.id);
    assert.equal(await devices.get(a.id, soft.deviceId), undefined);
  });

  test('ACD groups: CRUD, booleans, agents, login/logout, groups of a user', async () => {
    const { db } = t.handle;
    const { a, b } = await twoOrgs(db);
    const users = new UserRepository(db);
    const acd = new AcdRepository(db);
    const jane = await users.create(a.id, { userId: 'jane', firstName: 'Jane', lastName: 'Doe' });
    const g = await acd.createGroup(a.id, { name: 'Customer services', nightMode: true });
    assert.equal(typeof g.id, 'number');
    assert.equal(g.type, 'ACD');
    assert.equal(g.distributionType, 'RING_ALL');
    assert.strictEqual(g.nightMode, true);
    assert.strictEqual(g.allowUsingFunctionNumber, false);
    const g2 = await acd.updateGroup(a.id, g.id, {
      nightMode: false,
      allowUsingFunctionNumber: true,
      type: 'ATTENDANT',
    });
    assert.strictEqual(g2.nightMode, false);
    assert.strictEqual(g2.allowUsingFunctionNumber, true);
    assert.equal(g2.type, 'ATTENDANT');
    assert.deepEqual(await acd.getGroup(a.id, g.id), g2);
    assert.equal(await acd.getGroup(b.id, g.id), undefined);
    await assert.rejects(acd.updateGroup(b.id, g.id, { name: 'x' }), isNotFound);
    assert.deepEqual(
      (await acd.listGroups(a.id)).items.map((x) => x.id),
      [g.id],
    );

    const agent = await acd.addAgent(a.id, g.id, jane.id, 3);
    assert.equal(agent.skillLevel, 3);
    assert.strictEqual(agent.loggedIn, false);
    assert.equal(agent.userName, 'jane');
    await assert.rejects(acd.addAgent(a.id, g.id, jane.id), isConflict(/already an agent/));
    await assert.rejects(acd.addAgent(b.id, g.id, jane.id), isNotFound);
    await assert.rejects(acd.setSkill(a.id, g.id, jane.id, 11), RangeError);
    assert.equal((await acd.setSkill(a.id, g.id, jane.id, 7)).skillLevel, 7);

    const login = await acd.login(a.id, g.id, jane.id, 1000);
    assert.equal(login.changed, true);
    assert.strictEqual(login.agent.loggedIn, true);
    assert.equal(login.agent.loggedInAt, 1000);
    assert.equal((await acd.login(a.id, g.id, jane.id)).changed, false);
    await assert.rejects(acd.login(b.id, g.id, jane.id), isNotFound);
    const mine = await acd.groupsOfUser(a.id, jane.id);
    assert.equal(mine.length, 1);
    assert.strictEqual(mine[0]!.loggedIn, true);
    assert.strictEqual(mine[0]!.group.allowUsingFunctionNumber, true);
    assert.deepEqual(await acd.groupsOfUser(b.id, jane.id), []);
    const logout = await acd.logout(a.id, g.id, jane.id);
    assert.equal(logout.changed, true);
    assert.strictEqual(logout.agent.loggedIn, false);
    assert.equal(logout.agent.loggedInAt, null);
    assert.deepEqual(
      (await acd.listAgents(a.id, g.id)).map((x) => x.userName),
      ['jane'],
    );
    assert.deepEqual(await acd.listAgents(b.id, g.id), []);
    assert.equal(await acd.removeAgent(a.id, g.id, jane.id), true);
    assert.equal(await acd.removeAgent(a.id, g.id, jane.id), false);
    await acd.addAgent(a.id, g.id, jane.id);
    assert.equal(await acd.deleteGroup(b.id, g.id), false);
    assert.equal(await acd.deleteGroup(a.id, g.id), true);
    assert.deepEqual(await acd.groupsOfUser(a.id, jane.id), []);
  });

  test('system administrators', async () => {
    const { db } = t.handle;
    const admins = new AdminRepository(db);
    const name = `admin-${uniqueDomain()}`;
    const before = await admins.count();
    const admin = await admins.create(name, 'scrypt$h');
    assert.equal(admin.username, name);
    await assert.rejects(admins.create(name, 'x'), isConflict(new RegExp(name)));
    assert.deepEqual(await admins.getByUsername(name), admin);
    assert.equal(await admins.getPasswordHash(name), 'scrypt$h');
    await admins.setPassword(name, 'scrypt$i');
    assert.equal(await admins.getPasswordHash(name), 'scrypt$i');
    await assert.rejects(admins.setPassword('nobody-here', 'x'), isNotFound);
    assert.equal(await admins.count(), before + 1);
    assert.ok((await admins.list()).some((x) => x.username === name));
    assert.equal(await admins.delete(name), true);
    assert.equal(await admins.getByUsername(name), undefined);
  });

  test('External API grants: three levels, union rule with sources, cleanup on delete', async () => {
    const { db } = t.handle;
    const { a, b } = await twoOrgs(db);
    const users = new UserRepository(db);
    const groups = new UserGroupRepository(db);
    const grants = new ExternalApiRepository(db);
    const u = await users.create(a.id, { userId: 'gina' });
    const other = await users.create(a.id, { userId: 'otto' });
    const g = await groups.create(a.id, { name: 'Sales' });
    await groups.addMember(a.id, g.id, u.id);

    assert.deepEqual(await grants.effective(a.id, u.id), { apis: [], sources: {} });
    await grants.setGrants(a.id, 'ORGANIZATION', 123, ['USER_INFO', 'USER_INFO']);
    await grants.setGrants(a.id, 'USER_GROUP', g.id, ['CONTACT', 'USER_INFO']);
    await grants.setGrants(a.id, 'USER', u.id, ['CALL_CONTROL']);
    await grants.setGrants(b.id, 'ORGANIZATION', 0, ['SMS']);
    assert.deepEqual(await grants.listGrants(a.id, 'ORGANIZATION', 0), ['USER_INFO']);
    assert.deepEqual(await grants.listGrants(a.id, 'USER_GROUP', g.id), ['CONTACT', 'USER_INFO']);
    assert.equal((await grants.listAll(a.id)).length, 4);

    const eff = await grants.effective(a.id, u.id);
    assert.deepEqual(eff.apis, ['CALL_CONTROL', 'CONTACT', 'USER_INFO']);
    assert.deepEqual(eff.sources.USER_INFO, [
      { level: 'ORGANIZATION', targetId: 0 },
      { level: 'USER_GROUP', targetId: g.id },
    ]);
    assert.deepEqual(eff.sources.CALL_CONTROL, [{ level: 'USER', targetId: u.id }]);
    assert.deepEqual((await grants.effective(a.id, other.id)).apis, ['USER_INFO']);
    // Another organization's grants never leak in.
    assert.deepEqual((await grants.effective(b.id, u.id)).apis, ['SMS']);

    // Replacing a set, leaving a group, deleting a user or group: effective changes at once.
    await grants.setGrants(a.id, 'ORGANIZATION', 0, []);
    await groups.removeMember(a.id, g.id, u.id);
    assert.deepEqual((await grants.effective(a.id, u.id)).apis, ['CALL_CONTROL']);
    await groups.delete(a.id, g.id);
    await users.delete(a.id, u.id);
    assert.deepEqual(await grants.listAll(a.id), []);
  });

  test('tickets: insert, lookups, scoping, revoke, touchLastUsed once a minute', async () => {
    const { db } = t.handle;
    const { a, b } = await twoOrgs(db);
    const u = await new UserRepository(db).create(a.id, { userId: 'tim', role: 'USER' });
    const tickets = new TicketRepository(db);
    const tk = await tickets.insert({
      kind: 'USER',
      organizationId: a.id,
      userId: u.id,
      name: 'CRM',
      scopes: ['CONTACT', 'CALL_CONTROL'],
      secretHash: 'ab'.repeat(32),
      platform: 'other',
      createdBy: 'user:tim',
      createdAt: 1_000,
      expiresAt: 2_000_000_000_000,
    });
    assert.equal(typeof tk.id, 'number');
    assert.deepEqual(tk.scopes, ['CONTACT', 'CALL_CONTROL']);
    assert.equal(tk.organizations, null);
    assert.equal(tk.expiresAt, 2_000_000_000_000);
    const sys = await tickets.insert({
      kind: 'SYSTEM',
      name: 'ops',
      scopes: ['ADMIN'],
      organizations: [a.id],
      secretHash: 'cd'.repeat(32),
      signingSecretEnc: 'enc:xyz',
      createdBy: 'admin:admin',
      expiresAt: 2_000_000_000_000,
    });
    assert.deepEqual(sys.organizations, [a.id]);
    assert.equal(sys.signingSecretEnc, 'enc:xyz');
    assert.deepEqual(await tickets.getById(tk.id), tk);
    const auth = await tickets.getForAuth(tk.id);
    assert.deepEqual(auth?.user, { userId: 'tim', role: 'USER', domain: a.domain });
    assert.equal((await tickets.getForAuth(sys.id))?.user, null);
    assert.equal(await tickets.getForAuth(987654321), undefined);
    assert.equal(await tickets.getInOrg(b.id, tk.id), undefined);
    assert.equal((await tickets.getInOrg(null, sys.id))?.id, sys.id);
    assert.equal(await tickets.getInOrg(null, tk.id), undefined);
    assert.deepEqual(
      (await tickets.listByUser(a.id, u.id)).map((x) => x.id),
      [tk.id],
    );
    assert.deepEqual(await tickets.listByUser(b.id, u.id), []);
    assert.deepEqual(
      (await tickets.listByOrg(a.id)).items.map((x) => x.id),
      [tk.id],
    );
    assert.ok((await tickets.listByOrg(null, { limit: 1000 })).items.some((x) => x.id === sys.id));

    assert.equal(await tickets.touchLastUsed(tk.id, 100_000), true);
    assert.equal(await tickets.touchLastUsed(tk.id, 130_000), false);
    assert.equal((await tickets.getById(tk.id))?.lastUsedAt, 100_000);
    assert.equal(await tickets.touchLastUsed(tk.id, 160_000), true);
    assert.equal((await tickets.getById(tk.id))?.lastUsedAt, 160_000);

    assert.equal(await tickets.revoke(b.id, tk.id), false);
    assert.equal(await tickets.revoke(a.id, tk.id, 5_000), true);
    assert.equal(await tickets.revoke(a.id, tk.id), false);
    assert.equal((await tickets.getById(tk.id))?.revokedAt, 5_000);
    assert.deepEqual(await tickets.listByUser(a.id, u.id), []);
    assert.equal((await tickets.listByUser(a.id, u.id, { includeRevoked: true })).length, 1);
    assert.equal(await tickets.revoke(null, sys.id), true);

    const tk2 = await tickets.insert({
      kind: 'USER',
      organizationId: a.id,
      userId: u.id,
      name: 'two',
      scopes: [],
      secretHash: 'ef',
      createdBy: 'cli',
      expiresAt: 1,
    });
    assert.equal(await tickets.revokeAllOfUser(a.id, u.id), 1);
    await new UserRepository(db).delete(a.id, u.id);
    assert.equal(await tickets.getById(tk2.id), undefined);
  });

  test('events and audit: append, read after seq, oldest, prune, scoping', async () => {
    const { db } = t.handle;
    const { a, b } = await twoOrgs(db);
    const events = new EventRepository(db);
    const e1 = await events.append({ organizationId: a.id, type: 'user.created', userId: 7, data: { x: 1 } });
    const e2 = await events.append({ organizationId: b.id, type: 'user.created', data: { y: 2 } });
    const e3 = await events.append({ organizationId: a.id, type: 'group.changed', groupId: 3, time: 5 });
    assert.equal(typeof e1.seq, 'number');
    assert.ok(e1.seq < e2.seq && e2.seq < e3.seq);
    assert.deepEqual(e1.data, { x: 1 });
    assert.deepEqual(
      (await events.readAfter(a.id, 0)).map((e) => e.seq),
      [e1.seq, e3.seq],
    );
    assert.deepEqual(
      (await events.readAfter(a.id, e1.seq)).map((e) => e.seq),
      [e3.seq],
    );
    assert.deepEqual(
      (await events.readAfter(a.id, e1.seq - 1, 1)).map((e) => e.seq),
      [e1.seq],
    );
    assert.deepEqual(
      (await events.readAfterAll(e1.seq)).map((e) => e.seq),
      [e2.seq, e3.seq],
    );
    assert.equal(await events.oldestSeq(a.id), e1.seq);
    assert.equal(await events.oldestSeq(b.id), e2.seq);
    assert.equal(await events.oldestSeq(999_999_999), null);
    assert.ok(((await events.latestSeq()) ?? 0) >= e3.seq);
    assert.equal(await events.pruneBefore(6), 1);
    assert.equal(await events.oldestSeq(a.id), e1.seq);

    const audit = new AuditRepository(db);
    const x = await audit.append({
      organizationId: a.id,
      actor: 'cli',
      action: 'user.created',
      entity: 'user',
      entityId: 'bob',
      at: 10,
    });
    await audit.append({
      organizationId: a.id,
      actor: 'admin:admin',
      action: 'user.deleted',
      entity: 'user',
      entityId: 'bob',
      data: { n: 1 },
      at: 20,
    });
    await audit.append({
      organizationId: b.id,
      actor: 'cli',
      action: 'x',
      entity: 'y',
      entityId: 'z',
      at: 15,
    });
    assert.deepEqual(x.data, {});
    assert.equal((await audit.list(a.id)).items.length, 2);
    assert.deepEqual(
      (await audit.list(a.id, { from: 15 })).items.map((e) => e.action),
      ['user.deleted'],
    );
    assert.deepEqual(
      (await audit.list(a.id, { to: 15 })).items.map((e) => e.action),
      ['user.created'],
    );
    assert.deepEqual(
      (await audit.list(a.id, { actor: 'admin:admin' })).items.map((e) => e.data),
      [{ n: 1 }],
    );
    const p = await audit.list(a.id, { limit: 1 });
    assert.equal((await audit.list(a.id, { limit: 1, after: p.next })).items[0]?.action, 'user.deleted');
  });

  test('recordChange commits with the change and rolls back with it', async () => {
    const { db } = t.handle;
    const { a } = await twoOrgs(db);
    const events = new EventRepository(db);
    const audit = new AuditRepository(db);
    await db.transaction().execute(async (trx) => {
      const u = await new UserRepository(trx).create(a.id, { userId: 'kept' });
      const r = await recordChange(trx, {
        organizationId: a.id,
        actor: 'cli',
        action: 'user.created',
        entity: 'user',
        entityId: u.userId,
        data: { userId: u.userId },
        event: { type: 'user.created', userId: u.id, data: { user: 'kept' } },
      });
      assert.equal(r.event?.type, 'user.created');
      assert.equal(r.audit.entityId, 'kept');
    });
    await assert.rejects(
      db.transaction().execute(async (trx) => {
        const u = await new UserRepository(trx).create(a.id, { userId: 'gone' });
        await recordChange(trx, {
          organizationId: a.id,
          actor: 'cli',
          action: 'user.created',
          entity: 'user',
          entityId: u.userId,
          event: { type: 'user.created', userId: u.id },
        });
        // The second create conflicts: the whole transaction rolls back.
        await new UserRepository(trx).create(a.id, { userId: 'gone' });
      }),
      ConflictError,
    );
    assert.ok(await new UserRepository(db).get(a.id, 'kept'));
    assert.equal(await new UserRepository(db).get(a.id, 'gone'), undefined);
    assert.deepEqual(
      (await audit.list(a.id)).items.map((e) => e.entityId),
      ['kept'],
    );
    assert.deepEqual(
      (await events.readAfter(a.id, 0)).map((e) => (e.data as { user?: string }).user),
      ['kept'],
    );
    // Without an event only the audit row is written.
    const r = await recordChange(db, {
      organizationId: null,
      actor: 'cli',
      action: 'org.listed',
      entity: 'org',
      entityId: 1,
    });
    assert.equal(r.event, null);
  });

  test('types: booleans are booleans, ids and timestamps are numbers', async () => {
    const { db } = t.handle;
    const { a } = await twoOrgs(db);
    const g = await new AcdRepository(db).createGroup(a.id, { name: 'T', nightMode: false });
    const row = await db
      .selectFrom('acd_groups')
      .selectAll()
      .where('id', '=', g.id)
      .executeTakeFirstOrThrow();
    assert.equal(typeof row.id, 'number');
    assert.equal(typeof row.created_at, 'number');
    assert.equal(typeof row.organization_id, 'number');
    assert.equal(typeof g.nightMode, 'boolean');
    assert.equal(typeof g.allowUsingFunctionNumber, 'boolean');
    const big = 2 ** 40 + 7;
    const ev = await new EventRepository(db).append({ organizationId: a.id, type: 't', time: big });
    assert.equal(ev.time, big);
    const count = await new OrganizationRepository(db).countUsers(a.id);
    assert.equal(typeof count, 'number');
    // Booleans in WHERE clauses work on both dialects.
    const n = await db
      .selectFrom('acd_groups')
      .select('id')
      .where('night_mode', '=', false)
      .where('id', '=', g.id)
      .execute();
    assert.equal(n.length, 1);
  });
});
