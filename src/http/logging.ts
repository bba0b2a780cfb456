import { pino, type Logger, type DestinationStream } from 'pino';
import type { LogLevel } from '../config.js';

/** Query parameters whose values never reach a log line (compared by decoded, lower-case name). */
const SECRET_NAMES = new Set(['t', 'token', 'secret', 'password']);
/** Values that look like a ticket token or a legacy password token, whatever their name. */
const TOKEN_LIKE = /^(?:\d{1,16}\.[A-Za-z0-9_-]{16,}|D[A-Za-z0-9+/]{2,}={0,2}\.[A-Za-z0-9+/]{16,}={0,2})$/;

/** Percent-decodes like the query parser does (`+` is a space); undefined when malformed. */
function decodePart(part: string): string | undefined {
  try {
    return decodeURIComponent(part.replace(/\+/g, ' '));
  } catch {
    return undefined;
  }
}

/**
 * The URL with the value of every secret query parameter replaced by `[redacted]`. Names are
 * compared after decoding, as the query parser sees them (`?%74=` is `t`), and case-insensitively;
 * a value that looks like a token, or a parameter that cannot be decoded, is redacted too.
 */
export function redactQuery(url: string): string {
  const q = url.indexOf('?');
  if (q < 0) return url;
  const hash = url.indexOf('#', q);
  const query = url.slice(q + 1, hash < 0 ? undefined : hash);
  const parts = query.split('&').map((part) => {
    const eq = part.indexOf('=');
    if (eq < 0) return TOKEN_LIKE.test(decodePart(part)?.trim() ?? '') ? '[redacted]' : part;
    const name = decodePart(part.slice(0, eq));
    const value = decodePart(part.slice(eq + 1));
    const secret =
      name === undefined ||
      value === undefined ||
      SECRET_NAMES.has(name.trim().toLowerCase()) ||
      TOKEN_LIKE.test(value.trim());
    return secret ? `${part.slice(0, eq)}=[redacted]` : part;
  });
  return `${url.slice(0, q + 1)}${parts.join('&')}${hash < 0 ? '' : url.slice(hash)}`;
}

interface RawReqLike {
  method?: string;
  url?: string;
  originalUrl?: string;
  ip?: string;
  socket?: { remoteAddress?: string };
  headers?: Record<string, unknown>;
}

/** Field names whose values never reach a log line, wherever they are in a logged object. */
const SECRET_FIELDS = new Set([
  'password',
  'secret',
  'token',
  'signingsecret',
  'authorization',
  'cookie',
  'x-csrf-token',
  'sippassword',
]);
const MAX_DEPTH = 4;

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

/**
 * `obj` with the value of every secret field (by name, any case, in plain objects and arrays up
 * to a few levels deep) replaced by `[redacted]`; the same object when there is nothing to hide
 * (the usual case costs a walk over its keys, no copy). Objects that are neither plain nor arrays
 * (a request, an Error) are left to their serializers.
 */
export function scrubSecrets<T>(obj: T, depth = 0): T {
  if (depth > MAX_DEPTH) return obj;
  if (Array.isArray(obj)) {
    let copy: unknown[] | undefined;
    obj.forEach((value: unknown, i) => {
      const next = value !== null && typeof value === 'object' ? scrubSecrets(value, depth + 1) : value;
      if (next !== value) {
        copy ??= [...(obj as unknown[])];
        copy[i] = next;
      }
    });
    return (copy ?? obj) as T;
  }
  if (!isPlainObject(obj)) return obj;
  let copy: Record<string, unknown> | undefined;
  for (const key of Object.keys(obj)) {
    const value = obj[key];
    let next: unknown = value;
    if (SECRET_FIELDS.has(key.toLowerCase())) next = value === undefined ? value : '[redacted]';
    else if (value !== null && typeof value === 'object') next = scrubSecrets(value, depth + 1);
    if (next !== value) {
      copy ??= { ...obj };
      copy[key] = next;
    }
  }
  return (copy ?? obj) as T;
}

export function createLogger(level: LogLevel, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      // Secrets are scrubbed from every line by field name: cheaper than path-based redaction,
      // which costs more per request line than the rest of logging it.
      formatters: { log: (obj) => scrubSecrets(obj) },
      serializers: {
        req(req: RawReqLike) {
          return {
            method: req.method,
            url: redactQuery(req.url ?? ''),
            remoteAddress: req.ip ?? req.socket?.remoteAddress,
          };
        },
      },
    },
    destination,
  );
}
