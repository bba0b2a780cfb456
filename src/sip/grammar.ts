/**
 * Structured header values (RFC 3261 §25.1): generic parameters, quoted strings, name-addr /
 * addr-spec (From, To, Contact, Route, ...), Via and CSeq. Every parser takes one header value
 * that is already unfolded (continuation lines joined by a space) and split on list commas, and
 * throws {@link SipParseError} (400) on anything the grammar does not allow.
 */
import { CharClass } from './chars.js';
import { bad, SipParseError } from './errors.js';
import { formatUri, HOST_CHARS, parseHostPort, parseUri, type Params, type Uri } from './uri.js';
import type { View } from './view.js';

/** §25.1 token characters: alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~". */
const TOKEN_TEXT = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~";
const TOKEN_CHARS = new CharClass(TOKEN_TEXT);
/** gen-value = token / host / quoted-string: token characters plus the IPv6 reference ones. */
const GEN_VALUE_CHARS = new CharClass(TOKEN_TEXT + '[]:');

/** Removes SP/HTAB (only those: String#trim would also eat a U+FEFF that is part of a value). */
export function trimLws(text: string): string {
  // A loop, not /[ \t]+$/: that regex backtracks quadratically on long runs of blanks.
  let start = 0;
  let end = text.length;
  while (start < end && (text[start] === ' ' || text[start] === '\t')) start++;
  while (end > start && (text[end - 1] === ' ' || text[end - 1] === '\t')) end--;
  return start === 0 && end === text.length ? text : text.slice(start, end);
}

export function isToken(text: string): boolean {
  return text.length > 0 && TOKEN_CHARS.all(text);
}

/** A cursor over one header value. LWS here is SP / HTAB only: folding was undone before. */
export class Scanner {
  pos = 0;
  constructor(readonly text: string) {}

  get eof(): boolean {
    return this.pos >= this.text.length;
  }

  peek(): string {
    return this.text[this.pos] ?? '';
  }

  /** Skips SP/HTAB; returns how many were skipped. */
  skipLws(): number {
    const start = this.pos;
    const { text } = this;
    for (let c = text.charCodeAt(this.pos); c === 32 || c === 9; c = text.charCodeAt(this.pos)) this.pos++;
    return this.pos - start;
  }

  readWhile(set: CharClass): string {
    const start = this.pos;
    const { text } = this;
    while (this.pos < text.length && set.hasCode(text.charCodeAt(this.pos))) this.pos++;
    return text.slice(start, this.pos);
  }

  readToken(what: string): string {
    const token = this.readWhile(TOKEN_CHARS);
    if (token === '') throw bad(`expected ${what}`);
    return token;
  }

  expect(ch: string): void {
    if (this.peek() !== ch) throw bad(`expected "${ch}"`);
    this.pos++;
  }

  /**
   * Reads a quoted-string (§25.1) starting at the opening quote; returns its unescaped content.
   * quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F).
   */
  readQuoted(): { value: string; raw: string } {
    const start = this.pos;
    this.expect('"');
    let value = '';
    for (;;) {
      if (this.eof) throw bad('unterminated quoted string');
      const ch = this.text[this.pos++] as string;
      if (ch === '"') break;
      if (ch === '\\') {
        if (this.eof) throw bad('unterminated quoted string');
        const next = this.text[this.pos++] as string;
        if (next === '\r' || next === '\n' || next.charCodeAt(0) > 0x7f) throw bad('invalid quoted-pair');
        value += next;
      } else {
        value += ch;
      }
    }
    return { value, raw: this.text.slice(start, this.pos) };
  }
}

/** Quotes `text` as a quoted-string, escaping `"`, `\` and control characters (CR/LF dropped). */
export function quote(text: string): string {
  let out = '"';
  for (const ch of text) {
    const code = ch.charCodeAt(0);
    if (ch === '\r' || ch === '\n') continue;
    if (ch === '"' || ch === '\\' || code < 0x20 || code === 0x7f) {
      if (ch === '\t') out += ch;
      else out += '\\' + ch;
    } else out += ch;
  }
  return out + '"';
}

/** Removes the quotes and quoted-pairs of a quoted-string; returns other text unchanged. */
export function unquote(text: string): string {
  if (!text.startsWith('"')) return text;
  const s = new Scanner(text);
  const { value } = s.readQuoted();
  return value;
}

/**
 * Parses `*( SEMI generic-param )` up to the end of the scanner's text (§25.1). Parameter names are
 * lower-cased; values are kept as written (a quoted-string keeps its quotes, see {@link unquote}).
 * Empty parameters (`;;`), empty values (`a=`) and repeated names are rejected (RFC 4475 §3.1.2.1).
 */
export function parseParams(s: Scanner): Params {
  const params: Params = new Map();
  for (;;) {
    s.skipLws();
    if (s.eof) return params;
    s.expect(';');
    s.skipLws();
    const name = s.readToken('parameter name').toLowerCase();
    s.skipLws();
    let value: string | null = null;
    if (s.peek() === '=') {
      s.pos++;
      s.skipLws();
      value = s.peek() === '"' ? s.readQuoted().raw : s.readWhile(GEN_VALUE_CHARS);
      if (value === '') throw bad(`empty value for parameter ${name}`);
    }
    if (params.has(name)) throw bad(`parameter ${name} appears twice`);
    params.set(name, value);
  }
}

export function formatParams(params: View<Params>): string {
  let out = '';
  for (const [name, value] of params) out += value === null ? `;${name}` : `;${name}=${value}`;
  return out;
}

/**
 * Splits a list header value on the commas that are outside quoted strings and angle brackets
 * (§7.3.1). An empty element (`a,,b`, a trailing comma) is an error; an entirely empty value gives
 * one empty element (e.g. `Accept:` with no value is meaningful, §20.1).
 */
export function splitList(value: string): string[] {
  if (trimLws(value) === '') return [''];
  const out: string[] = [];
  let inQuotes = false;
  let inAngle = false;
  let start = 0;
  for (let i = 0; i < value.length; i++) {
    const ch = value[i];
    if (inQuotes) {
      if (ch === '\\') i++;
      else if (ch === '"') inQuotes = false;
    } else if (ch === '"') inQuotes = true;
    else if (ch === '<') inAngle = true;
    else if (ch === '>') inAngle = false;
    else if (ch === ',' && !inAngle) {
      out.push(trimLws(value.slice(start, i)));
      start = i + 1;
    }
  }
  if (inQuotes) throw bad('unterminated quoted string');
  out.push(trimLws(value.slice(start)));
  if (out.some((v) => v === '')) throw bad('empty element in list header');
  return out;
}

/** A name-addr or addr-spec with its header parameters (From, To, Contact, Route, ...). */
export interface NameAddr {
  displayName?: string;
  uri: Uri;
  /** Header parameters (`tag`, `expires`, `q`, ...), values as written; see {@link unquote}. */
  params: Params;
}

const ADDR_SPEC_END = new CharClass('; \t');

/**
 * Parses `( name-addr / addr-spec ) *( SEMI generic-param )` (§20.10, §20.20, §20.39). In the
 * addr-spec form (no angle brackets) parameters belong to the header, not the URI, and the URI may
 * not contain `;`, `,` or `?` (§20.10; RFC 4475 §3.1.2.13, §3.3.12). Inside brackets no whitespace
 * is allowed (RFC 4475 §3.1.2.14). A display name is a quoted string or a run of tokens (§25.1;
 * `Bell, Alexander` without quotes is rejected, RFC 4475 §3.1.2.15).
 */
export function parseNameAddr(value: string): NameAddr {
  const s = new Scanner(value);
  s.skipLws();
  let displayName: string | undefined;
  let angle = false;
  if (s.peek() === '"') {
    displayName = s.readQuoted().value;
    s.skipLws();
    if (s.peek() !== '<') throw bad('display name without <URI>');
    angle = true;
  } else {
    const start = s.pos;
    const words: string[] = [];
    for (;;) {
      const word = s.readWhile(TOKEN_CHARS);
      if (word === '') break;
      words.push(word);
      s.skipLws();
    }
    if (s.peek() === '<') {
      angle = true;
      if (words.length > 0) displayName = words.join(' ');
    } else {
      s.pos = start;
    }
  }
  let uriText: string;
  if (angle) {
    s.expect('<');
    const end = s.text.indexOf('>', s.pos);
    if (end < 0) throw bad('missing ">"');
    uriText = s.text.slice(s.pos, end);
    if (/[\s<"]/.test(uriText)) throw bad('invalid character inside <URI>');
    s.pos = end + 1;
  } else {
    const start = s.pos;
    while (!s.eof && !ADDR_SPEC_END.hasCode(s.text.charCodeAt(s.pos))) s.pos++;
    uriText = s.text.slice(start, s.pos);
    if (/[?,<>"]/.test(uriText)) throw bad('addr-spec needs <> to carry "?", "," or brackets');
  }
  if (uriText === '') throw bad('empty URI');
  const uri = parseUri(uriText);
  const params = parseParams(s);
  return displayName === undefined ? { uri, params } : { displayName, uri, params };
}

/** Formats a name-addr, always with angle brackets so URI parameters stay inside the URI. */
export function formatNameAddr(addr: View<NameAddr>): string {
  const name = addr.displayName === undefined ? '' : quote(addr.displayName) + ' ';
  return `${name}<${formatUri(addr.uri)}>${formatParams(addr.params)}`;
}

/** One Via value (§20.42). `branch`, `received` and `rport` are lifted out of `params`. */
export interface Via {
  /** Upper-cased transport (`UDP`, `TCP`, `TLS`, `SCTP`, `WS`, or any other token). */
  transport: string;
  host: string;
  port?: number;
  branch?: string;
  received?: string;
  /** RFC 3581: `true` when present without a value (a request asking for it). */
  rport?: number | true;
  /** The other parameters (`maddr`, `ttl`, extensions). */
  params: Params;
}

/** The branch prefix that marks RFC 3261 transaction ids (§8.1.1.7). */
export const MAGIC_COOKIE = 'z9hG4bK';

const DIGIT_SET = new CharClass('0123456789');

/**
 * Parses `sent-protocol LWS sent-by *( SEMI via-params )` (§20.42, §25.1); LWS is allowed around the
 * slashes and the colon. A version other than 2.0 is a 505. A branch that is only the magic cookie
 * carries no transaction id and is rejected (RFC 4475 §3.2.1).
 */
export function parseVia(value: string): Via {
  const s = new Scanner(value);
  s.skipLws();
  const name = s.readToken('protocol name');
  s.skipLws();
  s.expect('/');
  s.skipLws();
  const version = s.readToken('protocol version');
  s.skipLws();
  s.expect('/');
  s.skipLws();
  const transport = s.readToken('transport').toUpperCase();
  if (name.toUpperCase() !== 'SIP') throw bad('Via protocol is not SIP');
  if (version !== '2.0') throw new SipParseError(505, `SIP version ${version} in Via`);
  if (s.skipLws() === 0) throw bad('missing space before sent-by');
  let hostText: string;
  if (s.peek() === '[') {
    const end = s.text.indexOf(']', s.pos);
    if (end < 0) throw bad('unterminated IPv6 reference');
    hostText = s.text.slice(s.pos, end + 1);
    s.pos = end + 1;
  } else {
    hostText = s.readWhile(HOST_CHARS);
  }
  const mark = s.pos;
  s.skipLws();
  let portText = '';
  if (s.peek() === ':') {
    s.pos++;
    s.skipLws();
    portText = s.readWhile(DIGIT_SET);
    if (portText === '') throw bad('missing port after ":"');
  } else {
    s.pos = mark;
  }
  const hostport = parseHostPort(portText === '' ? hostText : `${hostText}:${portText}`);
  const params = parseParams(s);
  const via: Via = { transport, host: hostport.host, params };
  if (hostport.port !== undefined) via.port = hostport.port;
  const branch = params.get('branch');
  if (branch !== undefined) {
    if (branch === null) throw bad('branch without a value');
    if (branch === MAGIC_COOKIE) throw bad('branch is only the magic cookie');
    via.branch = branch;
    params.delete('branch');
  }
  const received = params.get('received');
  if (received !== undefined) {
    if (received === null) throw bad('received without a value');
    via.received = received;
    params.delete('received');
  }
  const rport = params.get('rport');
  if (rport !== undefined) {
    if (rport === null) via.rport = true;
    else if (/^[0-9]{1,5}$/.test(rport) && Number(rport) <= 65535) via.rport = Number(rport);
    else throw bad('invalid rport');
    params.delete('rport');
  }
  return via;
}

export function formatVia(via: View<Via>): string {
  let out = `SIP/2.0/${via.transport} ${via.host}`;
  if (via.port !== undefined) out += `:${via.port}`;
  if (via.branch !== undefined) out += `;branch=${via.branch}`;
  if (via.received !== undefined) out += `;received=${via.received}`;
  if (via.rport !== undefined) out += via.rport === true ? ';rport' : `;rport=${via.rport}`;
  return out + formatParams(via.params);
}

export interface CSeq {
  seq: number;
  method: string;
}

/** Parses a decimal no larger than `max`; leading zeros allowed (RFC 4475 §3.1.1.1). */
export function parseBoundedInt(text: string, max: number, what: string): number {
  if (!/^[0-9]+$/.test(text)) throw bad(`invalid ${what}`);
  const digits = text.replace(/^0+(?=.)/, '');
  if (digits.length > 10 || Number(digits) > max) throw bad(`${what} out of range`);
  return Number(digits);
}

/** `CSeq: 1*DIGIT LWS Method` (§20.16); the number must fit 32 bits (RFC 4475 §3.1.2.4). */
export function parseCSeq(value: string): CSeq {
  const m = /^[ \t]*([0-9]+)[ \t]+(\S+)[ \t]*$/.exec(value);
  if (!m) throw bad('invalid CSeq');
  const method = m[2] as string;
  if (!isToken(method)) throw bad('invalid CSeq method');
  return { seq: parseBoundedInt(m[1] as string, 0xffffffff, 'CSeq number'), method };
}
