/**
 * The back-to-back user agent (issue 5 items 6–8). Every call is two dialogs, SDP passed through
 * unchanged (only the `o=` version is kept consistent per dialog). Calls from registered devices
 * are routed through {@link Router}; a user's devices ring in parallel, the first answer wins and
 * the others get CANCEL. The call model tracks one party per user leg (EARLY → CONFIRMED →
 * TERMINATED with a reason), writes `call.early` / `call.confirmed` / `call.terminated` events and a
 * call record per user leg, and {@link CallCommands} acts on calls through SIP.
 */
import { randomUUID } from 'node:crypto';
import type { DatabaseHandle } from '../db/database.js';
import type { RoutableUser } from '../areas/calls/repository.js';
import { DeviceRepository, type Device } from '../areas/devices/repository.js';
import { OrganizationRepository, type Organization } from '../areas/organizations/repository.js';
import { RegistrationRepository, type SipBinding } from '../areas/registrations/repository.js';
import type { DeviceKind } from '../db/schema.js';
import type { BatchedWriter } from './call-events.js';
import type { SipDirectory } from './directory.js';
import type { Clock, Timer } from './clock.js';
import { dialogKey, newInvite, uacDialog, uasDialog, type Dialog } from './dialog.js';
import {
  createResponse,
  generateCallId,
  generateTag,
  getCallId,
  getCSeq,
  getFrom,
  getHeader,
  getTo,
  isSipUri,
  parseUri,
  tagOf,
  type NameAddr,
  type SipHeader,
  type SipRequest,
  type SipResponse,
  type Uri,
} from './message.js';
import {
  replyAuthFailure,
  type BindingStore,
  type DeviceAuthenticator,
  type OrganizationCache,
} from './registrar.js';
import { numberOf, type Destination, type Router, type TrunkDirectory } from './routing.js';
import { directionOf, SdpVersioner, withDirection } from './sdp.js';
import type { ServerTransaction } from './transaction.js';
import type { Endpoint, SipLogger } from './transport.js';
import type { PendingRequest, UserAgentCore } from './ua.js';
import type { View } from './view.js';

// ---------------------------------------------------------------------------------------------
// Public types: the call model and the command interface.

export type CallState = 'EARLY' | 'CONFIRMED' | 'TERMINATED';
export type CallDirection = 'INCOMING' | 'OUTGOING';

/**
 * Why a party's leg ended: `local_hangup` (this party hung up), `remote_hangup` (the other one
 * did), `cancelled`, `busy`, `no_answer`, `declined`, `unavailable`, `not_found`, `failed`,
 * `transferred` (this party transferred the call away), `transfer_failed` (the target of a blind
 * transfer did not answer: the far party's call ends), `hangup_command`, `shutdown`.
 */
export type TerminationReason =
  | 'local_hangup'
  | 'remote_hangup'
  | 'cancelled'
  | 'busy'
  | 'no_answer'
  | 'declined'
  | 'unavailable'
  | 'not_found'
  | 'failed'
  | 'transferred'
  | 'transfer_failed'
  | 'hangup_command'
  | 'shutdown';

/**
 * Events of the call model, per user leg: the state changes (`call.early`, `call.confirmed`,
 * `call.terminated`) and what happens on an established call (`call.held`, `call.resumed`,
 * `call.moved`, `call.transferred`).
 */
export type CallEventType =
  | 'call.early'
  | 'call.confirmed'
  | 'call.terminated'
  | 'call.held'
  | 'call.resumed'
  | 'call.moved'
  | 'call.transferred';

/** What the call control API sees of one user's leg of a call. */
export interface CallView {
  callId: string;
  branchId: string;
  state: CallState;
  direction: CallDirection;
  /** The user id in its domain. */
  localUserId: string | null;
  localNumber: string | null;
  remoteNumber: string | null;
  /** `DESKPHONE`, `SOFTPHONE`, `MOBILE`, or null before a device answered. */
  deviceType: DeviceKind | null;
  /** Public device id (`2.<uuid>`) of the device on the call, when known. */
  deviceId: string | null;
  held: boolean;
  startedAt: number;
  answeredAt: number | null;
  endedAt: number | null;
  terminationReason: TerminationReason | null;
}

/** Who a command acts for: a user by internal id, in an organization. */
export interface CallUser {
  organizationId: number;
  /** Internal user id. */
  id: number;
}

export type CallCommandErrorCode = 'not_found' | 'invalid_state' | 'not_registered' | 'busy' | 'failed';

export class CallCommandError extends Error {
  constructor(
    readonly code: CallCommandErrorCode,
    message: string,
    /** The SIP status that made the command fail, when one did. */
    readonly sipStatus?: number,
  ) {
    super(message);
    this.name = 'CallCommandError';
  }
}

/**
 * Commands on calls, by call id (acts for the caller / originator) or branch id (acts for that
 * user's leg). The call control API calls these; they are carried out with SIP.
 */
export interface CallCommands {
  /** Rings the user's device; when answered, calls `destination` and connects them (RFC 3725). */
  originate(user: CallUser, deviceId: string, destination: string): Promise<CallView>;
  /** CANCEL while ringing, BYE once confirmed. */
  hangup(callId: string): Promise<void>;
  /** re-INVITE towards the far party with `sendonly`, and the user's device with the answer. */
  hold(callId: string): Promise<void>;
  resume(callId: string): Promise<void>;
  /** SIP INFO `application/dtmf-relay`, one per digit, towards the far party. */
  sendDtmf(callId: string, digits: string): Promise<void>;
  /** Moves the user's side of a confirmed call to another of the user's devices. */
  move(callId: string, deviceId: string): Promise<void>;
  /**
   * Blind transfer: the user's leg is released at once (BYE, `transferred`); `destination` is rung
   * and, when it answers, connected to the far party (re-INVITE with its SDP). If it does not, the
   * far party's call ends (`transfer_failed`). Resolves once the user's leg is released.
   */
  blindTransfer(callId: string, destination: string): Promise<void>;
  list(user: CallUser): CallView[];
  get(callId: string): CallView | undefined;
}

// ---------------------------------------------------------------------------------------------
// Internals.

type Side = 'a' | 'b';
/** Read through a function: TypeScript would keep a narrowing across awaits. */
const ended = (call: { state: CallState }): boolean => call.state === 'TERMINATED';
const other = (s: Side): Side => (s === 'a' ? 'b' : 'a');

/** One SIP dialog of a call (the B2BUA end of it). */
class Leg {
  dialog: Dialog | undefined;
  /** The SDP this side last sent us. */
  remoteSdp: Buffer = Buffer.alloc(0);
  remoteContentType = 'application/sdp';
  /** Keeps the `o=` line of what we send this side consistent. */
  readonly versioner = new SdpVersioner();
  /** An INVITE transaction with this side in progress (re-INVITE glare → 491). */
  busy = false;
  /** 3PCC: the 2xx to our offerless INVITE awaits an ACK carrying the answer. */
  pendingAck: ((body: Buffer) => void) | undefined;
  /** UAS legs: the INVITE transaction while not answered. */
  inviteTx: ServerTransaction | undefined;
  constructor(
    readonly kind: 'uas' | 'uac',
    readonly deviceId: number | null,
    readonly userId: number | null,
  ) {}
}

interface Party {
  branchId: string;
  side: Side;
  direction: CallDirection;
  user: RoutableUser | null;
  localNumber: string | null;
  remoteNumber: string | null;
  deviceType: DeviceKind | null;
  deviceId: string | null;
  state: CallState;
  held: boolean;
  startedAt: number;
  answeredAt: number | null;
  endedAt: number | null;
  reason: TerminationReason | null;
}

interface Ringing {
  result: Promise<RingResult>;
  cancel(): void;
}

type RingResult =
  | { ok: true; leg: Leg; response: SipResponse; binding: RingTarget }
  | { ok: false; status: number; reason: string; cause: TerminationReason };

interface RingTarget {
  dest: Endpoint;
  uri: Uri;
  deviceId: number | null;
  userId: number | null;
}

class Call {
  readonly legs: { a?: Leg; b?: Leg } = {};
  readonly parties: Party[] = [];
  state: CallState = 'EARLY';
  ringing: Ringing | undefined;
  /** Run when the call ends: the client transactions it started drop their callbacks. */
  releasers: (() => void)[] = [];
  /** A command or relayed re-INVITE is in progress. */
  busy = false;
  private nextBranch = 1;
  constructor(
    readonly id: string,
    readonly org: Organization,
  ) {}

  branchId(): string {
    return `${this.id}.${this.nextBranch++}`;
  }
}

export interface B2buaOptions {
  database: DatabaseHandle;
  ua: UserAgentCore;
  auth: DeviceAuthenticator;
  organizations: OrganizationCache;
  store: BindingStore;
  router: Router;
  /** Devices, users and numbers in memory (see SipDirectory). */
  directory: SipDirectory;
  writer: BatchedWriter;
  clock: Clock;
  logger: SipLogger;
  /** Ringing time before a call is given up with 480 (default 60 s). */
  noAnswerTimeoutMs?: number;
  /** The organizations' SIP trunks by address: INVITEs from one come in without digest. */
  trunks?: TrunkDirectory;
}

const DTMF_RE = /^[0-9*#A-Da-d]{1,32}$/;

export class B2bua implements CallCommands {
  private readonly calls = new Map<string, Call>();
  private readonly dialogs = new Map<string, { call: Call; leg: Leg }>();
  private readonly byInviteTx = new Map<string, Call>();
  /** INVITEs cancelled before their call existed (while authenticated or routed): never rung. */
  private readonly cancelledEarly = new WeakSet<ServerTransaction>();
  private readonly deviceKinds = new Map<number, { kind: DeviceKind; deviceId: string }>();
  private readonly noAnswerMs: number;

  constructor(private readonly o: B2buaOptions) {
    this.noAnswerMs = o.noAnswerTimeoutMs ?? 60_000;
  }

  /** Calls in progress (for tests and metrics). */
  get activeCalls(): number {
    return this.calls.size;
  }

  private now(): number {
    return this.o.clock.now();
  }

  // -------------------------------------------------------------------------------------------
  // Requests from the network.

  /** INVITE, BYE, CANCEL, INFO, UPDATE, ... (REGISTER and OPTIONS go elsewhere). Never throws. */
  handleRequest(req: SipRequest, tx: ServerTransaction, source: Endpoint): void {
    const run = async (): Promise<void> => {
      if (req.method === 'CANCEL') return this.onCancel(req, tx);
      if (tagOf(getTo(req)) !== undefined) return this.onInDialog(req, tx);
      if (req.method === 'INVITE') return this.onInitialInvite(req, tx, source);
      this.o.ua.reply(tx, req.method === 'BYE' ? 481 : 405, {
        headers: [{ name: 'Allow', value: 'INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, REGISTER' }],
      });
    };
    run().catch((err: unknown) => {
      this.o.logger.error({ err, method: req.method }, 'SIP: B2BUA failed on a request');
      this.o.ua.reply(tx, 500);
    });
  }

  /** An ACK outside any transaction (the ACK for a 2xx). */
  handleAck(req: SipRequest): void {
    this.o.ua.receiveAck(req);
  }

  private async onCancel(req: SipRequest, tx: ServerTransaction): Promise<void> {
    const inviteTx = this.o.ua.layer.findInviteForCancel(req);
    if (!inviteTx) {
      this.o.ua.reply(tx, 481);
      return;
    }
    this.o.ua.reply(tx, 200);
    const call = this.byInviteTx.get(inviteTx.key);
    if (!call) {
      // An initial INVITE still being authenticated or routed: it ends here, and its handler sees
      // the mark after its next await and rings nobody. (A re-INVITE, with a To tag, is relayed
      // within its dialog and answered by the far side: it is not cancelled here.)
      if (
        inviteTx.state === 'proceeding' &&
        tagOf(getTo(inviteTx.request)) === undefined &&
        !this.cancelledEarly.has(inviteTx)
      ) {
        this.cancelledEarly.add(inviteTx);
        this.o.ua.reply(inviteTx, 487);
      }
      return;
    }
    if (call.state !== 'EARLY') return;
    const a = call.legs.a;
    if (a?.inviteTx) this.o.ua.reply(a.inviteTx, 487);
    if (a) a.inviteTx = undefined;
    call.ringing?.cancel();
    this.terminate(call, 'cancelled', 'a');
  }

  /**
   * Who is calling: over UDP (whose source can be forged) every out-of-dialog INVITE carries digest
   * credentials (407 challenge first; a nonce may be reused with a growing nc). Over TCP, an INVITE
   * on the very connection over which that device's REGISTER was digest-authenticated is trusted.
   * The From user must be the credentials' device (403 otherwise).
   */
  private async authenticateCaller(
    req: SipRequest,
    tx: ServerTransaction,
    source: Endpoint,
    org: Organization,
    fromUser: string,
  ): Promise<{ deviceId: number; userId: number } | undefined> {
    if (source.transport === 'tcp' && source.connectionId !== undefined) {
      const trusted = this.o.store.trustedConnection(source.connectionId);
      if (trusted && trusted.organizationId === org.id && trusted.aor === `sip:${fromUser}@${org.domain}`) {
        // Still the device that authenticated: not deleted, its password not rotated since.
        const now = await this.o.directory.device(org.id, fromUser);
        if (this.cancelledEarly.has(tx)) return undefined;
        if (now && now.device.id === trusted.deviceId && now.device.updatedAt === trusted.deviceVersion)
          return { deviceId: trusted.deviceId, userId: trusted.userId };
        this.o.store.distrustConnection(source.connectionId);
      }
    }
    const outcome = await this.o.auth.authenticate(req, org, true, source);
    if (this.cancelledEarly.has(tx)) return undefined;
    if (!outcome.ok) {
      replyAuthFailure(this.o.ua, tx, outcome);
      return undefined;
    }
    if (outcome.device.sipUsername !== fromUser) {
      this.o.ua.reply(tx, 403, { reason: 'From Does Not Match the Credentials' });
      return undefined;
    }
    return { deviceId: outcome.device.id, userId: outcome.device.userId };
  }

  private async onInitialInvite(req: SipRequest, tx: ServerTransaction, source: Endpoint): Promise<void> {
    const { ua } = this.o;
    const from = getFrom(req);
    if (!isSipUri(from.uri) || from.uri.user === undefined || !isSipUri(req.uri)) {
      ua.reply(tx, 403, { reason: 'Unknown Caller' });
      return;
    }
    // A CANCEL may come during any await below: after each, a cancelled INVITE stops here.
    const cancelled = (): boolean => this.cancelledEarly.has(tx);
    const org = await this.o.organizations.byDomain(from.uri.host);
    if (cancelled()) return;
    // A trunk's INVITE: from a domain we do not serve, or, over UDP, from the trunk's very address
    // and port without credentials. A phone of a served domain is never taken for a trunk (over
    // TCP trunks match on the address alone, which phones behind the same NAT share).
    const maybeTrunk =
      !org || (source.transport === 'udp' && getHeader(req, 'Proxy-Authorization') === undefined);
    const trunkOf = maybeTrunk ? ((await this.o.trunks?.organizationsAt(source)) ?? []) : [];
    if (cancelled()) return;
    if (trunkOf.length > 0) {
      await this.inboundFromTrunk(req, tx, source, from.uri.user, trunkOf);
      return;
    }
    if (!org) {
      ua.reply(tx, 403, { reason: 'Unknown Domain' });
      return;
    }
    const caller = await this.authenticateCaller(req, tx, source, org, from.uri.user);
    // (No 100 Trying of our own: the transaction sends one if nothing else is sent within 200 ms,
    // §17.2.1; a callee that rings at once spares the caller a message.)
    if (!caller || cancelled()) return;
    const callerUser = await this.o.router.userById(org, caller.userId);
    if (cancelled()) return;
    const dialled = req.uri.user ?? '';
    const destination = await this.o.router.resolve(org, dialled);
    if (cancelled()) return;

    const call = new Call(randomUUID(), org);
    const a = new Leg('uas', caller.deviceId, caller.userId);
    a.inviteTx = tx;
    a.remoteSdp = req.body;
    a.remoteContentType = getHeader(req, 'Content-Type') ?? 'application/sdp';
    a.dialog = uasDialog(req, source, generateTag());
    call.legs.a = a;
    this.calls.set(call.id, call);
    this.byInviteTx.set(tx.key, call);
    const kind = await this.deviceInfo(caller.deviceId);
    // Indexed now, so a CANCEL ended the call itself (no party to report: it never rang).
    if (ended(call)) return;
    const callerParty = this.addParty(call, {
      side: 'a',
      direction: 'OUTGOING',
      user: callerUser ?? null,
      localNumber: callerUser ? numberOf(callerUser) : from.uri.user,
      remoteNumber: destination.kind === 'user' ? numberOf(destination.user) : dialled,
      device: kind,
    });
    this.emit(call, callerParty, 'call.early');

    const fromAddr = this.callerAddress(
      org,
      destination,
      callerParty.localNumber,
      callerUser ? `${callerUser.firstName} ${callerUser.lastName}`.trim() : undefined,
    );
    let targets: RingTarget[] = [];
    let toAddr: NameAddr;
    let calleeParty: Party | undefined;
    switch (destination.kind) {
      case 'not-found':
        this.rejectA(call, 404, 'Not Found', 'not_found');
        return;
      case 'unavailable':
        this.rejectA(call, 480, destination.reason, 'unavailable');
        return;
      case 'user': {
        const u = destination.user;
        toAddr = { uri: parseUri(`sip:${encodeURIComponent(u.userId)}@${org.domain}`), params: new Map() };
        targets = this.targetsOfUser(org.id, u.id).filter((t) => t.deviceId !== caller.deviceId);
        calleeParty = this.addParty(call, {
          side: 'b',
          direction: 'INCOMING',
          user: u,
          localNumber: numberOf(u),
          remoteNumber: callerParty.localNumber,
          device: undefined,
        });
        break;
      }
      case 'group':
        toAddr = {
          uri: parseUri(`sip:${encodeURIComponent(destination.number)}@${org.domain}`),
          params: new Map(),
        };
        for (const agent of destination.agents) targets.push(...this.targetsOfUser(org.id, agent.id));
        break;
      case 'trunk':
        toAddr = {
          uri: parseUri(
            `sip:${encodeURIComponent(destination.number)}@${destination.trunk.domain ?? destination.trunk.endpoint.address}`,
          ),
          params: new Map(),
        };
        targets = [{ dest: destination.trunk.endpoint, uri: toAddr.uri, deviceId: null, userId: null }];
        break;
    }
    if (targets.length === 0) {
      if (calleeParty) this.emit(call, calleeParty, 'call.early');
      this.rejectA(call, 480, 'Temporarily Unavailable', 'unavailable');
      return;
    }
    if (calleeParty) this.emit(call, calleeParty, 'call.early');
    let ringingSent = false;
    const ringing = this.ring(call, targets, {
      offer: req.body.length > 0 ? { body: req.body, type: a.remoteContentType } : undefined,
      from: fromAddr,
      to: toAddr,
      timeoutMs: this.noAnswerMs,
      onProvisional: (res) => {
        if (!a.inviteTx || !a.dialog) return;
        if (res.status === 100) return;
        // Relay 180/183 (with early SDP when present); a plain 180 once.
        if (res.body.length === 0 && ringingSent) return;
        ringingSent = true;
        const headers: SipHeader[] = [
          { name: 'Contact', value: ua.local.contact(a.dialog.state.dest.transport) },
        ];
        if (res.body.length > 0)
          headers.push({ name: 'Content-Type', value: getHeader(res, 'Content-Type') ?? 'application/sdp' });
        ua.respond(
          a.inviteTx,
          createResponse(req, res.status === 183 ? 183 : 180, {
            toTag: a.dialog.localTag,
            headers,
            ...(res.body.length > 0 ? { body: a.versioner.rewrite(res.body) } : {}),
          }),
        );
      },
    });
    call.ringing = ringing;
    const result = await ringing.result;
    call.ringing = undefined;
    if (ended(call)) {
      if (result.ok) this.byeLeg(result.leg);
      return;
    }
    if (!result.ok) {
      this.rejectA(call, result.status, result.reason, result.cause);
      return;
    }
    const b = result.leg;
    call.legs.b = b;
    this.register(call, b);
    const answered = await this.deviceInfo(b.deviceId);
    if (!calleeParty && result.binding.userId !== null) {
      const agent = await this.o.router.userById(org, result.binding.userId);
      calleeParty = this.addParty(call, {
        side: 'b',
        direction: 'INCOMING',
        user: agent ?? null,
        localNumber: agent ? numberOf(agent) : null,
        remoteNumber: callerParty.localNumber,
        device: answered,
      });
      this.emit(call, calleeParty, 'call.early');
    } else if (calleeParty && answered) {
      calleeParty.deviceType = answered.kind;
      calleeParty.deviceId = answered.deviceId;
    }
    // Answer the caller with the callee's SDP.
    const inviteTx = a.inviteTx;
    a.inviteTx = undefined;
    this.byInviteTx.delete(tx.key);
    if (!inviteTx || !a.dialog) {
      this.terminate(call, 'failed');
      return;
    }
    this.register(call, a);
    this.confirm(call);
    const acked = await ua.answer(
      inviteTx,
      createResponse(req, 200, {
        toTag: a.dialog.localTag,
        headers: [
          { name: 'Contact', value: ua.local.contact(a.dialog.state.dest.transport) },
          ...(b.remoteSdp.length > 0 ? [{ name: 'Content-Type', value: b.remoteContentType }] : []),
        ],
        body: a.versioner.rewrite(b.remoteSdp),
      }),
    );
    if (!acked && !ended(call)) {
      this.o.logger.warn({ callId: call.id }, 'SIP: no ACK for the 2xx to the caller');
      this.hangupAll(call, 'failed');
    }
  }

  /**
   * An INVITE from an organization's trunk (matched by source, no digest): the dialled number must
   * be one of that organization's; its owner (a user, or the agents of a function number) is rung.
   */
  private async inboundFromTrunk(
    req: SipRequest,
    tx: ServerTransaction,
    source: Endpoint,
    caller: string,
    organizations: Organization[],
  ) {
    const cancelled = (): boolean => this.cancelledEarly.has(tx);
    const dialled = isSipUri(req.uri) ? (req.uri.user ?? '') : '';
    const owner = /^\+?[0-9]{1,20}$/.test(dialled) ? await this.o.directory.numberOwner(dialled) : undefined;
    if (cancelled()) return;
    const org = owner ? organizations.find((o) => o.id === owner.organizationId) : undefined;
    if (!org) {
      this.o.ua.reply(tx, 404, { reason: 'Not Found' });
      return;
    }
    const destination = await this.o.router.resolve(org, dialled);
    if (cancelled()) return;
    if (destination.kind === 'unavailable') {
      this.o.ua.reply(tx, 480, { reason: destination.reason });
      return;
    }
    // Only the organization's own users and function numbers: never back out to a trunk.
    if (destination.kind !== 'user' && destination.kind !== 'group') {
      this.o.ua.reply(tx, 404, { reason: 'Not Found' });
      return;
    }
    const user = destination.kind === 'user' ? destination.user : null;
    const call = new Call(randomUUID(), org);
    const a = new Leg('uas', null, null);
    a.inviteTx = tx;
    a.remoteSdp = req.body;
    a.remoteContentType = getHeader(req, 'Content-Type') ?? 'application/sdp';
    a.dialog = uasDialog(req, source, generateTag());
    call.legs.a = a;
    this.calls.set(call.id, call);
    this.byInviteTx.set(tx.key, call);
    let party: Party | undefined;
    const targets: RingTarget[] = [];
    if (user) {
      party = this.addParty(call, {
        side: 'b',
        direction: 'INCOMING',
        user,
        localNumber: numberOf(user),
        remoteNumber: caller,
        device: undefined,
      });
      this.emit(call, party, 'call.early');
      targets.push(...this.targetsOfUser(org.id, user.id));
    } else if (destination.kind === 'group') {
      for (const agent of destination.agents) targets.push(...this.targetsOfUser(org.id, agent.id));
    }
    if (targets.length === 0) {
      this.rejectA(call, 480, 'Temporarily Unavailable', 'unavailable');
      return;
    }
    const ringing = this.ring(call, targets, {
      offer: req.body.length > 0 ? { body: req.body, type: a.remoteContentType } : undefined,
      from: getFrom(req),
      to: {
        uri: parseUri(`sip:${encodeURIComponent(user ? user.userId : dialled)}@${org.domain}`),
        params: new Map(),
      },
      timeoutMs: this.noAnswerMs,
      onProvisional: () => {
        if (a.inviteTx && a.dialog)
          this.o.ua.respond(a.inviteTx, createResponse(req, 180, { toTag: a.dialog.localTag }));
      },
    });
    call.ringing = ringing;
    const result = await ringing.result;
    call.ringing = undefined;
    if (ended(call)) {
      if (result.ok) this.byeLeg(result.leg);
      return;
    }
    if (!result.ok) {
      this.rejectA(call, result.status, result.reason, result.cause);
      return;
    }
    const b = result.leg;
    call.legs.b = b;
    this.register(call, b);
    const info = await this.deviceInfo(b.deviceId);
    if (!party && result.binding.userId !== null) {
      const agent = (await this.o.router.userById(org, result.binding.userId)) ?? null;
      party = this.addParty(call, {
        side: 'b',
        direction: 'INCOMING',
        user: agent,
        localNumber: agent ? numberOf(agent) : dialled,
        remoteNumber: caller,
        device: info,
      });
      this.emit(call, party, 'call.early');
    } else if (party && info) {
      party.deviceType = info.kind;
      party.deviceId = info.deviceId;
    }
    if (ended(call)) return;
    a.inviteTx = undefined;
    this.byInviteTx.delete(tx.key);
    this.register(call, a);
    this.confirm(call);
    const acked = await this.o.ua.answer(
      tx,
      createResponse(req, 200, {
        toTag: a.dialog.localTag,
        headers: [
          { name: 'Contact', value: this.o.ua.local.contact(source.transport) },
          ...(b.remoteSdp.length > 0 ? [{ name: 'Content-Type', value: b.remoteContentType }] : []),
        ],
        body: a.versioner.rewrite(b.remoteSdp),
      }),
    );
    if (!acked && !ended(call)) {
      this.o.logger.warn({ callId: call.id }, 'SIP: no ACK for the 2xx to the trunk');
      this.hangupAll(call, 'failed');
    }
  }

  /**
   * The From of a call we place for `number`: towards a trunk its caller number when set (the
   * number the carrier lets the organization present), else the number itself.
   */
  private callerAddress(
    org: Organization,
    destination: Destination,
    number: string | null,
    displayName: string | undefined,
  ): NameAddr {
    const presented = destination.kind === 'trunk' ? (destination.trunk.callerNumber ?? number) : number;
    return {
      ...(displayName ? { displayName } : {}),
      uri: parseUri(`sip:${encodeURIComponent(presented ?? 'anonymous')}@${org.domain}`),
      params: new Map(),
    };
  }

  /** Final failure towards the caller's pending INVITE, and the end of the call. */
  private rejectA(call: Call, status: number, reason: string, cause: TerminationReason): void {
    const a = call.legs.a;
    if (a?.inviteTx) {
      this.byInviteTx.delete(a.inviteTx.key);
      this.o.ua.reply(a.inviteTx, status, { reason, ...(a.dialog ? { toTag: a.dialog.localTag } : {}) });
      a.inviteTx = undefined;
    }
    this.terminate(call, cause);
  }

  private async onInDialog(req: SipRequest, tx: ServerTransaction): Promise<void> {
    const { ua } = this.o;
    const entry = this.dialogs.get(dialogKey(getCallId(req), tagOf(getTo(req)) ?? ''));
    if (!entry) {
      ua.reply(tx, 481);
      return;
    }
    const { call, leg } = entry;
    if (!leg.dialog?.acceptRemoteSeq(req)) {
      ua.reply(tx, 500, { reason: 'CSeq Out of Order' });
      return;
    }
    const side: Side = call.legs.a === leg ? 'a' : 'b';
    const far = call.legs[other(side)];
    switch (req.method) {
      case 'BYE':
        ua.reply(tx, 200);
        this.unregister(leg);
        this.hangupAll(call, 'normal', side);
        return;
      case 'OPTIONS':
        ua.reply(tx, 200);
        return;
      case 'INVITE':
      case 'UPDATE':
      case 'INFO':
      case 'MESSAGE':
        break;
      default:
        ua.reply(tx, 501);
        return;
    }
    if (!far?.dialog || call.state !== 'CONFIRMED') {
      ua.reply(tx, req.method === 'INVITE' ? 491 : 481);
      return;
    }
    if (req.method === 'INVITE') {
      if (leg.busy || far.busy || call.busy) {
        ua.reply(tx, 491);
        return;
      }
      leg.dialog.refreshTarget(req);
      leg.busy = true;
      try {
        const res = await this.reinvite(call, far, req.body, getHeader(req, 'Content-Type'));
        if (res.status >= 200 && res.status < 300) {
          if (req.body.length > 0) leg.remoteSdp = req.body;
          this.trackHold(call, side, req.body);
          await ua.answer(
            tx,
            createResponse(req, 200, {
              headers: [
                { name: 'Contact', value: ua.local.contact(leg.dialog.state.dest.transport) },
                ...(res.body.length > 0 ? [{ name: 'Content-Type', value: far.remoteContentType }] : []),
              ],
              body: res.body.length > 0 ? leg.versioner.rewrite(res.body) : Buffer.alloc(0),
            }),
          );
        } else {
          ua.reply(tx, res.status, { reason: res.reason });
        }
      } finally {
        leg.busy = false;
      }
      return;
    }
    if (req.method === 'UPDATE' && req.body.length > 0) {
      await this.relayUpdate(call, side, leg, far, req, tx);
      return;
    }
    // Non-INVITE requests pass through to the other dialog, the response comes back.
    const ct = getHeader(req, 'Content-Type');
    const fwd = far.dialog.request(req.method, ua.local, {
      body: req.body,
      ...(ct ? { contentType: ct } : {}),
    });
    const res = await ua.request(fwd, far.dialog.state.dest).final;
    const rct = getHeader(res, 'Content-Type');
    ua.reply(tx, res.status, {
      reason: res.reason,
      ...(res.body.length > 0
        ? { body: res.body, headers: rct ? [{ name: 'Content-Type', value: rct }] : [] }
        : {}),
    });
  }

  /**
   * An UPDATE with an offer in a confirmed dialog (RFC 3311): relayed like a re-INVITE's offer,
   * with the `o=` version of each dialog kept consistent, and both sides' stored SDP updated (a
   * later hold offers the current description).
   */
  private async relayUpdate(
    call: Call,
    side: Side,
    leg: Leg,
    far: Leg,
    req: SipRequest,
    tx: ServerTransaction,
  ): Promise<void> {
    const { ua } = this.o;
    const farDialog = far.dialog;
    if (!leg.dialog || !farDialog) {
      ua.reply(tx, 481);
      return;
    }
    if (leg.busy || far.busy || call.busy) {
      ua.reply(tx, 491);
      return;
    }
    leg.dialog.refreshTarget(req);
    const type = getHeader(req, 'Content-Type') ?? 'application/sdp';
    leg.busy = true;
    try {
      const fwd = farDialog.request('UPDATE', ua.local, {
        body: far.versioner.rewrite(req.body),
        contentType: type,
      });
      const res = await ua.request(fwd, farDialog.state.dest).final;
      if (res.status < 200 || res.status >= 300) {
        ua.reply(tx, res.status, { reason: res.reason });
        if (res.status === 408 || res.status === 481) this.hangupAll(call, 'failed');
        return;
      }
      farDialog.refreshTarget(res);
      leg.remoteSdp = req.body;
      leg.remoteContentType = type;
      if (res.body.length > 0) {
        far.remoteSdp = res.body;
        far.remoteContentType = getHeader(res, 'Content-Type') ?? 'application/sdp';
      }
      this.trackHold(call, side, req.body);
      ua.reply(tx, 200, {
        headers: [
          { name: 'Contact', value: ua.local.contact(leg.dialog.state.dest.transport) },
          ...(res.body.length > 0 ? [{ name: 'Content-Type', value: far.remoteContentType }] : []),
        ],
        ...(res.body.length > 0 ? { body: leg.versioner.rewrite(res.body) } : {}),
      });
    } finally {
      leg.busy = false;
    }
  }

  /** Marks the parties held when the far side's offer holds them (hold from the phone). */
  private trackHold(call: Call, offeringSide: Side, body: Buffer): void {
    if (body.length === 0) return;
    const direction = directionOf(body);
    const held = direction === 'sendonly' || direction === 'inactive';
    for (const p of call.parties)
      if (p.side === offeringSide && p.state !== 'TERMINATED') this.setHeld(call, p, held, 'device');
  }

  /** Records a party's hold state; a change is a `call.held` / `call.resumed` event. */
  private setHeld(call: Call, party: Party, held: boolean, initiator: 'command' | 'device'): void {
    if (party.held === held) return;
    party.held = held;
    this.emit(call, party, held ? 'call.held' : 'call.resumed', { initiator });
  }

  /** A re-INVITE on `leg` with `body` as the offer; ACKs a 2xx; records the answer. */
  private async reinvite(call: Call, leg: Leg, body: Buffer, contentType?: string): Promise<SipResponse> {
    const dialog = leg.dialog;
    if (!dialog) throw new CallCommandError('invalid_state', 'leg has no dialog');
    const { ua } = this.o;
    const req = dialog.request('INVITE', ua.local, {
      ...(body.length > 0
        ? { body: leg.versioner.rewrite(body), contentType: contentType ?? 'application/sdp' }
        : {}),
    });
    leg.busy = true;
    try {
      const res = await ua.request(req, dialog.state.dest).final;
      if (res.status >= 200 && res.status < 300) {
        dialog.refreshTarget(res);
        if (res.body.length > 0) {
          leg.remoteSdp = res.body;
          leg.remoteContentType = getHeader(res, 'Content-Type') ?? 'application/sdp';
        }
        ua.sendAck(dialog.request('ACK', ua.local, { cseq: getCSeq(req).seq }), dialog.state.dest, res);
      } else if (res.status === 408 || res.status === 481) {
        // §12.2.1.2: the dialog is gone.
        this.hangupAll(call, 'failed');
      }
      return res;
    } finally {
      leg.busy = false;
    }
  }

  // -------------------------------------------------------------------------------------------
  // Forking.

  private targetsOfUser(organizationId: number, userId: number): RingTarget[] {
    return this.o.store.ofUser(organizationId, userId).map((b) => this.targetOf(b));
  }

  private targetOf(b: SipBinding): RingTarget {
    return {
      dest: { transport: b.sourceTransport, address: b.sourceAddress, port: b.sourcePort },
      uri: parseUri(b.contact),
      deviceId: b.deviceId,
      userId: b.userId,
    };
  }

  /**
   * Rings `targets` in parallel: the first 2xx wins (ACKed at once when we made an offer; with no
   * offer the ACK waits for {@link Leg.pendingAck}), the others are cancelled; 6xx ends every
   * branch; otherwise the best failure once all failed; `timeoutMs` without answer → 480.
   */
  private ring(
    call: Call,
    targets: RingTarget[],
    opts: {
      offer: { body: Buffer; type: string } | undefined;
      from: View<NameAddr>;
      to: View<NameAddr>;
      timeoutMs: number;
      onProvisional?: (res: SipResponse) => void;
    },
  ): Ringing {
    const { ua } = this.o;
    interface Branch {
      target: RingTarget;
      pending: PendingRequest;
      final: number;
      cancelWanted: boolean;
      cancelSent: boolean;
      /** The leg this branch's 2xx made, when it won. */
      leg?: Leg;
    }
    const branches: Branch[] = [];
    let done = false;
    let resolveResult: ((r: RingResult) => void) | undefined;
    const result = new Promise<RingResult>((resolve) => (resolveResult = resolve));
    const noAnswer: { timer?: Timer } = {};
    const finish = (r: RingResult): void => {
      if (done) return;
      done = true;
      noAnswer.timer?.cancel();
      for (const b of branches) if (b.final === 0) cancelBranch(b);
      resolveResult?.(r);
      // (Not kept: the transactions' callbacks reach this closure for 64*T1 more.)
      resolveResult = undefined;
    };
    const cancelBranch = (b: Branch): void => {
      if (b.cancelSent || b.final !== 0) return;
      if (b.pending.provisional) {
        b.cancelSent = true;
        void ua.cancel(b.pending);
      } else {
        b.cancelWanted = true;
      }
    };
    const ackAndBye = (invite: SipRequest, res: SipResponse, dest: Endpoint): void =>
      ua.dropFork(invite, res, dest);
    for (const target of targets) {
      const from: View<NameAddr> = { ...opts.from, params: new Map([['tag', generateTag()]]) };
      const invite = newInvite({
        local: ua.local,
        target: target.uri,
        dest: target.dest,
        from,
        to: opts.to,
        callId: generateCallId(),
        ...(opts.offer ? { body: opts.offer.body, contentType: opts.offer.type } : {}),
      });
      const branch: Branch = {
        target,
        final: 0,
        cancelWanted: false,
        cancelSent: false,
        pending: ua.request(invite, target.dest, {
          onProvisional: (res) => {
            if (branch.cancelWanted && !branch.cancelSent) {
              branch.cancelSent = true;
              void ua.cancel(branch.pending);
              return;
            }
            if (!done) opts.onProvisional?.(res);
          },
          onExtra2xx: (res) => {
            const tag = tagOf(getTo(res));
            if (tag === undefined) return;
            // The winning answer again (its ACK waits for the other side's SDP, RFC 3725 flow I,
            // or the retransmission crossed our ACK): absorbed; re-ACKed once the ACK is sent.
            if (branch.leg?.dialog?.remoteTag === tag) return;
            // Another fork of this INVITE answered too: that dialog is not wanted.
            ackAndBye(invite, res, target.dest);
          },
        }),
      };
      branches.push(branch);
      // Once the call is over, its INVITE transactions (alive 64*T1 more) let go of this ring.
      call.releasers.push(() => branch.pending.release());
      void branch.pending.final.then((res) => {
        branch.final = res.status;
        if (res.status < 300) {
          if (done) {
            ackAndBye(invite, res, target.dest);
            return;
          }
          const leg = new Leg('uac', target.deviceId, target.userId);
          const dialog = uacDialog(invite, res, target.dest);
          leg.dialog = dialog;
          leg.remoteSdp = res.body;
          leg.remoteContentType = getHeader(res, 'Content-Type') ?? 'application/sdp';
          const seq = getCSeq(invite).seq;
          if (opts.offer) {
            leg.versioner.rewrite(opts.offer.body);
            ua.sendAck(dialog.request('ACK', ua.local, { cseq: seq }), target.dest, res);
          } else {
            leg.pendingAck = (body) => {
              leg.pendingAck = undefined;
              ua.sendAck(
                dialog.request('ACK', ua.local, {
                  cseq: seq,
                  ...(body.length > 0 ? { body: leg.versioner.rewrite(body) } : {}),
                }),
                target.dest,
                res,
              );
            };
          }
          branch.leg = leg;
          finish({ ok: true, leg, response: res, binding: target });
          return;
        }
        if (done) return;
        if (res.status >= 600) {
          finish({
            ok: false,
            status: res.status,
            reason: res.reason,
            cause: res.status === 603 ? 'declined' : res.status === 600 ? 'busy' : 'failed',
          });
          return;
        }
        if (branches.every((b) => b.final !== 0)) {
          const statuses = branches.map((b) => b.final);
          if (statuses.includes(486)) finish({ ok: false, status: 486, reason: 'Busy Here', cause: 'busy' });
          else if (statuses.every((s) => s === 487))
            finish({ ok: false, status: 487, reason: 'Request Terminated', cause: 'cancelled' });
          else finish({ ok: false, status: 480, reason: 'Temporarily Unavailable', cause: 'unavailable' });
        }
      });
    }
    noAnswer.timer = this.o.clock.setTimer(opts.timeoutMs, () =>
      finish({ ok: false, status: 480, reason: 'No Answer', cause: 'no_answer' }),
    );
    return {
      result,
      cancel: () => finish({ ok: false, status: 487, reason: 'Request Terminated', cause: 'cancelled' }),
    };
  }

  // -------------------------------------------------------------------------------------------
  // Call model.

  private register(call: Call, leg: Leg): void {
    if (leg.dialog) this.dialogs.set(leg.dialog.key, { call, leg });
  }

  private unregister(leg: Leg | undefined): void {
    if (leg?.dialog) this.dialogs.delete(leg.dialog.key);
  }

  private async deviceInfo(
    deviceId: number | null,
  ): Promise<{ kind: DeviceKind; deviceId: string } | undefined> {
    if (deviceId === null) return undefined;
    const hit = this.deviceKinds.get(deviceId);
    if (hit) return hit;
    const info = await new RegistrationRepository(this.o.database.db).deviceSummary(deviceId);
    if (info) {
      if (this.deviceKinds.size > 50_000) this.deviceKinds.clear();
      this.deviceKinds.set(deviceId, info);
    }
    return info;
  }

  private addParty(
    call: Call,
    p: {
      side: Side;
      direction: CallDirection;
      user: RoutableUser | null;
      localNumber: string | null;
      remoteNumber: string | null;
      device: { kind: DeviceKind; deviceId: string } | undefined;
    },
  ): Party {
    const party: Party = {
      branchId: call.branchId(),
      side: p.side,
      direction: p.direction,
      user: p.user,
      localNumber: p.localNumber,
      remoteNumber: p.remoteNumber,
      deviceType: p.device?.kind ?? null,
      deviceId: p.device?.deviceId ?? null,
      state: 'EARLY',
      held: false,
      startedAt: this.now(),
      answeredAt: null,
      endedAt: null,
      reason: null,
    };
    call.parties.push(party);
    return party;
  }

  private confirm(call: Call): void {
    call.state = 'CONFIRMED';
    for (const p of call.parties) {
      if (p.state !== 'EARLY') continue;
      p.state = 'CONFIRMED';
      p.answeredAt = this.now();
      this.emit(call, p, 'call.confirmed');
    }
  }

  private endParty(call: Call, party: Party, reason: TerminationReason): void {
    if (party.state === 'TERMINATED') return;
    party.state = 'TERMINATED';
    party.endedAt = this.now();
    party.reason = reason;
    this.emit(call, party, 'call.terminated');
    if (!party.user) return;
    const record = {
      organizationId: call.org.id,
      callId: call.id,
      branchId: party.branchId,
      direction: party.direction,
      userId: party.user.id,
      localNumber: party.localNumber,
      remoteNumber: party.remoteNumber,
      deviceType: party.deviceType,
      startedAt: party.startedAt,
      answeredAt: party.answeredAt,
      endedAt: party.endedAt,
      terminationReason: reason,
    };
    this.o.writer.push({ record });
  }

  /**
   * Ends the call: every party still on it gets its reason (`normal` becomes local/remote hangup
   * from `by`, the side that ended it).
   */
  private terminate(call: Call, cause: TerminationReason | 'normal', by?: Side): void {
    if (call.state === 'TERMINATED') return;
    call.state = 'TERMINATED';
    for (const p of call.parties) {
      let reason: TerminationReason;
      if (cause === 'normal')
        reason = by === undefined ? 'remote_hangup' : p.side === by ? 'local_hangup' : 'remote_hangup';
      else if (cause === 'cancelled' && by !== undefined && p.side === by) reason = 'local_hangup';
      else reason = cause;
      this.endParty(call, p, reason);
    }
    this.unregister(call.legs.a);
    this.unregister(call.legs.b);
    const a = call.legs.a;
    if (a?.inviteTx) this.byInviteTx.delete(a.inviteTx.key);
    this.calls.delete(call.id);
    for (const release of call.releasers.splice(0)) release();
  }

  private byeLeg(leg: Leg | undefined): void {
    if (!leg?.dialog) return;
    this.unregister(leg);
    const { ua } = this.o;
    if (leg.pendingAck) leg.pendingAck(Buffer.alloc(0));
    void ua.request(leg.dialog.request('BYE', ua.local), leg.dialog.state.dest).final;
  }

  /** BYE on every established leg except `by` (which hung up itself), and the end of the call. */
  private hangupAll(call: Call, cause: TerminationReason | 'normal', by?: Side): void {
    if (call.state === 'TERMINATED') return;
    for (const side of ['a', 'b'] as const) {
      const leg = call.legs[side];
      if (!leg || side === by) continue;
      if (leg.inviteTx) {
        this.o.ua.reply(leg.inviteTx, 487);
        leg.inviteTx = undefined;
      } else {
        this.byeLeg(leg);
      }
    }
    call.ringing?.cancel();
    this.terminate(call, cause, by);
  }

  private emit(call: Call, party: Party, type: CallEventType, extra: Record<string, unknown> = {}): void {
    const at = this.now();
    const data = {
      call_id: call.id,
      branch_id: party.branchId,
      direction: party.direction,
      local_user_id: party.user?.userId ?? null,
      local_number: party.localNumber,
      device_type: party.deviceType,
      remote_number: party.remoteNumber,
      termination_reason: party.reason,
      held: party.held,
      device_id: party.deviceId,
      timestamps: { started: party.startedAt, answered: party.answeredAt, ended: party.endedAt, event: at },
      ...extra,
    };
    this.o.writer.push({
      event: { organizationId: call.org.id, type, time: at, userId: party.user?.id ?? null, data },
    });
  }

  private view(call: Call, p: Party): CallView {
    return {
      callId: call.id,
      branchId: p.branchId,
      state: p.state,
      direction: p.direction,
      localUserId: p.user?.userId ?? null,
      localNumber: p.localNumber,
      remoteNumber: p.remoteNumber,
      deviceType: p.deviceType,
      deviceId: p.deviceId,
      held: p.held,
      startedAt: p.startedAt,
      answeredAt: p.answeredAt,
      endedAt: p.endedAt,
      terminationReason: p.reason,
    };
  }

  /** The call and the party a call id or branch id names. */
  private find(callId: string): { call: Call; party: Party } {
    const dot = callId.lastIndexOf('.');
    const call = this.calls.get(callId) ?? (dot > 0 ? this.calls.get(callId.slice(0, dot)) : undefined);
    if (!call) throw new CallCommandError('not_found', `no call ${callId}`);
    const party =
      call.parties.find((p) => p.branchId === callId && p.state !== 'TERMINATED') ??
      call.parties.find((p) => p.state !== 'TERMINATED');
    if (!party) throw new CallCommandError('not_found', `no call ${callId}`);
    return { call, party };
  }

  // -------------------------------------------------------------------------------------------
  // Commands.

  list(user: CallUser): CallView[] {
    const out: CallView[] = [];
    for (const call of this.calls.values()) {
      if (call.org.id !== user.organizationId) continue;
      for (const p of call.parties)
        if (p.user?.id === user.id && p.state !== 'TERMINATED') out.push(this.view(call, p));
    }
    return out;
  }

  get(callId: string): CallView | undefined {
    try {
      const { call, party } = this.find(callId);
      return this.view(call, party);
    } catch {
      return undefined;
    }
  }

  private async device(org: Organization, userId: number, deviceId: string): Promise<Device> {
    const device = await new DeviceRepository(this.o.database.db).get(org.id, deviceId);
    if (!device || device.userId !== userId) throw new CallCommandError('not_found', `no device ${deviceId}`);
    return device;
  }

  async originate(user: CallUser, deviceId: string, destinationText: string): Promise<CallView> {
    const org = await this.orgById(user.organizationId);
    const device = await this.device(org, user.id, deviceId);
    const bindings = this.o.store.ofDevice(device.id);
    if (bindings.length === 0)
      throw new CallCommandError('not_registered', `device ${deviceId} is not registered`);
    const me = await this.o.router.userById(org, user.id);
    if (!me) throw new CallCommandError('not_found', 'no such user');
    const destination = await this.o.router.resolve(org, destinationText);
    if (destination.kind === 'not-found')
      throw new CallCommandError('not_found', `cannot route ${destinationText}`);
    if (destination.kind === 'unavailable') throw new CallCommandError('failed', destination.reason, 480);

    const call = new Call(randomUUID(), org);
    this.calls.set(call.id, call);
    const party = this.addParty(call, {
      side: 'a',
      direction: 'OUTGOING',
      user: me,
      localNumber: numberOf(me),
      remoteNumber: destination.kind === 'user' ? numberOf(destination.user) : destinationText,
      device: { kind: device.kind, deviceId: device.deviceId },
    });
    this.emit(call, party, 'call.early');
    void this.runOriginate(call, me, bindings, destination, destinationText).catch((err: unknown) => {
      this.o.logger.error({ err, callId: call.id }, 'SIP: originate failed');
      this.hangupAll(call, 'failed');
    });
    return this.view(call, party);
  }

  private async runOriginate(
    call: Call,
    me: RoutableUser,
    bindings: SipBinding[],
    destination: Awaited<ReturnType<Router['resolve']>>,
    destinationText: string,
  ): Promise<void> {
    const org = call.org;
    // 1. Ring the user's own device without an offer (RFC 3725 flow I).
    const ringA = this.ring(
      call,
      bindings.map((b) => this.targetOf(b)),
      {
        offer: undefined,
        from: {
          displayName: destinationText,
          uri: parseUri(`sip:${encodeURIComponent(destinationText)}@${org.domain}`),
          params: new Map(),
        },
        to: { uri: parseUri(`sip:${encodeURIComponent(me.userId)}@${org.domain}`), params: new Map() },
        timeoutMs: this.noAnswerMs,
      },
    );
    call.ringing = ringA;
    const ra = await ringA.result;
    call.ringing = undefined;
    if (ended(call)) {
      if (ra.ok) this.byeLeg(ra.leg);
      return;
    }
    if (!ra.ok) {
      this.terminate(call, ra.cause === 'cancelled' ? 'hangup_command' : ra.cause);
      return;
    }
    const a = ra.leg;
    call.legs.a = a;
    this.register(call, a);
    // 2. Call the destination with the device's offer.
    let targets: RingTarget[] = [];
    let to: NameAddr;
    let calleeParty: Party | undefined;
    if (destination.kind === 'user') {
      to = {
        uri: parseUri(`sip:${encodeURIComponent(destination.user.userId)}@${org.domain}`),
        params: new Map(),
      };
      targets = this.targetsOfUser(org.id, destination.user.id).filter((t) => t.deviceId !== a.deviceId);
      calleeParty = this.addParty(call, {
        side: 'b',
        direction: 'INCOMING',
        user: destination.user,
        localNumber: numberOf(destination.user),
        remoteNumber: numberOf(me),
        device: undefined,
      });
      this.emit(call, calleeParty, 'call.early');
    } else if (destination.kind === 'group') {
      to = {
        uri: parseUri(`sip:${encodeURIComponent(destination.number)}@${org.domain}`),
        params: new Map(),
      };
      for (const agent of destination.agents) targets.push(...this.targetsOfUser(org.id, agent.id));
    } else if (destination.kind === 'trunk') {
      to = {
        uri: parseUri(
          `sip:${encodeURIComponent(destination.number)}@${destination.trunk.domain ?? destination.trunk.endpoint.address}`,
        ),
        params: new Map(),
      };
      targets = [{ dest: destination.trunk.endpoint, uri: to.uri, deviceId: null, userId: null }];
    } else {
      this.byeLeg(a);
      this.terminate(call, 'not_found');
      return;
    }
    if (targets.length === 0) {
      this.byeLeg(a);
      this.terminate(call, 'unavailable');
      return;
    }
    const ringB = this.ring(call, targets, {
      offer: { body: a.remoteSdp, type: a.remoteContentType },
      from: this.callerAddress(org, destination, numberOf(me), `${me.firstName} ${me.lastName}`.trim()),
      to,
      // The device's 2xx waits for its ACK: keep the wait within its retransmission window.
      timeoutMs: Math.min(this.noAnswerMs, 28_000),
    });
    call.ringing = ringB;
    const rb = await ringB.result;
    call.ringing = undefined;
    if (ended(call)) {
      if (rb.ok) this.byeLeg(rb.leg);
      return;
    }
    if (!rb.ok) {
      this.byeLeg(a);
      this.terminate(call, rb.cause === 'cancelled' ? 'hangup_command' : rb.cause);
      return;
    }
    const b = rb.leg;
    call.legs.b = b;
    this.register(call, b);
    a.pendingAck?.(b.remoteSdp);
    if (!calleeParty && rb.binding.userId !== null) {
      const agent = await this.o.router.userById(org, rb.binding.userId);
      calleeParty = this.addParty(call, {
        side: 'b',
        direction: 'INCOMING',
        user: agent ?? null,
        localNumber: agent ? numberOf(agent) : null,
        remoteNumber: numberOf(me),
        device: undefined,
      });
      this.emit(call, calleeParty, 'call.early');
    }
    const info = await this.deviceInfo(b.deviceId);
    if (calleeParty && info) {
      calleeParty.deviceType = info.kind;
      calleeParty.deviceId = info.deviceId;
    }
    this.confirm(call);
  }

  private async orgById(id: number): Promise<Organization> {
    const org = await new OrganizationRepository(this.o.database.db).getById(id);
    if (!org) throw new CallCommandError('not_found', 'no such organization');
    return org;
  }

  async hangup(callId: string): Promise<void> {
    const { call, party } = this.find(callId);
    if (call.state === 'EARLY') {
      const a = call.legs.a;
      if (a?.inviteTx) {
        this.o.ua.reply(a.inviteTx, 487);
        this.byInviteTx.delete(a.inviteTx.key);
        a.inviteTx = undefined;
      }
      call.ringing?.cancel();
      if (call.legs.a?.dialog && call.legs.a.kind === 'uac') this.byeLeg(call.legs.a);
      this.terminate(call, 'hangup_command');
      return;
    }
    this.hangupAll(call, 'hangup_command');
    void party;
  }

  /** Runs a command that needs a confirmed call and no other command in progress. */
  private async exclusive<T>(callId: string, fn: (call: Call, party: Party) => Promise<T>): Promise<T> {
    const { call, party } = this.find(callId);
    if (call.state !== 'CONFIRMED')
      throw new CallCommandError('invalid_state', 'the call is not established');
    if (call.busy || call.legs.a?.busy || call.legs.b?.busy)
      throw new CallCommandError('busy', 'another operation is in progress on this call');
    call.busy = true;
    try {
      return await fn(call, party);
    } finally {
      call.busy = false;
    }
  }

  private legsOf(call: Call, party: Party): { local: Leg; far: Leg } {
    const local = call.legs[party.side];
    const far = call.legs[other(party.side)];
    if (!local?.dialog || !far?.dialog)
      throw new CallCommandError('invalid_state', 'the call has no dialogs');
    return { local, far };
  }

  private async setHold(callId: string, hold: boolean): Promise<void> {
    await this.exclusive(callId, async (call, party) => {
      const { local, far } = this.legsOf(call, party);
      const offer = withDirection(local.remoteSdp, hold ? 'sendonly' : 'sendrecv');
      const res = await this.reinvite(call, far, offer, local.remoteContentType);
      if (res.status >= 300)
        throw new CallCommandError('failed', `far party answered ${res.status} ${res.reason}`, res.status);
      // The user's device learns the far party's answer, so both directions agree.
      const back = await this.reinvite(call, local, far.remoteSdp, far.remoteContentType);
      if (back.status >= 300)
        throw new CallCommandError('failed', `device answered ${back.status} ${back.reason}`, back.status);
      this.setHeld(call, party, hold, 'command');
    });
  }

  hold(callId: string): Promise<void> {
    return this.setHold(callId, true);
  }

  resume(callId: string): Promise<void> {
    return this.setHold(callId, false);
  }

  async sendDtmf(callId: string, digits: string): Promise<void> {
    if (!DTMF_RE.test(digits)) throw new CallCommandError('failed', 'digits must be 1–32 of 0-9 * # A-D');
    await this.exclusive(callId, async (call, party) => {
      const { far } = this.legsOf(call, party);
      const { ua } = this.o;
      for (const digit of digits) {
        const dialog = far.dialog;
        if (!dialog) throw new CallCommandError('invalid_state', 'the call ended');
        const req = dialog.request('INFO', ua.local, {
          body: Buffer.from(`Signal=${digit.toUpperCase()}\r\nDuration=160\r\n`),
          contentType: 'application/dtmf-relay',
        });
        const res = await ua.request(req, dialog.state.dest).final;
        if (res.status >= 300)
          throw new CallCommandError('failed', `INFO answered ${res.status} ${res.reason}`, res.status);
      }
    });
  }

  /**
   * Replaces the user's leg with a new one to `targets` (3PCC): the new device is invited without
   * an offer, its offer goes to the far party in a re-INVITE, the far party's answer goes in the
   * ACK; then the old leg gets BYE.
   */
  private async replaceLocal(
    call: Call,
    party: Party,
    targets: RingTarget[],
    identity: { from: NameAddr; to: NameAddr },
  ): Promise<Leg> {
    const { local, far } = this.legsOf(call, party);
    const ringing = this.ring(call, targets, {
      offer: undefined,
      ...identity,
      timeoutMs: Math.min(this.noAnswerMs, 28_000),
    });
    const r = await ringing.result;
    if (!r.ok) throw new CallCommandError('failed', `the new leg failed: ${r.status} ${r.reason}`, r.status);
    const fresh = r.leg;
    if (ended(call)) {
      this.byeLeg(fresh);
      throw new CallCommandError('invalid_state', 'the call ended');
    }
    const res = await this.reinvite(call, far, fresh.remoteSdp, fresh.remoteContentType);
    if (res.status >= 300) {
      this.byeLeg(fresh);
      throw new CallCommandError('failed', `far party answered ${res.status} ${res.reason}`, res.status);
    }
    fresh.pendingAck?.(far.remoteSdp);
    call.legs[party.side] = fresh;
    this.register(call, fresh);
    this.byeLeg(local);
    return fresh;
  }

  async move(callId: string, deviceId: string): Promise<void> {
    await this.exclusive(callId, async (call, party) => {
      if (!party.user) throw new CallCommandError('invalid_state', 'not a user leg');
      const device = await this.device(call.org, party.user.id, deviceId);
      const bindings = this.o.store.ofDevice(device.id);
      if (bindings.length === 0)
        throw new CallCommandError('not_registered', `device ${deviceId} is not registered`);
      const org = call.org;
      await this.replaceLocal(
        call,
        party,
        bindings.map((b) => this.targetOf(b)),
        {
          from: {
            uri: parseUri(`sip:${encodeURIComponent(party.remoteNumber ?? 'anonymous')}@${org.domain}`),
            params: new Map(),
          },
          to: {
            uri: parseUri(`sip:${encodeURIComponent(party.user.userId)}@${org.domain}`),
            params: new Map(),
          },
        },
      );
      const previous = party.deviceId;
      party.deviceType = device.kind;
      party.deviceId = device.deviceId;
      this.emit(call, party, 'call.moved', { previous_device_id: previous });
    });
  }

  /** Where a destination rings: its targets, the To URI, the user when it is one. */
  private targetsOf(
    org: Organization,
    destination: Awaited<ReturnType<Router['resolve']>>,
    destinationText: string,
  ): { targets: RingTarget[]; toUri: Uri; user: RoutableUser | null } {
    if (destination.kind === 'user') {
      const user = destination.user;
      return {
        targets: this.targetsOfUser(org.id, user.id),
        toUri: parseUri(`sip:${encodeURIComponent(user.userId)}@${org.domain}`),
        user,
      };
    }
    if (destination.kind === 'group') {
      const targets: RingTarget[] = [];
      for (const agent of destination.agents) targets.push(...this.targetsOfUser(org.id, agent.id));
      return {
        targets,
        toUri: parseUri(`sip:${encodeURIComponent(destination.number)}@${org.domain}`),
        user: null,
      };
    }
    if (destination.kind === 'trunk') {
      const toUri = parseUri(
        `sip:${encodeURIComponent(destination.number)}@${destination.trunk.domain ?? destination.trunk.endpoint.address}`,
      );
      return {
        targets: [{ dest: destination.trunk.endpoint, uri: toUri, deviceId: null, userId: null }],
        toUri,
        user: null,
      };
    }
    if (destination.kind === 'unavailable') throw new CallCommandError('failed', destination.reason, 480);
    throw new CallCommandError('not_found', `cannot route ${destinationText}`);
  }

  async blindTransfer(callId: string, destinationText: string): Promise<void> {
    const { call, party } = this.find(callId);
    const check = (): void => {
      if (call.state !== 'CONFIRMED' || party.state === 'TERMINATED')
        throw new CallCommandError('invalid_state', 'the call is not established');
      if (call.busy || call.legs.a?.busy || call.legs.b?.busy)
        throw new CallCommandError('busy', 'another operation is in progress on this call');
    };
    check();
    const org = call.org;
    const destination = await this.o.router.resolve(org, destinationText);
    const { targets, toUri, user } = this.targetsOf(org, destination, destinationText);
    check();
    if (targets.length === 0)
      throw new CallCommandError('failed', `${destinationText} is not reachable`, 480);
    const { local, far } = this.legsOf(call, party);
    const side = party.side;
    const farParty = call.parties.find((p) => p.side !== side && p.state !== 'TERMINATED');
    // 1. The user's leg goes at once: the transfer is blind.
    delete call.legs[side];
    this.byeLeg(local);
    this.emit(call, party, 'call.transferred', { transfer_target: destinationText });
    this.endParty(call, party, 'transferred');
    // 2. The target is rung (without an offer: its answer's offer goes to the far party).
    call.busy = true;
    const farNumber = farParty?.localNumber ?? party.remoteNumber;
    void this.completeTransfer(call, side, far, {
      targets,
      toUri,
      user,
      destinationText,
      farNumber,
      from: this.callerAddress(org, destination, farNumber, undefined),
    })
      .catch((err: unknown) => {
        this.o.logger.error({ err, callId: call.id }, 'SIP: blind transfer failed');
        this.hangupAll(call, 'transfer_failed');
      })
      .finally(() => {
        call.busy = false;
      });
  }

  private async completeTransfer(
    call: Call,
    side: Side,
    far: Leg,
    o: {
      targets: RingTarget[];
      toUri: Uri;
      user: RoutableUser | null;
      destinationText: string;
      farNumber: string | null;
      /** The From the target sees. */
      from: NameAddr;
    },
  ): Promise<void> {
    const org = call.org;
    let target: Party | undefined;
    if (o.user) {
      target = this.addParty(call, {
        side,
        direction: 'INCOMING',
        user: o.user,
        localNumber: numberOf(o.user),
        remoteNumber: o.farNumber,
        device: undefined,
      });
      this.emit(call, target, 'call.early');
    }
    const ringing = this.ring(call, o.targets, {
      offer: undefined,
      from: o.from,
      to: { uri: o.toUri, params: new Map() },
      // The target's 2xx waits for its ACK until the far party answered the re-INVITE.
      timeoutMs: Math.min(this.noAnswerMs, 28_000),
    });
    call.ringing = ringing;
    const r = await ringing.result;
    call.ringing = undefined;
    if (ended(call)) {
      if (r.ok) this.byeLeg(r.leg);
      return;
    }
    const fail = (cause: TerminationReason): void => {
      if (target) this.endParty(call, target, cause);
      this.hangupAll(call, 'transfer_failed');
    };
    if (!r.ok) {
      fail(r.cause === 'cancelled' ? 'failed' : r.cause);
      return;
    }
    const fresh = r.leg;
    const res = await this.reinvite(call, far, fresh.remoteSdp, fresh.remoteContentType);
    if (ended(call) || res.status >= 300) {
      this.byeLeg(fresh);
      if (!ended(call)) fail('failed');
      return;
    }
    fresh.pendingAck?.(far.remoteSdp);
    call.legs[side] = fresh;
    this.register(call, fresh);
    const info = await this.deviceInfo(fresh.deviceId);
    if (!target) {
      const answeredBy =
        fresh.userId !== null ? ((await this.o.router.userById(org, fresh.userId)) ?? null) : null;
      target = this.addParty(call, {
        side,
        direction: 'INCOMING',
        user: answeredBy,
        localNumber: answeredBy ? numberOf(answeredBy) : o.destinationText,
        remoteNumber: o.farNumber,
        device: info,
      });
      this.emit(call, target, 'call.early');
    } else if (info) {
      target.deviceType = info.kind;
      target.deviceId = info.deviceId;
    }
    if (ended(call)) return;
    target.state = 'CONFIRMED';
    target.answeredAt = this.now();
    this.emit(call, target, 'call.confirmed');
  }

  /** Ends every call (BYE / 487) for shutdown. */
  close(): void {
    for (const call of [...this.calls.values()]) this.hangupAll(call, 'shutdown');
  }
}
