import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { forEachDialect } from '../db/helpers.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { PASSWORD, seedOrg, signed, systemTicket, type SeededOrg } from '../helpers/fixtures.js';
import { encodeCursor } from '../../src/http/pagination.js';

/**
 * Integer ids and cursors that JavaScript or the database cannot hold exactly: every one is a
 * clear 400 (or 404 for a well-formed id that does not exist), never a database error (500).
 */
const TOO_BIG = ['99999999999999999999999', '1e20', '9007199254740992'];
const LARGEST = String(Number.MAX_SAFE_INTEGER);

forEachDialect('ids and cursors beyond a safe integer', (ctx) => {
  let t: TestApp;
  let o: SeededOrg;
  let sys: { token: string; secret: string; id: number };
  before(async () => {
    t = await startTestApp({ database: ctx.handle });
    o = await seedOrg(ctx.handle, t.config, [{ userId: 'alice' }]);
    sys = await systemTicket(ctx.handle, t.config, ['ADMIN']);
  });
  after(async () => t.close());

  /** `body`: a value to send as JSON, or JSON text as is (numbers JavaScript cannot hold). */
  const admin = (method: string, url: string, body?: unknown) => {
    const payload = body === undefined ? '' : typeof body === 'string' ? body : JSON.stringify(body);
    return t.app.inject({
      method: method as 'GET',
      url,
      headers: signed(sys, method, url, payload),
      payload,
    });
  };
  const assertRefused = (
    res: { statusCode: number; body: string },
    what: string,
    allowed: readonly number[] = [400],
  ) => {
    assert.ok(allowed.includes(res.statusCode), `${what}: ${res.statusCode} ${res.body}`);
    if (res.statusCode === 400) assert.match(res.body, /must be <= 9007199254740991|cursor|integer/, what);
  };

  test('the ticket API: revoking a ticket id past 2^53 - 1 is 400; the largest safe id is 404', async () => {
    const authorization = `Basic ${Buffer.from(`alice@${o.domain}:${PASSWORD}`).toString('base64')}`;
    for (const id of TOO_BIG) {
      const res = await t.app.inject({
        method: 'DELETE',
        url: `/api/tickets/${o.domain}/alice/${id}`,
        headers: { authorization },
      });
      assertRefused(res, id);
    }
    const largest = await t.app.inject({
      method: 'DELETE',
      url: `/api/tickets/${o.domain}/alice/${LARGEST}`,
      headers: { authorization },
    });
    assert.equal(largest.statusCode, 404, largest.body);
  });

  test('admin id parameters: tickets, user groups, External API per group, ACD/attendant groups', async () => {
    const d = o.domain;
    for (const id of [...TOO_BIG, LARGEST]) {
      const expected = id === LARGEST ? [404] : [400];
      for (const [method, url, body] of [
        ['GET', `/api/admin/tickets/${d}/${id}`],
        ['DELETE', `/api/admin/tickets/${d}/${id}`],
        ['GET', `/api/admin/usergroups/${d}/${id}`],
        ['PUT', `/api/admin/usergroups/${d}/${id}`, { name: 'x' }],
        ['DELETE', `/api/admin/usergroups/${d}/${id}`],
        ['GET', `/api/admin/usergroups/${d}/${id}/members`],
        ['GET', `/api/admin/usergroups/${d}/${id}/roles`],
        ['PUT', `/api/admin/usergroups/${d}/${id}/members/alice`],
        ['DELETE', `/api/admin/usergroups/${d}/${id}/members/alice`],
        ['GET', `/api/admin/externalapi/${d}/usergroups/${id}`],
        ['GET', `/api/admin/acd-attendant-group/${d}/${id}`],
        ['DELETE', `/api/admin/acd-attendant-group/${d}/${id}`],
        ['GET', `/api/admin/acd-attendant-group/${d}/${id}/agents`],
        ['GET', `/api/admin/acd-attendant-group/${d}/${id}/agents/alice`],
      ] as const) {
        assertRefused(await admin(method, url, body), `${method} ${url}`, expected);
      }
    }
  });

  test('user group ids past 2^53 - 1 in a user body are 400, and nothing is created or changed', async () => {
    const d = o.domain;
    for (const groups of ['[1e20]', '[9007199254740992]', '[1, 99999999999999999999999]']) {
      const create = `{"userId":"zz","groups":${groups}}`;
      assertRefused(await admin('POST', `/api/admin/users/${d}`, create), `create ${groups}`);
      assertRefused(
        await admin('PUT', `/api/admin/users/${d}/alice`, `{"groups":${groups}}`),
        `update ${groups}`,
      );
    }
    assert.equal((await admin('GET', `/api/admin/users/${d}/zz`)).statusCode, 404);
  });

  test('a number assigned to an ACD group id past 2^53 - 1 is 400, and stays as it was', async () => {
    const number = '+46701234599';
    const added = await admin('POST', `/api/admin/numbers/${o.domain}`, { number });
    assert.equal(added.statusCode, 201, added.body);
    const url = `/api/admin/numbers/${o.domain}/${encodeURIComponent(number)}`;
    for (const acdGroup of ['1e20', '9007199254740992', '99999999999999999999999']) {
      assertRefused(await admin('PUT', url, `{"acdGroup":${acdGroup}}`), `acdGroup ${acdGroup}`);
    }
    // A well-formed id that does not exist is the service's own answer, not a database error.
    const largest = await admin('PUT', url, { acdGroup: Number.MAX_SAFE_INTEGER });
    assert.ok([400, 404].includes(largest.statusCode), largest.body);
    const now = await admin('GET', url);
    assert.equal((JSON.parse(now.body) as { acdGroup: number | null }).acdGroup, null);
  });

  test('cursors: only safe whole numbers are positions; 1.5 and 1e20 are 400', async () => {
    const d = o.domain;
    const forged = [
      encodeCursor(1.5)!,
      encodeCursor(1e20)!,
      encodeCursor(9007199254740992)!,
      encodeCursor(-1.5)!,
      Buffer.from('{"a":1e400}').toString('base64url'),
    ];
    for (const cursor of forged) {
      for (const list of [
        '/api/admin/organizations',
        `/api/admin/users/${d}`,
        `/api/admin/usergroups/${d}`,
        `/api/admin/tickets/${d}`,
        `/api/admin/acd-attendant-group/${d}`,
        `/api/admin/audit/${d}`,
      ]) {
        const res = await admin('GET', `${list}?cursor=${cursor}`);
        assert.equal(res.statusCode, 400, `${list} cursor ${cursor}: ${res.body}`);
        assert.match(res.body, /is not a cursor this server gave out/);
      }
    }
    // A cursor the server gave out still works.
    const first = await admin('GET', `/api/admin/users/${d}?limit=1`);
    const next = (JSON.parse(first.body) as { next: string | null }).next;
    if (next) assert.equal((await admin('GET', `/api/admin/users/${d}?cursor=${next}`)).statusCode, 200);
  });
});
