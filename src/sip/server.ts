/**
 * The SIP server the HTTP server process starts: UDP and TCP transports, the transaction layer,
 * the registrar and the B2BUA, wired together. {@link startSipServer} returns the bound port, the
 * {@link CallCommands} the call control API uses, the registration state query of the device API,
 * and `close()`.
 */
import { randomBytes } from 'node:crypto';
import type { DatabaseHandle } from '../db/database.js';
import type { Organization } from '../areas/organizations/repository.js';
import type { DeviceRegistrationState } from '../areas/registrations/repository.js';
import { B2bua, type CallCommands } from './b2bua.js';
import { BatchedWriter } from './call-events.js';
import { realClock, type Clock } from './clock.js';
import { localAddress } from './dialog.js';
import { NonceManager, type DigestAlgorithm } from './digest.js';
import { createResponse, getMaxForwards, getTo, hasHeader, tagOf, type SipRequest } from './message.js';
import {
  BindingStore,
  BruteForceGuard,
  DeviceAuthenticator,
  OrganizationCache,
  Registrar,
  type GuardOptions,
} from './registrar.js';
import { OverloadControl, retryAfterHeader, type OverloadOptions, type OverloadStats } from './overload.js';
import { quickResponse, quickScan } from './quick-reject.js';
import { Router, TrunkDirectory, type TrunkConfig } from './routing.js';
import { SipDirectory, type DirectoryChange, type DirectoryStats } from './directory.js';
import { EventHub } from '../events/hub.js';
import { InProcessNotifier } from '../events/notifier.js';
import { TransactionLayer, type ServerTransaction, type TimerConfig } from './transaction.js';
import { SipTransportLayer, type Endpoint, type SipLogger, type TransportKind } from './transport.js';
import { UserAgentCore } from './ua.js';

export interface SipServerOptions {
  database: DatabaseHandle;
  /** Address to bind (ONECLOUD_SIP_HOST). */
  host: string;
  /** Port to bind, UDP and TCP (ONECLOUD_SIP_PORT, default 5060; 0 = a free port). */
  port: number;
  /**
   * Host put in every address of our messages (Via, Contact; ONECLOUD_SIP_ADVERTISED_HOST).
   * Default: `host`, or 127.0.0.1 when `host` is 0.0.0.0 or ::.
   */
  advertisedHost?: string;
  logger?: SipLogger;
  /** Timer source (tests); real time by default. Nonce timestamps always use the wall clock. */
  clock?: Clock;
  /** Nonce HMAC key (32+ bytes; pass the server key so nonces survive restarts); random if absent. */
  secret?: Buffer;
  transports?: readonly TransportKind[];
  timers?: Partial<TimerConfig>;
  /** Digest algorithms challenged, in order (default MD5, SHA-256). */
  digestAlgorithms?: readonly DigestAlgorithm[];
  minExpires?: number;
  maxExpires?: number;
  defaultExpires?: number;
  /** Brute-force protection (repeated failures from one address → 403 for a while). */
  guard?: GuardOptions;
  /** Ringing time before 480 (default 60 s). */
  noAnswerTimeoutMs?: number;
  /** The SIP trunk of an organization (default: its `sipTrunk` setting from the admin API). */
  trunkFor?: (org: Organization) => TrunkConfig | undefined;
  /**
   * Subscribes to every event of the log as this process reads it (the app's event hub:
   * `(l) => app.events.hub.onAnyEvent(l)`), so the directory of devices, users and numbers that
   * calls look up is emptied when they change. Without it the SIP server follows the log itself.
   */
  changes?: (listener: (events: readonly DirectoryChange[]) => void) => () => void;
  /**
   * How long organization settings (domain, number plan, SIP trunk) are cached before they are
   * read again (default 5 s: a change in the admin API takes effect within that).
   */
  settingsCacheMs?: number;
  /**
   * Overload control (see overload.ts): new calls and registrations get 503 with Retry-After
   * while the UDP receive queue stays behind (ONECLOUD_SIP_OVERLOAD_DELAY_MS; default 200 ms).
   * `false` turns it off. It needs the UDP transport.
   */
  overload?: OverloadOptions | false;
  /** Tests: the server stays in its startup window (bound, not yet taking work) until this settles. */
  startupGate?: Promise<void>;
}

export interface SipServer {
  /** The bound port (UDP and TCP). */
  port: number;
  /** The bound address. */
  host: string;
  /** The host our messages carry (Via, Contact). */
  advertisedHost: string;
  calls: CallCommands;
  /** Registration state of a user's devices (device API). */
  registrationState(organizationId: number, userId: number): Promise<DeviceRegistrationState[]>;
  /** Waits until every call event and record queued so far is in the database. */
  flush(): Promise<void>;
  /** Internals, for tests and metrics. */
  readonly stats: {
    activeCalls: number;
    bindings: number;
    transactions: { clients: number; servers: number };
    /** The in-memory directory of devices, users and numbers (see SipDirectory). */
    directory: DirectoryStats;
    /** Overload control (absent when it is off). */
    overload: OverloadStats | undefined;
  };
  /** Ends calls, stops timers, closes the sockets, writes what is queued. */
  close(): Promise<void>;
  /** Sweeps expired registrations now (tests). */
  sweepRegistrations(now?: number): Promise<number>;
}

const ALLOW = 'INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, REGISTER';

const silent: SipLogger = { debug() {}, warn() {}, error() {} };

export async function startSipServer(options: SipServerOptions): Promise<SipServer> {
  const logger = options.logger ?? silent;
  const clock = options.clock ?? realClock;
  const { database } = options;
  const transport = await SipTransportLayer.start({
    host: options.host,
    port: options.port,
    logger,
    ...(options.transports ? { transports: options.transports } : {}),
    ...(options.advertisedHost !== undefined ? { advertisedHost: options.advertisedHost } : {}),
  });
  // Until the server is ready (below), a request is answered 503 with Retry-After: without an
  // answer its transaction would absorb the phone's retransmissions and time it out after 32 s.
  let dispatch: (req: SipRequest, tx: ServerTransaction | undefined, source: Endpoint) => void = (
    req,
    tx,
  ) => {
    if (tx && req.method !== 'ACK') ua.replyStatelessly(tx, 503, { headers: [retryAfterHeader(1)] });
  };
  const layer = new TransactionLayer({
    transport,
    clock,
    logger,
    ...(options.timers ? { timers: options.timers } : {}),
    // The B2BUA answers 100 itself once it accepted a call.
    trying100DelayMs: 200,
    onRequest: (req, tx, source) => dispatch(req, tx, source),
    onStrayResponse: (res) => ua.reAck(res),
  });
  transport.onMessage((m, s) => layer.receive(m, s));
  const ua = new UserAgentCore(transport, layer, localAddress(transport), clock, logger);
  const now = (): number => clock.now();
  const nonces = new NonceManager({ secret: options.secret ?? randomBytes(32), wallClock: () => Date.now() });
  const guard = new BruteForceGuard(() => Date.now(), logger, options.guard);
  const directory = new SipDirectory(database);
  // The log empties the directory when what it holds changes (see SipDirectory).
  let unfollow: () => void;
  if (options.changes) {
    unfollow = options.changes((events) => directory.onEvents(events));
  } else {
    const notifier = new InProcessNotifier();
    await notifier.start();
    const hub = new EventHub({
      db: database.db,
      notifier,
      pollIntervalMs: 1000,
      onError: (err) => logger.error({ err }, 'SIP: following the event log failed'),
    });
    await hub.start();
    const off = hub.onAnyEvent((events) => directory.onEvents(events));
    unfollow = () => {
      off();
      void hub.stop().then(() => notifier.stop());
    };
  }
  const auth = new DeviceAuthenticator({
    directory,
    nonces,
    guard,
    logger,
    ...(options.digestAlgorithms ? { algorithms: options.digestAlgorithms } : {}),
  });
  const organizations = new OrganizationCache(database, () => Date.now(), options.settingsCacheMs);
  const store = new BindingStore(() => Date.now());
  const registrar = new Registrar({
    database,
    ua,
    auth,
    organizations,
    store,
    clock: { now: () => Date.now(), setTimer: (ms, fn) => clock.setTimer(ms, fn) },
    logger,
    ...(options.minExpires !== undefined ? { minExpires: options.minExpires } : {}),
    ...(options.maxExpires !== undefined ? { maxExpires: options.maxExpires } : {}),
    ...(options.defaultExpires !== undefined ? { defaultExpires: options.defaultExpires } : {}),
  });
  const writer = new BatchedWriter(database, logger);
  const b2bua = new B2bua({
    database,
    ua,
    auth,
    organizations,
    store,
    router: new Router(database, options.trunkFor, directory),
    directory,
    writer,
    clock: { now: () => Date.now(), setTimer: (ms, fn) => clock.setTimer(ms, fn) },
    logger,
    ...(options.noAnswerTimeoutMs !== undefined ? { noAnswerTimeoutMs: options.noAnswerTimeoutMs } : {}),
    trunks: new TrunkDirectory(database, () => Date.now(), logger, options.settingsCacheMs),
  });
  void now;

  const udp = transport.udp;
  const overload = options.overload === false || !udp ? undefined : new OverloadControl(options.overload);
  if (overload && udp) {
    overload.onTransition((shedding, stats) =>
      shedding
        ? logger.warn(
            { delayMs: Math.round(stats.delayMs), targetMs: overload.targetDelayMs },
            'SIP: overloaded (received messages wait longer than the target); refusing a share of new calls and registrations with 503',
          )
        : logger.warn(
            { shedSoFar: stats.shed },
            'SIP: no longer overloaded; taking every new call and registration again',
          ),
    );
    udp.startProbe(overload.intervalMs, Math.max(1000, 5 * overload.targetDelayMs), (ms, probe, final) =>
      overload.measure(ms, probe, final),
    );
    // Over UDP new work is refused before it is parsed (see quick-reject.ts): a datagram the quick
    // scan reads is decided here, once; one it cannot read is parsed and taken.
    udp.beforeParse = (data, source) => {
      if (!overload.shedding) return false;
      const scan = quickScan(data);
      if (scan === undefined) return false;
      if (scan === 'ack') return true;
      if (overload.admit()) return false;
      const res = quickResponse(scan, source, 503, 'Service Unavailable', [retryAfterHeader()]);
      // A top Via that does not parse: the full parser drops the message as malformed.
      if (!res) return false;
      udp.send(res.data, res.dest).catch((err: unknown) => logger.debug({ err }, 'SIP: 503 not sent'));
      return true;
    };
  }
  /**
   * New work (a registration or a new call) is refused statelessly while overloaded. A request
   * that carries credentials answers our challenge: it was let in one round trip ago, so it goes
   * on (refusing it would waste that round trip, and a phone's every call would be at risk twice).
   */
  const shed = (req: SipRequest, tx: ServerTransaction, source: Endpoint): boolean => {
    // Over UDP the quick path decided before the message was parsed.
    if (!overload || source.transport === 'udp') return false;
    if (hasHeader(req, 'Proxy-Authorization') || hasHeader(req, 'Authorization')) return false;
    if (overload.admit()) return false;
    ua.replyStatelessly(tx, 503, {
      headers: [retryAfterHeader()],
    });
    return true;
  };

  // Calls are taken once the call-event writer is ready (see BatchedWriter.ready).
  await writer.ready(10_000);
  await options.startupGate;
  dispatch = (req, tx, source) => {
    if (!tx) {
      if (req.method === 'ACK') b2bua.handleAck(req);
      return;
    }
    const maxForwards = getMaxForwards(req);
    if (maxForwards === 0 && req.method !== 'OPTIONS') {
      ua.reply(tx, 483);
      return;
    }
    switch (req.method) {
      case 'REGISTER':
        if (shed(req, tx, source)) return;
        void registrar.handle(req, tx, source);
        return;
      case 'OPTIONS':
        if (tagOf(getTo(req)) === undefined) {
          ua.respond(
            tx,
            createResponse(req, 200, {
              headers: [
                { name: 'Allow', value: ALLOW },
                { name: 'Accept', value: 'application/sdp' },
              ],
            }),
          );
          return;
        }
        b2bua.handleRequest(req, tx, source);
        return;
      case 'INVITE':
        if (tagOf(getTo(req)) === undefined && shed(req, tx, source)) return;
        b2bua.handleRequest(req, tx, source);
        return;
      default:
        b2bua.handleRequest(req, tx, source);
    }
  };

  const restored = await registrar.start();
  if (restored > 0) logger.debug({ restored }, 'SIP: registrations restored');

  let closed = false;
  return {
    port: transport.port,
    host: transport.address,
    advertisedHost: transport.advertisedHost,
    calls: b2bua,
    registrationState: (organizationId, userId) => registrar.stateOfUser(organizationId, userId),
    flush: () => writer.flush(),
    get stats() {
      return {
        activeCalls: b2bua.activeCalls,
        bindings: store.size,
        transactions: layer.size,
        directory: { ...directory.stats, size: directory.size },
        overload: overload?.stats,
      };
    },
    sweepRegistrations: (at) => registrar.sweep(at),
    async close() {
      if (closed) return;
      closed = true;
      unfollow();
      b2bua.close();
      registrar.close();
      // Let the BYEs leave before the sockets close.
      await new Promise((r) => setTimeout(r, 20));
      ua.close();
      layer.close();
      await transport.close();
      await writer.close();
    },
  };
}
