/**
 * A fixed-window failure counter per key (source address, user), in memory: after `limit`
 * failures within `windowMs` the key is blocked for `blockMs`. Bounded in size: the oldest keys
 * are dropped first. Per process by design: a scaled-out installation puts its load balancer's
 * limits in front as well.
 */
export class FailureLimiter {
  private readonly entries = new Map<string, { count: number; windowStart: number; blockedUntil: number }>();

  constructor(
    readonly limit: number,
    readonly windowMs: number,
    readonly blockMs: number,
    private readonly maxKeys = 50_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Seconds until the key may try again, or 0 when it is not blocked. */
  retryAfter(key: string): number {
    const e = this.entries.get(key);
    if (!e) return 0;
    const t = this.now();
    return e.blockedUntil > t ? Math.ceil((e.blockedUntil - t) / 1000) : 0;
  }

  fail(key: string): void {
    const t = this.now();
    let e = this.entries.get(key);
    if (!e || t - e.windowStart > this.windowMs) {
      e = { count: 0, windowStart: t, blockedUntil: e?.blockedUntil ?? 0 };
    }
    e.count += 1;
    if (e.count >= this.limit) {
      e.blockedUntil = t + this.blockMs;
      e.count = 0;
      e.windowStart = t;
    }
    this.entries.delete(key);
    this.entries.set(key, e);
    if (this.entries.size > this.maxKeys) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
  }
}

/** A fixed-window request counter per key (ticket creation, logins). */
export class RequestLimiter {
  private readonly windows = new Map<string, { count: number; start: number }>();
  constructor(
    readonly limit: number,
    readonly windowMs: number,
    private readonly maxKeys = 50_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Counts one request; returns seconds to wait when over the limit, else 0. */
  hit(key: string): number {
    const t = this.now();
    let w = this.windows.get(key);
    if (!w || t - w.start >= this.windowMs) w = { count: 0, start: t };
    w.count += 1;
    this.windows.delete(key);
    this.windows.set(key, w);
    if (this.windows.size > this.maxKeys) {
      const oldest = this.windows.keys().next().value;
      if (oldest !== undefined) this.windows.delete(oldest);
    }
    return w.count > this.limit ? Math.ceil((w.start + this.windowMs - t) / 1000) : 0;
  }
}
