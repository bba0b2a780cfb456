import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { forEachDialect } from '../db/helpers.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { runCli } from './helpers.js';

const KEY = Buffer.alloc(32, 7).toString('hex');

forEachDialect('the onecloud CLI', (ctx) => {
  let dataDir: string;
  let env: Record<string, string>;
  before(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'onecloud-cli-'));
    env = { ONECLOUD_DATABASE_URL: ctx.url, ONECLOUD_DATA_DIR: dataDir, ONECLOUD_SECRET_KEY: KEY };
  });
  after(() => rmSync(dataDir, { recursive: true, force: true }));

  const cli = (...args: string[]) => runCli(args, env);
  const json = <T>(r: { code: number; stdout: string; stderr: string }): T => {
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as T;
  };

  test('migrate, org, user and device create, with --json and with errors that say what to fix', async () => {
    const migrated = json<{ applied: string[] }>(await cli('migrate', '--json'));
    assert.deepEqual(migrated.applied, [], 'the test database is already migrated');
    const org = json<{ domain: string; numberPlan: unknown[] }>(
      await cli(
        'org',
        'create',
        '--domain',
        'CLI-Test.example',
        '--name',
        'CLI Test',
        '--number-plan',
        '0=+468',
        '--json',
      ),
    );
    assert.equal(org.domain, 'cli-test.example');
    assert.deepEqual(org.numberPlan, [{ prefix: '0', replace: '+468' }]);

    const dup = await cli('org', 'create', '--domain', 'cli-test.example', '--name', 'Again');
    assert.equal(dup.code, 1);
    assert.match(dup.stderr, /already exists/);

    const user = json<{ id: string; role: string }>(
      await cli(
        'user',
        'create',
        '--domain',
        'cli-test.example',
        '--user',
        'jane',
        '--password',
        'long enough',
        '--superuser',
        '--json',
      ),
    );
    assert.deepEqual(user, {
      id: 'jane@cli-test.example',
      userId: 'jane',
      domain: 'cli-test.example',
      role: 'SUPERUSER',
    });

    const bad = await cli(
      'user',
      'create',
      '--domain',
      'cli-test.example',
      '--user',
      'bad user',
      '--password',
      'short',
    );
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /--user has the wrong form/);
    assert.match(bad.stderr, /--password must be at least 8 characters/);

    const soft = json<{ deviceId: string; sip: { username: string; password: string; domain: string } }>(
      await cli(
        'device',
        'create',
        '--domain',
        'cli-test.example',
        '--user',
        'jane',
        '--type',
        'SOFTPHONE',
        '--json',
      ),
    );
    assert.match(soft.deviceId, /^2\./);
    assert.equal(soft.sip.domain, 'cli-test.example');
    assert.ok(soft.sip.password.length >= 20);
    const mobile = await cli(
      'device',
      'create',
      '--domain',
      'cli-test.example',
      '--user',
      'jane',
      '--type',
      'MOBILE',
    );
    assert.equal(mobile.code, 1);
    assert.match(mobile.stderr, /--number is required for a MOBILE device/);
    const nobody = await cli(
      'device',
      'create',
      '--domain',
      'cli-test.example',
      '--user',
      'nobody',
      '--type',
      'SOFTPHONE',
    );
    assert.equal(nobody.code, 1);
    assert.match(nobody.stderr, /no user "nobody"/);
  });

  test('demo seeds example.com and prints a ticket that works; tickets list and revoke; api signs requests', async () => {
    const demo = json<{
      created: boolean;
      userTicket: { token: string };
      systemTicket: { token: string; secret: string };
    }>(await cli('demo', '--json'));
    assert.equal(demo.created, true);
    const again = json<{ created: boolean; userTicket: { token: string } }>(await cli('demo', '--json'));
    assert.equal(again.created, false);
    assert.notEqual(again.userTicket.token, demo.userTicket.token);

    const server: TestApp = await startTestApp({
      database: ctx.handle,
      config: { secretKey: Buffer.from(KEY, 'hex') },
    });
    try {
      const base = await server.app.listen({ host: '127.0.0.1', port: 0 });
      const res = await fetch(`${base}/api/device/info/v1/shortlist/example.com/alice`, {
        headers: { authorization: `Bearer ${demo.userTicket.token}` },
      });
      assert.equal(res.status, 200);
      const devices = (await res.json()) as { deviceType: string }[];
      assert.deepEqual(devices.map((d) => d.deviceType).sort(), ['MOBILE', 'SOFTPHONE']);

      const apiEnv = {
        ...env,
        ONECLOUD_TOKEN: demo.systemTicket.token,
        ONECLOUD_SECRET: demo.systemTicket.secret,
        ONECLOUD_URL: base,
      };
      const listed = await runCli(['api', 'GET', '/api/admin/organizations/example.com'], apiEnv);
      assert.equal(listed.code, 0, listed.stderr);
      assert.equal((JSON.parse(listed.stdout) as { name: string }).name, 'Example Ltd');
      const denied = await runCli(['api', '/api/admin/organizations/cli-test.example'], apiEnv);
      assert.equal(denied.code, 1, 'the demo system ticket is limited to example.com');
      assert.match(denied.stderr, /HTTP 404/);

      const list = json<{ id: number; status: string; owner: string }[]>(
        await cli('ticket', 'list', '--domain', 'example.com', '--json'),
      );
      const id = Number(demo.userTicket.token.split('.')[0]);
      assert.equal(list.find((x) => x.id === id)?.status, 'active');
      // A user ticket's owner is its user, user@domain, not the organization.
      assert.equal(list.find((x) => x.id === id)?.owner, 'alice@example.com');
      const text = await cli('ticket', 'list', '--domain', 'example.com');
      assert.match(text.stdout, new RegExp(`^ *${id} +active +\\S+ +alice@example\\.com `, 'm'));
      const system = json<{ owner: string }[]>(await cli('ticket', 'list', '--system', '--json'));
      assert.ok(system.length > 0 && system.every((x) => x.owner === 'system'));
      assert.doesNotMatch(JSON.stringify(list), new RegExp(demo.userTicket.token.split('.')[1]!));
      json(await cli('ticket', 'revoke', '--id', String(id), '--domain', 'example.com', '--json'));
      const after = await fetch(`${base}/api/device/info/v1/shortlist/example.com/alice`, {
        headers: { authorization: `Bearer ${demo.userTicket.token}` },
      });
      assert.equal(after.status, 401);
    } finally {
      await server.app.close();
    }
  });

  test('ticket create: user tickets and system tickets, shown once', async () => {
    const user = json<{ token: string; allowedApis: string[] }>(
      await cli(
        'ticket',
        'create',
        '--domain',
        'example.com',
        '--user',
        'bob',
        '--api',
        'CONTACT',
        '--api',
        'USER_INFO',
        '--json',
      ),
    );
    assert.deepEqual(user.allowedApis, ['CONTACT', 'USER_INFO']);
    const sys = json<{ token: string; secret: string; scopes: string[] }>(
      await cli('ticket', 'create', '--system', '--api', 'ADMIN_USERS', '--org', 'example.com', '--json'),
    );
    assert.deepEqual(sys.scopes, ['ADMIN_USERS']);
    assert.ok(sys.secret.length >= 40);
    const bad = await cli('ticket', 'create', '--system', '--api', 'EVERYTHING');
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /"EVERYTHING" is not an API id/);
  });
});

test('a bad configuration value stops the CLI with a message naming it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'onecloud-cli-'));
  try {
    writeFileSync(join(dir, 'x'), '');
    const r = await runCli(['migrate'], {
      ONECLOUD_DATA_DIR: dir,
      ONECLOUD_HTTP_PORT: '99999',
      ONECLOUD_LOG_LEVEL: 'loud',
    });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /ONECLOUD_HTTP_PORT="99999" is not a whole number from 0 to 65535/);
    assert.match(r.stderr, /ONECLOUD_LOG_LEVEL="loud" must be one of/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
