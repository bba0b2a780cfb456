/** Shared by bench/events.ts and its subscriber process: the IPC messages and the statistics. */

export interface ClientRequest {
  /** One SSE stream per entry: its URL and its ticket. */
  streams: { url: string; token: string }[];
  /** Events of `type` each stream should receive. */
  expected: number;
  type: string;
  /** Give up waiting this long after the publisher says it is done. */
  deadlineMs: number;
}

export interface ClientReport {
  kind: 'report';
  /** Publish-to-parse latency of every delivery, ms. */
  latencies: number[];
  duplicates: number;
  outOfOrder: number;
  errors: string[];
}

export interface Summary {
  count: number;
  expected: number;
  p50: number;
  p99: number;
  max: number;
  /** Deliveries per second over the publishing time. */
  perSecond: number;
}

export function summarize(latencies: Float64Array, expected: number, elapsedS: number): Summary {
  const sorted = Float64Array.from(latencies).sort();
  const at = (q: number): number =>
    sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  return {
    count: sorted.length,
    expected,
    p50: at(0.5),
    p99: at(0.99),
    max: sorted.length === 0 ? NaN : sorted[sorted.length - 1]!,
    perSecond: sorted.length / elapsedS,
  };
}
