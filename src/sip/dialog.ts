/**
 * Dialogs (RFC 3261 §12): the state both ends of a session keep (Call-ID, tags, CSeq numbers, the
 * remote target and route set) and the construction of requests inside one (§12.2.1.1), including
 * the ACK for a 2xx (§13.2.2.4) and CANCEL (§9.1).
 */
import { randomInt } from 'node:crypto';
import {
  formatNameAddr,
  formatUri,
  formatVia,
  generateBranch,
  getCallId,
  getContacts,
  getCSeq,
  getFrom,
  getHeader,
  getHeaders,
  getTo,
  parseNameAddr,
  tagOf,
  type NameAddr,
  type SipHeader,
  type SipRequest,
  type SipResponse,
  type Uri,
} from './message.js';
import type { View } from './view.js';
import type { Endpoint, SipTransportLayer, TransportKind } from './transport.js';

/** Where requests of this server say they come from (Via) and where they want answers (Contact). */
export interface LocalAddress {
  via(kind: TransportKind): string;
  contact(kind: TransportKind): string;
}

/** Via and Contact of this server: the transport's advertised host (never 0.0.0.0), its port. */
export function localAddress(transport: SipTransportLayer, user = 'onecloud'): LocalAddress {
  const host = transport.advertisedUriHost;
  return {
    via: (kind) => formatVia(transport.via(kind, generateBranch())),
    contact: (kind) => `<sip:${user}@${host}:${transport.port}${kind === 'tcp' ? ';transport=tcp' : ''}>`,
  };
}

export interface DialogState {
  callId: string;
  /** Our From (UAC) / To (UAS) header value, with our tag. */
  local: View<NameAddr>;
  /** Their header value, with their tag. */
  remote: View<NameAddr>;
  remoteTarget: View<Uri>;
  /** Route set, in the order Route headers are written (§12.1.1, §12.1.2). */
  routeSet: string[];
  localSeq: number;
  /** undefined until they sent a request (§12.1.2). */
  remoteSeq: number | undefined;
  /** Where requests go: the peer's flow (address we learned it at). */
  dest: Endpoint;
}

export class Dialog {
  constructor(public state: DialogState) {}

  get callId(): string {
    return this.state.callId;
  }

  get localTag(): string {
    return tagOf(this.state.local) ?? '';
  }

  get remoteTag(): string {
    return tagOf(this.state.remote) ?? '';
  }

  /** Key under which a request that arrives in this dialog is found: Call-ID and our tag. */
  get key(): string {
    return dialogKey(this.callId, this.localTag);
  }

  /**
   * A new request in the dialog (§12.2.1.1): Request-URI the remote target, Route the route set,
   * CSeq one higher than the last (ACK and CANCEL take theirs from the INVITE).
   */
  request(
    method: string,
    local: LocalAddress,
    options: { body?: Buffer; contentType?: string; headers?: SipHeader[]; cseq?: number } = {},
  ): SipRequest {
    const seq = options.cseq ?? ++this.state.localSeq;
    const headers: SipHeader[] = [
      { name: 'Via', value: local.via(this.state.dest.transport) },
      { name: 'Max-Forwards', value: '70' },
      ...this.state.routeSet.map((value) => ({ name: 'Route', value })),
      { name: 'From', value: formatNameAddr(this.state.local) },
      { name: 'To', value: formatNameAddr(this.state.remote) },
      { name: 'Call-ID', value: this.state.callId },
      { name: 'CSeq', value: `${seq} ${method}` },
    ];
    if (method !== 'ACK' && method !== 'CANCEL' && method !== 'BYE')
      headers.push({ name: 'Contact', value: local.contact(this.state.dest.transport) });
    if (options.body && options.body.length > 0)
      headers.push({ name: 'Content-Type', value: options.contentType ?? 'application/sdp' });
    headers.push(...(options.headers ?? []));
    return {
      type: 'request',
      method,
      uri: this.state.remoteTarget,
      headers,
      body: options.body ?? Buffer.alloc(0),
    };
  }

  /** Checks and records the CSeq of a request they sent (§12.2.2); false when it is out of order. */
  acceptRemoteSeq(req: SipRequest): boolean {
    const seq = getCSeq(req).seq;
    if (req.method === 'ACK' || req.method === 'CANCEL') return true;
    if (this.state.remoteSeq !== undefined && seq <= this.state.remoteSeq) return false;
    this.state.remoteSeq = seq;
    return true;
  }

  /** A target refresh (re-INVITE, UPDATE) may change the remote target (§12.2.2). */
  refreshTarget(msg: SipRequest | SipResponse): void {
    try {
      const contacts = getContacts(msg);
      if (contacts !== '*' && contacts[0]) this.state.remoteTarget = contacts[0].uri;
    } catch {
      // keep the old target
    }
  }
}

export function dialogKey(callId: string, localTag: string): string {
  return `${callId}|${localTag}`;
}

/** The UAS side of a dialog created by `invite` (§12.1.1); `toTag` is the tag we answer with. */
export function uasDialog(invite: SipRequest, source: Endpoint, toTag: string): Dialog {
  const invited = getTo(invite); // read-only: the request's own parsed To
  const to: View<NameAddr> = { ...invited, params: new Map(invited.params).set('tag', toTag) };
  const contacts = getContacts(invite);
  const target = contacts !== '*' && contacts[0] ? contacts[0].uri : getFrom(invite).uri;
  return new Dialog({
    callId: getCallId(invite),
    local: to,
    remote: getFrom(invite),
    remoteTarget: target,
    routeSet: getHeaders(invite, 'Record-Route'),
    localSeq: randomInt(1, 100_000),
    remoteSeq: getCSeq(invite).seq,
    dest: source,
  });
}

/** The UAC side of a dialog established by `response` to our `invite` (§12.1.2). */
export function uacDialog(invite: SipRequest, response: SipResponse, dest: Endpoint): Dialog {
  const contacts = getContacts(response);
  const target = contacts !== '*' && contacts[0] ? contacts[0].uri : invite.uri;
  return new Dialog({
    callId: getCallId(invite),
    local: getFrom(invite),
    remote: getTo(response),
    remoteTarget: target,
    routeSet: getHeaders(response, 'Record-Route').reverse(),
    localSeq: getCSeq(invite).seq,
    remoteSeq: undefined,
    dest,
  });
}

/** A new out-of-dialog INVITE (§8.1.1). */
export function newInvite(options: {
  local: LocalAddress;
  target: View<Uri>;
  dest: Endpoint;
  from: View<NameAddr>;
  to: View<NameAddr>;
  callId: string;
  body?: Buffer;
  contentType?: string;
  headers?: SipHeader[];
}): SipRequest {
  const headers: SipHeader[] = [
    { name: 'Via', value: options.local.via(options.dest.transport) },
    { name: 'Max-Forwards', value: '70' },
    { name: 'From', value: formatNameAddr(options.from) },
    { name: 'To', value: formatNameAddr(options.to) },
    { name: 'Call-ID', value: options.callId },
    { name: 'CSeq', value: `${randomInt(1, 100_000)} INVITE` },
    { name: 'Contact', value: options.local.contact(options.dest.transport) },
    { name: 'Allow', value: 'INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE' },
  ];
  if (options.body && options.body.length > 0)
    headers.push({ name: 'Content-Type', value: options.contentType ?? 'application/sdp' });
  headers.push(...(options.headers ?? []));
  return {
    type: 'request',
    method: 'INVITE',
    uri: options.target,
    headers,
    body: options.body ?? Buffer.alloc(0),
  };
}

/** CANCEL for a pending INVITE (§9.1): same Request-URI, Call-ID, From, To, CSeq number, top Via, Route. */
export function cancelFor(invite: SipRequest): SipRequest {
  const headers: SipHeader[] = [];
  const copy = (name: string, max = Infinity): void => {
    for (const value of getHeaders(invite, name).slice(0, max)) headers.push({ name, value });
  };
  copy('Via', 1);
  copy('Max-Forwards');
  copy('Route');
  copy('From');
  copy('To');
  copy('Call-ID');
  headers.push({ name: 'CSeq', value: `${getCSeq(invite).seq} CANCEL` });
  return { type: 'request', method: 'CANCEL', uri: invite.uri, headers, body: Buffer.alloc(0) };
}

/** A name-addr from a header value, or undefined when it does not parse. */
export function tryNameAddr(value: string | undefined): NameAddr | undefined {
  if (value === undefined) return undefined;
  try {
    return parseNameAddr(value);
  } catch {
    return undefined;
  }
}

export { formatUri, getHeader };
