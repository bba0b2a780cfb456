/**
 * Fan-out across server processes (issue 6 item 7): two real `onecloud serve` processes on one
 * PostgreSQL database. A Server-Sent Events stream open on one receives an event produced through
 * the other's HTTP API, woken by LISTEN/NOTIFY. PostgreSQL only (skipped, visibly, without it).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openTestDatabase, PG_SKIP_MESSAGE, PG_URL } from '../db/helpers.js';
import { testConfig } from '../helpers/app.js';
import { PASSWORD, seedOrg, userToken } from '../helpers/fixtures.js';
import { openSse } from './sse-client.js';

const SECRET_KEY_HEX = '07'.repeat(32); // testConfig's key: tickets made here verify in the servers

interface Served {
  base: string;
  output: () => string;
  stop: () => Promise<void>;
}

/** Starts `onecloud serve` on `databaseUrl` (SIP off, any free port) and reads its URL. */
async function serve(databaseUrl: string, dataDir: string): Promise<Served> {
  const child = spawn(process.execPath, ['bin/onecloud.js', 'serve'], {
    env: {
      PATH: process.env.PATH ?? '',
      ONECLOUD_DATA_DIR: dataDir,
      ONECLOUD_DATABASE_URL: databaseUrl,
      ONECLOUD_SECRET_KEY: SECRET_KEY_HEX,
      ONECLOUD_HTTP_PORT: '0',
      ONECLOUD_SIP_ENABLED: 'false',
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
    child.on('exit', () => {
      clearTimeout(timer);
      reject(new Error(`server exited:\n${out}`));
    });
  });
  return {
    base,
    output: () => out,
    stop: async () => {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      await once(child, 'exit');
    },
  };
}

test(
  'two server processes on one PostgreSQL database: an event produced through one reaches a stream on the other',
  { skip: PG_URL ? false : PG_SKIP_MESSAGE },
  async () => {
    const tdb = await openTestDatabase('postgres');
    const dataDir = mkdtempSync(join(tmpdir(), 'onecloud-procs-'));
    const servers: Served[] = [];
    try {
      const config = testConfig();
      const o = await seedOrg(tdb.handle, config, [{ userId: 'alice' }]);
      const token = await userToken(tdb.handle, config, o, 'alice', ['EVENT_CHANNEL']);
      // One after the other: the first start creates the administrator.
      servers.push(await serve(tdb.url, join(dataDir, 'a')));
      servers.push(await serve(tdb.url, join(dataDir, 'b')));
      const [a, b] = servers as [Served, Served];
      assert.notEqual(a.base, b.base);

      const stream = await openSse(`${b.base}/api/events/v1/${o.domain}/alice?types=ticket.created`, {
        authorization: `Bearer ${token}`,
      });
      assert.equal(stream.status, 200);
      // Through process A's HTTP API: alice creates a ticket (a `ticket.created` event about her).
      const basic = Buffer.from(`alice@${o.domain}:${PASSWORD}`).toString('base64');
      const created = await fetch(`${a.base}/api/tickets/${o.domain}/alice?api=CONTACT`, {
        method: 'POST',
        headers: { authorization: `Basic ${basic}` },
      });
      assert.equal(created.status, 200, await created.clone().text());
      const { token: newToken } = (await created.json()) as { token: string };
      const ticketId = newToken.split('.')[0];
      await stream.until((evs) => evs.some((e) => e.event === 'ticket.created'), 10_000);
      const event = stream.events.find((e) => e.event === 'ticket.created')!;
      const body = JSON.parse(event.data) as { data: { ticketId: number; allowedApis: string[] } };
      assert.equal(String(body.data.ticketId), ticketId);
      assert.deepEqual(body.data.allowedApis, ['CONTACT']);
      stream.close();
      await stream.ended;
    } finally {
      for (const s of servers) await s.stop();
      rmSync(dataDir, { recursive: true, force: true });
      await tdb.cleanup();
    }
  },
);
