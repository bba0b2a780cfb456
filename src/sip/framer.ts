/**
 * Content-Length framing of SIP over a stream transport (RFC 3261 §18.3): feed it the chunks a
 * TCP socket delivers, get back complete messages whatever the chunk boundaries.
 *
 * CRLFs between messages are skipped (§7.5). A double CRLF where a message could start is the
 * RFC 5626 §4.4.1 keep-alive ping and is reported as a `ping` frame so the transport can answer with
 * the single-CRLF pong. A message without Content-Length is taken to have no body.
 *
 * Limits bound the memory a connection can hold: a header section longer than
 * `maxMessageSize` without its empty line, or a declared message larger than it, is an error. After
 * {@link StreamFramer.push} has thrown, the stream cannot be re-synchronized: close the connection.
 */
import { bad, SipParseError } from './errors.js';
import { contentLengthOf, parseHeaderLines, resolveLimits, type SipLimits } from './message.js';

export type Frame = { type: 'message'; data: Buffer } | { type: 'ping' };

const CRLFCRLF = Buffer.from('\r\n\r\n');

export class StreamFramer {
  private readonly limits: SipLimits;
  private buf: Buffer = Buffer.alloc(0);
  /** Where to resume looking for the end of the header section. */
  private scanFrom = 0;
  private failed = false;

  constructor(limits?: Partial<SipLimits>) {
    this.limits = resolveLimits(limits);
  }

  /** Octets held while waiting for the rest of a message. */
  get buffered(): number {
    return this.buf.length;
  }

  /** Appends a chunk and returns the frames it completed. Throws {@link SipParseError}. */
  push(chunk: Buffer): Frame[] {
    if (this.failed) throw bad('stream framing already failed');
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const frames: Frame[] = [];
    try {
      for (;;) {
        const frame = this.next();
        if (!frame) break;
        frames.push(frame);
      }
    } catch (err) {
      this.failed = true;
      this.buf = Buffer.alloc(0);
      throw err;
    }
    return frames;
  }

  private consume(n: number): void {
    this.buf = this.buf.subarray(n);
    this.scanFrom = 0;
  }

  private next(): Frame | undefined {
    // Keep-alives and stray CRLFs before a start line.
    while (this.buf[0] === 13) {
      if (this.buf.length < 2) return undefined;
      if (this.buf[1] !== 10) throw bad('bare CR between messages');
      if (this.buf.length < 3) return undefined; // could be the start of a ping
      if (this.buf[2] === 13) {
        if (this.buf.length < 4) return undefined;
        if (this.buf[3] === 10) {
          this.consume(4);
          return { type: 'ping' };
        }
      }
      this.consume(2);
    }
    if (this.buf.length === 0) return undefined;
    const headEnd = this.buf.indexOf(CRLFCRLF, this.scanFrom);
    if (headEnd < 0) {
      if (this.buf.length > this.limits.maxMessageSize) {
        throw new SipParseError(513, 'header section too large');
      }
      this.scanFrom = Math.max(0, this.buf.length - 3);
      return undefined;
    }
    const lines = this.buf.subarray(0, headEnd).toString('utf8').split('\r\n');
    const length = contentLengthOf(parseHeaderLines(lines.slice(1), this.limits)) ?? 0;
    if (length > this.limits.maxBodySize) throw new SipParseError(413, 'body too large');
    const total = headEnd + CRLFCRLF.length + length;
    if (total > this.limits.maxMessageSize) throw new SipParseError(513, 'message too large');
    if (this.buf.length < total) {
      this.scanFrom = headEnd; // the header section is known; only the body is missing
      return undefined;
    }
    const data = Buffer.from(this.buf.subarray(0, total));
    this.consume(total);
    return { type: 'message', data };
  }
}
