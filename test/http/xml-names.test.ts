import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { PASSWORD, seedOrg, signed, systemTicket, userToken, type SeededOrg } from '../helpers/fixtures.js';

/**
 * The XML parser throws on element names that could pollute prototypes (`__proto__`,
 * `constructor`, `prototype`). That is the client's input: a 400 naming the problem on every
 * route, read before authentication or after it, never a 500.
 */
const HOSTILE = [
  '<availability><__proto__><admin>true</admin></__proto__></availability>',
  '<availability><constructor>x</constructor></availability>',
  '<availability><a><prototype>x</prototype></a></availability>',
  '<__proto__><x>1</x></__proto__>',
];

let t: TestApp;
let o: SeededOrg;
let token: string;
let sys: { token: string; secret: string; id: number };
before(async () => {
  t = await startTestApp();
  o = await seedOrg(t.database, t.config, [{ userId: 'alice' }]);
  token = await userToken(t.database, t.config, o, 'alice', ['USER_INFO']);
  sys = await systemTicket(t.database, t.config, ['ADMIN']);
});
after(async () => t.close());

function assertXml400(res: { statusCode: number; body: string; headers: Record<string, unknown> }): void {
  assert.equal(res.statusCode, 400, res.body);
  assert.match(
    res.body,
    /<field>body<\/field><message>XML not accepted: Invalid name: &quot;(__proto__|constructor|prototype)&quot;/,
  );
  const logToken = /see (.+)"$/.exec(String(res.headers.warning))?.[1];
  assert.ok(logToken && res.body.includes(logToken));
  const lines = t.logs.withToken(logToken);
  assert.ok(lines.some((l) => l.msg === 'request refused with 400'));
  assert.ok(!lines.some((l) => Number(l.level) >= 50), 'no error line: nothing went wrong on the server');
}

const XML = { 'content-type': 'application/xml', accept: 'application/xml' };

test('a user route (authenticated by ticket) answers 400', async () => {
  for (const payload of HOSTILE) {
    const res = await t.app.inject({
      method: 'PUT',
      url: `/api/user/availability/v1/${o.domain}/alice`,
      headers: { ...XML, authorization: `Bearer ${token}` },
      payload,
    });
    assertXml400(res);
  }
});

test('the ticket API (HTTP Basic) answers 400 and creates nothing', async () => {
  const basic = `Basic ${Buffer.from(`alice@${o.domain}:${PASSWORD}`).toString('base64')}`;
  for (const payload of HOSTILE) {
    const res = await t.app.inject({
      method: 'POST',
      url: `/api/tickets/${o.domain}/alice?api=USER_INFO`,
      headers: { ...XML, authorization: basic },
      payload,
    });
    assertXml400(res);
  }
  const list = await t.app.inject({
    url: `/api/tickets/${o.domain}/alice`,
    headers: { authorization: basic },
  });
  assert.equal(
    (JSON.parse(list.body) as { tickets: unknown[] }).tickets.length,
    1,
    'only the fixture ticket',
  );
});

test('an admin route: unsigned, 401 before the body is read; signed, the hostile XML is a 400; the server stays up', async () => {
  const url = '/api/admin/organizations';
  for (const payload of HOSTILE.map((x) => x.replace(/availability/g, 'organization'))) {
    const unsigned = await t.app.inject({ method: 'POST', url, headers: XML, payload });
    assert.equal(unsigned.statusCode, 401, unsigned.body);
    assertXml400(
      await t.app.inject({
        method: 'POST',
        url,
        headers: { ...signed(sys, 'POST', url, payload), ...XML },
        payload,
      }),
    );
  }
  const body = `<organization><domain>after-xml.example.com</domain><name>After</name></organization>`;
  const ok = await t.app.inject({
    method: 'POST',
    url,
    headers: { ...signed(sys, 'POST', url, body), ...XML },
    payload: body,
  });
  assert.equal(ok.statusCode, 201, ok.body);
});
