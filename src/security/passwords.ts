import { createHash, randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

/** Cost parameters for new hashes (N = 2^14, r = 8, p = 1: about 16 MiB and tens of ms). */
export const SCRYPT_DEFAULTS = { N: 16384, r: 8, p: 1, keyLength: 32, saltLength: 16 } as const;

function scryptAsync(
  password: string,
  salt: Buffer,
  keyLength: number,
  options: ScryptOptions,
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(password.normalize('NFC'), salt, keyLength, options, (err, key) =>
      err ? reject(err) : resolve(key),
    );
  });
}

function maxmem(N: number, r: number): number {
  return 128 * N * r * 2 + 1024 * 1024;
}

/** Hashes a password with scrypt: `scrypt$N$r$p$saltBase64$hashBase64`. */
export async function hashPassword(
  password: string,
  params: { N?: number; r?: number; p?: number } = {},
): Promise<string> {
  const N = params.N ?? SCRYPT_DEFAULTS.N;
  const r = params.r ?? SCRYPT_DEFAULTS.r;
  const p = params.p ?? SCRYPT_DEFAULTS.p;
  const salt = randomBytes(SCRYPT_DEFAULTS.saltLength);
  const key = await scryptAsync(password, salt, SCRYPT_DEFAULTS.keyLength, { N, r, p, maxmem: maxmem(N, r) });
  return `scrypt$${N}$${r}$${p}$${salt.toString('base64')}$${key.toString('base64')}`;
}

interface ParsedHash {
  N: number;
  r: number;
  p: number;
  salt: Buffer;
  key: Buffer;
}

function parseHash(stored: string): ParsedHash | null {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return null;
  const [N, r, p] = [Number(parts[1]), Number(parts[2]), Number(parts[3])];
  // Bounds keep a tampered hash from making verification a denial of service.
  if (!Number.isInteger(N) || N < 2 || N > 2 ** 20 || (N & (N - 1)) !== 0) return null;
  if (!Number.isInteger(r) || r < 1 || r > 32 || !Number.isInteger(p) || p < 1 || p > 16) return null;
  const salt = Buffer.from(parts[4] ?? '', 'base64');
  const key = Buffer.from(parts[5] ?? '', 'base64');
  if (salt.length === 0 || key.length < 16 || key.length > 128) return null;
  return { N, r, p, salt, key };
}

let verifications = 0;

/** How many scrypt verifications this process has run (lets tests see the work was done). */
export function passwordVerifications(): number {
  return verifications;
}

/** True when `password` matches `stored` (constant-time comparison). A malformed hash never matches. */
export async function verifyPassword(password: string, stored: string | null | undefined): Promise<boolean> {
  if (!stored) return false;
  const parsed = parseHash(stored);
  if (!parsed) return false;
  verifications += 1;
  const key = await scryptAsync(password, parsed.salt, parsed.key.length, {
    N: parsed.N,
    r: parsed.r,
    p: parsed.p,
    maxmem: maxmem(parsed.N, parsed.r),
  });
  return timingSafeEqual(key, parsed.key);
}

let dummy: Promise<string> | undefined;

/**
 * `verifyPassword` for a login: when there is no usable stored hash (unknown user or domain, a
 * user without a password), scrypt still runs, against a throwaway hash, and the answer is
 * false. An unknown user then takes as long as a wrong password: timing tells nothing.
 */
export async function verifyLoginPassword(
  password: string,
  stored: string | null | undefined,
): Promise<boolean> {
  if (stored && parseHash(stored)) return verifyPassword(password, stored);
  dummy ??= hashPassword(randomBytes(16).toString('hex'));
  await verifyPassword(password, await dummy);
  return false;
}

/** True when a stored hash uses weaker parameters than today's defaults (rehash on next login). */
export function needsRehash(stored: string): boolean {
  const parsed = parseHash(stored);
  return !parsed || parsed.N < SCRYPT_DEFAULTS.N || parsed.r < SCRYPT_DEFAULTS.r;
}

export type DigestAlgorithm = 'MD5' | 'SHA-256';

/** SIP/HTTP digest HA1 = H(username:realm:password), lower-case hex (RFC 2617 / RFC 7616). */
export function digestHa1(
  username: string,
  realm: string,
  password: string,
  algorithm: DigestAlgorithm,
): string {
  const h = algorithm === 'MD5' ? 'md5' : 'sha256';
  return createHash(h).update(`${username}:${realm}:${password}`, 'utf8').digest('hex');
}
