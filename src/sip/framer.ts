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
import { contentLengthOf, parseHeaderLines, resolveLimits, type SipLimits } from './headers.js';

export type Frame = { type: 'message'; data: Buffer } | { type: 'ping' };

const CRLFCRLF = Buffer.from('\r\n\r\n');

export class StreamFramer {
  private readonly limits: SipLimits;
  /** Backing store grown by doubling, so many tiny chunks cost linear, not quadratic, copying. */
  private store: Buffer = Buffer.alloc(0);
  private start = 0;
  private end = 0;
  /** Where to resume looking for the end of the header section. */
  private scanFrom = 0;
  /** Total length of the message at the head of the buffer, once its header section is known. */
  private expected: number | undefined;
  private failed = false;

  constructor(limits?: Partial<SipLimits>) {
    this.limits = resolveLimits(limits);
  }

  /** Octets held while waiting for the rest of a message. */
  get buffered(): number {
    return this.end - this.start;
  }

  /** The unconsumed octets (a view, valid until the next append). */
  private get buf(): Buffer {
    return this.store.subarray(this.start, this.end);
  }

  private append(chunk: Buffer): void {
    const live = this.end - this.start;
    if (this.end + chunk.length > this.store.length) {
      const size = Math.max(4096, 2 * (live + chunk.length));
      const next = Buffer.allocUnsafe(size);
      this.store.copy(next, 0, this.start, this.end);
      this.store = next;
      this.start = 0;
      this.end = live;
    }
    chunk.copy(this.store, this.end);
    this.end += chunk.length;
  }

  /** Appends a chunk and returns the frames it completed. Throws {@link SipParseError}. */
  push(chunk: Buffer): Frame[] {
    if (this.failed) throw bad('stream framing already failed');
    this.append(chunk);
    const frames: Frame[] = [];
    try {
      for (;;) {
        const frame = this.next();
        if (!frame) break;
        frames.push(frame);
      }
    } catch (err) {
      this.failed = true;
      this.store = Buffer.alloc(0);
      this.start = this.end = 0;
      throw err;
    }
    return frames;
  }

  private consume(n: number): void {
    this.start += n;
    if (this.start === this.end) this.start = this.end = 0;
    this.scanFrom = 0;
    this.expected = undefined;
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
    if (this.expected !== undefined) return this.take(this.expected);
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
    this.expected = total; // the header section is parsed once, however slowly the body arrives
    return this.take(total);
  }

  private take(total: number): Frame | undefined {
    if (this.buf.length < total) return undefined;
    const data = Buffer.from(this.buf.subarray(0, total));
    this.consume(total);
    return { type: 'message', data };
  }
}
