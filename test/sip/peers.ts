/**
 * Real SIP peers for the B2BUA tests: sipp runs (scenario files from test/sip/scenarios, with
 * `__NAME__` placeholders filled in), free loopback ports, and a server with an organization whose
 * users have SIP softphones.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { openTestDatabase, type TestDatabase } from '../db/helpers.js';
import { testConfig } from '../helpers/app.js';
import { addSoftphone, seedOrg, type SeededOrg } from '../helpers/fixtures.js';
import { startSipServer, type SipServer, type SipServerOptions } from '../../src/sip/server.js';
import type { DialectName } from '../../src/db/dialects/index.js';

export const hasSipp = spawnSync('sipp', ['-v'], { stdio: 'ignore' }).error === undefined;

/** A UDP port nobody uses right now on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Whether a UDP socket is bound to `port` on any address, as the kernel lists them (Linux). */
function udpBound(port: number): boolean {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, '0')} `;
  for (const table of ['/proc/net/udp', '/proc/net/udp6']) {
    let text = '';
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    // Each line: `sl local_address rem_address ...`, local_address as HEXIP:HEXPORT.
    for (const line of text.split('\n').slice(1)) {
      const local = line.trim().split(/\s+/)[1];
      if (local !== undefined && `${local} `.endsWith(hex)) return true;
    }
  }
  return false;
}

/**
 * Resolves once something is bound to UDP `port` (a started sipp), polling the kernel's socket
 * table; rejects after `ms`. It never binds the port itself: a probe that did could take the port
 * from under the sipp that is starting.
 */
export async function waitBound(port: number, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  while (!udpBound(port)) {
    if (Date.now() > until) throw new Error(`nothing bound to UDP ${port}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Resolves with what `probe` returns once it is truthy, checking every 10 ms (for state that has
 * no event to await, such as the call model); rejects naming `what` after `ms`.
 */
export async function waitFor<T>(
  what: string,
  probe: () => T | undefined | null | false,
  ms = 8000,
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = probe();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export interface Account {
  username: string;
  password: string;
  domain: string;
}

export interface SippOptions {
  server: number;
  /** Local port (-p). */
  port: number;
  account?: Account;
  /** -s: the number dialled. */
  service?: string;
  /** Placeholders in the scenario file (`__STATUS__` → value; ANSWER_DELAY, SESSION and REINVITE_EXPECT are 0, - and . unless given). */
  fill?: Record<string, string>;
  keys?: Record<string, string>;
  /** Calls to run (-m, default 1). */
  calls?: number;
  /** -d pause length (ms). */
  pauseMs?: number;
  timeoutS?: number;
  /** sipp's -t: u1 (UDP, default) or t1 (one TCP connection). */
  transport?: 'u1' | 't1';
  extra?: string[];
}

export interface SippRun {
  child: ChildProcess;
  done: Promise<{ code: number | null; output: string }>;
}

export async function sipp(scenario: string, o: SippOptions): Promise<SippRun> {
  const mediaPort = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'sipp-'));
  let text = readFileSync(resolve('test/sip/scenarios', scenario), 'utf8');
  const fill = { ANSWER_DELAY: '0', SESSION: '-', REINVITE_EXPECT: '.', ...o.fill };
  for (const [k, v] of Object.entries(fill)) text = text.replaceAll(`__${k}__`, v);
  const file = join(dir, scenario);
  writeFileSync(file, text);
  const args = [
    `127.0.0.1:${o.server}`,
    '-sf',
    file,
    '-i',
    '127.0.0.1',
    '-p',
    String(o.port),
    '-m',
    String(o.calls ?? 1),
    '-nostdin',
    '-timeout',
    `${o.timeoutS ?? 20}s`,
    '-timeout_error',
    '-d',
    String(o.pauseMs ?? 100),
    '-mp',
    String(mediaPort),
  ];
  if (o.transport) args.push('-t', o.transport);
  if (o.service) args.push('-s', o.service);
  if (o.account) {
    args.push('-au', o.account.username, '-ap', o.account.password);
    args.push('-key', 'user', o.account.username, '-key', 'domain', o.account.domain);
  }
  args.push('-key', 'expires', '3600');
  for (const [k, v] of Object.entries(o.keys ?? {})) args.push('-key', k, v);
  args.push(...(o.extra ?? []));
  const child = spawn('sipp', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-3000)));
  child.stderr?.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-3000)));
  const done = new Promise<{ code: number | null; output: string }>((r) => {
    child.on('close', (code) => {
      rmSync(dir, { recursive: true, force: true });
      r({ code, output: `${scenario}: ${output}` });
    });
  });
  return { child, done };
}

/** Runs a scenario to its end. */
export async function runSipp(
  scenario: string,
  o: SippOptions,
): Promise<{ code: number | null; output: string }> {
  return (await sipp(scenario, o)).done;
}

/** Registers `account` from local `port` (then a scenario on that port is the registered phone). */
export async function registerFrom(
  server: number,
  port: number,
  account: Account,
  status = 200,
): Promise<void> {
  const r = await runSipp('register.xml', { server, port, account, fill: { STATUS: String(status) } });
  if (r.code !== 0) throw new Error(`REGISTER failed: ${r.output}`);
}

/** Starts a scenario as a phone on `port` and resolves once it listens. */
export async function phone(scenario: string, o: SippOptions): Promise<SippRun> {
  const run = await sipp(scenario, o);
  // A sipp that exits before it listens (a bad scenario, a port taken) fails at once with its own
  // output; otherwise a loaded machine gets a generous while to start it.
  let exited: { code: number | null; output: string } | undefined;
  void run.done.then((r) => (exited = r));
  const until = Date.now() + 20_000;
  while (!udpBound(o.port)) {
    if (exited !== undefined) throw new Error(`sipp exited before listening: ${exited.output}`);
    if (Date.now() > until) {
      run.child.kill();
      throw new Error(`sipp did not bind UDP ${o.port} within 20 s`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return run;
}

export interface Telephony {
  tdb: TestDatabase;
  server: SipServer;
  seeded: SeededOrg;
  /** One softphone account per user id. */
  accounts: Record<string, Account & { deviceId: string }>;
  close(): Promise<void>;
}

/** A database with an organization, users with one softphone each, and a SIP server on it. */
export async function telephony(
  userIds: string[],
  options: Partial<SipServerOptions> = {},
  dialect: DialectName = 'sqlite',
): Promise<Telephony> {
  const tdb = await openTestDatabase(dialect);
  const seeded = await seedOrg(
    tdb.handle,
    testConfig(),
    userIds.map((userId) => ({ userId })),
    { grantAll: false },
  );
  const accounts: Telephony['accounts'] = {};
  for (const userId of userIds) {
    const { device, sip } = await addSoftphone(tdb.handle, seeded, userId);
    if (!sip) throw new Error('softphone without SIP account');
    accounts[userId] = {
      username: sip.username,
      password: sip.password,
      domain: sip.domain,
      deviceId: device.deviceId,
    };
  }
  const server = await startSipServer({
    database: tdb.handle,
    host: '127.0.0.1',
    port: 0,
    secret: Buffer.alloc(32, 9),
    ...options,
  });
  const t: Telephony = {
    tdb,
    server,
    seeded,
    accounts,
    async close() {
      // The server a test restarted is the one to close (`t.server`, not the first one).
      await t.server.close();
      await tdb.cleanup();
    },
  };
  return t;
}
