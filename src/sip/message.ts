/**
 * SIP messages (RFC 3261 §7): parsing from a datagram or a framed stream message, serialization,
 * header access, building responses, and generators for branches, tags and Call-IDs.
 *
 * A parsed message keeps its headers as an ordered list of `{ name, value }`: names in their
 * canonical spelling (compact forms expanded), values unfolded and trimmed, and list headers
 * (§7.3.1: Via, Contact, Route, ...) split into one entry per element. Structured views (Via,
 * From/To, CSeq, Contact) are parsed on demand by the typed getters; {@link parseMessage} runs them
 * once on the headers every element relies on, so a message it returns never makes those getters
 * throw.
 */
import { bad, SipParseError } from './errors.js';
import {
  formatNameAddr,
  formatVia,
  isToken,
  MAGIC_COOKIE,
  parseBoundedInt,
  parseCSeq,
  parseNameAddr,
  parseVia,
  splitList,
  type CSeq,
  type NameAddr,
  type Via,
} from './grammar.js';
import {
  canonicalName,
  contentLengthOf,
  headerKey,
  IDENTITY_HEADERS,
  isCanonicalListName,
  keyOf,
  parseHeaderLines,
  resolveLimits,
  SINGLE_HEADERS,
  WireHeader,
  type SipHeader,
  type SipLimits,
} from './headers.js';
import { randomSlice } from './random.js';
import { formatUri, isSipUri, parseUri, type Uri } from './uri.js';
import type { View } from './view.js';

export { SipParseError, type SipParseStatus } from './errors.js';
export * from './grammar.js';
export {
  canonicalName,
  contentLengthOf,
  DEFAULT_LIMITS,
  headerKey,
  IDENTITY_HEADERS,
  isListHeader,
  parseHeaderLines,
  resolveLimits,
  type SipHeader,
  type SipLimits,
} from './headers.js';
export * from './uri.js';
export { StreamFramer, type Frame } from './framer.js';

interface MessageBase {
  headers: SipHeader[];
  body: Buffer;
}

export interface SipRequest extends MessageBase {
  type: 'request';
  method: string;
  /** Read-only like the header views: requests built from another share its URI. */
  uri: View<Uri>;
}

export interface SipResponse extends MessageBase {
  type: 'response';
  status: number;
  reason: string;
}

export type SipMessage = SipRequest | SipResponse;

export interface ParseOptions {
  limits?: Partial<SipLimits>;
}

const CRLFCRLF = Buffer.from('\r\n\r\n');

const SIP_VERSION = 'SIP/2.0';
const VERSION_RE = /^SIP\/[0-9]+\.[0-9]+$/i;

function checkVersion(version: string): void {
  if (version.toUpperCase() === SIP_VERSION) return;
  if (VERSION_RE.test(version)) throw new SipParseError(505, `unsupported version ${version}`);
  throw bad('invalid SIP version');
}

function parseStartLine(
  line: string,
): Omit<SipRequest, 'headers' | 'body'> | Omit<SipResponse, 'headers' | 'body'> {
  if (/^SIP\//i.test(line)) {
    // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase (§7.2); the reason may be empty.
    const sp = line.indexOf(' ');
    if (sp < 0) throw bad('invalid status line');
    checkVersion(line.slice(0, sp));
    const m = /^([1-6][0-9][0-9])(?: ([^\r\n]*))?$/.exec(line.slice(sp + 1));
    if (!m) throw bad('invalid status code');
    return { type: 'response', status: Number(m[1]), reason: m[2] ?? '' };
  }
  // Request-Line = Method SP Request-URI SP SIP-Version (§7.1): exactly one SP between elements
  // (RFC 4475 §3.1.2.8–3.1.2.10), no brackets around the URI (§3.1.2.7).
  const parts = line.split(' ');
  if (parts.length !== 3) throw bad('request line must be "Method SP Request-URI SP SIP-Version"');
  const [method, uriText, version] = parts as [string, string, string];
  if (!isToken(method)) throw bad('invalid method');
  checkVersion(version);
  const uri = parseUri(uriText);
  // §19.1.5: headers are not allowed in a Request-URI (RFC 4475 §3.1.2.11).
  if (isSipUri(uri) && uri.headers.size > 0) throw bad('headers in Request-URI');
  return { type: 'request', method, uri };
}

/**
 * Parses one SIP message. For a datagram, `buf` is the whole datagram: octets after the declared
 * Content-Length are ignored (RFC 4475 §3.1.1.8) and without Content-Length the body runs to the
 * end (§18.3, RFC 2543 compatibility); a Content-Length beyond the end is a 400 (§18.3). CRLFs
 * before the start line are skipped (§7.5). Throws {@link SipParseError} and nothing else.
 */
export function parseMessage(buf: Buffer, options: ParseOptions = {}): SipMessage {
  try {
    return parseUnchecked(buf, resolveLimits(options.limits));
  } catch (err) {
    if (err instanceof SipParseError) throw err;
    // Defensive: a bug in a grammar function must still surface as a parse error.
    throw bad(`unparseable message (${err instanceof Error ? err.message : String(err)})`);
  }
}

function parseUnchecked(buf: Buffer, limits: SipLimits): SipMessage {
  if (buf.length > limits.maxMessageSize) throw new SipParseError(513, 'message too large');
  let start = 0;
  while (buf[start] === 13 && buf[start + 1] === 10) start += 2;
  const headEnd = buf.indexOf(CRLFCRLF, start);
  if (headEnd < 0) throw bad('header section not terminated by an empty line');
  const lines = buf.subarray(start, headEnd).toString('utf8').split('\r\n');
  const startLine = parseStartLine(lines[0] ?? '');
  const headers: SipHeader[] = [];
  for (const h of parseHeaderLines(lines.slice(1), limits)) {
    if (!isCanonicalListName(h.name)) headers.push(h);
    else for (const value of splitList(h.value)) headers.push(new WireHeader(h.name, value));
  }
  if (headers.length > limits.maxHeaders) throw new SipParseError(513, 'too many headers');

  const bodyStart = headEnd + CRLFCRLF.length;
  const available = buf.length - bodyStart;
  const declared = contentLengthOf(headers);
  if (declared !== undefined && declared > limits.maxBodySize) throw new SipParseError(413, 'body too large');
  if (declared !== undefined && declared > available) throw bad('Content-Length larger than the message');
  const length = declared ?? available;
  if (length > limits.maxBodySize) throw new SipParseError(413, 'body too large');
  const body = buf.subarray(bodyStart, bodyStart + length);

  const msg: SipMessage = { ...startLine, headers, body };
  validate(msg);
  return msg;
}

/**
 * Checks what every element relies on (§8.1.1, §8.2.2, §20): the mandatory headers are present,
 * single-valued ones appear once (RFC 4475 §3.3.8), Via / From / To / CSeq / Contact / Route parse,
 * the CSeq method matches the request method (RFC 4475 §3.1.2.17), Max-Forwards is 0–255.
 */

function validate(msg: SipMessage): void {
  // One pass over the headers for presence and single-valued ones. Every name checked is a
  // well-known one, which parsing stored in its canonical spelling.
  const counts = new Map<string, number>();
  for (const h of msg.headers) counts.set(h.name, (counts.get(h.name) ?? 0) + 1);
  for (const name of IDENTITY_HEADERS) if (!counts.has(name)) throw bad(`missing ${name}`);
  for (const name of SINGLE_HEADERS) if ((counts.get(name) ?? 0) > 1) throw bad(`more than one ${name}`);
  getVias(msg);
  getFrom(msg);
  getTo(msg);
  const callId = getCallId(msg);
  if (callId === '' || /\s/.test(callId)) throw bad('invalid Call-ID');
  const cseq = getCSeq(msg);
  if (msg.type === 'request' && cseq.method !== msg.method) throw bad('CSeq method differs from the method');
  getMaxForwards(msg);
  getContacts(msg);
  for (const name of ['Route', 'Record-Route']) for (const v of getHeaders(msg, name)) parseNameAddr(v);
}

// ---------------------------------------------------------------------------------------------
// Header access. Names are matched case-insensitively and compact forms are accepted (§7.3.1).

export function getHeaders(msg: { headers: readonly SipHeader[] }, name: string): string[] {
  const key = headerKey(name);
  const out: string[] = [];
  for (const h of msg.headers) if (keyOf(h) === key) out.push(h.value);
  return out;
}

/** The first value of a header, or undefined. */
export function getHeader(msg: { headers: readonly SipHeader[] }, name: string): string | undefined {
  return firstHeader(msg, name)?.value;
}

function firstHeader(msg: { headers: readonly SipHeader[] }, name: string): SipHeader | undefined {
  const key = headerKey(name);
  for (const h of msg.headers) if (keyOf(h) === key) return h;
  return undefined;
}

export function hasHeader(msg: { headers: readonly SipHeader[] }, name: string): boolean {
  return getHeader(msg, name) !== undefined;
}

/** Throws TypeError on a name that is not a token or a value that could inject lines. */
function checkHeader(name: string, value: string): void {
  if (!isToken(name)) throw new TypeError(`invalid SIP header name: ${JSON.stringify(name)}`);
  if (/[\r\n]/.test(value)) throw new TypeError(`CR or LF in the value of SIP header ${name}`);
}

/** Replaces every value of `name` with `values` (at the position of the first one, else appended). */
export function setHeader(
  msg: { headers: SipHeader[] },
  name: string,
  values: string | readonly string[],
): void {
  const list = typeof values === 'string' ? [values] : values;
  const canonical = canonicalName(name);
  for (const v of list) checkHeader(canonical, v);
  const key = headerKey(name);
  const at = msg.headers.findIndex((h) => keyOf(h) === key);
  const rest = msg.headers.filter((h) => keyOf(h) !== key);
  const added = list.map((value) => ({ name: canonical, value }));
  const insertAt = at < 0 ? rest.length : at;
  rest.splice(insertAt, 0, ...added);
  msg.headers = rest;
}

/** Adds a value; `prepend` puts it before the existing values of that header (e.g. a new top Via). */
export function addHeader(msg: { headers: SipHeader[] }, name: string, value: string, prepend = false): void {
  const canonical = canonicalName(name);
  checkHeader(canonical, value);
  const key = headerKey(name);
  const header = { name: canonical, value };
  if (prepend) {
    const at = msg.headers.findIndex((h) => keyOf(h) === key);
    if (at >= 0) {
      msg.headers.splice(at, 0, header);
      return;
    }
  }
  msg.headers.push(header);
}

export function removeHeader(msg: { headers: SipHeader[] }, name: string): void {
  const key = headerKey(name);
  msg.headers = msg.headers.filter((h) => keyOf(h) !== key);
}

// Typed views. They throw SipParseError on a malformed value (never on a message parseMessage returned).

/** A header's structured view: parsed once per value on a header from the wire (see WireHeader). */
function parsedValue<T>(h: SipHeader, parse: (value: string) => T): View<T> {
  // Where a fresh parse becomes the shared, read-only view.
  return (h instanceof WireHeader ? h.view(parse) : parse(h.value)) as View<T>;
}

function requiredHeader(msg: SipMessage, name: string): SipHeader {
  const h = firstHeader(msg, name);
  if (h === undefined) throw bad(`missing ${name}`);
  return h;
}

export function getVias(msg: SipMessage): View<Via>[] {
  const key = headerKey('Via');
  const out: View<Via>[] = [];
  for (const h of msg.headers) if (keyOf(h) === key) out.push(parsedValue(h, parseVia));
  return out;
}

/** The top Via (the transport, the transaction layer and the UA each read it). */
export function getTopVia(msg: SipMessage): View<Via> {
  const h = firstHeader(msg, 'Via');
  if (!h) throw bad('missing Via');
  return parsedValue(h, parseVia);
}

/** Replaces the top Via value (e.g. to add `received`/`rport`, §18.2.1). */
export function setTopVia(msg: SipMessage, via: View<Via>): void {
  const h = firstHeader(msg, 'Via');
  if (!h) throw new TypeError('message has no Via');
  if (h instanceof WireHeader) h.replace(formatVia(via), parseVia, via);
  else h.value = formatVia(via);
}

export function getFrom(msg: SipMessage): View<NameAddr> {
  return parsedValue(requiredHeader(msg, 'From'), parseNameAddr);
}

export function getTo(msg: SipMessage): View<NameAddr> {
  return parsedValue(requiredHeader(msg, 'To'), parseNameAddr);
}

/** The `tag` parameter of a From/To value, unquoted tags being tokens (§19.3). */
export function tagOf(addr: View<NameAddr>): string | undefined {
  return addr.params.get('tag') ?? undefined;
}

export function getCallId(msg: SipMessage): string {
  return requiredHeader(msg, 'Call-ID').value;
}

export function getCSeq(msg: SipMessage): View<CSeq> {
  return parsedValue(requiredHeader(msg, 'CSeq'), parseCSeq);
}

/** Max-Forwards (§20.22), undefined when absent; 0–255 (RFC 4475 §3.1.2.4). */
export function getMaxForwards(msg: SipMessage): number | undefined {
  const v = getHeader(msg, 'Max-Forwards');
  return v === undefined ? undefined : parseBoundedInt(v, 255, 'Max-Forwards');
}

/** Contacts (§20.10); `'*'` for the wildcard of a REGISTER that removes every binding (§10.2.2). */
export function getContacts(msg: SipMessage): View<NameAddr>[] | '*' {
  const values = getHeaders(msg, 'Contact');
  if (values.length === 1 && values[0] === '*') return '*';
  const key = headerKey('Contact');
  const out: View<NameAddr>[] = [];
  for (const h of msg.headers) {
    if (keyOf(h) !== key) continue;
    if (h.value === '*') throw bad('"*" Contact mixed with others');
    out.push(parsedValue(h, parseNameAddr));
  }
  return out;
}

/** Expires (§20.19) as a number of seconds; undefined when absent; 400 when not a 32-bit number. */
export function getExpires(msg: SipMessage): number | undefined {
  const v = getHeader(msg, 'Expires');
  return v === undefined ? undefined : parseBoundedInt(v, 0xffffffff, 'Expires');
}

// ---------------------------------------------------------------------------------------------
// Serialization.

/**
 * Serializes a message. Content-Length is always written from the body length (§18.3: required on
 * streams), replacing whatever the headers said. Throws TypeError on a header that could not have
 * come from a parsed message (bad name, CR/LF in a value).
 */
export function serialize(msg: SipMessage): Buffer {
  let head: string;
  if (msg.type === 'request') {
    if (!isToken(msg.method)) throw new TypeError('invalid method');
    head = `${msg.method} ${formatUri(msg.uri)} ${SIP_VERSION}\r\n`;
  } else {
    if (!Number.isInteger(msg.status) || msg.status < 100 || msg.status > 699)
      throw new TypeError('invalid status');
    if (/[\r\n]/.test(msg.reason)) throw new TypeError('CR or LF in reason phrase');
    head = `${SIP_VERSION} ${msg.status} ${msg.reason}\r\n`;
  }
  for (const h of msg.headers) {
    if (h.name === 'Content-Length') continue;
    checkHeader(h.name, h.value);
    head += `${h.name}: ${h.value}\r\n`;
  }
  head += `Content-Length: ${msg.body.length}\r\n\r\n`;
  return Buffer.concat([Buffer.from(head, 'utf8'), msg.body]);
}

// ---------------------------------------------------------------------------------------------
// Building messages.

const IDENTITY_KEYS = new Set<string>(IDENTITY_HEADERS.map(headerKey));
const NO_BODY = Buffer.alloc(0);

/**
 * What a transaction keeps of a message once it only absorbs retransmissions (for up to 64*T1):
 * the start line and the headers that identify the message (Via, From, To, Call-ID, CSeq) as
 * plain name/value pairs, without the body, the other headers or the parsed views. A parsed
 * message with its views is kilobytes; 32 s of calls held whole were most of the heap at a
 * thousand calls a second (and most of the garbage collector's work).
 */
export function identityOf<T extends SipMessage>(msg: T): T {
  const headers: SipHeader[] = [];
  for (const h of msg.headers)
    if (IDENTITY_KEYS.has(keyOf(h))) headers.push({ name: h.name, value: h.value });
  return { ...msg, headers, body: NO_BODY };
}

/** Reason phrases of RFC 3261 §21 and the later RFCs this server answers with. */
export const REASON_PHRASES: Readonly<Record<number, string>> = {
  100: 'Trying',
  180: 'Ringing',
  181: 'Call Is Being Forwarded',
  182: 'Queued',
  183: 'Session Progress',
  200: 'OK',
  202: 'Accepted',
  300: 'Multiple Choices',
  301: 'Moved Permanently',
  302: 'Moved Temporarily',
  305: 'Use Proxy',
  380: 'Alternative Service',
  400: 'Bad Request',
  401: 'Unauthorized',
  402: 'Payment Required',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  406: 'Not Acceptable',
  407: 'Proxy Authentication Required',
  408: 'Request Timeout',
  410: 'Gone',
  413: 'Request Entity Too Large',
  414: 'Request-URI Too Long',
  415: 'Unsupported Media Type',
  416: 'Unsupported URI Scheme',
  420: 'Bad Extension',
  421: 'Extension Required',
  423: 'Interval Too Brief',
  480: 'Temporarily Unavailable',
  481: 'Call/Transaction Does Not Exist',
  482: 'Loop Detected',
  483: 'Too Many Hops',
  484: 'Address Incomplete',
  485: 'Ambiguous',
  486: 'Busy Here',
  487: 'Request Terminated',
  488: 'Not Acceptable Here',
  491: 'Request Pending',
  493: 'Undecipherable',
  500: 'Server Internal Error',
  501: 'Not Implemented',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Server Time-out',
  505: 'Version Not Supported',
  513: 'Message Too Large',
  600: 'Busy Everywhere',
  603: 'Decline',
  604: 'Does Not Exist Anywhere',
  606: 'Not Acceptable',
};

export function reasonPhrase(status: number): string {
  return REASON_PHRASES[status] ?? REASON_PHRASES[Math.floor(status / 100) * 100] ?? 'Unknown';
}

export interface ResponseOptions {
  reason?: string;
  /** The To tag to add when the request has none (§8.2.6.2); generated when omitted. */
  toTag?: string;
  headers?: readonly SipHeader[];
  body?: Buffer;
}

/**
 * Builds a response to `req` (§8.2.6): Via (all values, in order), From, To, Call-ID and CSeq are
 * copied; a To tag is added when the request had none, except on 100 Trying (§8.2.6.2); 100 copies
 * Timestamp (§8.2.6.1).
 */
export function createResponse(req: SipRequest, status: number, options: ResponseOptions = {}): SipResponse {
  const headers: SipHeader[] = [];
  for (const name of IDENTITY_HEADERS) {
    for (const value of getHeaders(req, name)) headers.push({ name, value });
  }
  if (status > 100) {
    const toHeader = headers.find((h) => h.name === 'To');
    if (toHeader) {
      // The request's parsed To (a view: parsed once per message), copied only to add our tag.
      const to = getTo(req);
      if (!to.params.has('tag')) {
        const tagged = new Map(to.params).set('tag', options.toTag ?? generateTag());
        toHeader.value = formatNameAddr({ ...to, params: tagged });
      }
    }
  } else {
    const ts = getHeader(req, 'Timestamp');
    if (ts !== undefined) headers.push({ name: 'Timestamp', value: ts });
  }
  const res: SipResponse = {
    type: 'response',
    status,
    reason: options.reason ?? reasonPhrase(status),
    headers,
    body: options.body ?? Buffer.alloc(0),
  };
  for (const h of options.headers ?? []) addHeader(res, h.name, h.value);
  return res;
}

function randomToken(bytes: number): string {
  return randomSlice(bytes).toString('base64url');
}

/** A new Via branch: the magic cookie then 128 random bits (§8.1.1.7). */
export function generateBranch(): string {
  return MAGIC_COOKIE + randomToken(16);
}

/** A From/To tag with 64 random bits (§19.3 asks for at least 32). */
export function generateTag(): string {
  return randomSlice(8).toString('hex');
}

/** A Call-ID with 144 random bits (§8.1.1.4), `@host` appended when given. */
export function generateCallId(host?: string): string {
  const id = randomToken(18);
  return host === undefined ? id : `${id}@${host}`;
}
