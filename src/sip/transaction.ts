/**
 * RFC 3261 §17 transactions with the RFC 6026 corrections: INVITE and non-INVITE client and server
 * state machines, their timers (Table 4: A–K, plus RFC 6026's L and M), matching of incoming
 * messages to transactions (§17.1.3, §17.2.3), and absorption of retransmissions.
 *
 * Time comes from an injectable {@link Clock}; messages leave through a {@link TransactionTransport}
 * (the {@link SipTransportLayer} fits). Feed every received message to
 * {@link TransactionLayer.receive}; new requests reach the TU through `onRequest`.
 */
import { realClock, type Clock, type Timer } from './clock.js';
import { MAGIC_COOKIE } from './grammar.js';
import {
  IDENTITY_HEADERS,
  identityOf,
  formatUri,
  getCSeq,
  getHeader,
  getHeaders,
  getTopVia,
  type SipHeader,
  type SipMessage,
  type SipRequest,
  type SipResponse,
} from './message.js';
import type { Endpoint, SipLogger } from './transport.js';

/** Table 4 base values (ms). T1: RTT estimate; T2: cap for non-INVITE/INVITE-response retransmits; T4: max network lifetime. */
export interface TimerConfig {
  T1: number;
  T2: number;
  T4: number;
  /** Timer D (INVITE client, Completed, unreliable): at least 32 s. */
  TD: number;
}

export const DEFAULT_TIMERS: Readonly<TimerConfig> = Object.freeze({
  T1: 500,
  T2: 4000,
  T4: 5000,
  TD: 32000,
});

/** What the transaction layer needs from the transport layer. */
export interface TransactionTransport {
  send(message: SipMessage, dest: Endpoint): Promise<void>;
  /** §18.2.2 response routing (on the request's connection, else by the top Via). */
  sendResponse(response: SipResponse, requestSource: Endpoint): Promise<void>;
}

export type ClientState = 'calling' | 'trying' | 'proceeding' | 'accepted' | 'completed' | 'terminated';
export type ServerState = 'trying' | 'proceeding' | 'accepted' | 'completed' | 'confirmed' | 'terminated';

/** Callbacks of the TU that started a client transaction. */
export interface ClientTransactionUser {
  /** Every response the TU must see (retransmissions absorbed; 2xx to INVITE all passed, RFC 6026 §8.4). */
  onResponse(response: SipResponse, tx: ClientTransaction): void;
  /** Timer B or F fired without a final response (§17.1.1.2, §17.1.2.2): treat as 408. */
  onTimeout?(tx: ClientTransaction): void;
  /** The request could not be sent (§8.1.3.1: treat as 503). */
  onTransportError?(error: unknown, tx: ClientTransaction): void;
  onTerminated?(tx: ClientTransaction): void;
}

const isReliable = (dest: Endpoint): boolean => dest.transport !== 'udp';

const branchOf = (msg: SipMessage): string | undefined => getTopVia(msg).branch;

/** Base of both kinds: timers that die with the transaction. */
abstract class Transaction {
  private readonly timers = new Map<string, Timer>();
  abstract readonly key: string;
  abstract get state(): ClientState | ServerState;

  constructor(protected readonly layer: TransactionLayer) {}

  protected startTimer(name: string, ms: number, fn: () => void): void {
    this.timers.get(name)?.cancel();
    this.timers.set(
      name,
      this.layer.clock.setTimer(ms, () => {
        this.timers.delete(name);
        fn();
      }),
    );
  }

  protected stopTimer(...names: string[]): void {
    for (const name of names) {
      this.timers.get(name)?.cancel();
      this.timers.delete(name);
    }
  }

  protected stopAllTimers(): void {
    for (const t of this.timers.values()) t.cancel();
    this.timers.clear();
  }

  /** Names of running timers (for tests and diagnostics). */
  get runningTimers(): string[] {
    return [...this.timers.keys()].sort();
  }
}

/** §17.1: INVITE client (Figure 5 / RFC 6026 Figure 3) and non-INVITE client (Figure 6). */
export class ClientTransaction extends Transaction {
  readonly key: string;
  readonly isInvite: boolean;
  private current: ClientState;
  private lastResponseStatus = 0;
  private ack: SipRequest | undefined;
  private sent: SipRequest;

  constructor(
    layer: TransactionLayer,
    request: SipRequest,
    readonly dest: Endpoint,
    private readonly user: ClientTransactionUser,
  ) {
    super(layer);
    this.sent = request;
    const branch = branchOf(request);
    if (branch === undefined || !branch.startsWith(MAGIC_COOKIE)) {
      throw new TypeError('a client transaction needs a top Via with an RFC 3261 branch (§8.1.1.7)');
    }
    if (request.method === 'ACK')
      throw new TypeError('ACK is not sent through a client transaction (§17.1.1.3)');
    this.isInvite = request.method === 'INVITE';
    this.key = `${branch}|${request.method}`;
    this.current = this.isInvite ? 'calling' : 'trying';
  }

  get state(): ClientState {
    return this.current;
  }

  /** The request; once a final response came, only its {@link identityOf} (nothing to resend). */
  get request(): SipRequest {
    return this.sent;
  }

  get reliable(): boolean {
    return isReliable(this.dest);
  }

  /** Sends the request and arms the timers. Called by {@link TransactionLayer.sendRequest}. */
  start(): void {
    const { T1 } = this.layer.timers;
    this.transmit(this.request);
    if (this.isInvite) {
      // Timer A: retransmit, doubling (§17.1.1.2); timer B: give up after 64*T1.
      if (!this.reliable) this.armRetransmit('A', T1);
      this.startTimer('B', 64 * T1, () => this.timeout());
    } else {
      // Timer E: retransmit, doubling up to T2 (§17.1.2.2); timer F: give up after 64*T1.
      if (!this.reliable) this.armRetransmit('E', T1);
      this.startTimer('F', 64 * T1, () => this.timeout());
    }
  }

  private armRetransmit(name: 'A' | 'E', interval: number): void {
    this.startTimer(name, interval, () => {
      if (this.current !== 'calling' && this.current !== 'trying' && this.current !== 'proceeding') return;
      this.transmit(this.request);
      const { T2 } = this.layer.timers;
      // INVITE: no cap (§17.1.1.2). Non-INVITE: min(2*E, T2); in Proceeding always T2 (§17.1.2.2).
      const next =
        name === 'A' ? 2 * interval : this.current === 'proceeding' ? T2 : Math.min(2 * interval, T2);
      this.armRetransmit(name, next);
    });
  }

  private transmit(msg: SipRequest): void {
    this.layer.transport.send(msg, this.dest).catch((err: unknown) => this.transportError(err));
  }

  private transportError(err: unknown): void {
    if (this.current === 'terminated') return;
    this.layer.logger.warn({ err, key: this.key }, 'SIP: client transaction transport error');
    this.safely(() => this.user.onTransportError?.(err, this));
    this.terminate();
  }

  private timeout(): void {
    if (this.current !== 'calling' && this.current !== 'trying' && this.current !== 'proceeding') return;
    this.safely(() => this.user.onTimeout?.(this));
    this.terminate();
  }

  private safely(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.layer.logger.error({ err, key: this.key }, 'SIP: transaction user threw');
    }
  }

  /** A response matched to this transaction (§17.1.3). */
  receive(res: SipResponse): void {
    const { T4 } = this.layer.timers;
    const provisional = res.status < 200;
    switch (this.current) {
      case 'calling':
      case 'trying':
      case 'proceeding':
        if (provisional) {
          if (this.current !== 'proceeding') {
            this.current = 'proceeding';
            // INVITE: no retransmissions and no timer B once a provisional arrived (§17.1.1.2).
            if (this.isInvite) this.stopTimer('A', 'B');
          }
          this.deliver(res);
          return;
        }
        this.lastResponseStatus = res.status;
        if (this.isInvite && res.status < 300) {
          // RFC 6026 §8.4: Accepted; timer M lets 2xx retransmissions (and forks) reach the TU.
          this.current = 'accepted';
          this.sent = identityOf(this.sent);
          this.stopTimer('A', 'B');
          this.startTimer('M', 64 * this.layer.timers.T1, () => this.terminate());
          this.deliver(res);
          return;
        }
        this.current = 'completed';
        this.stopTimer('A', 'B', 'E', 'F');
        if (this.isInvite) {
          // §17.1.1.3: the transaction ACKs a non-2xx final; timer D absorbs retransmissions.
          this.ack = this.buildAck(res);
          this.sent = identityOf(this.sent);
          this.transmit(this.ack);
          this.startTimer('D', this.reliable ? 0 : this.layer.timers.TD, () => this.terminate());
        } else {
          // Timer K (§17.1.2.2): T4 for unreliable transports, zero for reliable ones.
          this.sent = identityOf(this.sent);
          this.startTimer('K', this.reliable ? 0 : T4, () => this.terminate());
        }
        this.deliver(res);
        return;
      case 'accepted':
        if (res.status >= 200 && res.status < 300) this.deliver(res);
        return;
      case 'completed':
        // Retransmitted final response: INVITE re-sends the ACK; non-INVITE absorbs it.
        if (this.isInvite && this.ack && res.status >= 300) this.transmit(this.ack);
        return;
      case 'terminated':
        return;
    }
  }

  private deliver(res: SipResponse): void {
    this.safely(() => this.user.onResponse(res, this));
  }

  /**
   * §17.1.1.3: the ACK for a non-2xx final response: same Request-URI, Call-ID, From, CSeq number
   * and top Via as the request, To from the response, the request's Route headers.
   */
  private buildAck(res: SipResponse): SipRequest {
    const req = this.request;
    const headers: SipHeader[] = [];
    const copy = (from: SipMessage, name: string, max = Infinity): void => {
      for (const value of getHeaders(from, name).slice(0, max)) headers.push({ name, value });
    };
    copy(req, 'Via', 1);
    copy(req, 'Max-Forwards');
    copy(req, 'Route');
    copy(req, 'From');
    copy(res, 'To');
    copy(req, 'Call-ID');
    headers.push({ name: 'CSeq', value: `${getCSeq(req).seq} ACK` });
    return { type: 'request', method: 'ACK', uri: req.uri, headers, body: Buffer.alloc(0) };
  }

  /** The final status received (0 while there is none). */
  get finalStatus(): number {
    return this.lastResponseStatus;
  }

  terminate(): void {
    if (this.current === 'terminated') return;
    this.current = 'terminated';
    this.stopAllTimers();
    this.layer.forget(this);
    this.safely(() => this.user.onTerminated?.(this));
  }
}

/** §17.2: INVITE server (Figure 7 / RFC 6026 Figure 5) and non-INVITE server (Figure 8). */
export class ServerTransaction extends Transaction {
  readonly isInvite: boolean;
  private current: ServerState;
  private lastResponse: SipResponse | undefined;
  /** Timer H fired: no ACK came for the final response (§17.2.1). */
  onTimeout?: (tx: ServerTransaction) => void;
  onTransportError?: (error: unknown, tx: ServerTransaction) => void;
  onTerminated?: (tx: ServerTransaction) => void;

  private received: SipRequest;

  constructor(
    layer: TransactionLayer,
    readonly key: string,
    request: SipRequest,
    readonly source: Endpoint,
  ) {
    super(layer);
    this.received = request;
    this.isInvite = request.method === 'INVITE';
    this.current = this.isInvite ? 'proceeding' : 'trying';
    const delay = layer.trying100DelayMs;
    // §17.2.1: a 100 Trying unless the TU answers within 200 ms.
    if (this.isInvite && delay !== false) {
      this.startTimer('Trying', delay, () => {
        if (this.current === 'proceeding' && !this.lastResponse) this.respond(trying(request));
      });
    }
  }

  get state(): ServerState {
    return this.current;
  }

  /** The request; once a final response was sent, only its {@link identityOf}. */
  get request(): SipRequest {
    return this.received;
  }

  get reliable(): boolean {
    return isReliable(this.source);
  }

  /** The last response sent (what a retransmitted request gets again). */
  get response(): SipResponse | undefined {
    return this.lastResponse;
  }

  private safely(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.layer.logger.error({ err, key: this.key }, 'SIP: transaction user threw');
    }
  }

  private transmit(res: SipResponse): void {
    this.layer.transport.sendResponse(res, this.source).catch((err: unknown) => {
      if (this.current === 'terminated') return;
      this.layer.logger.warn({ err, key: this.key }, 'SIP: server transaction transport error');
      this.safely(() => this.onTransportError?.(err, this));
      this.terminate();
    });
  }

  /**
   * Sends a response from the TU. Throws when the state allows none (e.g. a second final response):
   * that is a TU bug, not a network event.
   */
  respond(res: SipResponse): void {
    const { T1, T2 } = this.layer.timers;
    const status = res.status;
    const allowed =
      this.current === 'trying' ||
      this.current === 'proceeding' ||
      (this.current === 'accepted' && status >= 200 && status < 300);
    if (!allowed) throw new Error(`SIP: cannot send ${status} in state ${this.current} (${this.key})`);
    this.stopTimer('Trying');
    this.lastResponse = res;
    this.transmit(res);
    if (status < 200) {
      this.current = 'proceeding';
      return;
    }
    // From here on only retransmissions are absorbed: keep what identifies the request, and of a
    // 2xx to an INVITE (which the TU retransmits itself, RFC 6026) nothing.
    if (this.current !== 'accepted') this.received = identityOf(this.received);
    if (this.isInvite && status < 300) this.lastResponse = undefined;
    if (!this.isInvite) {
      // Timer J (§17.2.2): 64*T1 for unreliable transports, zero for reliable ones.
      this.current = 'completed';
      this.startTimer('J', this.reliable ? 0 : 64 * T1, () => this.terminate());
      return;
    }
    if (status < 300) {
      // RFC 6026 §8.7: Accepted; the TU retransmits the 2xx through us; timer L ends it.
      if (this.current !== 'accepted') {
        this.current = 'accepted';
        this.startTimer('L', 64 * T1, () => this.terminate());
      }
      return;
    }
    // §17.2.1: Completed; timer G retransmits (doubling to T2) until an ACK, timer H gives up.
    this.current = 'completed';
    if (!this.reliable) this.armG(T1, T2);
    this.startTimer('H', 64 * T1, () => {
      if (this.current !== 'completed') return;
      this.safely(() => this.onTimeout?.(this));
      this.terminate();
    });
  }

  /**
   * Sends a final non-2xx response and forgets the transaction at once: stateless UAS behaviour
   * (§8.2.7), meant for challenges. Nothing is retransmitted and no ACK is awaited; a retransmitted
   * request starts a new transaction and is answered anew, and the ACK matches nothing and is
   * dropped. At hundreds of calls per second this spares each challenged INVITE timers G, H and I
   * and each challenged REGISTER 32 s of timer J. Throws like {@link respond}.
   */
  respondStatelessly(res: SipResponse): void {
    if (res.status < 300) throw new Error(`SIP: a ${res.status} cannot be sent statelessly (${this.key})`);
    if (this.current !== 'trying' && this.current !== 'proceeding')
      throw new Error(`SIP: cannot send ${res.status} in state ${this.current} (${this.key})`);
    this.stopTimer('Trying');
    this.lastResponse = res;
    this.transmit(res);
    this.terminate();
  }

  private armG(interval: number, T2: number): void {
    this.startTimer('G', interval, () => {
      if (this.current !== 'completed' || !this.lastResponse) return;
      this.transmit(this.lastResponse);
      this.armG(Math.min(2 * interval, T2), T2);
    });
  }

  /** A retransmission of the request, or an ACK matched to this INVITE transaction (§17.2.3). */
  receive(req: SipRequest): void {
    if (req.method === 'ACK') {
      if (this.current === 'completed') {
        // §17.2.1: Confirmed; timer I absorbs ACK retransmissions.
        this.current = 'confirmed';
        this.stopTimer('G', 'H');
        this.startTimer('I', this.reliable ? 0 : this.layer.timers.T4, () => this.terminate());
      }
      return;
    }
    switch (this.current) {
      case 'proceeding':
        // INVITE: re-send the last provisional; non-INVITE: the same once it sent one (§17.2.2).
        if (this.lastResponse) this.transmit(this.lastResponse);
        return;
      case 'completed':
        if (this.lastResponse) this.transmit(this.lastResponse);
        return;
      default:
        // trying (non-INVITE, nothing sent yet), accepted (RFC 6026: absorbed), confirmed.
        return;
    }
  }

  terminate(): void {
    if (this.current === 'terminated') return;
    this.current = 'terminated';
    this.stopAllTimers();
    this.layer.forget(this);
    this.safely(() => this.onTerminated?.(this));
  }
}

/** A 100 Trying for `req` (§8.2.6.1: no To tag needed, Timestamp copied). */
function trying(req: SipRequest): SipResponse {
  const headers: SipHeader[] = [];
  for (const name of [...IDENTITY_HEADERS, 'Timestamp']) {
    for (const value of getHeaders(req, name)) headers.push({ name, value });
  }
  return { type: 'response', status: 100, reason: 'Trying', headers, body: Buffer.alloc(0) };
}

export type RequestHandler = (
  request: SipRequest,
  tx: ServerTransaction | undefined,
  source: Endpoint,
) => void;

export interface TransactionLayerOptions {
  transport: TransactionTransport;
  /**
   * Every request that starts a new server transaction (with it), and every ACK that matches
   * none (the ACK for a 2xx, §17.1.1.3, with `tx` undefined).
   */
  onRequest: RequestHandler;
  /** Responses that match no client transaction (§17.1.3; a UAC core may drop them, RFC 6026 §7.2). */
  onStrayResponse?: (response: SipResponse, source: Endpoint) => void;
  clock?: Clock;
  timers?: Partial<TimerConfig>;
  /** Delay before an INVITE server transaction sends 100 Trying by itself; `false` never. */
  trying100DelayMs?: number | false;
  logger?: SipLogger;
}

const silent: SipLogger = { debug() {}, warn() {}, error() {} };

/** The sent-by of a Via as text, for matching (§17.2.3). */
function sentBy(msg: SipMessage): string {
  const via = getTopVia(msg);
  return `${via.host.toLowerCase()}:${via.port ?? ''}`;
}

/**
 * §17.2.3 server transaction key. With an RFC 3261 branch: branch, sent-by and method (ACK
 * matching INVITE). Otherwise (RFC 2543 peers): Request-URI, From tag, Call-ID, CSeq number and the
 * top Via; the To tag is left out so an ACK (which carries ours) finds its INVITE.
 */
export function serverKey(req: SipRequest): string {
  const method = req.method === 'ACK' ? 'INVITE' : req.method;
  const branch = branchOf(req);
  if (branch?.startsWith(MAGIC_COOKIE)) return `${branch}|${sentBy(req)}|${method}`;
  const fromTag = /;\s*tag\s*=\s*([^;\s]+)/i.exec(getHeader(req, 'From') ?? '')?.[1] ?? '';
  const cseq = getCSeq(req).seq;
  return `2543|${formatUri(req.uri)}|${fromTag}|${getHeader(req, 'Call-ID') ?? ''}|${cseq}|${method}|${getHeader(req, 'Via') ?? ''}`;
}

export class TransactionLayer {
  readonly transport: TransactionTransport;
  readonly clock: Clock;
  readonly timers: TimerConfig;
  readonly trying100DelayMs: number | false;
  readonly logger: SipLogger;
  private readonly onRequest: RequestHandler;
  private readonly onStrayResponse: (response: SipResponse, source: Endpoint) => void;
  private readonly clients = new Map<string, ClientTransaction>();
  private readonly servers = new Map<string, ServerTransaction>();

  constructor(options: TransactionLayerOptions) {
    this.transport = options.transport;
    this.clock = options.clock ?? realClock;
    this.timers = { ...DEFAULT_TIMERS, ...options.timers };
    this.trying100DelayMs = options.trying100DelayMs ?? 200;
    this.logger = options.logger ?? silent;
    this.onRequest = options.onRequest;
    this.onStrayResponse = options.onStrayResponse ?? (() => {});
  }

  /** Open transactions (client, server). */
  get size(): { clients: number; servers: number } {
    return { clients: this.clients.size, servers: this.servers.size };
  }

  /** Starts a client transaction: sends `request` to `dest` and reports to `user`. */
  sendRequest(request: SipRequest, dest: Endpoint, user: ClientTransactionUser): ClientTransaction {
    const tx = new ClientTransaction(this, request, dest, user);
    if (this.clients.has(tx.key)) throw new TypeError(`a client transaction ${tx.key} already exists`);
    this.clients.set(tx.key, tx);
    tx.start();
    return tx;
  }

  /** The INVITE server transaction a CANCEL refers to (§9.2: same key but the method). */
  findInviteForCancel(cancel: SipRequest): ServerTransaction | undefined {
    const key = serverKey({ ...cancel, method: 'INVITE' });
    return this.servers.get(key);
  }

  /** Entry point for every message the transport layer received. Never throws. */
  receive(message: SipMessage, source: Endpoint): void {
    try {
      if (message.type === 'response') this.receiveResponse(message, source);
      else this.receiveRequest(message, source);
    } catch (err) {
      this.logger.error({ err, source }, 'SIP: transaction layer failed on a message');
    }
  }

  private receiveResponse(res: SipResponse, source: Endpoint): void {
    // §17.1.3: branch of the top Via and the CSeq method.
    const key = `${branchOf(res) ?? ''}|${getCSeq(res).method}`;
    const tx = this.clients.get(key);
    if (tx) tx.receive(res);
    else this.onStrayResponse(res, source);
  }

  private receiveRequest(req: SipRequest, source: Endpoint): void {
    const key = serverKey(req);
    const tx = this.servers.get(key);
    if (req.method === 'ACK') {
      // An ACK for a non-2xx final belongs to its INVITE transaction; any other ACK (for a 2xx,
      // RFC 6026 §8.7 also when it reuses the INVITE's branch) goes to the TU, with no transaction.
      if (tx?.isInvite && (tx.state === 'completed' || tx.state === 'confirmed')) tx.receive(req);
      else this.onRequest(req, undefined, source);
      return;
    }
    if (tx) {
      tx.receive(req);
      return;
    }
    const created = new ServerTransaction(this, key, req, source);
    this.servers.set(key, created);
    this.onRequest(req, created, source);
  }

  /** Called by a transaction when it terminates. */
  forget(tx: ClientTransaction | ServerTransaction): void {
    if (tx instanceof ClientTransaction) {
      if (this.clients.get(tx.key) === tx) this.clients.delete(tx.key);
    } else if (this.servers.get(tx.key) === tx) {
      this.servers.delete(tx.key);
    }
  }

  /** Terminates every transaction (their timers stop); for shutdown. */
  close(): void {
    for (const tx of [...this.clients.values(), ...this.servers.values()]) tx.terminate();
  }
}
