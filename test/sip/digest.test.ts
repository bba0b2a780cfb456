import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  digestHa1,
  digestResponse,
  formatChallenge,
  NonceManager,
  parseAuthorization,
  verifyDigest,
  type DigestAlgorithm,
  type DigestCredentials,
} from '../../src/sip/digest.js';
import { SipParseError } from '../../src/sip/message.js';
import { FakeClock } from './fake-clock.js';

describe('digest computation (published test vectors)', () => {
  test('RFC 2617 §3.5: MD5, qop=auth', () => {
    const ha1 = digestHa1('MD5', 'Mufasa', 'testrealm@host.com', 'Circle Of Life');
    const r = digestResponse({
      algorithm: 'MD5',
      ha1,
      method: 'GET',
      uri: '/dir/index.html',
      nonce: 'dcd98b7102dd2f0e8b11d0f600bfb0c093',
      qop: 'auth',
      nc: '00000001',
      cnonce: '0a4f113b',
    });
    assert.equal(r, '6629fae49393a05397450978507c4ef1');
  });

  test('RFC 7616 §3.9.1: MD5 and SHA-256, qop=auth', () => {
    const common = {
      method: 'GET',
      uri: '/dir/index.html',
      nonce: '7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v',
      qop: 'auth' as const,
      nc: '00000001',
      cnonce: 'f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ',
    };
    const realm = 'http-auth@example.org';
    const md5 = digestResponse({
      ...common,
      algorithm: 'MD5',
      ha1: digestHa1('MD5', 'Mufasa', realm, 'Circle of Life'),
    });
    assert.equal(md5, '8ca523f5e9506fed4657c9700eebdbec');
    const sha = digestResponse({
      ...common,
      algorithm: 'SHA-256',
      ha1: digestHa1('SHA-256', 'Mufasa', realm, 'Circle of Life'),
    });
    assert.equal(sha, '753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1');
  });
});

describe('Authorization parsing and challenges', () => {
  test('parses Digest credentials; other schemes are not an error', () => {
    const c = parseAuthorization(
      'Digest username="bob", realm="example.com",nonce="abc", uri="sip:example.com", response="0123", ' +
        'algorithm=SHA-256, cnonce="xy\\"z", qop=auth, nc=00000001, opaque="op"',
    );
    assert.deepEqual(c, {
      username: 'bob',
      realm: 'example.com',
      nonce: 'abc',
      uri: 'sip:example.com',
      response: '0123',
      algorithm: 'SHA-256',
      qop: 'auth',
      nc: '00000001',
      cnonce: 'xy"z',
      opaque: 'op',
    });
    assert.equal(parseAuthorization('NoOneKnowsThisScheme opaque-data=here'), undefined);
  });

  test('malformed Digest values are SipParseErrors', () => {
    for (const v of [
      'Digest username="a"',
      'Digest username="a", username="b", realm="r", nonce="n", uri="u", response="x"',
      'Digest username="unterminated',
      'Digest username "a"',
      `Digest username="${'a'.repeat(2000)}", realm="r", nonce="n", uri="u", response="x"`,
      '',
    ]) {
      assert.throws(() => parseAuthorization(v), SipParseError, v.slice(0, 40));
    }
  });

  test('formatChallenge', () => {
    assert.equal(
      formatChallenge({ realm: 'ex"ample', nonce: 'n1', algorithm: 'SHA-256', opaque: 'o', stale: true }),
      'Digest realm="ex\\"ample", nonce="n1", algorithm=SHA-256, qop="auth", opaque="o", stale=true',
    );
  });
});

describe('nonces and verification', () => {
  const secret = randomBytes(32);
  const realm = 'example.com';
  const setup = (lifetimeMs = 60_000) => {
    const clock = new FakeClock();
    clock.advance(1_700_000_000_000);
    return { clock, nonces: new NonceManager({ secret, lifetimeMs, clock }) };
  };

  function credentials(
    nonce: string,
    algorithm: DigestAlgorithm,
    nc = '00000001',
    password = 'secret',
  ): DigestCredentials {
    const uri = 'sip:example.com';
    const cnonce = 'c0ffee';
    const response = digestResponse({
      algorithm,
      ha1: digestHa1(algorithm, 'alice', realm, password),
      method: 'REGISTER',
      uri,
      nonce,
      qop: 'auth',
      nc,
      cnonce,
    });
    return { username: 'alice', realm, nonce, uri, response, algorithm, qop: 'auth', nc, cnonce };
  }

  const verify = (nonces: NonceManager, c: DigestCredentials) =>
    verifyDigest({
      credentials: c,
      method: 'REGISTER',
      realm,
      nonces,
      requestUri: 'sip:example.com',
      ha1: (alg) => digestHa1(alg, 'alice', realm, 'secret'),
    });

  test('right password passes with MD5 and SHA-256; wrong password fails', () => {
    const { nonces } = setup();
    for (const alg of ['MD5', 'SHA-256'] as const) {
      assert.equal(verify(nonces, credentials(nonces.issue(), alg)), 'ok');
      assert.equal(verify(nonces, credentials(nonces.issue(), alg, '00000001', 'wrong')), 'invalid');
    }
  });

  test('a nonce-count cannot be replayed; a higher one is accepted', () => {
    const { nonces } = setup();
    const nonce = nonces.issue();
    assert.equal(verify(nonces, credentials(nonce, 'MD5', '00000001')), 'ok');
    assert.equal(verify(nonces, credentials(nonce, 'MD5', '00000001')), 'invalid');
    assert.equal(verify(nonces, credentials(nonce, 'MD5', '00000002')), 'ok');
    assert.equal(verify(nonces, credentials(nonce, 'MD5', '00000002')), 'invalid');
  });

  test("nonces issued here are remembered (bounded); forgotten ones and another process's are checked by their HMAC", () => {
    const clock = new FakeClock();
    clock.advance(1_700_000_000_000);
    const nonces = new NonceManager({ secret, lifetimeMs: 60_000, clock, maxRemembered: 2 });
    const [first, second, third] = [nonces.issue(), nonces.issue(), nonces.issue()];
    assert.equal(verify(nonces, credentials(first, 'MD5')), 'ok', 'forgotten: verified by its HMAC');
    assert.equal(verify(nonces, credentials(third, 'MD5')), 'ok');
    clock.advance(60_001);
    assert.equal(nonces.check(second), 'stale', 'a remembered nonce still expires');
    const other = new NonceManager({ secret, lifetimeMs: 60_000, clock });
    assert.equal(other.check(nonces.issue()), 'valid');
    const foreign = new NonceManager({ secret: randomBytes(32), lifetimeMs: 60_000, clock });
    assert.equal(nonces.check(foreign.issue()), 'invalid');
  });

  test('nonces expire (stale), forged or altered nonces are invalid', () => {
    const { clock, nonces } = setup(60_000);
    const nonce = nonces.issue();
    clock.advance(60_001);
    assert.equal(nonces.check(nonce), 'stale');
    assert.equal(verify(nonces, credentials(nonce, 'SHA-256')), 'stale');
    assert.equal(verify(nonces, credentials(nonce, 'SHA-256', '00000001', 'wrong')), 'invalid');
    const other = new NonceManager({ secret: randomBytes(32), clock });
    assert.equal(nonces.check(other.issue()), 'invalid');
    const fresh = nonces.issue();
    const altered = (fresh[0] === 'A' ? 'B' : 'A') + fresh.slice(1);
    assert.equal(nonces.check(altered), 'invalid');
    assert.equal(nonces.check('not-a-nonce'), 'invalid');
  });

  test('wrong realm, uri, algorithm, missing qop or bad nc are invalid', () => {
    const { nonces } = setup();
    const base = credentials(nonces.issue(), 'MD5');
    assert.equal(verify(nonces, { ...base, realm: 'other' }), 'invalid');
    assert.equal(verify(nonces, { ...base, uri: 'sip:other.com' }), 'invalid');
    assert.equal(verify(nonces, { ...base, algorithm: 'SHA-512-256' }), 'invalid');
    const { qop: _qop, ...noQop } = base;
    assert.equal(verify(nonces, noQop), 'invalid');
    assert.equal(verify(nonces, { ...base, nc: 'zz' }), 'invalid');
  });

  test('nonce-count tracking is bounded', () => {
    const { nonces: _unused, clock } = setup();
    const nonces = new NonceManager({ secret, clock, maxTracked: 10 });
    const first = nonces.issue();
    assert.ok(nonces.acceptCount(first, 1));
    for (let i = 0; i < 20; i++) nonces.acceptCount(nonces.issue(), 1);
    // The oldest entry was evicted: its count is forgotten (the nonce lifetime still bounds replays).
    assert.ok(nonces.acceptCount(first, 1));
  });
});
