import { spawn } from 'node:child_process';

export interface LoadResult {
  requestsPerSecond: number;
  latencyP50: number;
  latencyP99: number;
  non2xx: number;
  errors: number;
}

/**
 * Loads one URL from a separate process (autocannon), so the load generator does not share the
 * server's event loop. Loopback only, bounded by duration.
 */
export function load(
  url: string,
  opts: { headers?: Record<string, string>; seconds?: number; connections?: number } = {},
): Promise<LoadResult> {
  if (!/^http:\/\/127\.0\.0\.1:\d+\//.test(url)) throw new Error('bench load goes to 127.0.0.1 only');
  const args = [
    'node_modules/autocannon/autocannon.js',
    '-j',
    '-c',
    String(opts.connections ?? 10),
    '-d',
    String(opts.seconds ?? 5),
  ];
  for (const [k, v] of Object.entries(opts.headers ?? {})) args.push('-H', `${k}=${v}`);
  args.push(url);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`autocannon failed (${code}): ${err}`));
      const r = JSON.parse(out) as {
        requests: { average: number };
        latency: { p50: number; p99: number };
        non2xx: number;
        errors: number;
      };
      resolve({
        requestsPerSecond: r.requests.average,
        latencyP50: r.latency.p50,
        latencyP99: r.latency.p99,
        non2xx: r.non2xx,
        errors: r.errors,
      });
    });
  });
}

export function row(name: string, r: LoadResult): string {
  return `${name.padEnd(44)} ${r.requestsPerSecond.toFixed(0).padStart(8)} req/s   p50 ${String(r.latencyP50).padStart(3)} ms   p99 ${String(r.latencyP99).padStart(3)} ms   non-2xx ${r.non2xx}   errors ${r.errors}`;
}

export interface Contender {
  name: string;
  url: string;
  headers?: Record<string, string>;
}

/**
 * Loads each contender in turn, `rounds` times over (a, b, c, a, b, c, ...), so that the machine's
 * drift falls on all of them alike; returns each one's median round (by req/s) and every round's
 * figures. On a shared, noisy machine a ratio of medians of interleaved runs holds where one run
 * after another does not.
 */
export async function compare(
  contenders: Contender[],
  opts: { rounds?: number; seconds?: number } = {},
): Promise<{ median: LoadResult; rounds: LoadResult[] }[]> {
  const rounds = opts.rounds ?? 3;
  const results: LoadResult[][] = contenders.map(() => []);
  for (const c of contenders) await load(c.url, { seconds: 1, ...(c.headers ? { headers: c.headers } : {}) });
  for (let r = 0; r < rounds; r++) {
    for (const [i, c] of contenders.entries()) {
      results[i]!.push(
        await load(c.url, { seconds: opts.seconds ?? 5, ...(c.headers ? { headers: c.headers } : {}) }),
      );
    }
  }
  return results.map((rs) => {
    const sorted = [...rs].sort((x, y) => x.requestsPerSecond - y.requestsPerSecond);
    return { median: sorted[Math.floor(sorted.length / 2)]!, rounds: rs };
  });
}

/** The ratio of two medians, with the range of the per-round ratios. */
export function ratio(
  a: { median: LoadResult; rounds: LoadResult[] },
  b: { median: LoadResult; rounds: LoadResult[] },
): string {
  const per = a.rounds.map((r, i) => r.requestsPerSecond / b.rounds[i]!.requestsPerSecond);
  return `${(a.median.requestsPerSecond / b.median.requestsPerSecond).toFixed(2)} (rounds ${Math.min(...per).toFixed(2)}–${Math.max(...per).toFixed(2)})`;
}
