/**
 * HTTP Digest authentication as SIP uses it (RFC 3261 §22.4, RFC 2617, RFC 7616, RFC 8760):
 * challenges, parsing of Authorization / Proxy-Authorization, response computation for MD5 and
 * SHA-256 with qop=auth, and stateless nonces that expire and whose nonce-count cannot be replayed.
 *
 * Nonces are `base64url(timestamp ‖ random ‖ HMAC-SHA256(secret, timestamp ‖ random)[0..16])`:
 * any server process that holds the secret can check one without shared state; only the
 * nonce-count tracking (replay protection) is per process.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { Clock } from './clock.js';
import { bad } from './errors.js';
import { quote, Scanner } from './grammar.js';
import { randomSlice } from './random.js';

export type DigestAlgorithm = 'MD5' | 'SHA-256';

export const DIGEST_ALGORITHMS: readonly DigestAlgorithm[] = ['SHA-256', 'MD5'];

export interface DigestChallenge {
  realm: string;
  nonce: string;
  algorithm: DigestAlgorithm;
  opaque?: string;
  /** RFC 7616 §3.3: the credentials were right but the nonce expired; retry without asking the user. */
  stale?: boolean;
}

/** `Digest realm="…", nonce="…", algorithm=…, qop="auth"` for WWW-Authenticate / Proxy-Authenticate. */
export function formatChallenge(c: DigestChallenge): string {
  let out = `Digest realm=${quote(c.realm)}, nonce=${quote(c.nonce)}, algorithm=${c.algorithm}, qop="auth"`;
  if (c.opaque !== undefined) out += `, opaque=${quote(c.opaque)}`;
  if (c.stale) out += ', stale=true';
  return out;
}

export interface DigestCredentials {
  username: string;
  realm: string;
  nonce: string;
  uri: string;
  response: string;
  algorithm: string;
  qop?: string;
  nc?: string;
  cnonce?: string;
  opaque?: string;
}

const MAX_PARAM = 1024;

/**
 * Parses an Authorization / Proxy-Authorization value with the Digest scheme (§25.1 `credentials`).
 * Returns undefined for another scheme (RFC 4475 §3.3.7: not an error in itself); throws
 * {@link SipParseError} for a malformed Digest value or one missing a required parameter.
 */
export function parseAuthorization(value: string): DigestCredentials | undefined {
  const s = new Scanner(value);
  s.skipLws();
  const scheme = s.readToken('auth scheme');
  if (scheme.toLowerCase() !== 'digest') return undefined;
  const params = new Map<string, string>();
  for (let first = true; ; first = false) {
    s.skipLws();
    if (s.eof) break;
    if (!first) {
      s.expect(',');
      s.skipLws();
    }
    const name = s.readToken('auth parameter').toLowerCase();
    s.skipLws();
    s.expect('=');
    s.skipLws();
    const v = s.peek() === '"' ? s.readQuoted().value : s.readToken('auth parameter value');
    if (v.length > MAX_PARAM) throw bad(`auth parameter ${name} too long`);
    if (params.has(name)) throw bad(`auth parameter ${name} appears twice`);
    params.set(name, v);
  }
  const need = (name: string): string => {
    const v = params.get(name);
    if (v === undefined) throw bad(`Digest credentials without ${name}`);
    return v;
  };
  const creds: DigestCredentials = {
    username: need('username'),
    realm: need('realm'),
    nonce: need('nonce'),
    uri: need('uri'),
    response: need('response'),
    algorithm: params.get('algorithm') ?? 'MD5',
  };
  for (const k of ['qop', 'nc', 'cnonce', 'opaque'] as const) {
    const v = params.get(k);
    if (v !== undefined) creds[k] = v;
  }
  return creds;
}

function hashName(algorithm: DigestAlgorithm): string {
  return algorithm === 'MD5' ? 'md5' : 'sha256';
}

function h(algorithm: DigestAlgorithm, data: string): string {
  return createHash(hashName(algorithm)).update(data, 'utf8').digest('hex');
}

/** HA1 = H(username:realm:password) (RFC 7616 §3.4.2); what a store may keep instead of the password. */
export function digestHa1(
  algorithm: DigestAlgorithm,
  username: string,
  realm: string,
  password: string,
): string {
  return h(algorithm, `${username}:${realm}:${password}`);
}

export interface ResponseInput {
  algorithm: DigestAlgorithm;
  ha1: string;
  method: string;
  uri: string;
  nonce: string;
  /** With qop=auth (RFC 7616 §3.4.1); without it the RFC 2069 form is computed. */
  qop?: 'auth';
  nc?: string;
  cnonce?: string;
}

/** request-digest (RFC 7616 §3.4.1; RFC 2617 §3.2.2.1 for the form without qop). */
export function digestResponse(input: ResponseInput): string {
  const ha2 = h(input.algorithm, `${input.method}:${input.uri}`);
  if (input.qop === undefined) return h(input.algorithm, `${input.ha1}:${input.nonce}:${ha2}`);
  return h(
    input.algorithm,
    `${input.ha1}:${input.nonce}:${input.nc ?? ''}:${input.cnonce ?? ''}:${input.qop}:${ha2}`,
  );
}

export interface NonceOptions {
  /** HMAC key; at least 32 random bytes, the same for every process that checks nonces. */
  secret: Buffer;
  /** How long a nonce is accepted (default 5 minutes). */
  lifetimeMs?: number;
  clock?: Clock;
  /** Upper bound on tracked nonce-counts (default 100,000); oldest entries go first. */
  maxTracked?: number;
  /**
   * How many of the nonces issued last are remembered (default 20,000), so checking the answer to
   * a fresh challenge needs no second HMAC; older ones (or another process's) are checked by it.
   */
  maxRemembered?: number;
  /** Wall clock for the timestamp inside nonces (default Date.now): nonces must survive restarts. */
  wallClock?: () => number;
}

export type NonceCheck = 'valid' | 'stale' | 'invalid';

/** Issues and checks HMAC-signed, expiring nonces and tracks nonce-counts against replay. */
export class NonceManager {
  private readonly secret: Buffer;
  private readonly lifetimeMs: number;
  private readonly maxTracked: number;
  private readonly wallClock: () => number;
  /** Highest nc seen per nonce, in insertion order (a Map keeps it) for eviction. */
  private readonly counts = new Map<string, { nc: number; issuedAt: number }>();
  private readonly maxRemembered: number;
  /** Nonces issued here and not yet counted → when, oldest first. */
  private readonly issued = new Map<string, number>();

  constructor(options: NonceOptions) {
    if (options.secret.length < 16) throw new TypeError('nonce secret too short');
    this.secret = options.secret;
    this.lifetimeMs = options.lifetimeMs ?? 300_000;
    this.maxTracked = options.maxTracked ?? 100_000;
    this.maxRemembered = options.maxRemembered ?? 20_000;
    const clock = options.clock;
    this.wallClock = options.wallClock ?? (clock ? () => clock.now() : () => Date.now());
  }

  private sign(body: Buffer): Buffer {
    return createHmac('sha256', this.secret).update(body).digest().subarray(0, 16);
  }

  issue(): string {
    // 64-bit big-endian milliseconds, then 64 random bits (from the pool the SIP ids draw on).
    const body = Buffer.alloc(16);
    const ms = Math.floor(this.wallClock());
    body.writeUInt32BE(Math.floor(ms / 2 ** 32), 0);
    body.writeUInt32BE(ms % 2 ** 32, 4);
    randomSlice(8).copy(body, 8);
    const nonce = Buffer.concat([body, this.sign(body)]).toString('base64url');
    this.issued.set(nonce, ms);
    if (this.issued.size > this.maxRemembered) this.issued.delete(this.issued.keys().next().value!);
    return nonce;
  }

  /** Whether `nonce` is one of ours (`invalid` if not) and still young enough (`stale` if not). */
  check(nonce: string): NonceCheck {
    const issuedAt = this.issuedAt(nonce);
    if (issuedAt === undefined) return 'invalid';
    const age = this.wallClock() - issuedAt;
    if (age < 0 || age > this.lifetimeMs) return 'stale';
    return 'valid';
  }

  private issuedAt(nonce: string): number | undefined {
    // A nonce already counted was verified then: its HMAC need not be computed again (a digest
    // checks the nonce two or three times).
    const counted = this.counts.get(nonce);
    if (counted) return counted.issuedAt;
    const issued = this.issued.get(nonce);
    if (issued !== undefined) return issued;
    if (!/^[A-Za-z0-9_-]{43}$/.test(nonce)) return undefined;
    const raw = Buffer.from(nonce, 'base64url');
    if (raw.length !== 32) return undefined;
    const body = raw.subarray(0, 16);
    if (!timingSafeEqual(raw.subarray(16), this.sign(body))) return undefined;
    return body.readUInt32BE(0) * 2 ** 32 + body.readUInt32BE(4);
  }

  /**
   * Records a nonce-count; false when it is not higher than every count already seen with this
   * nonce (a replay, RFC 7616 §3.4.5). Call only after the response verified.
   */
  acceptCount(nonce: string, nc: number): boolean {
    const seen = this.counts.get(nonce);
    if (seen && nc <= seen.nc) return false;
    const issuedAt = seen ? seen.issuedAt : (this.issuedAt(nonce) ?? 0);
    if (seen)
      this.counts.delete(nonce); // re-insert: most recently used last
    else this.issued.delete(nonce); // remembered from now on with its count
    this.counts.set(nonce, { nc, issuedAt });
    this.prune();
    return true;
  }

  private prune(): void {
    const now = this.wallClock();
    for (const [nonce, entry] of this.counts) {
      if (this.counts.size <= this.maxTracked && now - entry.issuedAt <= this.lifetimeMs) break;
      this.counts.delete(nonce);
    }
  }
}

export type DigestVerdict = 'ok' | 'stale' | 'invalid';

export interface VerifyInput {
  credentials: DigestCredentials;
  method: string;
  realm: string;
  /** HA1 for the credentials' algorithm (see {@link digestHa1}). */
  ha1: (algorithm: DigestAlgorithm) => string | undefined;
  nonces: NonceManager;
  /** When given, the credentials' `uri` must equal it (RFC 2617 §3.2.2.5). */
  requestUri?: string;
  /** The opaque sent with the challenge, when one was. */
  opaque?: string;
}

/**
 * Verifies Digest credentials: known algorithm, our realm, qop=auth with a well-formed nc and a
 * cnonce, the right response (constant-time compare), a nonce of ours, and a fresh nonce-count.
 * `stale` means a correct response on an expired nonce: challenge again with `stale=true`.
 */
export function verifyDigest(input: VerifyInput): DigestVerdict {
  const c = input.credentials;
  const algorithm = DIGEST_ALGORITHMS.find((a) => a.toLowerCase() === c.algorithm.toLowerCase());
  if (!algorithm) return 'invalid';
  if (c.realm !== input.realm) return 'invalid';
  if (input.requestUri !== undefined && c.uri !== input.requestUri) return 'invalid';
  if (input.opaque !== undefined && c.opaque !== input.opaque) return 'invalid';
  if (c.qop?.toLowerCase() !== 'auth' || c.cnonce === undefined || c.nc === undefined) return 'invalid';
  if (!/^[0-9A-Fa-f]{8}$/.test(c.nc)) return 'invalid';
  const nonceState = input.nonces.check(c.nonce);
  if (nonceState === 'invalid') return 'invalid';
  const ha1 = input.ha1(algorithm);
  if (ha1 === undefined) return 'invalid';
  const expected = digestResponse({
    algorithm,
    ha1,
    method: input.method,
    uri: c.uri,
    nonce: c.nonce,
    qop: 'auth',
    nc: c.nc,
    cnonce: c.cnonce,
  });
  const given = Buffer.from(c.response.toLowerCase(), 'utf8');
  const want = Buffer.from(expected, 'utf8');
  if (given.length !== want.length || !timingSafeEqual(given, want)) return 'invalid';
  if (nonceState === 'stale') return 'stale';
  if (!input.nonces.acceptCount(c.nonce, parseInt(c.nc, 16))) return 'invalid';
  return 'ok';
}
