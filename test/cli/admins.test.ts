import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { forEachDialect } from '../db/helpers.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { runCli } from './helpers.js';

const KEY = Buffer.alloc(32, 7).toString('hex');

forEachDialect('onecloud admin commands', (ctx) => {
  let dataDir: string;
  let env: Record<string, string>;
  let t: TestApp;
  let base: string;
  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'onecloud-cli-admin-'));
    env = { ONECLOUD_DATABASE_URL: ctx.url, ONECLOUD_DATA_DIR: dataDir, ONECLOUD_SECRET_KEY: KEY };
    t = await startTestApp({ database: ctx.handle, url: ctx.url });
    base = await t.app.listen({ host: '127.0.0.1', port: 0 });
  });
  after(async () => {
    await t.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  const cli = (...args: string[]) => runCli(args, env);
  /** Logs in to /admin; the session cookie, or undefined when refused. */
  async function login(name: string, password: string): Promise<string | undefined> {
    const page = await fetch(`${base}/admin/login`);
    const csrf = /name="_csrf" value="([^"]+)"/.exec(await page.text())?.[1] ?? '';
    const pre = page.headers.get('set-cookie')?.split(';')[0] ?? '';
    const res = await fetch(`${base}/admin/login`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: pre },
      body: new URLSearchParams({ username: name, password, _csrf: csrf }).toString(),
    });
    const cookie = res.headers.get('set-cookie');
    return res.status === 303 && cookie ? cookie.split(';')[0] : undefined;
  }
  const loggedIn = async (cookie: string) =>
    (await fetch(`${base}/admin/organizations`, { headers: { cookie }, redirect: 'manual' })).status === 200;

  test('create with a generated password (shown once), log in, list; a taken name is refused', async () => {
    const created = await cli('admin', 'create', '--name', 'ops.jane', '--json');
    assert.equal(created.code, 0, created.stderr);
    const { name, password } = JSON.parse(created.stdout) as { name: string; password: string };
    assert.equal(name, 'ops.jane');
    assert.ok(password.length >= 12);
    const cookie = await login('ops.jane', password);
    assert.ok(cookie && (await loggedIn(cookie)), 'the new administrator can log in to /admin');

    const list = await cli('admin', 'list', '--json');
    assert.ok((JSON.parse(list.stdout) as { name: string }[]).some((a) => a.name === 'ops.jane'));

    const again = await cli('admin', 'create', '--name', 'ops.jane', '--password', 'long enough');
    assert.equal(again.code, 1);
    assert.match(again.stderr, /ops\.jane.*already exists/);
    const bad = await cli('admin', 'create', '--name', 'X!', '--password', 'short');
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /--name must be .*--password must be 8 to 200 characters/);
  });

  test('password reset: the old password stops working and open sessions end', async () => {
    assert.equal((await cli('admin', 'create', '--name', 'ops.kim', '--password', 'first password')).code, 0);
    const session = await login('ops.kim', 'first password');
    assert.ok(session && (await loggedIn(session)));

    const reset = await cli(
      'admin',
      'password',
      '--name',
      'ops.kim',
      '--password',
      'second password',
      '--json',
    );
    assert.equal(reset.code, 0, reset.stderr);
    assert.equal((JSON.parse(reset.stdout) as { sessionsEnded: number }).sessionsEnded, 1);
    assert.equal(await loggedIn(session), false, 'the session opened with the old password is over');
    assert.equal(await login('ops.kim', 'first password'), undefined);
    assert.ok(await login('ops.kim', 'second password'));

    const unknown = await cli('admin', 'password', '--name', 'nobody');
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /"nobody" not found/);
  });
});
