/**
 * The SIP trunk of an organization in the admin API (`/api/admin/organizations[/{domain}]`):
 * created with the organization or set by PUT, shown by GET (null when none), removed with null,
 * validated with messages that name the field, and audited with the organization's update. Both
 * dialects.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { forEachDialect, uniqueDomain } from '../db/helpers.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { systemTicket } from '../helpers/fixtures.js';
import { admin, type ErrorAnswer, type Rec, type Ticket } from './helpers.js';

forEachDialect('admin API: organization SIP trunk', (ctx) => {
  let t: TestApp;
  let sys: Ticket;

  before(async () => {
    t = await startTestApp({ database: ctx.handle });
    sys = await systemTicket(ctx.handle, t.config, ['ADMIN']);
  });
  after(async () => t.close());

  const trunk = { host: 'sip.carrier.example', port: 5060, transport: 'udp', callerNumber: '+46812345678' };

  test('created with the organization, shown by GET, changed and removed by PUT, audited', async () => {
    const domain = uniqueDomain('trunk');
    const created = await admin(t, sys, 'POST', '/api/admin/organizations', {
      domain,
      name: 'Trunked',
      sipTrunk: trunk,
    });
    assert.equal(created.status, 201, created.body);
    assert.deepEqual(created.json.sipTrunk, trunk);
    const path = `/api/admin/organizations/${domain}`;
    assert.deepEqual((await admin(t, sys, 'GET', path)).json.sipTrunk, trunk);

    const changed = { host: '192.0.2.10', port: 5080, transport: 'tcp', domain: 'carrier.example' };
    const put = await admin(t, sys, 'PUT', path, { sipTrunk: changed });
    assert.equal(put.status, 200, put.body);
    assert.deepEqual(put.json.sipTrunk, changed);
    // A PUT without the field leaves it as it is.
    const renamed = await admin(t, sys, 'PUT', path, { name: 'Renamed' });
    assert.deepEqual(renamed.json.sipTrunk, changed);

    const removed = await admin(t, sys, 'PUT', path, { sipTrunk: null });
    assert.equal(removed.json.sipTrunk, null);
    assert.equal((await admin(t, sys, 'GET', path)).json.sipTrunk, null);

    const audit = await ctx.handle.db
      .selectFrom('audit_log')
      .select(['action', 'data'])
      .where('entity_id', '=', domain)
      .where('action', '=', 'organization.updated')
      .orderBy('id')
      .execute();
    assert.ok(audit[0]?.data.includes('192.0.2.10'), JSON.stringify(audit));
  });

  test('an organization without a trunk shows null', async () => {
    const domain = uniqueDomain('plain');
    const created = await admin<Rec>(t, sys, 'POST', '/api/admin/organizations', { domain, name: 'Plain' });
    assert.equal(created.json.sipTrunk, null);
  });

  test('validation names each wrong field', async () => {
    const domain = uniqueDomain('badtrunk');
    assert.equal(
      (await admin(t, sys, 'POST', '/api/admin/organizations', { domain, name: 'x' })).status,
      201,
    );
    const bad = await admin<ErrorAnswer>(t, sys, 'PUT', `/api/admin/organizations/${domain}`, {
      sipTrunk: { host: 'not a host!', port: 70000, transport: 'tls', callerNumber: '12ab', extra: 1 },
    });
    assert.equal(bad.status, 400, bad.body);
    const fields = (bad.json.errors ?? []).map((e) => `${e.field}: ${e.message}`);
    for (const field of ['host', 'port', 'transport', 'callerNumber', 'extra'])
      assert.ok(
        fields.some((f) => f.startsWith(`body.sipTrunk.${field}:`)),
        `${field} not named in ${JSON.stringify(fields)}`,
      );
    assert.ok(
      fields.some((f) => f.includes('host name')),
      JSON.stringify(fields),
    );
    assert.ok(fields.includes('body.sipTrunk.transport: must be one of: udp, tcp'), JSON.stringify(fields));
    const missing = await admin<ErrorAnswer>(t, sys, 'PUT', `/api/admin/organizations/${domain}`, {
      sipTrunk: { host: '192.0.2.1' },
    });
    const missingFields = (missing.json.errors ?? []).map((e) => `${e.field}: ${e.message}`);
    assert.ok(missingFields.includes('body.sipTrunk.port: is required'), JSON.stringify(missingFields));
    assert.ok(missingFields.includes('body.sipTrunk.transport: is required'), JSON.stringify(missingFields));
  });
});
