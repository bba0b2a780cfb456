/**
 * Local overload control (RFC 6357 §4.2 "local overload control"; the 503 of RFC 3261 §21.5.4).
 *
 * Past its capacity a SIP server that accepts every new call collapses: the receive queue grows,
 * answers come later than the peers' retransmission timer (T1, 500 ms), every retransmission is
 * more work, and calls already set up time out too. Measured on the B2BUA (bench/sip.ts): at
 * 1,500 calls/s offered, 354–476/s got through without overload control and 700–1,076/s with it
 * (413–618/s against 384–412/s in slow minutes of the shared test machine).
 * Shedding new work early, with a cheap stateless 503 and Retry-After, keeps the work that is
 * already admitted (ACKs, BYEs, responses) flowing. Over UDP the 503 is decided and built before
 * the datagram is parsed (quick-reject.ts), at about half the cost of the full path.
 *
 * What is measured is the signal that matters: how long a datagram waits in our receive queue
 * before we read it. Event-loop lag does not show this, because libuv reads a batch of datagrams
 * between timers however deep the kernel queue is. So the UDP transport sends itself a probe
 * datagram at an interval (see UdpProbe in transport.ts); the probe queues behind everything
 * already received, and its round trip is the queueing delay. A probe still unanswered at the next
 * tick counts with its age so far; one lost (the queue overflowed) counts as late.
 *
 * The admission rule is proportional to the excess delay: past the target, the share of new calls
 * and registrations refused is `gain` × (delay − target) / target (at most 1), so the queue settles a
 * little above the target with the share refused that the excess load needs (by this rule, with
 * the defaults, 10 % over capacity needs ~10 % refused and so settles near 220 ms; 1,500 calls/s
 * offered to a B2BUA good for ~1,000 needs a third, near 270 ms). The share rises at once and falls
 * slowly (by `release` a measurement), which damps the swing that a delayed signal would cause.
 * An integrator (a fixed step up for every late measurement) winds up while a late probe is out:
 * in one run at 10 % over capacity it refused a quarter of the calls. In a comparison within one
 * run at 1,400 calls/s offered, the two were within the noise (757–904 calls/s set up, against
 * 371/s without overload control).
 *
 * Shedding starts only after three late measurements in a row: a stall or two (a long garbage
 * collection, a busy test machine) is not overload, a queue that stays behind is.
 */

export interface OverloadOptions {
  /** Queueing delay (ms) above which new work is shed; default 200. */
  targetDelayMs?: number;
  /** How often the probe goes out (ms); default 50. */
  intervalMs?: number;
  /** Share refused per target's worth of excess delay (> 0); default 1. */
  gain?: number;
  /** How much the share may fall per measurement (0 < release <= 1); default 0.1. */
  release?: number;
  /**
   * Consecutive late measurements before shedding starts; default 3 (two loop stalls in a row,
   * each with a probe out, are still no overload; a queue that stays behind costs one tick more).
   */
  lateBeforeShedding?: number;
  /** Random source in [0, 1) (tests). */
  random?: () => number;
}

export interface OverloadStats {
  /** The last queueing delay measured, ms. */
  delayMs: number;
  /** The share of new calls and registrations refused now (0 to 1). */
  shedShare: number;
  /** How many were refused with 503 since start. */
  shed: number;
  /** How many times shedding started. */
  episodes: number;
}

export const DEFAULT_OVERLOAD_TARGET_MS = 200;

export class OverloadControl {
  readonly targetDelayMs: number;
  readonly intervalMs: number;
  private readonly gain: number;
  private readonly release: number;
  private readonly lateBeforeShedding: number;
  private readonly random: () => number;
  private share = 0;
  /** Consecutive late measurements, and the probe of the last one. */
  private late = 0;
  private lastLateProbe = -1;
  private lastDelay = 0;
  private shedCount = 0;
  private episodeCount = 0;
  private onChange: ((shedding: boolean, stats: OverloadStats) => void) | undefined;

  constructor(options: OverloadOptions = {}) {
    this.targetDelayMs = options.targetDelayMs ?? DEFAULT_OVERLOAD_TARGET_MS;
    this.intervalMs = options.intervalMs ?? 50;
    this.gain = options.gain ?? 1;
    this.release = options.release ?? 0.1;
    this.lateBeforeShedding = options.lateBeforeShedding ?? 3;
    this.random = options.random ?? Math.random;
    if (!(this.targetDelayMs > 0)) throw new RangeError('overload targetDelayMs must be > 0');
    if (!(this.intervalMs > 0)) throw new RangeError('overload intervalMs must be > 0');
    if (!(this.gain > 0)) throw new RangeError('overload gain must be > 0');
    if (!(this.release > 0 && this.release <= 1)) throw new RangeError('overload release must be in (0, 1]');
    if (!(Number.isInteger(this.lateBeforeShedding) && this.lateBeforeShedding >= 1))
      throw new RangeError('overload lateBeforeShedding must be an integer >= 1');
  }

  /** Called when shedding starts (true) and when it stops (false). */
  onTransition(listener: (shedding: boolean, stats: OverloadStats) => void): void {
    this.onChange = listener;
  }

  /**
   * One measurement of the receive queue's delay: `delayMs` of probe number `probe`, `final` when
   * the probe came back (otherwise it is still out and its age is only a lower bound, which can
   * show lateness but not the lack of it). Every tick that finds the probe out past the target
   * counts as late, so a queue that stays behind is seen within a tick or two; the arrival of a
   * probe already counted does not count again, so one stall (the tick that sees the probe still
   * out, then the probe itself) is one late measurement, not two.
   */
  measure(delayMs: number, probe: number, final: boolean): void {
    const late = delayMs > this.targetDelayMs;
    if (!late && !final) return;
    this.lastDelay = delayMs;
    const before = this.share;
    let wanted = 0;
    if (late) {
      if (!final || probe !== this.lastLateProbe) this.late += 1;
      this.lastLateProbe = probe;
      if (this.late >= this.lateBeforeShedding)
        wanted = Math.min(1, (this.gain * (delayMs - this.targetDelayMs)) / this.targetDelayMs);
    } else {
      this.late = 0;
    }
    // Up at once, down by `release` at most (rounded, so that it lands on exactly 0).
    this.share = Math.max(wanted, Math.round((this.share - this.release) * 1e9) / 1e9, 0);
    if (before === 0 && this.share > 0) {
      this.episodeCount += 1;
      this.onChange?.(true, this.stats);
    } else if (before > 0 && this.share === 0) {
      this.onChange?.(false, this.stats);
    }
  }

  /** Whether any new work is being refused now (cheap: read for every datagram). */
  get shedding(): boolean {
    return this.share > 0;
  }

  /** Whether to take on a new call or registration now; false counts it as shed. */
  admit(): boolean {
    if (this.share === 0) return true;
    if (this.random() >= this.share) return true;
    this.shedCount += 1;
    return false;
  }

  get stats(): OverloadStats {
    return {
      delayMs: this.lastDelay,
      shedShare: this.share,
      shed: this.shedCount,
      episodes: this.episodeCount,
    };
  }
}

/** Retry-After for a shed request: 1 to 3 s, spread so that refused phones do not come back together. */
export function retryAfterSeconds(random: () => number = Math.random): number {
  return 1 + Math.floor(random() * 3);
}

/** The Retry-After header of a 503 (§20.33): `seconds`, spread over 1 to 3 s by default. */
export function retryAfterHeader(seconds: number = retryAfterSeconds()): { name: string; value: string } {
  return { name: 'Retry-After', value: String(seconds) };
}
