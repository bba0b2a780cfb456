import { bad, SipParseError } from './errors.js';
import { isToken, parseBoundedInt, trimLws } from './grammar.js';

/**
 * Header names: compact forms (RFC 3261 §7.3.3, §20; RFC 3515, 3891, 3892, 4028, 6665), canonical
 * spelling of the well-known names, and which headers are comma-separated lists (§7.3.1).
 */

/** Compact form → full name (lower-case key). */
const COMPACT: Record<string, string> = {
  a: 'Accept-Contact',
  b: 'Referred-By',
  c: 'Content-Type',
  d: 'Request-Disposition',
  e: 'Content-Encoding',
  f: 'From',
  i: 'Call-ID',
  j: 'Reject-Contact',
  k: 'Supported',
  l: 'Content-Length',
  m: 'Contact',
  n: 'Identity-Info',
  o: 'Event',
  r: 'Refer-To',
  s: 'Subject',
  t: 'To',
  u: 'Allow-Events',
  v: 'Via',
  x: 'Session-Expires',
  y: 'Identity',
};

const KNOWN = [
  'Accept',
  'Accept-Contact',
  'Accept-Encoding',
  'Accept-Language',
  'Alert-Info',
  'Allow',
  'Allow-Events',
  'Authentication-Info',
  'Authorization',
  'Call-ID',
  'Call-Info',
  'Contact',
  'Content-Disposition',
  'Content-Encoding',
  'Content-Language',
  'Content-Length',
  'Content-Type',
  'CSeq',
  'Date',
  'Error-Info',
  'Event',
  'Expires',
  'From',
  'History-Info',
  'Identity',
  'Identity-Info',
  'In-Reply-To',
  'Max-Forwards',
  'MIME-Version',
  'Min-Expires',
  'Min-SE',
  'Organization',
  'P-Asserted-Identity',
  'P-Preferred-Identity',
  'Path',
  'Priority',
  'Privacy',
  'Proxy-Authenticate',
  'Proxy-Authorization',
  'Proxy-Require',
  'RAck',
  'Reason',
  'Record-Route',
  'Refer-To',
  'Referred-By',
  'Reject-Contact',
  'Replaces',
  'Reply-To',
  'Request-Disposition',
  'Require',
  'Retry-After',
  'Route',
  'RSeq',
  'Server',
  'Service-Route',
  'Session-Expires',
  'Subject',
  'Subscription-State',
  'Supported',
  'Timestamp',
  'To',
  'Unsupported',
  'User-Agent',
  'Via',
  'Warning',
  'WWW-Authenticate',
];

const CANONICAL = new Map<string, string>(KNOWN.map((n) => [n.toLowerCase(), n]));
for (const [short, full] of Object.entries(COMPACT)) CANONICAL.set(short, full);

/**
 * The name a header is stored under: the full form of a compact name and the usual spelling of a
 * well-known one (`cseq` → `CSeq`, `v` → `Via`); any other name is kept as written. Header names
 * compare case-insensitively (§7.3.1), so lookups go through {@link headerKey}.
 */
export function canonicalName(name: string): string {
  return nameOf(name).canonical;
}

/**
 * The canonical spelling and key of each name seen so far: every header lookup compares keys, so
 * each spelling is lowered and canonicalized once. Bounded (hostile peers can send any number of
 * names): past the bound the cache starts over.
 */
const NAMES = new Map<string, { canonical: string; key: string }>();
const MAX_NAMES = 2048;

function nameOf(name: string): { canonical: string; key: string } {
  let known = NAMES.get(name);
  if (known === undefined) {
    const canonical = CANONICAL.get(name.toLowerCase()) ?? name;
    known = { canonical, key: canonical.toLowerCase() };
    if (NAMES.size >= MAX_NAMES) NAMES.clear();
    NAMES.set(name, known);
  }
  return known;
}

/** Lower-cased canonical name: the key two names are compared by. */
export function headerKey(name: string): string {
  return nameOf(name).key;
}

/** The key of a stored header: kept on a header from the wire, looked up for any other. */
export function keyOf(h: SipHeader): string {
  return h instanceof WireHeader ? h.key : nameOf(h.name).key;
}

/**
 * Headers whose grammar is `#element` / `1#element` (§7.3.1): their values are split on commas
 * outside quotes and angle brackets into one stored header per element. Authorization-type
 * headers are not lists (their parameters are comma-separated) and neither are Date, Subject, ...
 */
const LIST_HEADERS = new Set(
  [
    'Accept',
    'Accept-Contact',
    'Accept-Encoding',
    'Accept-Language',
    'Alert-Info',
    'Allow',
    'Allow-Events',
    'Call-Info',
    'Contact',
    'Content-Encoding',
    'Content-Language',
    'Error-Info',
    'History-Info',
    'In-Reply-To',
    'P-Asserted-Identity',
    'P-Preferred-Identity',
    'Path',
    'Proxy-Require',
    'Reason',
    'Record-Route',
    'Reject-Contact',
    'Require',
    'Route',
    'Service-Route',
    'Supported',
    'Unsupported',
    'Via',
    'Warning',
  ].map((n) => n.toLowerCase()),
);

export function isListHeader(name: string): boolean {
  return LIST_HEADERS.has(headerKey(name));
}

const LIST_SPELLINGS = new Set(KNOWN.filter((n) => LIST_HEADERS.has(n.toLowerCase())));

/**
 * {@link isListHeader} for a name already in canonical form (as {@link parseHeaderLines} stores
 * them): every list header is a well-known one, so its canonical spelling is the only one to check.
 */
export function isCanonicalListName(name: string): boolean {
  return LIST_SPELLINGS.has(name);
}

/**
 * The headers that identify a message and that every request must carry (§8.1.1): copied into
 * responses (§8.2.6.2), checked by parsing, kept by transactions that only absorb retransmissions.
 */
export const IDENTITY_HEADERS = ['Via', 'From', 'To', 'Call-ID', 'CSeq'] as const;

/** Headers a message may carry at most once (§7.3.1 and the grammar of each, RFC 4475 §3.3.8). */
export const SINGLE_HEADERS = [
  'Call-ID',
  'CSeq',
  'From',
  'To',
  'Max-Forwards',
  'Content-Length',
  'Content-Type',
];

export interface SipHeader {
  name: string;
  value: string;
}

/**
 * A header as parsed from the wire. It keeps the structured view of its value (a parsed Via,
 * From, CSeq, ...) once one was asked for, so the transport, the transaction layer, the UA and
 * the B2BUA parse each value once (parsing them again each time was a tenth of the SIP thread's
 * time). The view is checked against the value it came from, so a header whose value is replaced
 * is parsed anew; it lives in a private field, so copies, JSON and logs show only name and value.
 * Callers must treat a view as read-only (copy it before changing it).
 */
export class WireHeader implements SipHeader {
  #view: { value: string; parse: unknown; parsed: unknown } | undefined;
  readonly #key: string;

  /** `name` as written on the wire: stored in canonical spelling. */
  constructor(
    name: string,
    public value: string,
  ) {
    const known = nameOf(name);
    this.name = known.canonical;
    this.#key = known.key;
  }

  readonly name: string;

  /** See {@link headerKey}. */
  get key(): string {
    return this.#key;
  }

  /** `parse(value)`, computed once per value and parser. */
  view<T>(parse: (value: string) => T): T {
    const v = this.#view;
    if (v !== undefined && v.value === this.value && v.parse === parse) return v.parsed as T;
    const parsed = parse(this.value);
    this.#view = { value: this.value, parse, parsed };
    return parsed;
  }

  /** Sets the value together with its view (e.g. a top Via stamped with `received`). */
  replace<T>(value: string, parse: (value: string) => T, parsed: T): void {
    this.value = value;
    this.#view = { value, parse, parsed };
  }
}

/** Hard limits applied while parsing; exceeding one is a 513 (413 for the body alone). */
export interface SipLimits {
  /** Whole message, start line to end of body, in octets. */
  maxMessageSize: number;
  /** Number of header lines (before list splitting) and of list elements after it. */
  maxHeaders: number;
  /** Length of one physical header line, in characters. */
  maxHeaderLineLength: number;
  maxBodySize: number;
}

export const DEFAULT_LIMITS: Readonly<SipLimits> = Object.freeze({
  maxMessageSize: 65535,
  maxHeaders: 256,
  maxHeaderLineLength: 8192,
  maxBodySize: 60000,
});

export function resolveLimits(limits: Partial<SipLimits> | undefined): SipLimits {
  return { ...DEFAULT_LIMITS, ...limits };
}

/**
 * Splits a header section (the lines after the start line, without the final empty line) into
 * headers: undoes folding (§7.3.1: a line starting with SP/HTAB continues the previous one),
 * allows whitespace before the colon (HCOLON, §25.1), requires token names, and expands compact
 * names. List headers are not split here.
 */
export function parseHeaderLines(lines: readonly string[], limits: SipLimits): WireHeader[] {
  const headers: WireHeader[] = [];
  let current: WireHeader | undefined;
  for (const line of lines) {
    if (line.length > limits.maxHeaderLineLength) throw new SipParseError(513, 'header line too long');
    if (line.includes('\r') || line.includes('\n')) throw bad('bare CR or LF in header section');
    if (line.startsWith(' ') || line.startsWith('\t')) {
      if (!current) throw bad('continuation line before the first header');
      current.value += ' ' + trimLws(line);
      continue;
    }
    const colon = line.indexOf(':');
    if (colon < 0) throw bad('header line without a colon');
    const name = trimLws(line.slice(0, colon));
    if (!isToken(name)) throw bad('invalid header name');
    current = new WireHeader(name, line.slice(colon + 1));
    headers.push(current);
    if (headers.length > limits.maxHeaders) throw new SipParseError(513, 'too many headers');
  }
  for (const h of headers) h.value = trimLws(h.value);
  return headers;
}

/** The Content-Length value, undefined when absent; 400 when repeated or not a number (§20.14). */
export function contentLengthOf(headers: readonly SipHeader[]): number | undefined {
  const values = headers.filter((h) => h.name === 'Content-Length');
  if (values.length === 0) return undefined;
  if (values.length > 1) throw bad('more than one Content-Length');
  return parseBoundedInt((values[0] as SipHeader).value, 0xffffffff, 'Content-Length');
}
