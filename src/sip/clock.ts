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

/** The real clock: `setTimeout`, unref'd so pending SIP timers never keep a process alive. */
export const realClock: Clock = {
  now: () => Date.now(),
  setTimer(ms, fn) {
    const handle = setTimeout(fn, ms);
    handle.unref();
    return { cancel: () => clearTimeout(handle) };
  },
};
