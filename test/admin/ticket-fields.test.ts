/**
 * Ticket creation names the caller's own fields: the admin API's body (`body.apis`,
 * `body.days`), the ticket API's query parameters (`query.api`, `query.days`).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { forEachDialect, uniqueDomain } from '../db/helpers.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { systemTicket } from '../helpers/fixtures.js';
import { admin, http, type ErrorAnswer, type Ticket } from './helpers.js';

forEachDialect('ticket creation errors name the caller’s fields', (ctx) => {
  let t: TestApp;
  let sys: Ticket;
  let d: string;
  const password = 'a password for tickets';

  before(async () => {
    t = await startTestApp({ database: ctx.handle });
    sys = await systemTicket(ctx.handle, t.config, ['ADMIN']);
    d = uniqueDomain('tf');
    await admin(t, sys, 'POST', '/api/admin/organizations', { domain: d, name: 'T' });
    await admin(t, sys, 'POST', `/api/admin/users/${d}`, { userId: 'tia', password });
    await admin(t, sys, 'PUT', `/api/admin/externalapi/${d}`, { apis: ['USER_INFO'] });
  });
  after(async () => t.close());

  test('admin API: body.days', async () => {
    const tooLong = await admin<ErrorAnswer>(t, sys, 'POST', `/api/admin/tickets/${d}`, {
      user: 'tia',
      apis: ['USER_INFO'],
      days: t.config.ticketMaxDays + 1,
    });
    assert.equal(tooLong.status, 400, tooLong.body);
    assert.deepEqual(
      tooLong.json.errors!.map((e) => e.field),
      ['body.days'],
    );
    assert.match(tooLong.json.errors![0]!.message, new RegExp(`1 to ${t.config.ticketMaxDays}`));
    const noApi = await admin<ErrorAnswer>(t, sys, 'POST', `/api/admin/tickets/${d}`, {
      user: 'tia',
      apis: [],
    });
    assert.equal(noApi.status, 400);
    assert.equal(noApi.json.errors![0]!.field, 'body.apis');
  });

  test('ticket API: query.api and query.days', async () => {
    const basic = { authorization: `Basic ${Buffer.from(`tia@${d}:${password}`).toString('base64')}` };
    const noApi = await http(t, 'POST', `/api/tickets/${d}/tia`, basic);
    assert.equal(noApi.status, 400, noApi.body);
    const noApiBody = JSON.parse(noApi.body) as ErrorAnswer;
    assert.deepEqual(
      noApiBody.errors!.map((e) => e.field),
      ['query.api'],
    );
    const tooLong = await http(
      t,
      'POST',
      `/api/tickets/${d}/tia?api=USER_INFO&days=${t.config.ticketMaxDays + 1}`,
      basic,
    );
    assert.equal(tooLong.status, 400, tooLong.body);
    assert.deepEqual(
      (JSON.parse(tooLong.body) as ErrorAnswer).errors!.map((e) => e.field),
      ['query.days'],
    );
    const ok = await http(t, 'POST', `/api/tickets/${d}/tia?api=USER_INFO&days=2`, basic);
    assert.equal(ok.status, 200, ok.body);
  });
});
