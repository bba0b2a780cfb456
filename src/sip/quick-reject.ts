/**
 * Refusing new work before it is parsed, while overload control sheds (see overload.ts).
 *
 * Far past its capacity the B2BUA spent much of its time refusing: a stateless 503 through the full
 * path (parse and validate every header, a server transaction, a response built from the parsed
 * request) cost 216–237 µs of CPU on a slow test machine, not far below a 407 challenge (275–333
 * µs), and every retransmitted INVITE and every ACK to a 503 was parsed in full too. At 1,500
 * calls/s offered to a B2BUA good for ~400/s, overload control set up 172 calls/s against 206/s
 * without it. This path refuses for 115–121 µs; with it (and the server's wait for its writer
 * thread at start), 185/s against 167/s in one run.
 *
 * The quick path reads only the lines it needs out of the datagram: the request line, Via, From,
 * To, Call-ID, CSeq and whether credentials are present. Anything it cannot read with certainty
 * (folded lines, a header twice, a To with a tag, credentials, an unknown layout) goes on to the
 * full parser, which decides as before, so hostile input gets no new path to anything. The 503
 * copies the request's lines as they came, the top Via with `received`/`rport` as the transport
 * would stamp it, and a To tag starting with {@link QUICK_TAG_PREFIX}; the ACK to such a 503 (a
 * hop-by-hop ACK that no transaction waits for) is recognised by that tag and dropped unparsed.
 */
import { formatVia, parseVia, splitList, type Via } from './grammar.js';
import { generateTag } from './message.js';
import { responseDestination, stampedVia, type Endpoint } from './transport.js';

/** The start of our To tag on a quick 503: hex tags (generateTag) never contain `-`. */
export const QUICK_TAG_PREFIX = 'q-';

/** A new INVITE or REGISTER without credentials, as the quick scan read it (raw values). */
export interface QuickRequest {
  method: 'INVITE' | 'REGISTER';
  /** The Via header lines' values, in order (one line may hold several Vias). */
  vias: string[];
  from: string;
  to: string;
  callId: string;
  cseq: string;
}

const INVITE = Buffer.from('INVITE ');
const REGISTER = Buffer.from('REGISTER ');
const ACK = Buffer.from('ACK ');
const CRLFCRLF = Buffer.from('\r\n\r\n');
const QUICK_TAG = new RegExp(`;\\s*tag\\s*=\\s*${QUICK_TAG_PREFIX}`, 'i');
/** Longer header sections go to the full parser (which enforces the real limits). */
const MAX_HEAD = 8192;

function startsWith(data: Buffer, prefix: Buffer): boolean {
  return data.length > prefix.length && data.compare(prefix, 0, prefix.length, 0, prefix.length) === 0;
}

/** The header's name in lower case, compact forms expanded (§7.3.3), for the few read here. */
const NAMES = new Map<string, string>([
  ['v', 'via'],
  ['via', 'via'],
  ['f', 'from'],
  ['from', 'from'],
  ['t', 'to'],
  ['to', 'to'],
  ['i', 'call-id'],
  ['call-id', 'call-id'],
  ['cseq', 'cseq'],
  ['authorization', 'credentials'],
  ['proxy-authorization', 'credentials'],
]);

const TAG = /;\s*tag\s*=/i;

/** The header parameters of a From/To value: what follows the URI's closing `>`, if it has one. */
function headerParams(nameAddr: string): string {
  const close = nameAddr.lastIndexOf('>');
  return close >= 0 ? nameAddr.slice(close + 1) : nameAddr;
}

/**
 * What the quick path makes of a datagram: a new INVITE or REGISTER it may refuse, `'ack'` for the
 * ACK to one of its own 503s, or undefined (the full parser decides).
 */
export function quickScan(data: Buffer): QuickRequest | 'ack' | undefined {
  let method: QuickRequest['method'] | 'ACK';
  if (startsWith(data, INVITE)) method = 'INVITE';
  else if (startsWith(data, REGISTER)) method = 'REGISTER';
  else if (startsWith(data, ACK)) method = 'ACK';
  else return undefined;
  const end = data.indexOf(CRLFCRLF);
  if (end < 0 || end > MAX_HEAD) return undefined;
  const lines = data.toString('latin1', 0, end).split('\r\n');
  if (!/^\S+ \S+ SIP\/2\.0$/.test(lines[0]!)) return undefined;
  const vias: string[] = [];
  const single = new Map<string, string>();
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(':');
    // A folded line (leading whitespace) or no name: the full parser's business.
    if (colon < 1 || line.charCodeAt(0) === 32 || line.charCodeAt(0) === 9) return undefined;
    const name = NAMES.get(line.slice(0, colon).trimEnd().toLowerCase());
    if (name === undefined) continue;
    if (name === 'credentials') return undefined;
    const value = line.slice(colon + 1).trim();
    if (value === '') return undefined;
    if (name === 'via') vias.push(value);
    else if (single.has(name)) return undefined;
    else single.set(name, value);
  }
  const from = single.get('from');
  const to = single.get('to');
  const callId = single.get('call-id');
  const cseq = single.get('cseq');
  if (vias.length === 0 || !from || !to || !callId || !cseq) return undefined;
  if (method === 'ACK') return QUICK_TAG.test(headerParams(to)) ? 'ack' : undefined;
  if (TAG.test(headerParams(to))) return undefined;
  const m = /^\d{1,10}\s+(\S+)$/.exec(cseq);
  if (!m || m[1] !== method) return undefined;
  return { method, vias, from, to, callId, cseq };
}

/**
 * The stateless response to `req`, received from `source` over UDP, and where it goes (§18.2.2,
 * RFC 3581); undefined when the top Via does not parse (the message then goes to the full parser).
 */
export function quickResponse(
  req: QuickRequest,
  source: Endpoint,
  status: number,
  reason: string,
  headers: readonly { name: string; value: string }[] = [],
): { data: Buffer; dest: Endpoint } | undefined {
  let top: Via;
  let rest: string[];
  try {
    const [first, ...others] = splitList(req.vias[0]!);
    top = parseVia(first!);
    rest = others;
  } catch {
    return undefined;
  }
  const via = stampedVia(top, source) ?? top;
  const dest = { ...responseDestination(via), transport: 'udp' as const };
  const lines = [
    `SIP/2.0 ${status} ${reason}`,
    `Via: ${[formatVia(via), ...rest].join(', ')}`,
    ...req.vias.slice(1).map((v) => `Via: ${v}`),
    `From: ${req.from}`,
    `To: ${req.to};tag=${QUICK_TAG_PREFIX}${generateTag()}`,
    `Call-ID: ${req.callId}`,
    `CSeq: ${req.cseq}`,
    ...headers.map((h) => `${h.name}: ${h.value}`),
    'Content-Length: 0',
    '',
    '',
  ];
  return { data: Buffer.from(lines.join('\r\n'), 'latin1'), dest };
}
