/**
 * SIP transports (RFC 3261 §18): UDP and TCP on one address and port, receiving and parsing
 * messages, stamping `received`/`rport` on requests (§18.2.1, RFC 3581 §4), and sending responses
 * where §18.2.2 says (back on the request's connection, or to `received`/`rport`).
 *
 * Hostile input never escapes: a malformed datagram is dropped and logged; on TCP a malformed
 * message is answered with a best-effort 400 (or the status of the error) and the connection is
 * closed, because a stream cannot be re-synchronized after a framing error.
 */
import { randomBytes } from 'node:crypto';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { isIP } from 'node:net';
import { SipParseError } from './errors.js';
import { formatNameAddr, parseNameAddr, type Via } from './grammar.js';
import type { View } from './view.js';
import { parseHeaderLines, resolveLimits } from './headers.js';
import {
  generateTag,
  getTopVia,
  parseMessage,
  serialize,
  setTopVia,
  type SipLimits,
  type SipMessage,
  type SipRequest,
  type SipResponse,
} from './message.js';
import { StreamFramer } from './framer.js';

export type TransportKind = 'udp' | 'tcp';

/** Where a message goes to or came from. */
export interface Endpoint {
  transport: TransportKind;
  /** An IP address (IPv6 without brackets) or, for sending, a host name. */
  address: string;
  port: number;
  /** TCP: the connection a message came on / should preferably go out on. */
  connectionId?: number;
}

/** Minimal logger; pino's methods fit. */
export interface SipLogger {
  debug(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

const silent: SipLogger = { debug() {}, warn() {}, error() {} };

export type MessageHandler = (message: SipMessage, source: Endpoint) => void;

export interface TransportOptions {
  /** Address to bind (tests: 127.0.0.1). */
  host: string;
  /** Port to bind; 0 picks a free port (the same one for UDP and TCP). */
  port: number;
  /** Which transports to run; both by default. */
  transports?: readonly TransportKind[];
  limits?: Partial<SipLimits>;
  logger?: SipLogger;
  /** TCP: close a connection idle for this long (default 5 minutes). */
  idleTimeoutMs?: number;
  /** TCP: maximum simultaneous connections (default 10,000). */
  maxConnections?: number;
  /** TCP: close a connection whose unsent output exceeds this (a peer that does not read). */
  maxWriteBuffer?: number;
  /** TCP: give up connecting after this long (default 10 s). */
  connectTimeoutMs?: number;
  /**
   * The host written into the messages we send (Via sent-by, Contact): where peers reach us.
   * Default: the bound address, or 127.0.0.1 when bound to the unspecified address (0.0.0.0, ::).
   */
  advertisedHost?: string;
  /** UDP: socket receive and send buffer size asked for (default 4 MiB; capped by the kernel). */
  udpBufferBytes?: number;
}

const DEFAULT_UDP_BUFFER = 4 * 1024 * 1024;

/** Whether `host` is the unspecified address (bound to every interface), which no peer can reach. */
export function isUnspecifiedAddress(host: string): boolean {
  const h = socketAddress(host);
  return h === '0.0.0.0' || h === '::' || h === '0:0:0:0:0:0:0:0';
}

/** Strips the brackets of an IPv6 reference: sockets want the bare address. */
export function socketAddress(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

function sameAddress(viaHost: string, address: string): boolean {
  return socketAddress(viaHost).toLowerCase() === address.toLowerCase();
}

/**
 * §18.2.1 / RFC 3581 §4: on a received request, add `received` when the sent-by host is not the
 * packet's source address (always when `rport` is asked for) and fill in `rport`. Returns whether
 * the Via changed.
 */
export function stampVia(msg: SipRequest, source: Endpoint): boolean {
  const stamped = stampedVia(getTopVia(msg), source);
  if (stamped) setTopVia(msg, stamped);
  return stamped !== undefined;
}

/** The top Via as stampVia leaves it; undefined when it needs no change. */
export function stampedVia(via: View<Via>, source: Endpoint): View<Via> | undefined {
  if (via.rport === true) return { ...via, rport: source.port, received: source.address };
  if (!sameAddress(via.host, source.address)) return { ...via, received: source.address };
  return undefined;
}

/**
 * §18.2.2 (with RFC 3581 §4): where a response goes when the request's connection is not usable:
 * `maddr`, else `received` with the `rport` port for unreliable transports, else the sent-by.
 */
export function responseDestination(via: View<Via>): Endpoint {
  const transport: TransportKind = via.transport === 'UDP' ? 'udp' : 'tcp';
  const defaultPort = via.port ?? 5060;
  const maddr = via.params.get('maddr');
  if (transport === 'udp' && maddr) return { transport, address: socketAddress(maddr), port: defaultPort };
  if (via.received !== undefined) {
    const port = transport === 'udp' && typeof via.rport === 'number' ? via.rport : defaultPort;
    return { transport, address: socketAddress(via.received), port };
  }
  return { transport, address: socketAddress(via.host), port: defaultPort };
}

const CRLFCRLF = Buffer.from('\r\n\r\n');

/**
 * A stateless error response (§8.2.6) to a message that failed to parse, built from whatever of
 * Via, From, To, Call-ID and CSeq can be read. Undefined when the message was a response or its
 * header section cannot even be split into lines.
 */
export function errorResponseFor(data: Buffer, err: SipParseError): Buffer | undefined {
  try {
    let start = 0;
    while (data[start] === 13 && data[start + 1] === 10) start += 2;
    const end = data.indexOf(CRLFCRLF, start);
    const head = data.subarray(start, end < 0 ? Math.min(data.length, 16384) : end).toString('utf8');
    const lines = head.split('\r\n');
    if (/^SIP\//i.test(lines[0] ?? '')) return undefined;
    // Drop a last partial line; ignore lines that are not headers.
    const usable = lines.slice(1, end < 0 ? -1 : undefined).filter((l) => /^[ \t]|^[^:\s]+[ \t]*:/.test(l));
    const headers = parseHeaderLines(usable, resolveLimits({ maxHeaders: 1000, maxHeaderLineLength: 16384 }));
    let out = `SIP/2.0 ${err.status} ${err.reason}\r\n`;
    for (const h of headers) {
      if (!['Via', 'From', 'To', 'Call-ID', 'CSeq'].includes(h.name)) continue;
      let value = h.value;
      if (h.name === 'To') {
        try {
          const to = parseNameAddr(value);
          if (!to.params.has('tag')) to.params.set('tag', generateTag());
          value = formatNameAddr(to);
        } catch {
          // keep the To as it came
        }
      }
      out += `${h.name}: ${value}\r\n`;
    }
    return Buffer.from(out + 'Content-Length: 0\r\n\r\n', 'utf8');
  } catch {
    return undefined;
  }
}

/** One transport bound to an address and port. */
export interface Transport {
  readonly kind: TransportKind;
  /** Reliable transports need no retransmission (§17.1.1.2: timer A only for unreliable ones). */
  readonly reliable: boolean;
  readonly address: string;
  readonly port: number;
  send(data: Buffer, dest: Endpoint): Promise<void>;
  close(): Promise<void>;
}

interface TransportContext {
  limits: SipLimits;
  logger: SipLogger;
  deliver(message: SipMessage, source: Endpoint): void;
}

/** Whether a datagram is nothing but CR and LF octets (stops at the first other octet). */
function onlyLineBreaks(data: Buffer): boolean {
  for (const octet of data) if (octet !== 13 && octet !== 10) return false;
  return true;
}

/** Parses a received message and hands it on; never throws. */
function receive(ctx: TransportContext, data: Buffer, source: Endpoint): SipParseError | undefined {
  let message: SipMessage;
  try {
    message = parseMessage(data, { limits: ctx.limits });
    if (message.type === 'request') stampVia(message, source);
  } catch (err) {
    if (err instanceof SipParseError) return err;
    ctx.logger.error({ err, source }, 'SIP: unexpected error while parsing');
    return new SipParseError(400, 'unparseable message');
  }
  try {
    ctx.deliver(message, source);
  } catch (err) {
    ctx.logger.error({ err, source }, 'SIP: message handler threw');
  }
  return undefined;
}

/**
 * A probe's delay so far (`final` false: it is still out) or in full (`final` true: it came back),
 * in ms, with the probe's sequence number.
 */
export type ProbeListener = (delayMs: number, probe: number, final: boolean) => void;

/**
 * Sends its own socket a datagram every `intervalMs` and reports how long each waited in the
 * receive queue (the signal of overload control: see overload.ts). One probe is out at a time; one
 * still unanswered at a tick is reported with its age so far, and after `lostAfterMs` it is taken
 * as lost (the queue overflowed) and the next one goes out. A probe carries a random token and a
 * sequence number, so nothing else is mistaken for one and a late old one is ignored.
 */
class UdpProbe {
  private readonly prefix: Buffer;
  private readonly length: number;
  private seq = 0;
  /** Sequence number of the probe out now (0: none). */
  private outstanding = 0;
  private sentAt = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly socket: UdpSocket,
    private readonly address: string,
    private readonly port: number,
    intervalMs: number,
    private readonly lostAfterMs: number,
    private readonly onDelay: ProbeListener,
  ) {
    this.prefix = Buffer.from(`OneCloud-probe ${randomBytes(8).toString('hex')} `, 'latin1');
    this.length = this.prefix.length + 10;
    this.timer = setInterval(() => this.tick(), intervalMs);
    this.timer.unref();
  }

  private tick(): void {
    const now = performance.now();
    if (this.outstanding !== 0) {
      const age = now - this.sentAt;
      this.onDelay(age, this.outstanding, false);
      if (age < this.lostAfterMs) return;
    }
    // Ten digits, never 0 (0 means none out).
    this.seq = (this.seq % 9_999_999_999) + 1;
    this.outstanding = this.seq;
    this.sentAt = now;
    const data = Buffer.concat([this.prefix, Buffer.from(String(this.seq).padStart(10, '0'))]);
    // A failed send is a lost probe: the next tick reports its age.
    this.socket.send(data, this.port, this.address, () => {});
  }

  /** Whether a datagram is one of our probes (then it is consumed and, if current, reported). */
  take(data: Buffer, address: string, port: number): boolean {
    if (port !== this.port || data.length !== this.length || address !== this.address) return false;
    if (!data.subarray(0, this.prefix.length).equals(this.prefix)) return false;
    const seq = Number(data.toString('latin1', this.prefix.length));
    if (seq === this.outstanding) {
      this.outstanding = 0;
      this.onDelay(performance.now() - this.sentAt, seq, true);
    }
    return true;
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

export class UdpTransport implements Transport {
  readonly kind = 'udp';
  readonly reliable = false;
  private probe: UdpProbe | undefined;
  /**
   * Sees each datagram before it is parsed; true when it dealt with it (overload control's quick
   * refusal: see quick-reject.ts).
   */
  beforeParse: ((data: Buffer, source: Endpoint) => boolean) | undefined;

  private constructor(
    private readonly socket: UdpSocket,
    readonly address: string,
    readonly port: number,
  ) {}

  static async bind(
    host: string,
    port: number,
    ctx: TransportContext,
    bufferBytes = DEFAULT_UDP_BUFFER,
  ): Promise<UdpTransport> {
    // A large receive buffer rides out bursts (at a few hundred calls/s the default ~200 KB
    // overflowed and dropped datagrams; the kernel caps the size at net.core.rmem_max).
    const socket = createSocket({
      type: isIP(host) === 6 ? 'udp6' : 'udp4',
      recvBufferSize: bufferBytes,
      sendBufferSize: bufferBytes,
    });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(port, host, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    socket.on('error', (err) => ctx.logger.warn({ err }, 'SIP/UDP: socket error'));
    const bound = socket.address();
    const transport = new UdpTransport(socket, bound.address, bound.port);
    socket.on('message', (data, rinfo) => {
      if (transport.probe?.take(data, rinfo.address, rinfo.port)) return;
      const source: Endpoint = { transport: 'udp', address: rinfo.address, port: rinfo.port };
      try {
        if (transport.beforeParse?.(data, source)) return;
      } catch (err) {
        ctx.logger.error({ err, source }, 'SIP/UDP: the quick path threw; parsing the message in full');
      }
      // A datagram of only CRLFs is a keep-alive (RFC 5626 §3.5.1 uses them on UDP too via STUN; many
      // phones send bare CRLFs): nothing to parse.
      if (onlyLineBreaks(data)) return;
      const err = receive(ctx, data, source);
      if (err)
        ctx.logger.warn(
          { source, status: err.status, reason: err.message },
          'SIP/UDP: dropped malformed message',
        );
    });
    return transport;
  }

  /**
   * Starts measuring the receive queue's delay (see {@link UdpProbe}): `onDelay` gets a figure
   * about every `intervalMs`. Probes go to the bound address (loopback when bound to every
   * interface), so they never leave the host.
   */
  startProbe(intervalMs: number, lostAfterMs: number, onDelay: ProbeListener): void {
    this.probe?.stop();
    const address = isUnspecifiedAddress(this.address)
      ? isIP(this.address) === 6
        ? '::1'
        : '127.0.0.1'
      : this.address;
    this.probe = new UdpProbe(this.socket, address, this.port, intervalMs, lostAfterMs, onDelay);
  }

  send(data: Buffer, dest: Endpoint): Promise<void> {
    return new Promise((resolve, reject) => {
      this.socket.send(data, dest.port, socketAddress(dest.address), (err) =>
        err ? reject(err) : resolve(),
      );
    });
  }

  /** The socket's buffer sizes as the kernel reports them (Linux doubles what was asked). */
  bufferSizes(): { receive: number; send: number } {
    return { receive: this.socket.getRecvBufferSize(), send: this.socket.getSendBufferSize() };
  }

  close(): Promise<void> {
    this.probe?.stop();
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}

interface Connection {
  id: number;
  socket: Socket;
  remote: Endpoint;
  key: string;
  /** Set once the connection is being closed after an error: later input is ignored. */
  closing: boolean;
}

const remoteKey = (address: string, port: number): string => `${address.toLowerCase()}|${port}`;

export class TcpTransport implements Transport {
  readonly kind = 'tcp';
  readonly reliable = true;
  private nextId = 1;
  private readonly connections = new Map<number, Connection>();
  /** Open connection per remote address:port (the newest), for reuse by outgoing messages. */
  private readonly byRemote = new Map<string, Connection>();
  private readonly pending = new Map<string, Promise<Connection>>();
  private readonly idleTimeoutMs: number;
  private readonly maxWriteBuffer: number;
  private readonly connectTimeoutMs: number;

  private constructor(
    private readonly server: Server,
    readonly address: string,
    readonly port: number,
    private readonly ctx: TransportContext,
    options: TransportOptions,
  ) {
    this.idleTimeoutMs = options.idleTimeoutMs ?? 300_000;
    this.maxWriteBuffer = options.maxWriteBuffer ?? 4 * 1024 * 1024;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
  }

  static async bind(
    host: string,
    port: number,
    ctx: TransportContext,
    options: TransportOptions,
  ): Promise<TcpTransport> {
    const server = createServer({ noDelay: true });
    server.maxConnections = options.maxConnections ?? 10_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const bound = server.address();
    if (bound === null || typeof bound === 'string') throw new Error('TCP server has no address');
    const transport = new TcpTransport(server, bound.address, bound.port, ctx, options);
    server.on('connection', (socket) => transport.adopt(socket));
    server.on('error', (err) => ctx.logger.warn({ err }, 'SIP/TCP: server error'));
    return transport;
  }

  /** Number of open connections (for tests and metrics). */
  get connectionCount(): number {
    return this.connections.size;
  }

  /** Whether a connection is still open. */
  isOpen(connectionId: number): boolean {
    return this.connections.has(connectionId);
  }

  private adopt(socket: Socket): Connection {
    const address = socket.remoteAddress ?? '';
    const port = socket.remotePort ?? 0;
    const id = this.nextId++;
    const conn: Connection = {
      id,
      socket,
      key: remoteKey(address, port),
      remote: { transport: 'tcp', address, port, connectionId: id },
      closing: false,
    };
    this.connections.set(id, conn);
    this.byRemote.set(conn.key, conn);
    const framer = new StreamFramer(this.ctx.limits);
    socket.setNoDelay(true);
    socket.setTimeout(this.idleTimeoutMs, () => {
      this.ctx.logger.debug({ remote: conn.remote }, 'SIP/TCP: closing idle connection');
      socket.destroy();
    });
    socket.on('data', (chunk: Buffer) => {
      if (conn.closing) return;
      let frames;
      try {
        frames = framer.push(chunk);
      } catch (err) {
        const perr = err instanceof SipParseError ? err : new SipParseError(400, 'framing error');
        this.reject(conn, chunk, perr);
        return;
      }
      for (const frame of frames) {
        if (conn.closing || socket.destroyed) return;
        if (frame.type === 'ping') {
          socket.write('\r\n'); // RFC 5626 §4.4.1 pong
          continue;
        }
        const err = receive(this.ctx, frame.data, conn.remote);
        if (err) {
          this.reject(conn, frame.data, err);
          return;
        }
      }
    });
    socket.on('error', (err) =>
      this.ctx.logger.debug({ err, remote: conn.remote }, 'SIP/TCP: connection error'),
    );
    socket.on('close', () => {
      this.connections.delete(id);
      if (this.byRemote.get(conn.key) === conn) this.byRemote.delete(conn.key);
    });
    return conn;
  }

  /** Answers a malformed request with its error status where possible, then closes (§18.3). */
  private reject(conn: Connection, data: Buffer, err: SipParseError): void {
    this.ctx.logger.warn(
      { remote: conn.remote, status: err.status, reason: err.message },
      'SIP/TCP: malformed message, closing connection',
    );
    conn.closing = true;
    const response = errorResponseFor(data, err);
    conn.socket.end(response ?? Buffer.alloc(0), () => conn.socket.destroy());
  }

  private connection(dest: Endpoint): Promise<Connection> {
    if (dest.connectionId !== undefined) {
      const conn = this.connections.get(dest.connectionId);
      if (conn && !conn.socket.destroyed) return Promise.resolve(conn);
    }
    const address = socketAddress(dest.address);
    const key = remoteKey(address, dest.port);
    const open = this.byRemote.get(key);
    if (open && !open.socket.destroyed) return Promise.resolve(open);
    const pending = this.pending.get(key);
    if (pending) return pending;
    const promise = new Promise<Connection>((resolve, reject) => {
      const socket = connect({ host: address, port: dest.port, noDelay: true });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`SIP/TCP: connecting to ${address}:${dest.port} timed out`));
      }, this.connectTimeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        const conn = this.adopt(socket);
        // Index under the address we dialled too (a name may resolve to another spelling).
        this.byRemote.set(key, conn);
        resolve(conn);
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    }).finally(() => this.pending.delete(key));
    this.pending.set(key, promise);
    return promise;
  }

  async send(data: Buffer, dest: Endpoint): Promise<void> {
    const conn = await this.connection(dest);
    if (conn.socket.writableLength + data.length > this.maxWriteBuffer) {
      conn.socket.destroy();
      throw new Error('SIP/TCP: peer is not reading; connection closed');
    }
    await new Promise<void>((resolve, reject) => {
      conn.socket.write(data, (err) => (err ? reject(err) : resolve()));
    });
  }

  /** Closes the listener and every connection. */
  async close(): Promise<void> {
    for (const conn of this.connections.values()) conn.socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/**
 * The transport layer: UDP and TCP bound to the same address and port, one message callback, and
 * sending of requests (to an endpoint) and responses (§18.2.2).
 */
export class SipTransportLayer {
  private handler: MessageHandler = () => {};

  /** The host peers reach us at: what Via and Contact carry (see {@link TransportOptions.advertisedHost}). */
  readonly advertisedHost: string;

  private constructor(
    readonly udp: UdpTransport | undefined,
    readonly tcp: TcpTransport | undefined,
    readonly logger: SipLogger,
    advertisedHost: string | undefined,
  ) {
    const bound = (udp?.address ?? tcp?.address) as string;
    this.advertisedHost = socketAddress(
      advertisedHost ?? (isUnspecifiedAddress(bound) ? '127.0.0.1' : bound),
    );
  }

  static async start(options: TransportOptions): Promise<SipTransportLayer> {
    const kinds = options.transports ?? ['udp', 'tcp'];
    const logger = options.logger ?? silent;
    let layer: SipTransportLayer | undefined;
    const ctx: TransportContext = {
      limits: resolveLimits(options.limits),
      logger,
      deliver: (message, source) => layer?.handler(message, source),
    };
    // With port 0, UDP picks the port and TCP takes the same one; retry if TCP finds it taken.
    for (let attempt = 0; ; attempt++) {
      const udp = kinds.includes('udp')
        ? await UdpTransport.bind(options.host, options.port, ctx, options.udpBufferBytes)
        : undefined;
      const port = udp?.port ?? options.port;
      try {
        const tcp = kinds.includes('tcp')
          ? await TcpTransport.bind(options.host, port, ctx, options)
          : undefined;
        layer = new SipTransportLayer(udp, tcp, logger, options.advertisedHost);
        return layer;
      } catch (err) {
        await udp?.close();
        const inUse = err instanceof Error && 'code' in err && err.code === 'EADDRINUSE';
        if (!(inUse && options.port === 0 && attempt < 10)) throw err;
      }
    }
  }

  /** The bound port (the same for every transport). */
  get port(): number {
    return (this.udp?.port ?? this.tcp?.port) as number;
  }

  get address(): string {
    return (this.udp?.address ?? this.tcp?.address) as string;
  }

  transport(kind: TransportKind): Transport {
    const t = kind === 'udp' ? this.udp : this.tcp;
    if (!t) throw new Error(`SIP: transport ${kind} is not running`);
    return t;
  }

  /** Sets the callback every parsed message goes to (requests with their Via already stamped). */
  onMessage(handler: MessageHandler): void {
    this.handler = handler;
  }

  /** The advertised host as a URI or Via host (IPv6 in brackets). */
  get advertisedUriHost(): string {
    return isIP(this.advertisedHost) === 6 ? `[${this.advertisedHost}]` : this.advertisedHost;
  }

  /** A Via for a request sent from here (§18.1.1), asking for `rport` (RFC 3581 §3). */
  via(kind: TransportKind, branch: string): Via {
    const host = this.advertisedUriHost;
    return { transport: kind.toUpperCase(), host, port: this.port, branch, rport: true, params: new Map() };
  }

  /** Sends a message to an endpoint (for TCP: over an open connection to it when there is one). */
  send(message: SipMessage, dest: Endpoint): Promise<void> {
    return this.sendBytes(serialize(message), dest);
  }

  /** Sends an already serialized message. */
  sendBytes(data: Buffer, dest: Endpoint): Promise<void> {
    return this.transport(dest.transport).send(data, dest);
  }

  /**
   * Sends a response per §18.2.2: on the connection the request came on while it is open,
   * otherwise to the address {@link responseDestination} derives from the top Via.
   */
  sendResponse(response: SipResponse, requestSource?: Endpoint): Promise<void> {
    if (requestSource?.transport === 'tcp' && requestSource.connectionId !== undefined) {
      if (this.tcp?.isOpen(requestSource.connectionId)) return this.send(response, requestSource);
    }
    const dest = responseDestination(getTopVia(response));
    // The request's transport wins over the Via's (which may name one we do not run, e.g. TLS).
    if (requestSource) dest.transport = requestSource.transport;
    return this.send(response, dest);
  }

  async close(): Promise<void> {
    await Promise.all([this.udp?.close(), this.tcp?.close()]);
  }
}
