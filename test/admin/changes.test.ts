/**
 * Every changing admin route writes exactly one audit row and one event of its type with the
 * change (table-driven, in order: later rows use what earlier ones created); a change that
 * passes validation but fails inside its transaction leaves neither, nor the change.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { forEachDialect, uniqueDomain } from '../db/helpers.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { systemTicket } from '../helpers/fixtures.js';
import { admin, type Rec, type Ticket } from './helpers.js';

interface Case {
  method: string;
  path: () => string;
  body?: () => unknown;
  status: number;
  /** The audit action, which is also the event type. */
  action: string;
  /** How many changes the request makes (a bulk create: one per user). */
  count?: number;
  /** Keeps what later cases need from the answer. */
  keep?: (json: Rec) => void;
}

forEachDialect('admin API: an audit row and an event per change', (ctx) => {
  let t: TestApp;
  let sys: Ticket;

  before(async () => {
    t = await startTestApp({ database: ctx.handle });
    sys = await systemTicket(ctx.handle, t.config, ['ADMIN']);
  });
  after(async () => t.close());

  const db = () => ctx.handle.db;
  const marks = async () => ({
    audit: Number(
      (
        await db()
          .selectFrom('audit_log')
          .select((eb) => eb.fn.max('id').as('m'))
          .executeTakeFirst()
      )?.m ?? 0,
    ),
    event: Number(
      (
        await db()
          .selectFrom('events')
          .select((eb) => eb.fn.max('seq').as('m'))
          .executeTakeFirst()
      )?.m ?? 0,
    ),
  });
  const since = async (m: { audit: number; event: number }) => ({
    audit: (
      await db().selectFrom('audit_log').select('action').where('id', '>', m.audit).orderBy('id').execute()
    ).map((r) => r.action),
    events: (
      await db().selectFrom('events').select('type').where('seq', '>', m.event).orderBy('seq').execute()
    ).map((r) => r.type),
  });

  test('each create, update and delete writes one audit row and one event of its type', async () => {
    const d = uniqueDomain('chg');
    const gone = uniqueDomain('chg-gone');
    const ids: Record<string, string> = {};
    const enc = encodeURIComponent;
    const cases: Case[] = [
      // Organizations
      {
        method: 'POST',
        path: () => '/api/admin/organizations',
        body: () => ({ domain: d, name: 'C' }),
        status: 201,
        action: 'organization.created',
      },
      {
        method: 'POST',
        path: () => '/api/admin/organizations',
        body: () => ({ domain: gone, name: 'G' }),
        status: 201,
        action: 'organization.created',
      },
      {
        method: 'PUT',
        path: () => `/api/admin/organizations/${d}`,
        body: () => ({ name: 'Changes' }),
        status: 200,
        action: 'organization.updated',
      },
      {
        method: 'DELETE',
        path: () => `/api/admin/organizations/${gone}`,
        status: 200,
        action: 'organization.deleted',
      },
      // Users
      {
        method: 'POST',
        path: () => `/api/admin/users/${d}`,
        body: () => ({ userId: 'ann' }),
        status: 201,
        action: 'user.created',
      },
      {
        method: 'POST',
        path: () => `/api/admin/users/${d}`,
        body: () => ({ userId: 'bob' }),
        status: 201,
        action: 'user.created',
      },
      {
        method: 'POST',
        path: () => `/api/admin/users/${d}/bulk`,
        body: () => ({ users: [{ userId: 'cid' }, { userId: 'dee' }, { userId: 'eli' }] }),
        status: 201,
        action: 'user.created',
        count: 3,
      },
      {
        method: 'PUT',
        path: () => `/api/admin/users/${d}/ann`,
        body: () => ({ firstName: 'Ann' }),
        status: 200,
        action: 'user.updated',
      },
      {
        method: 'POST',
        path: () => `/api/admin/users/${d}/ann/password`,
        body: () => ({ generate: true }),
        status: 200,
        action: 'user.password_changed',
      },
      { method: 'DELETE', path: () => `/api/admin/users/${d}/eli`, status: 200, action: 'user.deleted' },
      // User groups, members, roles
      {
        method: 'POST',
        path: () => `/api/admin/usergroups/${d}`,
        body: () => ({ name: 'G' }),
        status: 201,
        action: 'usergroup.created',
        keep: (j) => (ids.group = String(j.id)),
      },
      {
        method: 'PUT',
        path: () => `/api/admin/usergroups/${d}/${ids.group}`,
        body: () => ({ name: 'G2' }),
        status: 200,
        action: 'usergroup.updated',
      },
      {
        method: 'PUT',
        path: () => `/api/admin/usergroups/${d}/${ids.group}/members`,
        body: () => ({ members: ['ann'] }),
        status: 200,
        action: 'usergroup.members_changed',
      },
      {
        method: 'PUT',
        path: () => `/api/admin/usergroups/${d}/${ids.group}/members/bob`,
        status: 200,
        action: 'usergroup.member_added',
      },
      {
        method: 'DELETE',
        path: () => `/api/admin/usergroups/${d}/${ids.group}/members/bob`,
        status: 200,
        action: 'usergroup.member_removed',
      },
      {
        method: 'PUT',
        path: () => `/api/admin/usergroups/${d}/${ids.group}/roles`,
        body: () => ({ roles: ['ACD_SUPERVISOR'] }),
        status: 200,
        action: 'usergroup.roles_changed',
      },
      // External API authorization, three levels
      {
        method: 'PUT',
        path: () => `/api/admin/externalapi/${d}`,
        body: () => ({ apis: ['USER_INFO', 'SMS'] }),
        status: 200,
        action: 'externalapi.changed',
      },
      {
        method: 'PUT',
        path: () => `/api/admin/externalapi/${d}/usergroups/${ids.group}`,
        body: () => ({ apis: ['CONTACT'] }),
        status: 200,
        action: 'externalapi.changed',
      },
      {
        method: 'PUT',
        path: () => `/api/admin/externalapi/${d}/users/ann`,
        body: () => ({ apis: ['CALL_CONTROL'] }),
        status: 200,
        action: 'externalapi.changed',
      },
      // Tickets
      {
        method: 'POST',
        path: () => `/api/admin/tickets/${d}`,
        body: () => ({ user: 'ann', apis: ['USER_INFO'] }),
        status: 201,
        action: 'ticket.created',
        keep: (j) => (ids.ticket = String(j.id)),
      },
      {
        method: 'DELETE',
        path: () => `/api/admin/tickets/${d}/${ids.ticket}`,
        status: 200,
        action: 'ticket.revoked',
      },
      // Numbers: add a range, assign, release, remove
      {
        method: 'POST',
        path: () => `/api/admin/numbers/${d}`,
        body: () => ({ number: '+46822200000', count: 3 }),
        status: 201,
        action: 'number.added',
      },
      {
        method: 'PUT',
        path: () => `/api/admin/numbers/${d}/${enc('+46822200000')}`,
        body: () => ({ user: 'ann' }),
        status: 200,
        action: 'number.assigned',
      },
      {
        method: 'PUT',
        path: () => `/api/admin/numbers/${d}/${enc('+46822200000')}`,
        body: () => ({ user: null }),
        status: 200,
        action: 'number.released',
      },
      {
        method: 'DELETE',
        path: () => `/api/admin/numbers/${d}/${enc('+46822200002')}`,
        status: 200,
        action: 'number.removed',
      },
      // Devices: create, update, password rotation, delete
      {
        method: 'POST',
        path: () => `/api/admin/devices/${d}/ann`,
        body: () => ({ deviceType: 'SOFTPHONE' }),
        status: 201,
        action: 'device.created',
        keep: (j) => (ids.device = enc(String(j.deviceId))),
      },
      {
        method: 'PUT',
        path: () => `/api/admin/devices/${d}/ann/${ids.device}`,
        body: () => ({ deviceName: 'Desk' }),
        status: 200,
        action: 'device.updated',
      },
      {
        method: 'POST',
        path: () => `/api/admin/devices/${d}/ann/${ids.device}/password`,
        status: 200,
        action: 'device.password_rotated',
      },
      {
        method: 'DELETE',
        path: () => `/api/admin/devices/${d}/ann/${ids.device}`,
        status: 200,
        action: 'device.deleted',
      },
      // ACD/attendant groups and agents
      {
        method: 'POST',
        path: () => `/api/admin/acd-attendant-group/${d}`,
        body: () => ({ name: 'Q', number: '+46822200001' }),
        status: 201,
        action: 'acd.group.created',
        keep: (j) => (ids.acd = String(j.id)),
      },
      {
        method: 'PUT',
        path: () => `/api/admin/acd-attendant-group/${d}/${ids.acd}`,
        body: () => ({ nightMode: true }),
        status: 200,
        action: 'acd.group.updated',
      },
      {
        method: 'POST',
        path: () => `/api/admin/acd-attendant-group/${d}/${ids.acd}/agents`,
        body: () => ({ user: 'bob' }),
        status: 201,
        action: 'acd.agent.added',
      },
      {
        method: 'PUT',
        path: () => `/api/admin/acd-attendant-group/${d}/${ids.acd}/agents/bob`,
        body: () => ({ skillLevel: 4 }),
        status: 200,
        action: 'acd.agent.updated',
      },
      {
        method: 'DELETE',
        path: () => `/api/admin/acd-attendant-group/${d}/${ids.acd}/agents/bob`,
        status: 200,
        action: 'acd.agent.removed',
      },
      {
        method: 'DELETE',
        path: () => `/api/admin/acd-attendant-group/${d}/${ids.acd}`,
        status: 200,
        action: 'acd.group.deleted',
      },
      // Deleting a user group last (its grants go with it).
      {
        method: 'DELETE',
        path: () => `/api/admin/usergroups/${d}/${ids.group}`,
        status: 200,
        action: 'usergroup.deleted',
      },
    ];
    for (const c of cases) {
      const m = await marks();
      const path = c.path();
      const res = await admin(t, sys, c.method, path, c.body?.());
      const label = `${c.method} ${path}`;
      assert.equal(res.status, c.status, `${label}: ${res.body}`);
      c.keep?.(res.json);
      const n = c.count ?? 1;
      const written = await since(m);
      assert.deepEqual(written.audit, Array<string>(n).fill(c.action), `${label}: audit rows`);
      assert.deepEqual(written.events, Array<string>(n).fill(c.action), `${label}: events`);
    }
  });

  test('a change that fails inside its transaction leaves neither an audit row nor an event', async () => {
    const d = uniqueDomain('rb');
    assert.equal(
      (await admin(t, sys, 'POST', '/api/admin/organizations', { domain: d, name: 'R' })).status,
      201,
    );
    for (const u of ['ann', 'bob'])
      assert.equal((await admin(t, sys, 'POST', `/api/admin/users/${d}`, { userId: u })).status, 201);
    await admin(t, sys, 'POST', `/api/admin/numbers/${d}`, { number: '+46833300000', count: 2 });
    await admin(t, sys, 'PUT', `/api/admin/numbers/${d}/%2B46833300000`, { user: 'ann' });

    const failing: {
      method: string;
      path: string;
      body: unknown;
      status: number;
      unchanged: () => Promise<void>;
    }[] = [
      {
        // The group row is inserted, then the number is found taken: 409, the group is gone.
        method: 'POST',
        path: `/api/admin/acd-attendant-group/${d}`,
        body: { name: 'Rolled back', number: '+46833300000' },
        status: 409,
        unchanged: async () => {
          const groups = await db()
            .selectFrom('acd_groups')
            .select('id')
            .where('name', '=', 'Rolled back')
            .execute();
          assert.equal(groups.length, 0, 'the group row was rolled back');
        },
      },
      {
        // The user row is updated, then a group is found missing: 400, the update is gone.
        method: 'PUT',
        path: `/api/admin/users/${d}/bob`,
        body: { firstName: 'Changed', groups: [987654] },
        status: 400,
        unchanged: async () => {
          const bob = await admin(t, sys, 'GET', `/api/admin/users/${d}/bob`);
          assert.equal(bob.json.firstName, '', 'the update was rolled back');
        },
      },
      {
        // The unique key refuses the insert inside the transaction.
        method: 'POST',
        path: `/api/admin/users/${d}`,
        body: { userId: 'ann' },
        status: 409,
        unchanged: async () => undefined,
      },
      {
        method: 'POST',
        path: `/api/admin/numbers/${d}`,
        body: { number: '+46833299999', count: 3 },
        status: 409,
        unchanged: async () => {
          const n = await admin(t, sys, 'GET', `/api/admin/numbers/${d}/%2B46833299999`);
          assert.equal(n.status, 404, 'no number of the range was added');
        },
      },
    ];
    for (const f of failing) {
      const m = await marks();
      const res = await admin(t, sys, f.method, f.path, f.body);
      assert.equal(res.status, f.status, `${f.method} ${f.path}: ${res.body}`);
      assert.deepEqual(await since(m), { audit: [], events: [] }, `${f.method} ${f.path}`);
      await f.unchanged();
    }
  });
});
