import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  hkdfSync,
  randomBytes,
  timingSafeEqual,
} from 'node:crypto';

/**
 * Ticket tokens and request signatures (spec §2).
 * - A token is `<ticketId>.<base64url of 32 random bytes>`; only HMAC-SHA256(server key, secret
 *   part) is stored, and compared in constant time. HMAC, not a slow KDF: the secret is random
 *   and long, and authentication must stay one cheap check per request.
 * - A system ticket also has a signing secret for SNT-HMACv1. The server must hold it to check
 *   signatures, so it is stored encrypted (AES-256-GCM under a key derived from the server key).
 */

export interface NewToken {
  token: string;
  secretHash: string;
}

const SECRET_BYTES = 32;

const subkeys = new WeakMap<Buffer, Map<string, Buffer>>();

/** A key per purpose, derived from the server key (HKDF-SHA256), computed once per key. */
export function serverSubkey(serverKey: Buffer, purpose: string): Buffer {
  let byPurpose = subkeys.get(serverKey);
  if (!byPurpose) {
    byPurpose = new Map();
    subkeys.set(serverKey, byPurpose);
  }
  let key = byPurpose.get(purpose);
  if (!key) {
    key = Buffer.from(hkdfSync('sha256', serverKey, Buffer.alloc(0), `onecloud:${purpose}`, 32));
    byPurpose.set(purpose, key);
  }
  return key;
}

export function hashTokenSecret(serverKey: Buffer, secretPart: string): string {
  return createHmac('sha256', serverSubkey(serverKey, 'ticket-secret')).update(secretPart).digest('hex');
}

export function newToken(serverKey: Buffer, ticketId: number): NewToken {
  const secretPart = randomBytes(SECRET_BYTES).toString('base64url');
  return { token: `${ticketId}.${secretPart}`, secretHash: hashTokenSecret(serverKey, secretPart) };
}

export interface ParsedToken {
  ticketId: number;
  secretPart: string;
}

/** `undefined` for anything that is not of the token's form (no lookup is made for those). */
export function parseToken(token: string): ParsedToken | undefined {
  const m = /^([1-9]\d{0,15})\.([A-Za-z0-9_-]{16,128})$/.exec(token);
  if (!m) return undefined;
  const ticketId = Number(m[1]);
  if (!Number.isSafeInteger(ticketId)) return undefined;
  return { ticketId, secretPart: m[2]! };
}

export function verifyTokenSecret(serverKey: Buffer, secretPart: string, storedHash: string): boolean {
  const a = Buffer.from(hashTokenSecret(serverKey, secretPart), 'hex');
  const b = Buffer.from(storedHash, 'hex');
  return a.length === b.length && timingSafeEqual(a, b);
}

/** A new signing secret for a system ticket: shown once, stored encrypted. */
export function newSigningSecret(): string {
  return randomBytes(SECRET_BYTES).toString('base64url');
}

export function encryptSecret(serverKey: Buffer, secret: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', serverSubkey(serverKey, 'signing-secret'), iv);
  const enc = Buffer.concat([cipher.update(secret, 'utf8'), cipher.final()]);
  return [
    'v1',
    iv.toString('base64url'),
    enc.toString('base64url'),
    cipher.getAuthTag().toString('base64url'),
  ].join('.');
}

export function decryptSecret(serverKey: Buffer, stored: string): string {
  const [v, iv, enc, tag] = stored.split('.');
  if (v !== 'v1' || !iv || enc === undefined || !tag)
    throw new Error('stored signing secret has an unknown form');
  const decipher = createDecipheriv(
    'aes-256-gcm',
    serverSubkey(serverKey, 'signing-secret'),
    Buffer.from(iv, 'base64url'),
  );
  decipher.setAuthTag(Buffer.from(tag, 'base64url'));
  return Buffer.concat([decipher.update(Buffer.from(enc, 'base64url')), decipher.final()]).toString('utf8');
}

// --- SNT-HMACv1 ------------------------------------------------------------------------------

export interface SntHeader {
  token: string;
  ts: number;
  nonce: string;
  sig: string;
}

/** Parses `SNT-HMACv1 token=.., ts=.., nonce=.., sig=..`; `undefined` when malformed. */
export function parseSntHeader(header: string): SntHeader | undefined {
  const m = /^SNT-HMACv1\s+(.+)$/i.exec(header.trim());
  if (!m) return undefined;
  const fields: Record<string, string> = {};
  for (const part of m[1]!.split(',')) {
    const eq = part.indexOf('=');
    if (eq < 0) return undefined;
    const k = part.slice(0, eq).trim().toLowerCase();
    const v = part
      .slice(eq + 1)
      .trim()
      .replace(/^"(.*)"$/, '$1');
    fields[k] = v;
  }
  const { token, ts, nonce, sig } = fields;
  if (
    !token ||
    !ts ||
    !nonce ||
    !sig ||
    !/^\d{1,12}$/.test(ts) ||
    !/^[A-Za-z0-9_\-.~+/=]{8,128}$/.test(nonce)
  ) {
    return undefined;
  }
  return { token, ts: Number(ts), nonce, sig };
}

/** canonical = METHOD \n path?query (as sent) \n ts \n nonce \n hex sha256(body) */
export function sntCanonical(
  method: string,
  pathAndQuery: string,
  ts: number,
  nonce: string,
  body: Buffer | string,
): string {
  const bodyHash = createHash('sha256').update(body).digest('hex');
  return `${method.toUpperCase()}\n${pathAndQuery}\n${ts}\n${nonce}\n${bodyHash}`;
}

export function sntSign(secret: string, canonical: string): string {
  return createHmac('sha256', secret).update(canonical).digest('base64');
}

/** Builds the Authorization header value for a request (used by the CLI, tests and docs). */
export function sntAuthorization(opts: {
  token: string;
  secret: string;
  method: string;
  pathAndQuery: string;
  body?: Buffer | string;
  ts?: number;
  nonce?: string;
}): string {
  const ts = opts.ts ?? Math.floor(Date.now() / 1000);
  const nonce = opts.nonce ?? randomBytes(16).toString('base64url');
  const sig = sntSign(opts.secret, sntCanonical(opts.method, opts.pathAndQuery, ts, nonce, opts.body ?? ''));
  return `SNT-HMACv1 token=${opts.token}, ts=${ts}, nonce=${nonce}, sig=${sig}`;
}

export function sntVerify(secret: string, canonical: string, sig: string): boolean {
  const expected = Buffer.from(sntSign(secret, canonical), 'base64');
  let given: Buffer;
  try {
    given = Buffer.from(sig, 'base64');
  } catch {
    return false;
  }
  return expected.length === given.length && timingSafeEqual(expected, given);
}

// --- Legacy password token (deprecated; spec §2) ---------------------------------------------

const md5 = (s: string): string => createHash('md5').update(s, 'utf8').digest('hex');
const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64').replace(/=+$/, '');

/** ha1 = md5hex(user:domain:password) */
export function legacyHa1(user: string, domain: string, password: string): string {
  return md5(`${user}:${domain}:${password}`);
}

/** t = "D" + b64(domain) + "." + b64("P:" + h2 + ":" + user + ":" + perms), h2 = md5hex(user:perms:ha1) */
export function legacyPasswordToken(user: string, domain: string, password: string, apis: string[]): string {
  const perms = apis.join(':');
  const h2 = md5(`${user}:${perms}:${legacyHa1(user, domain, password)}`);
  return `D${b64(domain)}.${b64(`P:${h2}:${user}:${perms}`)}`;
}

export interface LegacyToken {
  domain: string;
  user: string;
  apis: string[];
  h2: string;
}

export function parseLegacyToken(t: string): LegacyToken | undefined {
  const m = /^D([A-Za-z0-9+/]+={0,2})\.([A-Za-z0-9+/]+={0,2})$/.exec(t);
  if (!m) return undefined;
  const domain = Buffer.from(m[1]!, 'base64').toString('utf8');
  const payload = Buffer.from(m[2]!, 'base64').toString('utf8');
  const p = /^P:([0-9a-f]{32}):([^:]+):(.*)$/.exec(payload);
  if (!p || domain === '') return undefined;
  return { domain, h2: p[1]!, user: p[2]!, apis: p[3] === '' ? [] : p[3]!.split(':') };
}

/** Checks a legacy token against the user's legacy HA1 (md5 of user:domain:password). */
export function verifyLegacyToken(parsed: LegacyToken, ha1: string): boolean {
  const expected = Buffer.from(md5(`${parsed.user}:${parsed.apis.join(':')}:${ha1}`), 'hex');
  const given = Buffer.from(parsed.h2, 'hex');
  return expected.length === given.length && timingSafeEqual(expected, given);
}
