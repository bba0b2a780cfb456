import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { forEachDialect } from '../db/helpers.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { seedOrg, signed, systemTicket, type SeededOrg } from '../helpers/fixtures.js';
import { sntAuthorization, sntCanonical, sntSign } from '../../src/security/tokens.js';
import { SNT_BAD_CREDENTIALS, SNT_WINDOW_S } from '../../src/http/auth.js';
import { TicketAuthRepository } from '../../src/areas/tickets/repository.js';

forEachDialect('SNT-HMACv1 signed admin requests', (ctx) => {
  let t: TestApp;
  let o: SeededOrg;
  let sys: { token: string; secret: string; id: number };
  before(async () => {
    t = await startTestApp({ database: ctx.handle });
    o = await seedOrg(ctx.handle, t.config, [{ userId: 'alice' }]);
    sys = await systemTicket(ctx.handle, t.config, ['ADMIN']);
  });
  after(async () => t.close());

  const path = () => `/api/admin/organizations/${o.domain}`;

  test('a correct signature passes, for a GET and for a POST with a body', async () => {
    const get = await t.app.inject({ url: path(), headers: signed(sys, 'GET', path()) });
    assert.equal(get.statusCode, 200, get.body);
    assert.equal((JSON.parse(get.body) as { domain: string }).domain, o.domain);
    const body = JSON.stringify({ domain: `new-${o.domain}`, name: 'New' });
    const post = await t.app.inject({
      method: 'POST',
      url: '/api/admin/organizations',
      headers: signed(sys, 'POST', '/api/admin/organizations', body),
      payload: body,
    });
    assert.equal(post.statusCode, 201, post.body);
    assert.equal(post.headers.location, `/api/admin/organizations/new-${o.domain}`);
  });

  test('the token may be the ticket id alone or the whole token', async () => {
    const idOnly = { token: String(sys.id), secret: sys.secret };
    assert.equal(
      (await t.app.inject({ url: path(), headers: signed(idOnly, 'GET', path()) })).statusCode,
      200,
    );
  });

  test('a changed body, path, method or query fails', async () => {
    const body = JSON.stringify({ domain: `x-${o.domain}`, name: 'X' });
    const headers = signed(sys, 'POST', '/api/admin/organizations', body);
    const changedBody = await t.app.inject({
      method: 'POST',
      url: '/api/admin/organizations',
      headers,
      payload: body.replace('"X"', '"Y"'),
    });
    assert.equal(changedBody.statusCode, 401);
    assert.equal(
      (JSON.parse(changedBody.body) as { validationResult: string }).validationResult,
      SNT_BAD_CREDENTIALS,
    );
    const h2 = signed(sys, 'GET', path());
    assert.equal((await t.app.inject({ url: '/api/admin/organizations', headers: h2 })).statusCode, 401);
    const h3 = signed(sys, 'DELETE', path());
    assert.equal((await t.app.inject({ method: 'GET', url: path(), headers: h3 })).statusCode, 401);
    const h4 = signed(sys, 'GET', '/api/admin/organizations?limit=5');
    assert.equal(
      (await t.app.inject({ url: '/api/admin/organizations?limit=6', headers: h4 })).statusCode,
      401,
    );
  });

  test('a timestamp more than 300 s off fails, either way', async () => {
    for (const skew of [-301, 301]) {
      const ts = Math.floor(Date.now() / 1000) + skew;
      const res = await t.app.inject({ url: path(), headers: signed(sys, 'GET', path(), '', { ts }) });
      assert.equal(res.statusCode, 401);
      assert.match(res.body, /300 s/);
    }
    const near = Math.floor(Date.now() / 1000) - 250;
    assert.equal(
      (await t.app.inject({ url: path(), headers: signed(sys, 'GET', path(), '', { ts: near }) })).statusCode,
      200,
    );
  });

  test('a replayed nonce fails', async () => {
    const headers = signed(sys, 'GET', path(), '', { nonce: `replay-${Date.now()}` });
    assert.equal((await t.app.inject({ url: path(), headers })).statusCode, 200);
    const again = await t.app.inject({ url: path(), headers });
    assert.equal(again.statusCode, 401);
    assert.match(again.body, /nonce already used/);
  });

  test('a wrong secret, an unknown ticket and a malformed header fail with 401', async () => {
    assert.equal(
      (
        await t.app.inject({
          url: path(),
          headers: signed({ token: sys.token, secret: 'wrong' }, 'GET', path()),
        })
      ).statusCode,
      401,
    );
    assert.equal(
      (await t.app.inject({ url: path(), headers: signed({ token: '987654', secret: 'x' }, 'GET', path()) }))
        .statusCode,
      401,
    );
    for (const authorization of [
      'SNT-HMACv1',
      'SNT-HMACv1 token=1',
      'SNT-HMACv1 token=1, ts=abc, nonce=12345678, sig=x',
      'Bearer 1.abc',
    ]) {
      assert.equal(
        (await t.app.inject({ url: path(), headers: { authorization } })).statusCode,
        401,
        authorization,
      );
    }
  });

  test('an unsigned caller cannot tell an existing system ticket id from an unknown one', async () => {
    const stale = Math.floor(Date.now() / 1000) - 3600;
    const fresh = Math.floor(Date.now() / 1000);
    const answers = new Set<string>();
    for (const token of [String(sys.id), '987654321', sys.token, `${sys.id}.${'A'.repeat(43)}`]) {
      for (const ts of [stale, fresh]) {
        const headers = signed({ token, secret: 'guessed secret' }, 'GET', path(), '', { ts });
        const res = await t.app.inject({ url: path(), headers });
        assert.equal(res.statusCode, 401, `${token} ts=${ts}`);
        answers.add((JSON.parse(res.body) as { validationResult: string }).validationResult);
      }
    }
    // A stale timestamp is only told apart once the signature is right.
    assert.deepEqual([...answers], [SNT_BAD_CREDENTIALS]);
    const signedStale = await t.app.inject({
      url: path(),
      headers: signed(sys, 'GET', path(), '', { ts: stale }),
    });
    assert.equal(signedStale.statusCode, 401);
    assert.match(signedStale.body, /300 s away/);
  });

  test('used nonces are pruned by the app once expired; a replay inside the window is still refused', async () => {
    const app = await startTestApp({ database: ctx.handle, config: { noncePruneIntervalMs: 25 } });
    const db = ctx.handle.db;
    const nonces = () =>
      db
        .selectFrom('used_nonces')
        .select('nonce')
        .where('ticket_id', '=', sys.id)
        .execute()
        .then((rows) => rows.map((r) => r.nonce));
    const repo = new TicketAuthRepository(db);
    const waitUntil = async (what: string, ok: () => Promise<boolean>) => {
      for (let i = 0; i < 200 && !(await ok()); i++) await new Promise((r) => setTimeout(r, 10));
      assert.ok(await ok(), what);
    };
    try {
      // Seen long ago: past its expiry.
      await repo.useNonce(sys.id, 'old-nonce-1', Date.now() - 1000);
      const nonce = `fresh-${Date.now()}`;
      const headers = signed(sys, 'GET', path(), '', { nonce });
      assert.equal((await app.app.inject({ url: path(), headers })).statusCode, 200);
      await waitUntil('the expired nonce is deleted', async () => !(await nonces()).includes('old-nonce-1'));
      assert.ok((await nonces()).includes(nonce), 'a nonce inside its window is kept');
      const replay = await app.app.inject({ url: path(), headers });
      assert.equal(replay.statusCode, 401);
      assert.match(replay.body, /nonce already used/);
      // Kept for twice the window after use: a ts inside the window can never find it gone.
      const row = await db
        .selectFrom('used_nonces')
        .select('expires_at')
        .where('nonce', '=', nonce)
        .executeTakeFirstOrThrow();
      assert.ok(Number(row.expires_at) >= Date.now() + 2 * SNT_WINDOW_S * 1000 - 60_000);
    } finally {
      await app.app.close();
    }
    // The timer stops with the app.
    await repo.useNonce(sys.id, 'old-nonce-2', Date.now() - 1000);
    await new Promise((r) => setTimeout(r, 150));
    assert.ok((await nonces()).includes('old-nonce-2'), 'no pruning after close');
    await repo.pruneNonces();
  });

  test('an unsigned or unknown-ticket admin request is refused before its body is read', async () => {
    const base = await t.app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = new URL(base);
    const url = `/api/admin/users/${o.domain}/bulk`;
    // Headers announcing an 8 MB body, and only a few bytes of it: an answer before the rest
    // comes proves the body was never waited for.
    const ask = (authorization?: string) =>
      new Promise<string>((resolve, reject) => {
        const socket = connect(Number(port), '127.0.0.1', () => {
          socket.write(
            `POST ${url} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
              `Content-Length: 8000000\r\n${authorization ? `Authorization: ${authorization}\r\n` : ''}\r\n{"users":[`,
          );
        });
        let text = '';
        socket.setEncoding('utf8');
        socket.on('data', (d: string) => {
          text += d;
          if (text.includes('\r\n\r\n')) {
            socket.destroy();
            resolve(text.slice(0, text.indexOf('\r\n')));
          }
        });
        socket.on('error', reject);
        socket.setTimeout(5000, () => reject(new Error('no answer before the body: it was waited for')));
      });
    assert.match(await ask(), /^HTTP\/1\.1 401 /);
    const unknown = sntAuthorization({
      token: '999999',
      secret: 'x',
      method: 'POST',
      pathAndQuery: url,
      body: '',
    });
    assert.match(await ask(unknown), /^HTTP\/1\.1 401 /);
  });

  test('a POST with X-HTTP-Method-Override is signed with the method sent (POST)', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/admin/organizations',
      headers: { ...signed(sys, 'POST', '/api/admin/organizations'), 'x-http-method-override': 'PUT' },
    });
    // Authenticated (not 401); PUT is not a method of the collection: 405.
    assert.equal(res.statusCode, 405, res.body);
  });

  test('a ticket limited to one organization gets 404 for any other, and lists only its own', async () => {
    const other = await seedOrg(ctx.handle, t.config, [{ userId: 'zed' }]);
    const limited = await systemTicket(ctx.handle, t.config, ['ADMIN'], [o.domain]);
    const own = await t.app.inject({ url: path(), headers: signed(limited, 'GET', path()) });
    assert.equal(own.statusCode, 200);
    const otherPath = `/api/admin/organizations/${other.domain}`;
    const res = await t.app.inject({ url: otherPath, headers: signed(limited, 'GET', otherPath) });
    assert.equal(res.statusCode, 404);
    const list = await t.app.inject({
      url: '/api/admin/organizations',
      headers: signed(limited, 'GET', '/api/admin/organizations'),
    });
    assert.deepEqual(
      (JSON.parse(list.body) as { items: { domain: string }[] }).items.map((i) => i.domain),
      [o.domain],
    );
  });
});

test('the README worked example is what the code computes', () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const at = readme.indexOf('Worked example');
  assert.ok(at >= 0, 'README.md has the SNT-HMACv1 worked example');
  const example = readme.slice(at);
  const secret = /secret `([^`]+)`/.exec(example)?.[1];
  assert.ok(secret, 'the example names its secret');
  // The canonical block: method, path?query, ts, nonce, hex sha256 of the body.
  const block = /canonical:\n((?:.+\n){5})/.exec(example)?.[1];
  assert.ok(block, 'the example shows the canonical string');
  const [method, pathAndQuery, ts, nonce, bodyHash] = block.trimEnd().split('\n') as [
    string,
    string,
    string,
    string,
    string,
  ];
  assert.equal(bodyHash, createHash('sha256').update('').digest('hex'), 'the example has an empty body');
  assert.equal(block.trimEnd(), sntCanonical(method, pathAndQuery, Number(ts), nonce, ''));
  const line = /^Authorization: (SNT-HMACv1 token=([^,{}\s]+), ts=\d+, .*)$/m.exec(example);
  assert.ok(line, 'the example shows the Authorization header');
  const computed = sntAuthorization({
    token: line[2]!,
    secret,
    method,
    pathAndQuery,
    ts: Number(ts),
    nonce,
  });
  assert.equal(line[1], computed, 'README.md shows the header the code computes');
  assert.equal(
    computed,
    `SNT-HMACv1 token=${line[2]!}, ts=${ts}, nonce=${nonce}, sig=${sntSign(secret, block.trimEnd())}`,
  );
});
