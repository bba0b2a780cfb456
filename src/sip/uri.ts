/**
 * SIP and SIPS URIs (RFC 3261 §19.1, grammar in §25.1) and, for every other scheme, an opaque
 * absolute URI (RFC 3261 `absoluteURI`, RFC 4475 §3.3.2–3.3.4: unknown schemes must parse).
 *
 * Components are stored unescaped: `%HH` escapes in the user, password, URI parameters and URI
 * headers are decoded once (RFC 3261 §19.1.2, RFC 4475 §3.1.1.3: `value%2541` decodes to
 * `value%41`, never further). {@link formatUri} escapes again whatever the grammar does not allow
 * in the clear, so `parseUri(formatUri(u))` gives back `u`.
 */
import { CharClass } from './chars.js';
import { bad } from './errors.js';
import type { View } from './view.js';

/** Parameters in order of appearance; names lower-cased; `null` for a parameter without `=value`. */
export type Params = Map<string, string | null>;

export interface SipUri {
  scheme: 'sip' | 'sips';
  user?: string;
  password?: string;
  /** Host name, IPv4 address, or IPv6 reference including its brackets (`[2001:db8::1]`). */
  host: string;
  port?: number;
  /** uri-parameters (`;transport=tcp;lr`). */
  params: Params;
  /** headers (`?Route=...&Subject=...`); forbidden in a Request-URI (§19.1.5). */
  headers: Map<string, string>;
}

/** Any URI whose scheme is not sip/sips: kept as the text after the colon. */
export interface AbsoluteUri {
  scheme: string;
  opaque: string;
}

export type Uri = SipUri | AbsoluteUri;

export function isSipUri(uri: View<Uri>): uri is View<SipUri> {
  return 'host' in uri;
}

const ALNUM = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
const UNRESERVED = ALNUM + "-_.!~*'()";
/** §25.1: characters allowed unescaped in each component. */
const USER_CHARS = new CharClass(UNRESERVED + '&=+$,;?/');
const PASSWORD_CHARS = new CharClass(UNRESERVED + '&=+$,');
const PARAM_CHARS = new CharClass(UNRESERVED + '[]/:&+$');
const HEADER_CHARS = new CharClass(UNRESERVED + '[]/?:+$');
/** hostname / IPv4address characters (§25.1); IPv6 references are checked apart. */
export const HOST_CHARS = new CharClass(ALNUM + '-._');
const SCHEME_RE = /^[A-Za-z][A-Za-z0-9+.-]*$/;
/** Characters an opaque absolute URI may hold (RFC 2396 uric plus the path separators). */
const OPAQUE_RE = /^[A-Za-z0-9\-_.!~*'();/?:@&=+$,%[\]#]+$/;

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Decodes `%HH` escapes once; characters outside `allowed` (and not escapes) are an error. */
export function unescapeComponent(text: string, allowed: CharClass, what: string): string {
  if (!text.includes('%')) {
    if (!allowed.all(text)) throw bad(`invalid character in URI ${what}`);
    return text;
  }
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const ch = text[i] as string;
    if (ch === '%') {
      const hex = text.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) throw bad(`invalid %-escape in URI ${what}`);
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else if (allowed.has(ch)) {
      bytes.push(ch.charCodeAt(0));
    } else {
      throw bad(`invalid character in URI ${what}`);
    }
  }
  const buf = Buffer.from(bytes);
  try {
    return utf8.decode(buf);
  } catch {
    return buf.toString('latin1');
  }
}

/** Escapes every octet of the UTF-8 form of `text` that is not in `allowed`. */
export function escapeComponent(text: string, allowed: CharClass): string {
  if (allowed.all(text)) return text;
  let out = '';
  for (const ch of text) {
    if (allowed.has(ch)) out += ch;
    else for (const b of Buffer.from(ch, 'utf8')) out += '%' + b.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

function parsePort(text: string): number {
  if (!/^[0-9]{1,5}$/.test(text)) throw bad('invalid port');
  const port = Number(text);
  if (port > 65535) throw bad('port out of range');
  return port;
}

/** Parses `host [":" port]` (§25.1 hostport); IPv6 references keep their brackets. */
export function parseHostPort(text: string): { host: string; port?: number } {
  let host: string;
  let rest: string;
  if (text.startsWith('[')) {
    const end = text.indexOf(']');
    if (end < 0) throw bad('unterminated IPv6 reference');
    host = text.slice(0, end + 1);
    if (!/^\[[0-9A-Fa-f:.]+\]$/.test(host) || !host.includes(':')) throw bad('invalid IPv6 reference');
    rest = text.slice(end + 1);
  } else {
    const colon = text.indexOf(':');
    host = colon < 0 ? text : text.slice(0, colon);
    rest = colon < 0 ? '' : text.slice(colon);
    if (host.length === 0) throw bad('empty host');
    if (!HOST_CHARS.all(host)) throw bad('invalid character in host');
  }
  if (rest === '') return { host };
  if (!rest.startsWith(':')) throw bad('junk after host');
  return { host, port: parsePort(rest.slice(1)) };
}

function parseUriParams(text: string): Params {
  const params: Params = new Map();
  if (text === '') return params;
  for (const part of text.split(';')) {
    if (part === '') throw bad('empty URI parameter');
    const eq = part.indexOf('=');
    const name = unescapeComponent(eq < 0 ? part : part.slice(0, eq), PARAM_CHARS, 'parameter').toLowerCase();
    if (name === '') throw bad('empty URI parameter name');
    const value = eq < 0 ? null : unescapeComponent(part.slice(eq + 1), PARAM_CHARS, 'parameter');
    if (value === '') throw bad('empty URI parameter value');
    if (params.has(name)) throw bad(`URI parameter ${name} appears twice`);
    params.set(name, value);
  }
  return params;
}

function parseUriHeaders(text: string): Map<string, string> {
  const headers = new Map<string, string>();
  for (const part of text.split('&')) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw bad('invalid URI header');
    const name = unescapeComponent(part.slice(0, eq), HEADER_CHARS, 'header');
    headers.set(name, unescapeComponent(part.slice(eq + 1), HEADER_CHARS, 'header'));
  }
  return headers;
}

/**
 * Parses a URI. `sip:`/`sips:` URIs are parsed into their parts (§19.1.1); any other scheme that is
 * syntactically an absolute URI is kept opaque. Throws {@link SipParseError} (400) on bad input.
 */
export function parseUri(text: string): Uri {
  const colon = text.indexOf(':');
  if (colon <= 0) throw bad('URI without scheme');
  const scheme = text.slice(0, colon);
  if (!SCHEME_RE.test(scheme)) throw bad('invalid URI scheme');
  const lower = scheme.toLowerCase();
  const rest = text.slice(colon + 1);
  if (lower !== 'sip' && lower !== 'sips') {
    if (!OPAQUE_RE.test(rest)) throw bad('invalid absolute URI');
    return { scheme: lower, opaque: rest };
  }
  // userinfo ends at the first "@": no component after it may hold an unescaped "@" (§25.1).
  const at = rest.indexOf('@');
  const uri: SipUri = { scheme: lower, host: '', params: new Map(), headers: new Map() };
  let tail = rest;
  if (at >= 0) {
    const userinfo = rest.slice(0, at);
    tail = rest.slice(at + 1);
    const pw = userinfo.indexOf(':');
    const user = pw < 0 ? userinfo : userinfo.slice(0, pw);
    if (user === '') throw bad('empty user part');
    uri.user = unescapeComponent(user, USER_CHARS, 'user');
    if (pw >= 0) uri.password = unescapeComponent(userinfo.slice(pw + 1), PASSWORD_CHARS, 'password');
  }
  const q = tail.indexOf('?');
  const beforeHeaders = q < 0 ? tail : tail.slice(0, q);
  if (q >= 0) uri.headers = parseUriHeaders(tail.slice(q + 1));
  const semi = beforeHeaders.indexOf(';');
  const hostport = parseHostPort(semi < 0 ? beforeHeaders : beforeHeaders.slice(0, semi));
  uri.host = hostport.host;
  if (hostport.port !== undefined) uri.port = hostport.port;
  if (semi >= 0) uri.params = parseUriParams(beforeHeaders.slice(semi + 1));
  return uri;
}

export function formatUri(uri: View<Uri>): string {
  if (!isSipUri(uri)) return `${uri.scheme}:${uri.opaque}`;
  let out = uri.scheme + ':';
  if (uri.user !== undefined) {
    out += escapeComponent(uri.user, USER_CHARS);
    if (uri.password !== undefined) out += ':' + escapeComponent(uri.password, PASSWORD_CHARS);
    out += '@';
  }
  out += uri.host;
  if (uri.port !== undefined) out += ':' + String(uri.port);
  for (const [name, value] of uri.params) {
    out += ';' + escapeComponent(name, PARAM_CHARS);
    if (value !== null) out += '=' + escapeComponent(value, PARAM_CHARS);
  }
  let sep = '?';
  for (const [name, value] of uri.headers) {
    out += sep + escapeComponent(name, HEADER_CHARS) + '=' + escapeComponent(value, HEADER_CHARS);
    sep = '&';
  }
  return out;
}
