/**
 * A small SIP user agent in Node over UDP for tests that need exact control of REGISTER: digest
 * (MD5 or SHA-256), nonce counts, contacts and expiry.
 */
import assert from 'node:assert/strict';
import { digestHa1, digestResponse, type DigestAlgorithm } from '../../src/sip/digest.js';
import {
  formatVia,
  generateBranch,
  generateCallId,
  generateTag,
  getHeaders,
  parseUri,
  type SipHeader,
  type SipRequest,
  type SipResponse,
} from '../../src/sip/message.js';
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
