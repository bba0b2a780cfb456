import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import { ConflictError, ForbiddenError, UnauthorizedError } from '../../src/errors.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { seedOrg, userToken } from '../helpers/fixtures.js';
import { DECLARED } from '../../src/areas/declared/routes.js';

/**
 * The platform layer's conventions, shown on the real app with a few routes of its own (the
 * areas' routes are tested in their own files; these routes make each convention reachable).
 */
const Item = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 50 }),
    count: Type.Integer({ minimum: 0 }),
    enabled: Type.Boolean(),
    tags: Type.Optional(Type.Array(Type.String())),
  },
  { additionalProperties: false },
);

async function testRoutes(api: FastifyInstance): Promise<void> {
  api.addHook('onRoute', (route) => {
    route.config = { ...(route.config ?? {}), access: { kind: 'public' } };
  });
  api.post(
    '/api/_test/items',
    {
      schema: {
        body: Item,
        response: {
          201: Type.Object({
            id: Type.Integer(),
            name: Type.String(),
            count: Type.Integer(),
            enabled: Type.Boolean(),
            tags: Type.Array(Type.String()),
          }),
        },
      },
      config: { xmlRoot: 'item' },
    },
    async (request, reply) => {
      const body = request.body as { name: string; count: number; enabled: boolean; tags?: string[] };
      reply.code(201);
      // `secret` is not in the response schema: neither JSON nor XML may show it.
      return { id: 7, ...body, tags: body.tags ?? [], secret: 'hidden-value' };
    },
  );
  const echoMethod = async (request: { method: string; params: unknown }) => ({
    method: request.method,
    params: request.params,
  });
  api.put('/api/_test/items/:id', echoMethod);
  api.delete('/api/_test/items/:id', echoMethod);
  api.patch('/api/_test/items/:id', echoMethod);
  api.get('/api/_test/names/:name', async (request) => ({ name: (request.params as { name: string }).name }));
  api.get(
    '/api/_test/flag',
    { schema: { querystring: Type.Object({ on: Type.Boolean() }) } },
    async (request) => ({ on: (request.query as { on: boolean }).on }),
  );
  api.post('/api/_test/action', async () => ({ validationResult: '' }));
  api.get('/api/_test/conflict', async () => {
    throw new ConflictError('user id "bob" is taken');
  });
  api.get('/api/_test/unauthorized', async () => {
    throw new UnauthorizedError();
  });
  api.get('/api/_test/forbidden', async () => {
    throw new ForbiddenError('this ticket has no CONTACT scope');
  });
  api.get('/api/_test/boom', async () => {
    throw new Error('database password is hunter2 at /srv/secret/path');
  });
  api.get('/api/_test/list', async () => [{ id: 1 }, { id: 2 }]);
}

const XML = { 'content-type': 'application/xml', accept: 'application/xml' };
const JSONH = { 'content-type': 'application/json', accept: 'application/json' };

let t: TestApp;
before(async () => {
  t = await startTestApp({ extraApi: testRoutes, config: { bodyLimit: 64 * 1024, xmlBodyLimit: 8 * 1024 } });
});
after(async () => t.close());

/** The error body in the negotiated format: status, the log token and the message. */
function assertErrorBody(
  res: { body: string; headers: Record<string, unknown> },
  accept: string,
  status: number,
  token: string,
  message: RegExp,
): void {
  if (accept === 'application/xml') {
    assert.match(String(res.headers['content-type']), /^application\/xml/);
    assert.match(res.body, /^<\?xml[^]*<error><validationResult>/);
    assert.ok(res.body.includes(`<status>${status}</status>`), res.body);
    assert.ok(res.body.includes(`<logToken>${token}</logToken>`), res.body);
    assert.match(res.body, message);
  } else {
    assert.match(String(res.headers['content-type']), /^application\/json/);
    const body = JSON.parse(res.body) as { status: number; logToken: string; validationResult: string };
    assert.equal(body.status, status);
    assert.equal(body.logToken, token);
    assert.match(body.validationResult, message);
  }
}

function tokenOf(warning: string | string[] | undefined): string {
  const m = /^703 - "Error occurred, see (.+)"$/.exec(String(warning));
  assert.ok(m, `Warning header has the 703 form: ${String(warning)}`);
  return m[1]!;
}

/** Asserts the error status, the Warning token, and that the same token is on a log line. */
function assertError(
  res: { statusCode: number; headers: Record<string, unknown>; body: string },
  status: number,
): string {
  assert.equal(res.statusCode, status, res.body);
  const token = tokenOf(res.headers.warning as string);
  assert.ok(t.logs.withToken(token).length > 0, `log has a line with token ${token}`);
  assert.ok(res.body.includes(token), 'body names the token too');
  return token;
}

describe('X-HTTP-Method-Override', () => {
  for (const method of ['PUT', 'DELETE', 'PATCH'] as const) {
    test(`POST + override ${method} answers exactly as ${method}`, async () => {
      const real = await t.app.inject({ method, url: '/api/_test/items/5' });
      const over = await t.app.inject({
        method: 'POST',
        url: '/api/_test/items/5',
        headers: { 'x-http-method-override': method.toLowerCase() },
      });
      assert.equal(over.statusCode, real.statusCode);
      assert.equal(over.body, real.body);
      assert.deepEqual(JSON.parse(over.body), { method, params: { id: '5' } });
    });
  }
  test('the override works in XML too', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/_test/items/5',
      headers: { accept: 'application/xml', 'x-http-method-override': 'DELETE' },
    });
    assert.equal(res.statusCode, 200);
    assert.match(res.body, /<method>DELETE<\/method>/);
  });
  test('an override from another method than POST is 400', async () => {
    for (const format of [JSONH, XML]) {
      const res = await t.app.inject({
        method: 'GET',
        url: '/api/_test/items/5',
        headers: { accept: format.accept, 'x-http-method-override': 'DELETE' },
      });
      assertError(res, 400);
      assert.match(res.body, /only accepted on POST/);
    }
  });
  test('an override to a method outside PUT/DELETE/PATCH is 400', async () => {
    for (const to of ['GET', 'POST', 'TRACE', 'CONNECT']) {
      const res = await t.app.inject({
        method: 'POST',
        url: '/api/_test/items/5',
        headers: { 'x-http-method-override': to },
      });
      assertError(res, 400);
      assert.match(res.body, /must be PUT, DELETE or PATCH/);
    }
  });
});

describe('content negotiation', () => {
  test('JSON in, JSON out; XML in, XML out, with the same fields', async () => {
    const json = await t.app.inject({
      method: 'POST',
      url: '/api/_test/items',
      headers: JSONH,
      payload: { name: 'desk', count: 3, enabled: true, tags: ['a', 'b'] },
    });
    assert.equal(json.statusCode, 201);
    assert.deepEqual(JSON.parse(json.body), {
      id: 7,
      name: 'desk',
      count: 3,
      enabled: true,
      tags: ['a', 'b'],
    });
    const xml = await t.app.inject({
      method: 'POST',
      url: '/api/_test/items',
      headers: XML,
      payload:
        '<?xml version="1.0"?><item><name>desk</name><count>3</count><enabled>true</enabled><tags>a</tags><tags>b</tags></item>',
    });
    assert.equal(xml.statusCode, 201, xml.body);
    assert.match(String(xml.headers['content-type']), /^application\/xml/);
    assert.equal(
      xml.body,
      '<?xml version="1.0" encoding="UTF-8"?>\n<item><id>7</id><name>desk</name><count>3</count><enabled>true</enabled><tags>a</tags><tags>b</tags></item>',
    );
  });
  test('XML never shows a field the JSON serializer filters out', async () => {
    for (const headers of [JSONH, XML]) {
      const payload =
        headers === XML
          ? '<item><name>x</name><count>1</count><enabled>false</enabled></item>'
          : { name: 'x', count: 1, enabled: false };
      const res = await t.app.inject({ method: 'POST', url: '/api/_test/items', headers, payload });
      assert.equal(res.statusCode, 201);
      assert.doesNotMatch(res.body, /secret|hidden-value/);
    }
  });
  test('XML text stays a string where the schema wants a string', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/_test/items',
      headers: { 'content-type': 'application/xml', accept: 'application/json' },
      payload: '<item><name>0123</name><count>0</count><enabled>false</enabled></item>',
    });
    assert.equal(res.statusCode, 201, res.body);
    assert.equal((JSON.parse(res.body) as { name: string }).name, '0123');
  });
  test('a top-level array becomes repeated item elements in XML', async () => {
    const res = await t.app.inject({
      method: 'GET',
      url: '/api/_test/list',
      headers: { accept: 'application/xml' },
    });
    assert.match(res.body, /<response><item><id>1<\/id><\/item><item><id>2<\/id><\/item><\/response>/);
  });
  test('Accept is read with q-values; a missing Accept means JSON', async () => {
    const cases: [string | undefined, RegExp][] = [
      [undefined, /json/],
      ['*/*', /json/],
      ['application/xml;q=0.9, application/json;q=0.5', /xml/],
      ['text/xml', /xml/],
      ['application/*', /json/],
      ['text/html, application/xml;q=0.1', /xml/],
    ];
    for (const [accept, expected] of cases) {
      const res = await t.app.inject({
        method: 'GET',
        url: '/api/_test/names/x',
        headers: accept === undefined ? {} : { accept },
      });
      assert.equal(res.statusCode, 200, `Accept ${accept}`);
      assert.match(String(res.headers['content-type']), expected, `Accept ${accept}`);
    }
  });
  test('406 for an Accept we cannot produce', async () => {
    for (const accept of ['text/html', 'image/png', 'application/json;q=0']) {
      const res = await t.app.inject({ method: 'GET', url: '/api/_test/names/x', headers: { accept } });
      assertError(res, 406);
    }
  });
  test('415 for another Content-Type with a body, in JSON and XML error bodies', async () => {
    for (const accept of ['application/json', 'application/xml']) {
      const res = await t.app.inject({
        method: 'POST',
        url: '/api/_test/items',
        headers: { 'content-type': 'text/plain', accept },
        payload: 'name=desk',
      });
      assertError(res, 415);
      assert.match(String(res.headers['content-type']), accept === 'application/xml' ? /xml/ : /json/);
      if (accept === 'application/xml') assert.match(res.body, /^<\?xml[^]*<error><validationResult>/);
    }
  });
  test('actions with no body: no Content-Type, or JSON with Content-Length 0', async () => {
    const none = await t.app.inject({ method: 'POST', url: '/api/_test/action' });
    assert.equal(none.statusCode, 200, none.body);
    const empty = await t.app.inject({
      method: 'POST',
      url: '/api/_test/action',
      headers: { 'content-type': 'application/json', 'content-length': '0' },
    });
    assert.equal(empty.statusCode, 200, empty.body);
    assert.deepEqual(JSON.parse(empty.body), { validationResult: '' });
  });
});

describe('errors', () => {
  test('400 lists every problem, field by field, in JSON and XML', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/_test/items',
      headers: JSONH,
      payload: { name: '', count: 'three', enabled: 'true', colour: 'red' },
    });
    assertError(res, 400);
    const body = JSON.parse(res.body) as {
      validationResult: string;
      errors: { field: string; message: string }[];
    };
    const fields = body.errors.map((e) => e.field).sort();
    assert.deepEqual(fields, ['body.colour', 'body.count', 'body.enabled', 'body.name']);
    assert.ok(body.errors.find((e) => e.field === 'body.colour')?.message.includes('remove it'));
    assert.ok(body.validationResult.length > 0);

    const xml = await t.app.inject({
      method: 'POST',
      url: '/api/_test/items',
      headers: XML,
      payload: '<item><count>-1</count><enabled>yes</enabled></item>',
    });
    assertError(xml, 400);
    for (const field of ['body.name', 'body.count', 'body.enabled'])
      assert.ok(xml.body.includes(`<field>${field}</field>`), field);
  });
  test('malformed JSON and malformed XML are 400', async () => {
    const bad = await t.app.inject({
      method: 'POST',
      url: '/api/_test/items',
      headers: JSONH,
      payload: '{"name": ',
    });
    assertError(bad, 400);
    assert.match(bad.body, /malformed JSON/);
    const badXml = await t.app.inject({
      method: 'POST',
      url: '/api/_test/items',
      headers: XML,
      payload: '<item><name>x</item>',
    });
    assertError(badXml, 400);
    assert.match(badXml.body, /malformed XML/);
  });
  test('JSON prototype poisoning is refused', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/_test/items',
      headers: JSONH,
      payload: '{"name":"x","count":1,"enabled":true,"__proto__":{"admin":true}}',
    });
    assertError(res, 400);
  });
  test('XML with a DOCTYPE is refused (no entity expansion)', async () => {
    const xxe =
      '<?xml version="1.0"?><!DOCTYPE item [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><item><name>&xxe;</name><count>1</count><enabled>true</enabled></item>';
    const res = await t.app.inject({ method: 'POST', url: '/api/_test/items', headers: XML, payload: xxe });
    assertError(res, 400);
    assert.match(res.body, /DOCTYPE/);
    assert.doesNotMatch(res.body, /root:/);
  });
  test('401, 403, 409 with the token in the log, JSON and XML', async () => {
    for (const [url, status] of [
      ['/api/_test/unauthorized', 401],
      ['/api/_test/forbidden', 403],
      ['/api/_test/conflict', 409],
    ] as const) {
      for (const accept of ['application/json', 'application/xml']) {
        const res = await t.app.inject({ method: 'GET', url, headers: { accept } });
        assertError(res, status);
      }
    }
  });
  test('404 and 405 with Allow, in JSON and XML', async () => {
    for (const accept of ['application/json', 'application/xml']) {
      const missing = await t.app.inject({ method: 'GET', url: '/api/nothing/here', headers: { accept } });
      const token404 = assertError(missing, 404);
      assertErrorBody(missing, accept, 404, token404, /no such resource: GET \/api\/nothing\/here/);
      const res = await t.app.inject({ method: 'GET', url: '/api/_test/action', headers: { accept } });
      const token405 = assertError(res, 405);
      assert.equal(res.headers.allow, 'POST');
      assertErrorBody(res, accept, 405, token405, /GET is not allowed here; allowed: POST/);
    }
  });
  test('501 for an operation of the contract not built yet: Warning, log token, JSON and XML', async () => {
    const declared = DECLARED.find((d) => d.method === 'GET');
    assert.ok(declared, 'a declared GET operation');
    const o = await seedOrg(t.database, t.config, [{ userId: 'alice' }]);
    const token = await userToken(t.database, t.config, o, 'alice');
    const url = declared.url
      .replace(':domain', o.domain)
      .replace(':user', 'alice')
      .replace(/:[A-Za-z]+/g, '1');
    for (const accept of ['application/json', 'application/xml']) {
      const res = await t.app.inject({ url, headers: { accept, authorization: `Bearer ${token}` } });
      const logToken = assertError(res, 501);
      assertErrorBody(res, accept, 501, logToken, /is part of the API but not implemented yet/);
      assert.ok(
        t.logs
          .withToken(logToken)
          .some((l) => l.msg === 'request answered 501' && l.level === 40 && l.err === undefined),
        'the refusal is logged with the same token, as a warning without a stack',
      );
    }
  });
  test('500 shows no internals; the log line has them under the same token', async () => {
    for (const accept of ['application/json', 'application/xml']) {
      const res = await t.app.inject({ method: 'GET', url: '/api/_test/boom', headers: { accept } });
      const token = assertError(res, 500);
      assert.doesNotMatch(res.body, /hunter2|secret|path|Error:/);
      const line = t.logs.withToken(token).find((l) => l.level === 50);
      assert.ok(line, 'an error line with the token');
      assert.match(JSON.stringify(line), /hunter2/);
    }
  });
});

describe('parameters', () => {
  test('UTF-8 percent-encoded path parameters', async () => {
    for (const [raw, decoded] of [
      ['%2B46701234567', '+46701234567'],
      ['m%C3%B6tley', 'mötley'],
      ['a%20b', 'a b'],
    ]) {
      const res = await t.app.inject({ method: 'GET', url: `/api/_test/names/${raw}` });
      assert.deepEqual(JSON.parse(res.body), { name: decoded });
    }
  });
  test('booleans are only true and false', async () => {
    assert.deepEqual(JSON.parse((await t.app.inject({ url: '/api/_test/flag?on=true' })).body), { on: true });
    assert.deepEqual(JSON.parse((await t.app.inject({ url: '/api/_test/flag?on=false' })).body), {
      on: false,
    });
    for (const v of ['1', 'yes', 'TRUE', '']) {
      assertError(await t.app.inject({ url: `/api/_test/flag?on=${v}` }), 400);
    }
  });
  test('jsonver=2 is accepted', async () => {
    const res = await t.app.inject({ url: '/api/_test/names/x?jsonver=2' });
    assert.equal(res.statusCode, 200);
  });
});

describe('body limits over real HTTP', () => {
  test('an oversize body is 413 and the server stays up', async () => {
    const url = await t.app.listen({ host: '127.0.0.1', port: 0 });
    const big = JSON.stringify({ name: 'x'.repeat(100 * 1024), count: 1, enabled: true });
    const res = await fetch(`${url}/api/_test/items`, { method: 'POST', headers: JSONH, body: big });
    assert.equal(res.status, 413);
    const token = tokenOf(res.headers.get('warning') ?? undefined);
    assertErrorBody(
      { body: await res.text(), headers: { 'content-type': res.headers.get('content-type') } },
      'application/json',
      413,
      token,
      /request body is too large/,
    );
    assert.ok(
      t.logs.withToken(token).some((l) => l.msg === 'request refused with 413' && l.status === 413),
      'the refusal is logged with the same token',
    );
    // XML has a smaller limit than JSON.
    const bigXml = `<item><name>${'x'.repeat(16 * 1024)}</name><count>1</count><enabled>true</enabled></item>`;
    const resXml = await fetch(`${url}/api/_test/items`, { method: 'POST', headers: XML, body: bigXml });
    assert.equal(resXml.status, 413);
    const xmlToken = tokenOf(resXml.headers.get('warning') ?? undefined);
    assertErrorBody(
      { body: await resXml.text(), headers: { 'content-type': resXml.headers.get('content-type') } },
      'application/xml',
      413,
      xmlToken,
      /request body is too large/,
    );
    assert.ok(t.logs.withToken(xmlToken).some((l) => l.msg === 'request refused with 413'));
    const ok = await fetch(`${url}/api/_test/items`, {
      method: 'POST',
      headers: JSONH,
      body: JSON.stringify({ name: 'after', count: 1, enabled: true }),
    });
    assert.equal(ok.status, 201);
    assert.equal(((await ok.json()) as { name: string }).name, 'after');
  });
});

describe('the t= query parameter never reaches a log line', () => {
  test('redacted in the request log', async () => {
    await t.app.inject({ method: 'GET', url: '/api/_test/names/x?t=970.SECRETSECRET&jsonver=2' });
    assert.doesNotMatch(JSON.stringify(t.logs.lines), /SECRETSECRET/);
  });
});
