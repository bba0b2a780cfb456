/**
 * The user-agent core both halves of the B2BUA share (RFC 3261 §8, §13, §17 TU duties): sending a
 * request in a client transaction and awaiting its final response, ACKing 2xx answers (and
 * re-ACKing their retransmissions), retransmitting our own 2xx answers until the ACK comes
 * (§13.3.1.4), CANCEL, and answering through a server transaction without ever throwing.
 */
import type { Clock, Timer } from './clock.js';
import { cancelFor, uacDialog, type LocalAddress } from './dialog.js';
import {
  identityOf,
  createResponse,
  getCallId,
  getCSeq,
  getTo,
  serialize,
  tagOf,
  type ResponseOptions,
  type SipRequest,
  type SipResponse,
} from './message.js';
import type { ClientTransaction, ServerTransaction, TransactionLayer } from './transaction.js';
import type { Endpoint, SipLogger, SipTransportLayer } from './transport.js';

export interface PendingRequest {
  /** The final response: 408 on a timeout, 503 when the request could not be sent. */
  final: Promise<SipResponse>;
  /** Whether a provisional response arrived (a CANCEL may be sent only then, §9.1). */
  readonly provisional: boolean;
  request: SipRequest;
  dest: Endpoint;
  /**
   * The TU no longer needs its callbacks (its call is over): the transaction, which lives on for
   * 64*T1 to absorb retransmissions, stops holding them and all they reach. A 2xx of another
   * fork arriving later is then ACKed and ended with BYE here.
   */
  release(): void;
}

export interface RequestOptions {
  onProvisional?: (res: SipResponse) => void;
  /** 2xx to an INVITE after the first (retransmissions, other forks): re-ACKed here when known. */
  onExtra2xx?: (res: SipResponse) => void;
}

function synthetic(req: SipRequest, status: number, reason: string): SipResponse {
  return createResponse(req, status, { reason });
}

export class UserAgentCore {
  /** ACKs we sent for 2xx responses, by Call-ID|CSeq|To tag: re-sent on a retransmitted 2xx. */
  private readonly acks = new Map<string, { ack: SipRequest; dest: Endpoint; timer: Timer }>();
  /** Our 2xx answers waiting for their ACK, by Call-ID|CSeq. */
  private readonly awaitingAck = new Map<string, { resolve: (acked: boolean) => void; timer: Timer }>();

  constructor(
    readonly transport: SipTransportLayer,
    readonly layer: TransactionLayer,
    readonly local: LocalAddress,
    readonly clock: Clock,
    readonly logger: SipLogger,
  ) {}

  /** Sends `req` in a client transaction. Never throws. */
  request(req: SipRequest, dest: Endpoint, options: RequestOptions = {}): PendingRequest {
    // The callbacks below reach the TU's only through `handlers`, so `release` can drop them.
    const handlers: RequestOptions = { ...options };
    let provisional = false;
    let settled = false;
    // What the callbacks below keep of the request: once settled, only its identity (the
    // transaction lives on for 64*T1 and holds these callbacks).
    let sent = req;
    let resolveFinal: ((res: SipResponse) => void) | undefined;
    const final = new Promise<SipResponse>((resolve) => (resolveFinal = resolve));
    const settle = (res: SipResponse): void => {
      if (settled) return;
      settled = true;
      sent = identityOf(sent);
      resolveFinal?.(res);
      // Dropped, or through it the settled promise (and the response it holds) would stay
      // reachable from the transaction's callbacks for 64*T1.
      resolveFinal = undefined;
    };
    try {
      this.layer.sendRequest(req, dest, {
        onResponse: (res: SipResponse, _tx: ClientTransaction) => {
          if (res.status < 200) {
            if (settled) return;
            provisional = true;
            handlers.onProvisional?.(res);
            return;
          }
          if (settled) {
            if (res.status < 300 && !this.reAck(res)) {
              if (handlers.onExtra2xx) handlers.onExtra2xx(res);
              else this.dropFork(sent, res, dest);
            }
            return;
          }
          settle(res);
        },
        onTimeout: () => settle(synthetic(sent, 408, 'Request Timeout')),
        onTransportError: () => settle(synthetic(sent, 503, 'Service Unavailable')),
      });
    } catch (err) {
      this.logger.warn({ err }, 'SIP: could not start a client transaction');
      settle(synthetic(req, 503, 'Service Unavailable'));
    }
    return {
      final,
      get provisional() {
        return provisional;
      },
      request: req,
      dest,
      release: () => {
        handlers.onProvisional = undefined;
        handlers.onExtra2xx = undefined;
      },
    };
  }

  /**
   * A 2xx to our INVITE that nobody wants (another fork of it, §13.2.2.4): ACK it, then end the
   * dialog it made with BYE.
   */
  dropFork(invite: SipRequest, res: SipResponse, dest: Endpoint): void {
    if (getCSeq(res).method !== 'INVITE' || tagOf(getTo(res)) === undefined) return;
    const dialog = uacDialog(invite, res, dest);
    this.sendAck(dialog.request('ACK', this.local, { cseq: getCSeq(invite).seq }), dest, res);
    void this.request(dialog.request('BYE', this.local), dest).final;
  }

  /** Sends an ACK for a 2xx (§13.2.2.4, no transaction) and remembers it for retransmitted 2xx. */
  sendAck(ack: SipRequest, dest: Endpoint, response: SipResponse): void {
    const key = this.ackKey(response);
    this.send(ack, dest);
    const old = this.acks.get(key);
    old?.timer.cancel();
    const timer = this.clock.setTimer(64 * this.layer.timers.T1, () => this.acks.delete(key));
    this.acks.set(key, { ack, dest, timer });
  }

  private ackKey(res: SipResponse): string {
    return `${getCallId(res)}|${getCSeq(res).seq}|${tagOf(getTo(res)) ?? ''}`;
  }

  /** A retransmitted 2xx (through the transaction or stray): re-sends its ACK; false when unknown. */
  reAck(res: SipResponse): boolean {
    if (getCSeq(res).method !== 'INVITE') return false;
    const known = this.acks.get(this.ackKey(res));
    if (!known) return false;
    this.send(known.ack, known.dest);
    return true;
  }

  /** Sends a message outside any transaction. Never throws. */
  send(msg: SipRequest | SipResponse, dest: Endpoint): void {
    try {
      // A TypeError from serialize is ours: surface it in the log, not as a rejection.
      const data = serialize(msg);
      this.transport
        .sendBytes(data, dest)
        .catch((err: unknown) => this.logger.debug({ err }, 'SIP: send failed'));
    } catch (err) {
      this.logger.error({ err }, 'SIP: could not serialize a message');
    }
  }

  /** CANCEL for a pending INVITE (§9.1); resolves with the CANCEL's final response. */
  cancel(pending: PendingRequest): Promise<SipResponse> {
    return this.request(cancelFor(pending.request), pending.dest).final;
  }

  /** Answers through a server transaction; false when its state allows no such response. */
  respond(tx: ServerTransaction, res: SipResponse): boolean {
    try {
      tx.respond(res);
      return true;
    } catch (err) {
      this.logger.debug({ err, status: res.status }, 'SIP: response not sent');
      return false;
    }
  }

  reply(tx: ServerTransaction, status: number, options: ResponseOptions = {}): boolean {
    return this.respond(tx, createResponse(tx.request, status, options));
  }

  /** A final non-2xx answer that ends the transaction at once (a challenge: see respondStatelessly). */
  replyStatelessly(tx: ServerTransaction, status: number, options: ResponseOptions = {}): boolean {
    try {
      tx.respondStatelessly(createResponse(tx.request, status, options));
      return true;
    } catch (err) {
      this.logger.debug({ err, status }, 'SIP: response not sent');
      return false;
    }
  }

  /**
   * Sends a 2xx to an INVITE and retransmits it (T1 doubling to T2) until {@link receiveAck}
   * sees its ACK (§13.3.1.4). Resolves true on the ACK, false after 64*T1 without one.
   */
  answer(tx: ServerTransaction, res: SipResponse): Promise<boolean> {
    const key = `${getCallId(res)}|${getCSeq(res).seq}`;
    if (!this.respond(tx, res)) return Promise.resolve(false);
    const { T1, T2 } = this.layer.timers;
    return new Promise<boolean>((resolve) => {
      const started = this.clock.now();
      let interval = T1;
      const finish = (acked: boolean): void => {
        const entry = this.awaitingAck.get(key);
        entry?.timer.cancel();
        this.awaitingAck.delete(key);
        resolve(acked);
      };
      const arm = (): Timer =>
        this.clock.setTimer(interval, () => {
          if (!this.awaitingAck.has(key)) return;
          if (this.clock.now() - started >= 64 * T1 || tx.state === 'terminated') {
            finish(false);
            return;
          }
          if (tx.source.transport === 'udp') this.respond(tx, res);
          interval = Math.min(2 * interval, T2);
          const entry = this.awaitingAck.get(key);
          if (entry) entry.timer = arm();
        });
      const reliableTimeout = (): Timer => this.clock.setTimer(64 * T1, () => finish(false));
      this.awaitingAck.set(key, {
        resolve: finish,
        timer: tx.source.transport === 'udp' ? arm() : reliableTimeout(),
      });
    });
  }

  /** An ACK that matched no transaction: stops the 2xx retransmission it answers. */
  receiveAck(ack: SipRequest): boolean {
    const key = `${getCallId(ack)}|${getCSeq(ack).seq}`;
    const entry = this.awaitingAck.get(key);
    if (!entry) return false;
    entry.resolve(true);
    return true;
  }

  close(): void {
    for (const { timer } of this.acks.values()) timer.cancel();
    this.acks.clear();
    for (const entry of this.awaitingAck.values()) {
      entry.timer.cancel();
      entry.resolve(false);
    }
    this.awaitingAck.clear();
  }
}
