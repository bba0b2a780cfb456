/**
 * Event channel fan-out (issue 6): 1,000 concurrent Server-Sent Events subscribers on one server
 * process, events published at a steady rate; prints delivery latency p50/p99/max and events
 * delivered per second, next to the same measurement for an in-process EventEmitter with as many
 * listeners, in the same run. Target: p99 under 20 ms at 1,000 subscribers.
 *
 * The scenario is a wallboard: 1,000 users are agents of one ACD group, each reads its own event
 * stream with its own ticket (Bearer, EVENT_CHANNEL), and each published event is about the group
 * (no particular user), so every subscriber may see it and the visibility rule runs for every
 * subscriber and event. An event is published as the services do: `recordChange` in its own
 * transaction (audit row + event row), then the hub reads it from the log and fans it out.
 * Latency is from just before that transaction starts to the moment the subscriber process has
 * parsed the event: it includes the commit, the log read, the visibility filter, the SSE write
 * and the loopback socket.
 *
 * The subscribers run in separate processes (bench/events-clients.ts; two by default,
 * ONECLOUD_BENCH_CLIENTS=n), so the readers do not share the server's event loop, and one
 * reader process does not have to parse all 1,000 streams after every event; both read the same wall clock (performance.timeOrigin + now()).
 *
 * Two baselines in the same run: the in-process EventEmitter (no I/O at all), and a bare
 * node:http server that writes the same SSE frame to the same 1,000 subscriber sockets on each
 * publish (no database, no authentication, no framework): the floor of this machine's loopback
 * TCP for that fan-out, read by the same subscriber process. The server's own side is broken
 * down too: from publish to the hub reading the event from the log, and from there to the last
 * subscriber's socket write.
 *
 * Run: npx tsx bench/events.ts [subscribers=1000] [events-per-second=50] [seconds=10]
 *   On SQLite (a file); also on PostgreSQL when ONECLOUD_TEST_DATABASE_URL is set.
 */
import { fork, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { EventEmitter, once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { startTestApp } from '../test/helpers/app.js';
import { openTestDatabase, PG_URL } from '../test/db/helpers.js';
import { bulkCreateUsers } from '../src/areas/users/service.js';
import { createOrganization } from '../src/areas/organizations/service.js';
import { setExternalApiGrants } from '../src/areas/externalapi/service.js';
import { addAgent, createAcdGroup } from '../src/areas/acd/service.js';
import { createUserTicket } from '../src/areas/tickets/service.js';
import { UserRepository } from '../src/areas/users/repository.js';
import { recordChange } from '../src/db/changes.js';
import type { DialectName } from '../src/db/dialects/index.js';
import { summarize, type ClientReport, type ClientRequest, type Summary } from './events-stats.js';

const SUBSCRIBERS = Number(process.argv[2] ?? 1000);
const RATE = Number(process.argv[3] ?? 50);
const SECONDS = Number(process.argv[4] ?? 10);
if (
  !(SUBSCRIBERS >= 1 && SUBSCRIBERS <= 5000) ||
  !(RATE > 0 && RATE <= 2000) ||
  !(SECONDS > 0 && SECONDS <= 120)
) {
  console.error('usage: npx tsx bench/events.ts [subscribers 1-5000] [events/s 1-2000] [seconds 1-120]');
  process.exit(2);
}
const TOTAL = Math.round(RATE * SECONDS);
/** Subscriber processes (one reader process for 1,000 sockets is itself the bottleneck). */
const CLIENT_PROCESSES = Math.max(1, Math.min(8, Number(process.env.ONECLOUD_BENCH_CLIENTS ?? 2)));
const now = (): number => performance.timeOrigin + performance.now();

/** Calls `publish(i)` TOTAL times at RATE per second, on schedule (never bunching up to catch up). */
async function steady(publish: (i: number) => Promise<void> | void): Promise<number> {
  const period = 1000 / RATE;
  const start = performance.now();
  for (let i = 0; i < TOTAL; i++) {
    const due = start + i * period;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    await publish(i);
  }
  return (performance.now() - start) / 1000;
}

function line(name: string, s: Summary): string {
  return (
    `${name.padEnd(34)} p50 ${s.p50.toFixed(2).padStart(7)} ms  p99 ${s.p99.toFixed(2).padStart(7)} ms  ` +
    `max ${s.max.toFixed(2).padStart(7)} ms  ${s.perSecond.toFixed(0).padStart(8)} deliveries/s  ` +
    `(${s.count}/${s.expected} delivered)`
  );
}

/** The baseline: the same fan-out through an in-process EventEmitter with as many listeners. */
async function emitterBaseline(): Promise<Summary> {
  const bus = new EventEmitter();
  bus.setMaxListeners(SUBSCRIBERS + 1);
  const latencies = new Float64Array(SUBSCRIBERS * TOTAL);
  let n = 0;
  for (let s = 0; s < SUBSCRIBERS; s++) {
    bus.on('event', (json: string) => {
      const e = JSON.parse(json) as { data: { sentAt: number } };
      latencies[n++] = now() - e.data.sentAt;
    });
  }
  const elapsed = await steady((i) => {
    bus.emit('event', JSON.stringify({ seq: i, type: 'bench.tick', data: { sentAt: now(), n: i } }));
  });
  return summarize(latencies.subarray(0, n), SUBSCRIBERS * TOTAL, elapsed);
}

/** Starts the subscriber process; `run` opens its streams and publishes. */
async function withSubscribers(
  streams: ClientRequest['streams'],
  publish: (i: number) => Promise<void> | void,
): Promise<Summary> {
  const clients = Array.from({ length: CLIENT_PROCESSES }, (_, k) => {
    const child: ChildProcess = fork(new URL('./events-clients.ts', import.meta.url), [], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    let onReady!: () => void;
    let onReport!: (r: ClientReport) => void;
    let onFail!: (err: Error) => void;
    const ready = new Promise<void>((resolve, reject) => ((onReady = resolve), (onFail = reject)));
    const report = new Promise<ClientReport>((resolve, reject) => {
      onReport = resolve;
      child.on('exit', (code) => reject(new Error(`a subscriber process exited (${code})`)));
    });
    ready.catch(() => undefined);
    report.catch(() => undefined);
    child.on('message', (m: ClientReport | { kind: 'ready' } | { kind: 'error'; message: string }) => {
      if (m.kind === 'ready') onReady();
      else if (m.kind === 'error') onFail(new Error(m.message));
      else onReport(m);
    });
    const mine = streams.filter((_, i) => i % CLIENT_PROCESSES === k);
    const request: ClientRequest = { streams: mine, expected: TOTAL, type: 'bench.tick', deadlineMs: 20_000 };
    child.send(request);
    return { child, ready, report };
  });
  try {
    await Promise.all(clients.map((c) => c.ready));
    const elapsed = await steady(publish);
    for (const c of clients) c.child.send({ kind: 'published', elapsedS: elapsed });
    const reports = await Promise.all(clients.map((c) => c.report));
    const latencies = reports.flatMap((r) => r.latencies);
    const errors = reports.flatMap((r) => r.errors);
    const duplicates = reports.reduce((n, r) => n + r.duplicates, 0);
    const outOfOrder = reports.reduce((n, r) => n + r.outOfOrder, 0);
    if (errors.length > 0) console.log(`  subscriber errors: ${errors.slice(0, 3).join('; ')}`);
    if (duplicates > 0 || outOfOrder > 0)
      console.log(`  DUPLICATES ${duplicates}, OUT OF ORDER ${outOfOrder}`);
    return summarize(Float64Array.from(latencies), SUBSCRIBERS * TOTAL, elapsed);
  } finally {
    // The subscriber processes exit by themselves once they have reported; kill any that hangs.
    for (const { child } of clients) {
      if (child.exitCode === null) await Promise.race([once(child, 'exit'), sleep(2000)]);
      child.kill();
    }
  }
}

/** The floor: a bare node:http SSE server writing the same frame to every open stream. */
async function bareSse(): Promise<Summary> {
  const open = new Set<http.ServerResponse>();
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    res.write(': open\n\n');
    open.add(res);
    req.on('close', () => open.delete(res));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  const streams = Array.from({ length: SUBSCRIBERS }, (_, i) => ({
    url: `http://127.0.0.1:${port}/api/events/v1/bare.example/agent${i}`,
    token: 'none',
  }));
  try {
    return await withSubscribers(streams, (i) => {
      const event = {
        seq: i + 1,
        type: 'bench.tick',
        time: new Date().toISOString(),
        data: { sentAt: now(), n: i },
      };
      const frame = `id: ${event.seq}\nevent: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`;
      for (const res of open) res.write(frame);
    });
  } finally {
    server.closeAllConnections();
    server.close();
  }
}

async function sseRun(
  dialect: DialectName,
): Promise<{ summary: Summary; hubRead: Summary; fanOut: Summary; server: Summary; commit: Summary }> {
  const tdb = await openTestDatabase(dialect);
  const t = await startTestApp({
    database: tdb.handle,
    url: tdb.url,
    config: { logLevel: 'silent', eventStreamsPerOrganization: SUBSCRIBERS + 10 },
  });
  const base = await t.app.listen({ host: '127.0.0.1', port: 0 });
  try {
    // SUBSCRIBERS agents of one group, EVENT_CHANNEL allowed, a ticket each.
    const domain = 'events.bench.example';
    const org = await createOrganization(t.database, 'bench', { domain, name: 'Event bench' });
    await setExternalApiGrants(t.database, 'bench', org, 'ORGANIZATION', 0, ['EVENT_CHANNEL']);
    for (let i = 0; i < SUBSCRIBERS; i += 1000) {
      const users = Array.from({ length: Math.min(1000, SUBSCRIBERS - i) }, (_, k) => ({
        userId: `agent${i + k}`,
      }));
      await bulkCreateUsers(t.database, 'bench', org, { users });
    }
    const group = await createAcdGroup(t.database, 'bench', org, { name: 'Wallboard queue' });
    const streams: ClientRequest['streams'] = [];
    const repo = new UserRepository(t.database.db);
    for (let i = 0; i < SUBSCRIBERS; i++) {
      const userId = `agent${i}`;
      await addAgent(t.database, 'bench', org, group.id, { user: userId });
      const user = await repo.get(org.id, userId);
      if (!user) throw new Error(`${userId} was not created`);
      const { token } = await createUserTicket(t.database, t.config, 'bench', {
        organization: org,
        user,
        apis: ['EVENT_CHANNEL'],
      });
      streams.push({ url: `${base}/api/events/v1/${domain}/${userId}`, token });
    }

    // The server side: when the hub read each event, and when its fan-out had run.
    const sentAt: number[] = [];
    const readMs: number[] = [];
    const fanOutMs: number[] = [];
    const serverMs: number[] = [];
    const commitMs: number[] = [];
    const unlisten = t.app.events.hub.onAnyEvent((rows) => {
      const read = now();
      for (const e of rows) {
        const n = (e.data as { n?: unknown }).n;
        if (typeof n !== 'number') continue;
        readMs.push(read - sentAt[n]!);
        // The hub dispatches (and writes every stream) synchronously right after its listeners:
        // the first microtask after them runs once every socket write is done.
        queueMicrotask(() => {
          const done = now();
          fanOutMs.push(done - read);
          serverMs.push(done - sentAt[n]!);
        });
      }
    });
    const summary = await withSubscribers(streams, async (i) => {
      sentAt[i] = now();
      await t.database.db.transaction().execute((trx) =>
        recordChange(trx, {
          organizationId: org.id,
          actor: 'bench',
          action: 'bench.tick',
          entity: 'acd_group',
          entityId: group.id,
          event: { type: 'bench.tick', groupId: group.id, data: { sentAt: sentAt[i], n: i } },
        }),
      );
      commitMs.push(now() - sentAt[i]);
    });
    unlisten();
    return {
      summary,
      hubRead: summarize(Float64Array.from(readMs), TOTAL, 1),
      fanOut: summarize(Float64Array.from(fanOutMs), TOTAL, 1),
      server: summarize(Float64Array.from(serverMs), TOTAL, 1),
      commit: summarize(Float64Array.from(commitMs), TOTAL, 1),
    };
  } finally {
    await t.close();
    await tdb.cleanup();
  }
}

console.log(
  `Event channel: ${SUBSCRIBERS} SSE subscribers on one process, ${RATE} events/s for ${SECONDS} s ` +
    `(${TOTAL} events, ${SUBSCRIBERS * TOTAL} deliveries); subscribers in ${CLIENT_PROCESSES} separate process(es) on loopback`,
);
const baseline = await emitterBaseline();
console.log(line('in-process EventEmitter (baseline)', baseline));
const bare = await bareSse();
console.log(line('bare node:http SSE (floor)', bare));
const dialects: DialectName[] = PG_URL ? ['sqlite', 'postgres'] : ['sqlite'];
for (const dialect of dialects) {
  const { summary: s, hubRead, fanOut, server, commit } = await sseRun(dialect);
  console.log(line(`OneCloud SSE, ${dialect}`, s));
  console.log(
    `  server side, per event: publish → last socket written p50 ${server.p50.toFixed(2)} / p99 ${server.p99.toFixed(2)} / max ${server.max.toFixed(2)} ms ` +
      `(the publishing transaction p50 ${commit.p50.toFixed(2)} / p99 ${commit.p99.toFixed(2)}; ` +
      `publish → hub reads it p50 ${hubRead.p50.toFixed(2)} / p99 ${hubRead.p99.toFixed(2)}; ` +
      `fan-out to all ${SUBSCRIBERS} p50 ${fanOut.p50.toFixed(2)} / p99 ${fanOut.p99.toFixed(2)})`,
  );
  console.log(
    `  ratio p99 OneCloud/bare: ${(s.p99 / bare.p99).toFixed(2)}; p99 OneCloud/EventEmitter: ${(s.p99 / Math.max(baseline.p99, 0.001)).toFixed(0)}x; ` +
      `deliveries/s OneCloud/EventEmitter: ${(s.perSecond / baseline.perSecond).toFixed(2)}; ` +
      `target p99 < 20 ms: ${s.p99 < 20 && s.count === s.expected ? 'met' : 'NOT met'} end to end, ` +
      `${server.p99 < 20 && s.count === s.expected ? 'met' : 'NOT met'} on the server side`,
  );
}
if (!PG_URL) console.log('postgres: skipped (set ONECLOUD_TEST_DATABASE_URL)');
