import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { forEachDialect } from '../db/helpers.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import {
  expiredToken,
  PASSWORD,
  seedOrg,
  signed,
  systemTicket,
  userToken,
  type SeededOrg,
} from '../helpers/fixtures.js';
import { revokeTicket } from '../../src/areas/tickets/service.js';
import { TicketRepository } from '../../src/areas/tickets/repository.js';
import { encryptSecret, hashTokenSecret, newSigningSecret } from '../../src/security/tokens.js';
import type { Access } from '../../src/http/auth.js';

/**
 * Every route of the API, read from the app's own route table (a new route cannot be
 * forgotten), against every kind of caller.
 */
type Case =
  | 'none'
  | 'revoked'
  | 'expired'
  | 'wrongScope'
  | 'otherUser'
  | 'superuser'
  | 'otherOrg'
  | 'badSignature'
  | 'wrongPassword'
  | 'correct';

const DENIED = new Set([401, 403]);

forEachDialect('authorization matrix', (ctx) => {
  let t: TestApp;
  let org1: SeededOrg;
  let org2: SeededOrg;
  const tok: Record<string, string> = {};
  let sys: { token: string; secret: string };
  let sysNarrow: { token: string; secret: string };
  let sysOther: { token: string; secret: string };
  let sysNarrowUsers: { token: string; secret: string };
  let sysRevoked: { token: string; secret: string };
  let sysExpired: { token: string; secret: string };

  before(async () => {
    t = await startTestApp({ database: ctx.handle });
    const { config } = t;
    org1 = await seedOrg(ctx.handle, config, [
      { userId: 'alice' },
      { userId: 'bob' },
      { userId: 'boss', superuser: true },
    ]);
    org2 = await seedOrg(ctx.handle, config, [{ userId: 'carl' }]);
    tok.alice = await userToken(ctx.handle, config, org1, 'alice');
    tok.boss = await userToken(ctx.handle, config, org1, 'boss');
    tok.carl = await userToken(ctx.handle, config, org2, 'carl');
    tok.expired = await expiredToken(ctx.handle, config, org1, 'alice');
    tok.revoked = await userToken(ctx.handle, config, org1, 'alice');
    await revokeTicket(
      ctx.handle,
      'test',
      { organizationId: org1.org.id },
      Number(tok.revoked.split('.')[0]),
    );
    for (const scope of ['SMS', 'CONTACT'])
      tok[`only-${scope}`] = await userToken(ctx.handle, config, org1, 'alice', [scope]);
    sys = await systemTicket(ctx.handle, config, ['ADMIN']);
    sysNarrow = await systemTicket(ctx.handle, config, ['ADMIN_AUDIT']);
    sysOther = await systemTicket(ctx.handle, config, ['ADMIN'], [org2.domain]);
    sysNarrowUsers = await systemTicket(ctx.handle, config, ['ADMIN_USERS']);
    sysRevoked = await systemTicket(ctx.handle, config, ['ADMIN']);
    await revokeTicket(ctx.handle, 'test', { organizationId: null }, Number(sysRevoked.token.split('.')[0]));
    const secretPart = randomBytes(32).toString('base64url');
    const secret = newSigningSecret();
    const expired = await new TicketRepository(ctx.handle.db).insert({
      kind: 'SYSTEM',
      name: 'expired',
      scopes: ['ADMIN'],
      secretHash: hashTokenSecret(config.secretKey, secretPart),
      signingSecretEnc: encryptSecret(config.secretKey, secret),
      createdBy: 'test',
      expiresAt: Date.now() - 1000,
    });
    sysExpired = { token: `${expired.id}.${secretPart}`, secret };
  });
  after(async () => t.close());

  function pathFor(url: string, domain: string, user: string): string {
    return url
      .replace(':domain', encodeURIComponent(domain))
      .replace(':groupDomain', encodeURIComponent(domain))
      .replace(':user', encodeURIComponent(user))
      .replace(/:[A-Za-z]+/g, '999999');
  }

  const basic = (user: string, domain: string, password: string) =>
    `Basic ${Buffer.from(`${user}@${domain}:${password}`).toString('base64')}`;

  async function call(method: string, url: string, headers: Record<string, string> = {}) {
    return t.app.inject({
      method: method as 'GET',
      url,
      headers: { accept: 'application/json', ...headers },
    });
  }

  function expectations(access: Access, url: string): Partial<Record<Case, number | 'allowed'>> {
    const hasUser = url.includes(':user');
    const hasDomain = url.includes(':domain');
    switch (access.kind) {
      case 'public':
        return { none: 'allowed' };
      case 'user':
        return {
          none: 401,
          revoked: 401,
          expired: 401,
          wrongScope: 403,
          superuser: 403,
          ...(hasUser ? { otherUser: 403, otherOrg: 403 } : {}),
          correct: 'allowed',
        };
      case 'password':
        return { none: 401, wrongPassword: 401, ...(hasUser ? { otherUser: 403 } : {}), correct: 'allowed' };
      case 'admin':
        return {
          none: 401,
          badSignature: 401,
          revoked: 401,
          expired: 401,
          wrongScope: 403,
          ...(hasDomain ? { otherOrg: 404 } : {}),
          correct: 'allowed',
        };
      case 'session':
        return { none: 401 };
    }
  }

  async function run(c: Case, method: string, url: string, access: Access) {
    const [domain, user] = [org1.domain, 'alice'];
    const own = pathFor(url, domain, user);
    switch (access.kind) {
      case 'public':
      case 'session':
        return call(method, own);
      case 'user': {
        const bearer = (token: string, path = own) =>
          call(method, path, { authorization: `Bearer ${token}` });
        if (c === 'none') return call(method, own);
        if (c === 'revoked') return bearer(tok.revoked!);
        if (c === 'expired') return bearer(tok.expired!);
        if (c === 'wrongScope')
          return bearer(access.scope === 'SMS' ? tok['only-CONTACT']! : tok['only-SMS']!);
        if (c === 'otherUser') return bearer(tok.alice!, pathFor(url, domain, 'bob'));
        if (c === 'superuser') return bearer(tok.boss!, pathFor(url, domain, 'boss'));
        if (c === 'otherOrg') return bearer(tok.carl!);
        return bearer(tok.alice!);
      }
      case 'password': {
        if (c === 'none') return call(method, own);
        if (c === 'wrongPassword')
          return call(method, own, { authorization: basic('alice', domain, 'wrong password') });
        if (c === 'otherUser')
          return call(method, pathFor(url, domain, 'bob'), {
            authorization: basic('alice', domain, PASSWORD),
          });
        return call(method, own, { authorization: basic('alice', domain, PASSWORD) });
      }
      case 'admin': {
        // Admin routes act on a user that does not exist: the matrix must not delete alice or
        // reset her password while other routes still use her.
        const own = pathFor(url, domain, 'matrix-nobody');
        const sign = (ticket: { token: string; secret: string }, path = own) =>
          call(method, path, signed(ticket, method, path));
        if (c === 'none') return call(method, own);
        if (c === 'badSignature') return sign({ token: sys.token, secret: 'not-the-secret' });
        if (c === 'revoked') return sign(sysRevoked);
        if (c === 'expired') return sign(sysExpired);
        if (c === 'wrongScope') return sign(access.scope === 'ADMIN_AUDIT' ? sysNarrowUsers : sysNarrow);
        if (c === 'otherOrg') return sign(sysOther);
        return sign(sys);
      }
    }
  }

  test('every API route answers each kind of caller as its declared access requires', async () => {
    const routes = t.app.routeTable.filter(
      (r) => r.config?.formats === 'api' && !r.url.startsWith('/_onecloud/'),
    );
    assert.ok(routes.length >= 30, `the route table lists the API (${routes.length} routes)`);
    let checked = 0;
    for (const route of routes) {
      const access = route.config!.access!;
      const methods = (Array.isArray(route.method) ? route.method : [route.method]).filter(
        (m) => m !== 'HEAD',
      );
      for (const method of methods) {
        for (const [c, expected] of Object.entries(expectations(access, route.url)) as [
          Case,
          number | 'allowed',
        ][]) {
          const res = await run(c, method, route.url, access);
          const label = `${method} ${route.url} as ${c}: ${res.statusCode} ${res.body.slice(0, 160)}`;
          if (expected === 'allowed') assert.ok(!DENIED.has(res.statusCode) && res.statusCode !== 429, label);
          else assert.equal(res.statusCode, expected, label);
          checked += 1;
        }
      }
    }
    assert.ok(checked > 200, `checked ${checked} combinations`);
  });
});
