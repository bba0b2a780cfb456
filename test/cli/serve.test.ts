import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { createSocket } from 'node:dgram';

/** An OPTIONS request over UDP to the server's SIP port; resolves with the status line. */
async function sipOptions(port: number): Promise<string> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const local = s.address().port;
  const msg = [
    'OPTIONS sip:127.0.0.1 SIP/2.0',
    `Via: SIP/2.0/UDP 127.0.0.1:${local};branch=z9hG4bK-serve-test;rport`,
    'Max-Forwards: 70',
    'From: <sip:probe@127.0.0.1>;tag=1',
    'To: <sip:127.0.0.1>',
    'Call-ID: serve-test-options',
    'CSeq: 1 OPTIONS',
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
  try {
    const answer = new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no answer to OPTIONS')), 10_000);
      s.on('message', (m) => {
        clearTimeout(timer);
        resolve(m.toString().split('\r\n')[0]!);
      });
    });
    s.send(msg, port, '127.0.0.1');
    return await answer;
  } finally {
    s.close();
  }
}

/**
 * The quick start: `npm start` (= `onecloud serve`) on a fresh data directory creates the SQLite
 * database and the server key, migrates, creates `admin` with a one-time password it prints,
 * prints the URLs, and serves /healthz and the OpenAPI document. A second start keeps all that.
 */
async function serve(
  dataDir: string,
): Promise<{ output: () => string; base: string; sipPort: number; stop: () => Promise<number | null> }> {
  const child = spawn(process.execPath, ['bin/onecloud.js', 'serve'], {
    env: {
      PATH: process.env.PATH ?? '',
      ONECLOUD_DATA_DIR: dataDir,
      ONECLOUD_HTTP_PORT: '0',
      ONECLOUD_SIP_PORT: '0',
      ONECLOUD_LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const [base, sipPort] = await new Promise<[string, number]>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${out}`)), 60_000);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on (http:\/\/[^\s]+)/.exec(out);
      const sip = /SIP: +udp and tcp 127\.0\.0\.1:(\d+)/.exec(out);
      if (m && sip) {
        clearTimeout(timer);
        resolve([m[1]!, Number(sip[1])]);
      }
    });
    child.on('exit', () => reject(new Error(`server exited:\n${out}`)));
  });
  return {
    output: () => out,
    base,
    sipPort,
    stop: async () => {
      child.kill('SIGTERM');
      const [code] = (await once(child, 'exit')) as [number | null];
      return code;
    },
  };
}

test('first start: database, key, admin password, URLs; /healthz, /api/openapi.json and SIP; a clean stop', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'onecloud-serve-'));
  try {
    const first = await serve(dataDir);
    const health = await fetch(`${first.base}/healthz`);
    assert.equal(health.status, 200);
    assert.deepEqual(await health.json(), { status: 'ok', database: 'sqlite' });
    const doc = await fetch(`${first.base}/api/openapi.json`);
    assert.equal(doc.status, 200);
    assert.equal(((await doc.json()) as { openapi: string }).openapi, '3.1.0');
    assert.equal(await sipOptions(first.sipPort), 'SIP/2.0 200 OK');
    const metrics = await (await fetch(`${first.base}/metrics`)).text();
    assert.match(metrics, /^onecloud_sip_active_calls 0$/m);
    assert.match(metrics, /^onecloud_sip_registrations 0$/m);
    assert.match(metrics, /^onecloud_sip_transactions\{kind="server"\} \d+$/m);
    assert.match(metrics, /^onecloud_sip_receive_queue_delay_seconds [\d.e-]+$/m);
    assert.match(metrics, /^onecloud_sip_overload_shed_total 0$/m);
    assert.equal(await first.stop(), 0);
    const out = first.output();
    assert.match(out, /Created the system administrator "admin" with this one-time password:\n\s+\S{12,}/);
    assert.match(out, /API docs: +http:\/\/127\.0\.0\.1:\d+\/api\/docs/);
    assert.match(out, /Admin UI: +http:\/\/127\.0\.0\.1:\d+\/admin/);
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
