/**
 * The time source of the SIP timers. Transactions (and later dialogs and calls) take a
 * {@link Clock} so tests can drive time with a fake one instead of sleeping.
 */
export interface Timer {
  cancel(): void;
}

export interface Clock {
  /** Wall-clock milliseconds (epoch); timers never depend on it, digest nonce timestamps do. */
  now(): number;
  /** Calls `fn` once after `ms` milliseconds unless cancelled. */
  setTimer(ms: number, fn: () => void): Timer;
}

/**
 * The real clock: `setTimeout`, unref'd so pending SIP timers never keep a process alive.
 *
 * A timer that comes due runs only after the event loop has read the input waiting for it
 * (`setImmediate`, after the poll phase): Node runs due timers before it reads sockets, so under
 * load a retransmission timer would otherwise fire while the very response or ACK that stops it
 * sits unread in the socket buffer, and every needless retransmission adds load (the collapse a
 * B2BUA at its limit would otherwise go into).
 */
export const realClock: Clock = {
  now: () => Date.now(),
  setTimer: (ms, fn) => new RealTimer(ms, fn),
};

/**
 * One timer of the real clock. A class with module-level callbacks: thousands are armed a second
 * under load, and three closures each (and tsx's name-keeping wrapper around each) showed up in
 * profiles.
 */
class RealTimer implements Timer {
  private cancelled = false;
  private immediate: NodeJS.Immediate | undefined;
  private readonly handle: NodeJS.Timeout;

  constructor(
    ms: number,
    private readonly fn: () => void,
  ) {
    this.handle = setTimeout(due, ms, this);
    this.handle.unref();
  }

  /** Due: run after the poll phase (see {@link realClock}). */
  schedule(): void {
    this.immediate = setImmediate(run, this);
    this.immediate.unref();
  }

  run(): void {
    if (!this.cancelled) this.fn();
  }

  cancel(): void {
    this.cancelled = true;
    clearTimeout(this.handle);
    if (this.immediate) clearImmediate(this.immediate);
  }
}

function due(timer: RealTimer): void {
  timer.schedule();
}

function run(timer: RealTimer): void {
  timer.run();
}
