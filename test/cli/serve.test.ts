import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';

/**
 * The quick start: `npm start` (= `onecloud serve`) on a fresh data directory creates the SQLite
 * database and the server key, migrates, creates `admin` with a one-time password it prints,
 * prints the URLs, and serves /healthz and the OpenAPI document. A second start keeps all that.
 */
async function serve(
  dataDir: string,
): Promise<{ output: () => string; base: string; stop: () => Promise<number | null> }> {
  const child = spawn(process.execPath, ['bin/onecloud.js', 'serve'], {
    env: {
      PATH: process.env.PATH ?? '',
      ONECLOUD_DATA_DIR: dataDir,
      ONECLOUD_HTTP_PORT: '0',
      ONECLOUD_LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const base = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${out}`)), 60_000);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on (http:\/\/[^\s]+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    child.on('exit', () => reject(new Error(`server exited:\n${out}`)));
  });
  return {
    output: () => out,
    base,
    stop: async () => {
      child.kill('SIGTERM');
      const [code] = (await once(child, 'exit')) as [number | null];
      return code;
    },
  };
}

test('first start: database, key, admin password, URLs; /healthz and /api/openapi.json; a clean stop', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'onecloud-serve-'));
  try {
    const first = await serve(dataDir);
    const health = await fetch(`${first.base}/healthz`);
    assert.equal(health.status, 200);
    assert.deepEqual(await health.json(), { status: 'ok', database: 'sqlite' });
    const doc = await fetch(`${first.base}/api/openapi.json`);
    assert.equal(doc.status, 200);
    assert.equal(((await doc.json()) as { openapi: string }).openapi, '3.1.0');
    assert.equal(await first.stop(), 0);
    const out = first.output();
    assert.match(out, /Created the system administrator "admin" with this one-time password:\n\s+\S{12,}/);
    assert.match(out, /API docs: +http:\/\/127\.0\.0\.1:\d+\/api\/docs/);
    assert.ok(existsSync(join(dataDir, 'onecloud.db')));
    assert.equal(statSync(join(dataDir, 'secret.key')).mode & 0o777, 0o600);

    const second = await serve(dataDir);
    assert.equal((await fetch(`${second.base}/healthz`)).status, 200);
    assert.equal(await second.stop(), 0);
    assert.doesNotMatch(second.output(), /one-time password/);
    assert.match(second.output(), /database schema is up to date/);
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});
