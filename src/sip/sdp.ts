/**
 * The little SDP handling a B2BUA that passes SDP through needs (RFC 4566, RFC 3264): the media
 * direction attribute for hold/resume, and the `o=` version that must grow whenever the session
 * description sent on a dialog changes (RFC 3264 §8).
 */

export type Direction = 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive';

const DIRECTIONS = /^a=(sendrecv|sendonly|recvonly|inactive)\s*$/;

function lines(sdp: string): string[] {
  return sdp.split(/\r?\n/).filter((l, i, all) => !(l === '' && i === all.length - 1));
}

/** The session's direction: the first direction attribute (session or media level), sendrecv if none. */
export function directionOf(sdp: Buffer): Direction {
  for (const l of lines(sdp.toString('utf8'))) {
    const m = DIRECTIONS.exec(l);
    if (m) return m[1] as Direction;
  }
  return 'sendrecv';
}

/**
 * Sets every media section (and the session level when it has one) to `direction`: existing
 * direction attributes are replaced, a media section without one gets it.
 */
export function withDirection(sdp: Buffer, direction: Direction): Buffer {
  const out: string[] = [];
  let inMedia = false;
  let mediaHasDirection = false;
  const closeMedia = (): void => {
    if (inMedia && !mediaHasDirection) out.push(`a=${direction}`);
  };
  for (const l of lines(sdp.toString('utf8'))) {
    if (l.startsWith('m=')) {
      closeMedia();
      inMedia = true;
      mediaHasDirection = false;
      out.push(l);
      continue;
    }
    if (DIRECTIONS.test(l)) {
      if (inMedia) mediaHasDirection = true;
      out.push(`a=${direction}`);
      continue;
    }
    out.push(l);
  }
  closeMedia();
  return Buffer.from(out.join('\r\n') + '\r\n', 'utf8');
}

/** The `o=` line's fields, or undefined for a body that has none. */
function originOf(text: string): { index: number; parts: string[] } | undefined {
  const all = lines(text);
  const index = all.findIndex((l) => l.startsWith('o='));
  if (index < 0) return undefined;
  const parts = (all[index] as string).slice(2).split(' ');
  if (parts.length !== 6) return undefined;
  return { index, parts };
}

/** The SDP without its `o=` line: what "the same description" is compared on. */
function withoutOrigin(text: string): string {
  return lines(text)
    .filter((l) => !l.startsWith('o='))
    .join('\n');
}

/**
 * Keeps the `o=` line of the descriptions sent on one dialog consistent (RFC 3264 §8): the same
 * session id throughout, a version that grows by one whenever the description changes, and that
 * stays when the same description is sent again. Bodies that are not SDP pass unchanged.
 */
export class SdpVersioner {
  private sessionId: string | undefined;
  private version = 0;
  private last: string | undefined;

  rewrite(body: Buffer): Buffer {
    const text = body.toString('utf8');
    const origin = originOf(text);
    if (!origin) return body;
    const content = withoutOrigin(text);
    if (this.sessionId === undefined) {
      this.sessionId = origin.parts[1] ?? '0';
      this.version = Number(origin.parts[2]) || 0;
      this.last = content;
    } else if (content !== this.last) {
      this.version += 1;
      this.last = content;
    }
    origin.parts[1] = this.sessionId;
    origin.parts[2] = String(this.version);
    const all = lines(text);
    all[origin.index] = 'o=' + origin.parts.join(' ');
    return Buffer.from(all.join('\r\n') + '\r\n', 'utf8');
  }
}
