/**
 * A small SIP user agent in Node over UDP for tests that need exact control of REGISTER: digest
 * (MD5 or SHA-256), nonce counts, contacts and expiry.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect } from 'node:net';
import { digestHa1, digestResponse, type DigestAlgorithm } from '../../src/sip/digest.js';
import {
  formatVia,
  generateBranch,
  generateCallId,
  generateTag,
  getHeaders,
  parseMessage,
  parseUri,
  serialize,
  type SipHeader,
  type SipMessage,
  type SipRequest,
  type SipResponse,
} from '../../src/sip/message.js';
import { StreamFramer } from '../../src/sip/framer.js';
import { TransactionLayer, type ServerTransaction } from '../../src/sip/transaction.js';
import { SipTransportLayer } from '../../src/sip/transport.js';
import type { Account } from './peers.js';

export interface Incoming {
  req: SipRequest;
  /** The server transaction (undefined for an ACK to a 2xx). */
  tx: ServerTransaction | undefined;
}

export interface Ua {
  transport: SipTransportLayer;
  send(req: SipRequest): Promise<SipResponse>;
  /** Every request received so far (new transactions and ACKs), in order. */
  received: SipRequest[];
  /** The next received request of `method` not taken yet (waits for it). */
  nextRequest(method: string): Promise<Incoming>;
  close(): Promise<void>;
}

export async function ua(serverPort: () => number): Promise<Ua> {
  const transport = await SipTransportLayer.start({ host: '127.0.0.1', port: 0, transports: ['udp'] });
  const received: SipRequest[] = [];
  const untaken: Incoming[] = [];
  const waiters: { method: string; resolve: (i: Incoming) => void }[] = [];
  const layer = new TransactionLayer({
    transport,
    onRequest: (req, tx) => {
      received.push(req);
      const w = waiters.findIndex((x) => x.method === req.method);
      if (w >= 0) waiters.splice(w, 1)[0]!.resolve({ req, tx });
      else untaken.push({ req, tx });
    },
  });
  transport.onMessage((m, s) => layer.receive(m, s));
  return {
    transport,
    received,
    nextRequest: (method) => {
      const i = untaken.findIndex((x) => x.req.method === method);
      if (i >= 0) return Promise.resolve(untaken.splice(i, 1)[0]!);
      return new Promise((resolve) => waiters.push({ method, resolve }));
    },
    send: (req) =>
      new Promise((resolve, reject) => {
        layer.sendRequest(
          req,
          { transport: 'udp', address: '127.0.0.1', port: serverPort() },
          { onResponse: (r) => r.status >= 200 && resolve(r), onTimeout: () => reject(new Error('timeout')) },
        );
      }),
    async close() {
      layer.close();
      await transport.close();
    },
  };
}

export function request(
  u: Ua,
  method: string,
  account: Account,
  headers: SipHeader[],
  callId: string,
  cseq: number,
): SipRequest {
  return {
    type: 'request',
    method,
    uri: parseUri(`sip:${account.domain}`),
    headers: [
      { name: 'Via', value: formatVia(u.transport.via('udp', generateBranch())) },
      { name: 'Max-Forwards', value: '70' },
      { name: 'From', value: `<sip:${account.username}@${account.domain}>;tag=${generateTag()}` },
      { name: 'To', value: `<sip:${account.username}@${account.domain}>` },
      { name: 'Call-ID', value: callId },
      { name: 'CSeq', value: `${cseq} ${method}` },
      ...headers,
    ],
    body: Buffer.alloc(0),
  };
}

export function challengeOf(res: SipResponse, algorithm: DigestAlgorithm): { realm: string; nonce: string } {
  const value = getHeaders(res, 'WWW-Authenticate').find((v) => v.includes(`algorithm=${algorithm}`));
  assert.ok(value, `no ${algorithm} challenge`);
  return { realm: /realm="([^"]+)"/.exec(value)![1]!, nonce: /nonce="([^"]+)"/.exec(value)![1]! };
}

export function authorization(
  account: Account,
  c: { realm: string; nonce: string },
  algorithm: DigestAlgorithm,
  nc = '00000001',
  password = account.password,
): string {
  const uri = `sip:${account.domain}`;
  const cnonce = 'abcdef';
  const response = digestResponse({
    algorithm,
    ha1: digestHa1(algorithm, account.username, c.realm, password),
    method: 'REGISTER',
    uri,
    nonce: c.nonce,
    qop: 'auth',
    nc,
    cnonce,
  });
  return `Digest username="${account.username}", realm="${c.realm}", nonce="${c.nonce}", uri="${uri}", response="${response}", algorithm=${algorithm}, qop=auth, nc=${nc}, cnonce="${cnonce}"`;
}

/** REGISTER → 401 → REGISTER with credentials; returns the final response and what was used. */
export async function register(
  u: Ua,
  account: Account,
  extra: SipHeader[],
  opts: { algorithm?: DigestAlgorithm; password?: string } = {},
): Promise<{ res: SipResponse; auth: string; callId: string }> {
  const algorithm = opts.algorithm ?? 'SHA-256';
  const callId = generateCallId();
  const first = await u.send(request(u, 'REGISTER', account, extra, callId, 1));
  assert.equal(first.status, 401);
  const auth = authorization(account, challengeOf(first, algorithm), algorithm, '00000001', opts.password);
  const res = await u.send(
    request(u, 'REGISTER', account, [...extra, { name: 'Authorization', value: auth }], callId, 2),
  );
  return { res, auth, callId };
}

export const contact = (u: Ua, user: string, expires?: number): SipHeader => ({
  name: 'Contact',
  value: `<sip:${user}@127.0.0.1:${u.transport.port}>${expires === undefined ? '' : `;expires=${expires}`}`,
});

/** `Proxy-Authenticate` (407) or `WWW-Authenticate` challenge of `algorithm` in a response. */
export function proxyChallengeOf(
  res: SipResponse,
  algorithm: DigestAlgorithm,
): { realm: string; nonce: string } {
  const value = getHeaders(res, 'Proxy-Authenticate').find((v) => v.includes(`algorithm=${algorithm}`));
  assert.ok(value, `no ${algorithm} proxy challenge in ${res.status}`);
  return { realm: /realm="([^"]+)"/.exec(value)![1]!, nonce: /nonce="([^"]+)"/.exec(value)![1]! };
}

/** Digest credentials for any method and Request-URI (Proxy-Authorization for an INVITE). */
export function credentials(
  account: Account,
  c: { realm: string; nonce: string },
  o: { method: string; uri: string; algorithm?: DigestAlgorithm; nc?: number; password?: string },
): string {
  const algorithm = o.algorithm ?? 'MD5';
  const nc = (o.nc ?? 1).toString(16).padStart(8, '0');
  const cnonce = 'c0ffee';
  const response = digestResponse({
    algorithm,
    ha1: digestHa1(algorithm, account.username, c.realm, o.password ?? account.password),
    method: o.method,
    uri: o.uri,
    nonce: c.nonce,
    qop: 'auth',
    nc,
    cnonce,
  });
  return `Digest username="${account.username}", realm="${c.realm}", nonce="${c.nonce}", uri="${o.uri}", response="${response}", algorithm=${algorithm}, qop=auth, nc=${nc}, cnonce="${cnonce}"`;
}

const SDP = [
  'v=0',
  'o=node 1 1 IN IP4 127.0.0.1',
  's=-',
  'c=IN IP4 127.0.0.1',
  't=0 0',
  'm=audio 40000 RTP/AVP 0',
  'a=rtpmap:0 PCMU/8000',
  'a=sendrecv',
  '',
].join('\r\n');

/** An out-of-dialog INVITE with SDP from `fromUser` (default the account's) to `dialled`. */
export function invite(
  via: { transport: 'UDP' | 'TCP'; port: number },
  account: Account,
  dialled: string,
  o: { fromUser?: string; cseq?: number; callId?: string; fromTag?: string; headers?: SipHeader[] } = {},
): SipRequest {
  const user = o.fromUser ?? account.username;
  return {
    type: 'request',
    method: 'INVITE',
    uri: parseUri(`sip:${dialled}@${account.domain}`),
    headers: [
      {
        name: 'Via',
        value: `SIP/2.0/${via.transport} 127.0.0.1:${via.port};branch=${generateBranch()};rport`,
      },
      { name: 'Max-Forwards', value: '70' },
      { name: 'From', value: `<sip:${user}@${account.domain}>;tag=${o.fromTag ?? generateTag()}` },
      { name: 'To', value: `<sip:${dialled}@${account.domain}>` },
      { name: 'Call-ID', value: o.callId ?? generateCallId() },
      { name: 'CSeq', value: `${o.cseq ?? 1} INVITE` },
      {
        name: 'Contact',
        value: `<sip:${user}@127.0.0.1:${via.port}${via.transport === 'TCP' ? ';transport=tcp' : ''}>`,
      },
      { name: 'Content-Type', value: 'application/sdp' },
      ...(o.headers ?? []),
    ],
    body: Buffer.from(SDP),
  };
}

/** The CANCEL for `inv` (§9.1: same Request-URI, Via, From, To, Call-ID and CSeq number). */
export function cancelOf(inv: SipRequest): SipRequest {
  const keep = ['Via', 'Max-Forwards', 'From', 'To', 'Call-ID'];
  return {
    type: 'request',
    method: 'CANCEL',
    uri: inv.uri,
    headers: [
      ...inv.headers.filter((h) => keep.includes(h.name)),
      { name: 'CSeq', value: `${/^\d+/.exec(getHeaders(inv, 'CSeq')[0]!)![0]} CANCEL` },
    ],
    body: Buffer.alloc(0),
  };
}

/** A raw SIP-over-TCP client on one connection: exact control of what goes in each write. */
export interface TcpPeer {
  /** The local port of the connection (what a Via should say). */
  port: number;
  /** Writes the messages in one write (one TCP segment on loopback). */
  write(...messages: SipMessage[]): void;
  /** The next message received that `match` accepts (others stay queued). */
  next(match?: (m: SipMessage) => boolean): Promise<SipMessage>;
  close(): void;
}

export async function tcpPeer(serverPort: number): Promise<TcpPeer> {
  const socket = connect({ host: '127.0.0.1', port: serverPort });
  await once(socket, 'connect');
  const framer = new StreamFramer();
  const queue: SipMessage[] = [];
  const waiters: { match: (m: SipMessage) => boolean; resolve: (m: SipMessage) => void }[] = [];
  socket.on('data', (chunk: Buffer) => {
    for (const f of framer.push(chunk)) {
      if (f.type !== 'message') continue;
      const m = parseMessage(f.data);
      const w = waiters.findIndex((x) => x.match(m));
      if (w >= 0) waiters.splice(w, 1)[0]!.resolve(m);
      else queue.push(m);
    }
  });
  return {
    port: socket.localPort!,
    write: (...messages) => socket.write(Buffer.concat(messages.map((m) => serialize(m)))),
    next: (match = () => true) => {
      const i = queue.findIndex(match);
      if (i >= 0) return Promise.resolve(queue.splice(i, 1)[0]!);
      return new Promise((resolve) => waiters.push({ match, resolve }));
    },
    close: () => socket.destroy(),
  };
}

/** A response (not 100 Trying) to the request with this CSeq method. */
export const finalTo =
  (method: string) =>
  (m: SipMessage): boolean =>
    m.type === 'response' && m.status >= 180 && getHeaders(m, 'CSeq')[0]!.endsWith(` ${method}`);

/** REGISTER with digest over a raw TCP connection (contact: the connection's own address). */
export async function registerTcp(peer: TcpPeer, account: Account): Promise<SipResponse> {
  const callId = generateCallId();
  const reg = (cseq: number, extra: SipHeader[]): SipRequest => ({
    type: 'request',
    method: 'REGISTER',
    uri: parseUri(`sip:${account.domain}`),
    headers: [
      { name: 'Via', value: `SIP/2.0/TCP 127.0.0.1:${peer.port};branch=${generateBranch()};rport` },
      { name: 'Max-Forwards', value: '70' },
      { name: 'From', value: `<sip:${account.username}@${account.domain}>;tag=${generateTag()}` },
      { name: 'To', value: `<sip:${account.username}@${account.domain}>` },
      { name: 'Call-ID', value: callId },
      { name: 'CSeq', value: `${cseq} REGISTER` },
      { name: 'Contact', value: `<sip:${account.username}@127.0.0.1:${peer.port};transport=tcp>` },
      { name: 'Expires', value: '300' },
      ...extra,
    ],
    body: Buffer.alloc(0),
  });
  peer.write(reg(1, []));
  const challenge = (await peer.next(finalTo('REGISTER'))) as SipResponse;
  assert.equal(challenge.status, 401);
  const auth = authorization(account, challengeOf(challenge, 'MD5'), 'MD5');
  peer.write(reg(2, [{ name: 'Authorization', value: auth }]));
  return (await peer.next(finalTo('REGISTER'))) as SipResponse;
}
