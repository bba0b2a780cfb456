/**
 * Typed errors of the SIP message layer. A {@link SipParseError} carries the status code a server
 * answers with when the bad message was a request (RFC 3261 §21): 400 for syntax (§21.4.1), 505 for
 * an unknown protocol version (§21.5.6), 513 when the message or its header section exceeds a limit
 * (§21.5.7), 413 when only the body does (§21.4.11).
 */
export type SipParseStatus = 400 | 413 | 414 | 505 | 513;

const REASONS: Record<SipParseStatus, string> = {
  400: 'Bad Request',
  413: 'Request Entity Too Large',
  414: 'Request-URI Too Long',
  505: 'Version Not Supported',
  513: 'Message Too Large',
};

export class SipParseError extends Error {
  /** The reason phrase that goes with {@link status}. */
  readonly reason: string;

  constructor(
    /** The status a request with this fault is answered with. */
    readonly status: SipParseStatus,
    /** What is wrong, for logs (may be sent as a `Warning`/reason text: keep it free of secrets). */
    message: string,
  ) {
    super(message);
    this.name = 'SipParseError';
    this.reason = REASONS[status];
  }
}

/** Shorthand for the usual 400. */
export function bad(message: string): SipParseError {
  return new SipParseError(400, message);
}
