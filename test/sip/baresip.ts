/**
 * Headless baresip 1.0 user agents for tests (configuration as in
 * /work/shared/design/TEST-PEERS.md §6–8): each instance gets its own config directory, free
 * loopback ports, a sine "microphone" (`ausine`), the ALSA null player, and is driven over
 * `ctrl_tcp` (netstring-framed JSON). {@link Baresip.command} sends a command and resolves its
 * response; {@link Baresip.waitFor} resolves a ctrl_tcp event (every event can be awaited once,
 * including one that arrived before the wait), bounded by a timeout that names what did not happen.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Account } from './peers.js';

export const hasBaresip = spawnSync('baresip', ['-h'], { stdio: 'ignore' }).error === undefined;

/** A ctrl_tcp event: `{"event":true,"type":"CALL_ESTABLISHED","class":"call",...}`. */
export interface BaresipEvent {
  type: string;
  class?: string;
  accountaor?: string;
  direction?: string;
  peeruri?: string;
  id?: string;
  param?: string;
  [key: string]: unknown;
}

export interface BaresipResponse {
  ok: boolean;
  data: string;
}

export interface BaresipOptions {
  /** Instance name, used in messages (e.g. `alice`). */
  name: string;
  /** The account registered with the server (AOR user@domain, digest credentials). */
  account: Account;
  /** SIP server (outbound proxy) port on 127.0.0.1. */
  server: number;
  /** `manual` (CALL_INCOMING, then `accept`) or `auto`. Default manual. */
  answerMode?: 'manual' | 'auto';
  /** Sine frequency of the microphone (Hz). Default 1000. */
  toneHz?: number;
  /** Registration interval; 0 = do not register. Default 60. */
  regint?: number;
  /** Extra account parameters (`;key=value`). */
  accountParams?: string;
}

const DEFAULT_TIMEOUT_MS = 5000;
/**
 * ONECLOUD_TEST_BARESIP_TRACE=1: baresip runs verbose with a SIP trace (`-v -s`); the output is
 * written to test-artifacts/baresip-<name>.log when the instance stops.
 */
const TRACE = process.env.ONECLOUD_TEST_BARESIP_TRACE === '1';
const running = new Set<Baresip>();

async function udpFree(port: number): Promise<boolean> {
  const s = createSocket('udp4');
  const free = await new Promise<boolean>((r) => {
    s.once('error', () => r(false));
    s.bind(port, '127.0.0.1', () => r(true));
  });
  await new Promise<void>((r) => {
    try {
      s.close(() => r());
    } catch {
      r();
    }
  });
  return free;
}

async function tcpFree(port: number): Promise<boolean> {
  const srv = createServer();
  const free = await new Promise<boolean>((r) => {
    srv.once('error', () => r(false));
    srv.listen(port, '127.0.0.1', () => r(true));
  });
  if (free) await new Promise<void>((r) => srv.close(() => r()));
  return free;
}

const claimed = new Set<number>();

class EarlyExit extends Error {}

/**
 * `count` consecutive ports, all free on UDP and TCP right now and not handed out before by this
 * process (baresip's SIP port needs `port` UDP+TCP and `port+1` TCP; RTP needs a range).
 */
async function freeRange(count: number): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const base = 20000 + Math.floor(Math.random() * 20000);
    let ok = true;
    for (let p = base; p < base + count && ok; p++)
      ok = !claimed.has(p) && (await udpFree(p)) && (await tcpFree(p));
    if (!ok) continue;
    for (let p = base; p < base + count; p++) claimed.add(p);
    return base;
  }
  throw new Error(`no ${count} consecutive free ports found`);
}

/** Resolves when `fn` returns true, polling every 20 ms; rejects with `what` after `ms`. */
async function poll(fn: () => Promise<boolean> | boolean, ms: number, what: string): Promise<void> {
  const until = Date.now() + ms;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > until) throw new Error(what);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export class Baresip {
  static {
    // Even when the test process ends without `after` (a crash), no baresip outlives it.
    process.once('exit', () => {
      for (const b of running) {
        b.child.kill('SIGKILL');
        rmSync(b.dir, { recursive: true, force: true });
      }
    });
  }

  readonly events: BaresipEvent[] = [];
  /** Events not yet taken by {@link waitFor}, with their index in {@link events}. */
  private readonly unclaimed: { e: BaresipEvent; seq: number }[] = [];
  private waiters: {
    match: (e: BaresipEvent, seq: number) => boolean;
    resolve: (e: BaresipEvent) => void;
    reject: (err: Error) => void;
  }[] = [];
  private readonly pending = new Map<
    string,
    { resolve: (r: BaresipResponse) => void; reject: (err: Error) => void }
  >();
  private socket: Socket | undefined;
  private buffer = Buffer.alloc(0);
  private nextToken = 1;
  private log = '';
  private exited: Promise<number | null>;
  private exitCode: number | null | undefined;

  private constructor(
    readonly name: string,
    readonly aor: string,
    readonly sipPort: number,
    readonly ctrlPort: number,
    readonly dir: string,
    private readonly child: ChildProcess,
  ) {
    child.stdout?.on('data', (d: Buffer) => this.appendLog(d));
    child.stderr?.on('data', (d: Buffer) => this.appendLog(d));
    this.exited = new Promise((r) =>
      child.on('exit', (code, signal) => {
        this.exitCode = code;
        // Whatever a test still waits for will not come.
        const err = new Error(`baresip ${this.name} exited (${code ?? signal})\n${this.output()}`);
        for (const w of this.waiters.splice(0)) w.reject(err);
        for (const p of this.pending.values()) p.reject(err);
        this.pending.clear();
        r(code);
      }),
    );
  }

  /**
   * Writes the config, starts baresip, connects to its ctrl_tcp and adds the account (which then
   * registers: await {@link registered}). A start that dies early (a port taken meanwhile by
   * another process) is retried on other ports.
   */
  static async start(o: BaresipOptions): Promise<Baresip> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await Baresip.startOnce(o);
      } catch (err) {
        if (!(err instanceof EarlyExit) || attempt === 3) throw err;
      }
    }
  }

  private static async startOnce(o: BaresipOptions): Promise<Baresip> {
    const sipPort = await freeRange(2);
    const ctrlPort = await freeRange(1);
    const rtpBase = await freeRange(10);
    const dir = mkdtempSync(join(tmpdir(), `baresip-${o.name}-`));
    const config = [
      'poll_method\t\tepoll',
      `sip_listen\t\t127.0.0.1:${sipPort}`,
      'net_interface\t\t127.0.0.1',
      'dns_server\t\t127.0.0.1:53',
      'call_local_timeout\t120',
      'call_max_calls\t\t4',
      `audio_source\t\tausine,${o.toneHz ?? 1000}`,
      'audio_player\t\talsa,null',
      'audio_alert\t\talsa,null',
      'ausrc_srate\t\t48000',
      'ausrc_channels\t\t2',
      'audio_path\t\t/usr/share/baresip',
      `rtp_ports\t\t${rtpBase}-${rtpBase + 9}`,
      'rtp_stats\t\tyes',
      'rtcp_mux\t\tno',
      'jitter_buffer_delay\t5-10',
      'module_path\t\t/usr/lib/baresip/modules',
      'module\t\t\tg711.so',
      'module\t\t\tausine.so',
      'module\t\t\talsa.so',
      'module_tmp\t\taccount.so',
      'module_app\t\tmenu.so',
      'module_app\t\tctrl_tcp.so',
      `ctrl_tcp_listen\t\t127.0.0.1:${ctrlPort}`,
      '',
    ].join('\n');
    const { username, password, domain } = o.account;
    const aor = `sip:${username}@${domain}`;
    const account =
      `<${aor}>;auth_user=${username};auth_pass=${password}` +
      `;outbound="sip:127.0.0.1:${o.server}";regint=${o.regint ?? 60}` +
      `;answermode=${o.answerMode ?? 'manual'};audio_codecs=pcmu${o.accountParams ?? ''}`;
    writeFileSync(join(dir, 'config'), config);
    // No account at start: it is added over ctrl_tcp once connected, so that no REGISTER event
    // (REGISTERING, REGISTER_OK/FAIL) can happen before the test listens.
    writeFileSync(join(dir, 'accounts'), '', { mode: 0o600 });
    writeFileSync(join(dir, 'contacts'), '');
    const args = TRACE ? ['-v', '-s', '-f', dir] : ['-f', dir];
    const child = spawn('baresip', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    const b = new Baresip(o.name, aor, sipPort, ctrlPort, dir, child);
    running.add(b);
    try {
      await b.connect();
      await b.ok('uanew', account);
    } catch (err) {
      await b.stop();
      throw err;
    }
    return b;
  }

  /** Stops every instance still running (for `after`, also after a failed test). */
  static async stopAll(): Promise<void> {
    await Promise.all([...running].map((b) => b.stop()));
  }

  private appendLog(d: Buffer): void {
    this.log = (this.log + d.toString()).slice(TRACE ? -500_000 : -6000);
  }

  /** The tail of baresip's output (for assertion messages). */
  output(): string {
    return `--- baresip ${this.name} output ---\n${this.log}`;
  }

  private async connect(): Promise<void> {
    await poll(
      async () => {
        if (this.exitCode !== undefined)
          throw new EarlyExit(
            `baresip ${this.name} exited (${this.exitCode}) before ctrl_tcp\n${this.output()}`,
          );
        const s = await new Promise<Socket | undefined>((r) => {
          const sock = connect(this.ctrlPort, '127.0.0.1');
          sock.once('connect', () => r(sock));
          sock.once('error', () => r(undefined));
        });
        if (!s) return false;
        this.socket = s;
        return true;
      },
      5000,
      `baresip ${this.name}: ctrl_tcp on ${this.ctrlPort} never accepted a connection\n${this.output()}`,
    );
    this.socket!.on('data', (d: Buffer) => this.onData(d));
    this.socket!.on('error', () => {});
  }

  private onData(d: Buffer): void {
    this.buffer = Buffer.concat([this.buffer, d]);
    for (;;) {
      const colon = this.buffer.indexOf(0x3a);
      if (colon < 0) return;
      const len = Number(this.buffer.subarray(0, colon).toString());
      if (!Number.isInteger(len) || this.buffer.length < colon + 1 + len + 1) return;
      const json = this.buffer.subarray(colon + 1, colon + 1 + len).toString();
      this.buffer = this.buffer.subarray(colon + 1 + len + 1);
      let msg: Record<string, unknown>;
      try {
        msg = JSON.parse(json) as Record<string, unknown>;
      } catch {
        continue;
      }
      if (msg.response === true) {
        const token = typeof msg.token === 'string' ? msg.token : '';
        const r = this.pending.get(token);
        this.pending.delete(token);
        r?.resolve({ ok: msg.ok === true, data: typeof msg.data === 'string' ? msg.data : '' });
      } else if (msg.event === true) {
        const e = msg as unknown as BaresipEvent;
        const seq = this.events.push(e) - 1;
        const i = this.waiters.findIndex((w) => w.match(e, seq));
        if (i >= 0) {
          const [w] = this.waiters.splice(i, 1);
          w!.resolve(e);
        } else this.unclaimed.push({ e, seq });
      }
    }
  }

  /** Sends a ctrl_tcp command and resolves its response (`quit` has none). */
  async command(command: string, params?: string, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<BaresipResponse> {
    const token = `${this.name}-${this.nextToken++}`;
    const json = JSON.stringify({ command, ...(params !== undefined ? { params } : {}), token });
    const frame = `${Buffer.byteLength(json)}:${json},`;
    if (this.exitCode !== undefined) throw new Error(`baresip ${this.name} is not running\n${this.output()}`);
    const response = new Promise<BaresipResponse>((resolve, reject) =>
      this.pending.set(token, { resolve, reject }),
    );
    this.socket!.write(frame);
    return this.bounded(
      response,
      timeoutMs,
      `baresip ${this.name}: no response to "${command}${params ? ` ${params}` : ''}"`,
      () => this.pending.delete(token),
    );
  }

  /** Like {@link command}, but fails unless baresip answers ok. */
  async ok(command: string, params?: string): Promise<string> {
    const r = await this.command(command, params);
    if (!r.ok) throw new Error(`baresip ${this.name}: "${command} ${params ?? ''}" failed: ${r.data}`);
    return r.data;
  }

  /** A position in the event stream: `waitFor(type, { since })` ignores what came before it. */
  mark(): number {
    return this.events.length;
  }

  /**
   * Resolves the first event of `type` (one of `type`s, matching `where`, at or after `since`)
   * not awaited before, also one that arrived before this call; rejects after `timeoutMs` with
   * `what` (default "no TYPE event").
   */
  async waitFor(
    type: string | readonly string[],
    o: { where?: (e: BaresipEvent) => boolean; since?: number; timeoutMs?: number; what?: string } = {},
  ): Promise<BaresipEvent> {
    const types = typeof type === 'string' ? [type] : type;
    const match = (e: BaresipEvent, seq: number): boolean =>
      seq >= (o.since ?? 0) && types.includes(e.type) && (o.where?.(e) ?? true);
    const i = this.unclaimed.findIndex((u) => match(u.e, u.seq));
    if (i >= 0) return this.unclaimed.splice(i, 1)[0]!.e;
    let waiter: (typeof this.waiters)[number] | undefined;
    if (this.exitCode !== undefined) throw new Error(`baresip ${this.name} is not running\n${this.output()}`);
    const found = new Promise<BaresipEvent>((resolve, reject) => {
      waiter = { match, resolve, reject };
      this.waiters.push(waiter);
    });
    const ms = o.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    return this.bounded(
      found,
      ms,
      `baresip ${this.name}: ${o.what ?? `no ${types.join('/')} event`} within ${ms} ms` +
        ` (events: ${this.events.map((e) => (e.param ? `${e.type}(${e.param})` : e.type)).join(', ') || 'none'})`,
      () => (this.waiters = this.waiters.filter((w) => w !== waiter)),
    );
  }

  /** Events of `type` not yet awaited (e.g. to assert that something did not happen). */
  unawaited(type: string): BaresipEvent[] {
    return this.unclaimed.filter((u) => u.e.type === type).map((u) => u.e);
  }

  private async bounded<T>(p: Promise<T>, ms: number, what: string, onTimeout: () => void): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        onTimeout();
        reject(new Error(`${what}\n${this.output()}`));
      }, ms);
    });
    try {
      return await Promise.race([p, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Waits for REGISTER_OK (or fails on REGISTER_FAIL). */
  async registered(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<void> {
    const e = await this.waitFor(['REGISTER_OK', 'REGISTER_FAIL'], {
      timeoutMs,
      what: 'never registered (no REGISTER_OK or REGISTER_FAIL)',
    });
    if (e.type === 'REGISTER_FAIL') throw new Error(`baresip ${this.name}: REGISTER_FAIL ${e.param ?? ''}`);
  }

  /** SIGTERM (baresip un-REGISTERs), SIGKILL if it is still there after 2 s; removes the config dir. */
  async stop(): Promise<void> {
    if (!running.has(this)) return;
    running.delete(this);
    this.socket?.destroy();
    if (this.exitCode === undefined) {
      this.child.kill('SIGTERM');
      const t = setTimeout(() => this.child.kill('SIGKILL'), 2000);
      await this.exited;
      clearTimeout(t);
    }
    rmSync(this.dir, { recursive: true, force: true });
    if (TRACE) {
      mkdirSync('test-artifacts', { recursive: true });
      writeFileSync(join('test-artifacts', `baresip-${this.name}.log`), this.log);
    }
  }
}
