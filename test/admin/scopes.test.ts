/**
 * Scope narrowing, table-driven from the app's own route table: for every narrow admin scope, a
 * system ticket with only that scope reads every GET route of its own resource group (2xx) and
 * is refused (403) on every GET route of every other group. A new admin route or scope is
 * covered without editing this file (a new path parameter needs a value below).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { forEachDialect, uniqueDomain } from '../db/helpers.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { systemTicket } from '../helpers/fixtures.js';
import { ADMIN_SCOPES } from '../../src/areas/common/schemas.js';
import type { Access } from '../../src/http/auth.js';
import { admin, type Ticket } from './helpers.js';

forEachDialect('admin API scope narrowing', (ctx) => {
  let t: TestApp;
  let sys: Ticket;
  const params: Record<string, string> = {};

  before(async () => {
    t = await startTestApp({ database: ctx.handle });
    sys = await systemTicket(ctx.handle, t.config, ['ADMIN']);
    const domain = uniqueDomain('scope');
    const ok = async (method: string, path: string, body?: unknown) => {
      const res = await admin(t, sys, method, path, body);
      assert.ok(res.status < 300, `${method} ${path}: ${res.status} ${res.body}`);
      return res.json;
    };
    await ok('POST', '/api/admin/organizations', { domain, name: 'Scopes' });
    await ok('POST', `/api/admin/users/${domain}`, { userId: 'alice' });
    await ok('PUT', `/api/admin/externalapi/${domain}`, { apis: ['USER_INFO'] });
    const group = await ok('POST', `/api/admin/usergroups/${domain}`, { name: 'G', members: ['alice'] });
    await ok('POST', `/api/admin/numbers/${domain}`, { number: '+46811100000' });
    const device = await ok('POST', `/api/admin/devices/${domain}/alice`, { deviceType: 'SOFTPHONE' });
    const acd = await ok('POST', `/api/admin/acd-attendant-group/${domain}`, { name: 'Q' });
    await ok('POST', `/api/admin/acd-attendant-group/${domain}/${String(acd.id)}/agents`, { user: 'alice' });
    const ticket = await ok('POST', `/api/admin/tickets/${domain}`, { user: 'alice', apis: ['USER_INFO'] });
    await ok('PUT', `/api/admin/webhooks/${domain}`, { url: 'https://crm.example.com/onecloud' });
    Object.assign(params, {
      domain,
      user: 'alice',
      id: String(group.id),
      number: encodeURIComponent('+46811100000'),
      deviceId: encodeURIComponent(String(device.deviceId)),
      group: String(acd.id),
      agent: 'alice',
      ticketId: String(ticket.id),
    });
  });
  after(async () => t.close());

  function pathOf(url: string): string {
    return url.replace(/:([A-Za-z]+)/g, (_, name: string) => {
      const v = params[name];
      assert.ok(v !== undefined, `${url}: no value for :${name}; add one to this test's setup`);
      return v;
    });
  }

  test('each narrow scope reads its own resource group and is refused every other group', async () => {
    const gets = t.app.routeTable
      .filter((r) => (Array.isArray(r.method) ? r.method : [r.method]).includes('GET'))
      .map((r) => ({ url: r.url, access: r.config?.access }))
      .filter(
        (r): r is { url: string; access: Extract<Access, { kind: 'admin' }> } => r.access?.kind === 'admin',
      );
    assert.ok(gets.length >= 20, `the route table lists the admin GET routes (${gets.length})`);
    for (const r of gets) {
      assert.ok(ADMIN_SCOPES.includes(r.access.scope), `${r.url}: unknown scope ${r.access.scope}`);
      assert.notEqual(r.access.scope, 'ADMIN', `${r.url} needs a narrow scope, not ADMIN`);
    }
    const narrow = ADMIN_SCOPES.filter((s) => s !== 'ADMIN');
    const withRoutes = new Set(gets.map((r) => r.access.scope));
    for (const s of [
      'ADMIN_ORGANIZATIONS',
      'ADMIN_USERS',
      'ADMIN_NUMBERS',
      'ADMIN_DEVICES',
      'ADMIN_GROUPS',
      'ADMIN_TICKETS',
      'ADMIN_AUDIT',
      'ADMIN_WEBHOOKS',
    ] as const)
      assert.ok(withRoutes.has(s), `${s} guards at least one GET route`);
    let checked = 0;
    for (const scope of narrow) {
      const ticket = await systemTicket(ctx.handle, t.config, [scope]);
      for (const r of gets) {
        const path = pathOf(r.url);
        const res = await admin(t, ticket, 'GET', path);
        const label = `${scope} GET ${path}: ${res.status} ${res.body.slice(0, 200)}`;
        if (r.access.scope === scope) {
          assert.ok(res.status >= 200 && res.status < 300, label);
        } else {
          assert.equal(res.status, 403, label);
          assert.match(res.body, new RegExp(`not granted ${r.access.scope}`), label);
        }
        checked += 1;
      }
    }
    // Scopes without routes yet (e.g. ADMIN_CDR) were checked too: they are refused everywhere.
    assert.equal(checked, narrow.length * gets.length);
  });
});
