/**
 * The event channel's streams over real HTTP, on both dialects: stream slots released on every
 * path (bad requests, clients that leave before the stream opens), the per-organization 429, the
 * SSE heartbeat, the long-poll waiters gauge, visibility changes and ticket expiry ending open
 * streams, and backpressure over a real socket whose reader stops reading.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { sql } from 'kysely';
import { forEachDialect } from '../db/helpers.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { seedOrg, userToken, type SeededOrg } from '../helpers/fixtures.js';
import { recordChange } from '../../src/db/changes.js';
import { TicketRepository } from '../../src/areas/tickets/repository.js';
import { hashTokenSecret } from '../../src/security/tokens.js';
import { addAgent, createAcdGroup, removeAgent } from '../../src/areas/acd/service.js';
import { changeGroupMember, createUserGroup } from '../../src/areas/usergroups/service.js';
import { appendEvents } from './helpers.js';
import { openSse, type SseEvent } from './sse-client.js';

const PER_TICKET = 3;
const PER_ORG = 5;
const MAX_QUEUE = 200;

/** Polls `check` every few ms until it holds (for server state no event announces), bounded. */
async function eventually(check: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Parses SSE text into events (comments skipped). */
function parseSse(text: string): SseEvent[] {
  const out: SseEvent[] = [];
  for (const block of text.split('\n\n')) {
    const ev: SseEvent = { event: 'message', data: '' };
    let isEvent = false;
    for (const line of block.split('\n')) {
      if (line.startsWith('id: ')) {
        ev.id = line.slice(4);
        isEvent = true;
      } else if (line.startsWith('event: ')) {
        ev.event = line.slice(7);
        isEvent = true;
      } else if (line.startsWith('data: ')) {
        ev.data += line.slice(6);
        isEvent = true;
      }
    }
    if (isEvent) out.push(ev);
  }
  return out;
}

forEachDialect('event streams: slots, limits, heartbeat, access changes, expiry, backpressure', (ctx) => {
  let t: TestApp;
  let base: string;
  let o: SeededOrg;
  before(async () => {
    t = await startTestApp({
      database: ctx.handle,
      url: ctx.url,
      config: {
        eventStreamsPerTicket: PER_TICKET,
        eventStreamsPerOrganization: PER_ORG,
        eventHeartbeatMs: 100,
        eventStreamMaxQueue: MAX_QUEUE,
      },
    });
    base = await t.app.listen({ host: '127.0.0.1', port: 0 });

    o = await seedOrg(ctx.handle, t.config, [{ userId: 'alice' }, { userId: 'bob' }, { userId: 'carol' }]);
  });
  after(async () => {
    // fetch's pool may hold connections that never carried a request; the server would wait for
    // its headers timeout (60 s) before closing them.
    t.app.server.closeAllConnections();
    await t.close();
  });

  const url = (query = '', user = 'alice') => `${base}/api/events/v1/${o.domain}/${user}${query}`;
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
  const token = (user = 'alice') => userToken(ctx.handle, t.config, o, user, ['EVENT_CHANNEL']);

  /** One event about `user` (or of an ACD group), committed as the services do. */
  async function emit(event: { type: string; userId?: number | null; groupId?: number | null }) {
    return ctx.handle.db.transaction().execute(async (trx) => {
      const r = await recordChange(trx, {
        organizationId: o.org.id,
        actor: 'test',
        action: event.type,
        entity: 'test',
        entityId: 0,
        event: { type: event.type, userId: event.userId ?? null, groupId: event.groupId ?? null },
      });
      return r.event!;
    });
  }

  /** A user ticket inserted directly, valid until `expiresAt` (the service never makes short ones). */
  async function ticketExpiringAt(user: string, expiresAt: number): Promise<string> {
    const secretPart = randomBytes(32).toString('base64url');
    const ticket = await new TicketRepository(ctx.handle.db).insert({
      kind: 'USER',
      organizationId: o.org.id,
      userId: o.users[user]!.id,
      name: 'short-lived',
      scopes: ['EVENT_CHANNEL'],
      secretHash: hashTokenSecret(t.config.secretKey, secretPart),
      createdBy: 'test',
      createdAt: Date.now(),
      expiresAt,
    });
    return `${ticket.id}.${secretPart}`;
  }

  test('bad requests beyond the limits never use up stream slots: a good stream still opens', async () => {
    const before = t.app.events.openStreams;
    const tickets = [await token(), await token(), await token()];
    // 3 tickets x 3 requests: past the per-ticket (3) and per-organization (5) limits.
    for (const tk of tickets) {
      for (let i = 0; i < PER_TICKET; i++) {
        const sse = await fetch(url(), {
          headers: { ...bearer(tk), accept: 'text/event-stream', 'last-event-id': 'not-a-seq' },
        });
        assert.equal(sse.status, 400, await sse.text());
        // A since older than the retained log, as a long-poll: 409, also no slot kept.
        const gap = await fetch(url('?since=0&timeout=0&types=x'), { headers: bearer(tk) });
        assert.ok(gap.status === 200 || gap.status === 409, String(gap.status));
        await gap.text();
      }
    }
    assert.equal(t.app.events.openStreams, before, 'every slot was released');
    const good = await openSse(url(), bearer(tickets[0]!));
    assert.equal(good.status, 200);
    good.close();
    await good.ended;
  });

  test('a client that leaves before its stream opens leaves no subscriber and no slot', async () => {
    const tk = await token();
    // The streams of the test before may still be closing on the server side.
    await eventually(() => t.app.events.openStreams === 0, 'earlier streams to leave');
    const subscribers = t.app.events.hub.subscriberCount;
    const open = t.app.events.openStreams;
    const abandoned = t.app.events.abandonedStreams;
    // Hold the database so the request waits inside the server (in authentication or in the
    // stream's admission) while its client goes away; then let it run on.
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let locked!: () => void;
    const isLocked = new Promise<void>((r) => (locked = r));
    const holding = ctx.handle.db.transaction().execute(async (trx) => {
      if (ctx.dialect === 'postgres') await sql`lock table tickets in access exclusive mode`.execute(trx);
      locked();
      await gate;
    });
    await isLocked;
    const seen = once(t.app.server, 'request') as Promise<[IncomingMessage, ServerResponse]>;
    const client = httpRequest(url(), { headers: { ...bearer(tk), accept: 'text/event-stream' } });
    client.on('error', () => undefined);
    client.end();
    try {
      const [serverReq] = await seen;
      serverReq.on('error', () => undefined); // 'aborted'
      const closed = new Promise((r) => serverReq.once('close', r));
      client.destroy();
      await closed;
    } finally {
      release();
      await holding;
    }
    await eventually(() => t.app.events.abandonedStreams > abandoned, 'the abandoned stream');
    assert.equal(t.app.events.hub.subscriberCount, subscribers, 'no subscriber left behind');
    assert.equal(t.app.events.openStreams, open, 'its slot released');
    const metrics = await (await fetch(`${base}/metrics`)).text();
    assert.match(metrics, /onecloud_event_streams_abandoned_total [1-9]/);
  });

  test('streams per organization are limited (429 with Retry-After); a closed one frees its slot', async () => {
    const streams = [];
    for (const user of ['alice', 'bob']) {
      const tk = await token(user);
      for (let i = 0; i < (user === 'alice' ? PER_TICKET : PER_ORG - PER_TICKET); i++)
        streams.push(await openSse(url('', user), bearer(tk)));
    }
    assert.deepEqual(
      streams.map((s) => s.status),
      Array.from({ length: PER_ORG }, () => 200),
    );
    const carol = await token('carol');
    const refused = await fetch(url('?timeout=0', 'carol'), { headers: bearer(carol) });
    assert.equal(refused.status, 429, 'a ticket below its own limit is refused at the organization’s');
    assert.equal(refused.headers.get('retry-after'), '5');
    await refused.text();
    streams[0]!.close();
    await streams[0]!.ended;
    await eventually(() => t.app.events.openStreams < PER_ORG, 'the closed stream to leave');
    const now = await fetch(url('?timeout=0', 'carol'), { headers: bearer(carol) });
    assert.equal(now.status, 200);
    await now.text();
    for (const s of streams.slice(1)) s.close();
    await Promise.all(streams.map((s) => s.ended));
  });

  test('SSE sends the heartbeat comment at the configured interval', async () => {
    const sse = await openSse(url(), bearer(await token()));
    const started = Date.now();
    await sse.until(() => sse.comments.filter((c) => c === 'heartbeat').length >= 2, 5000);
    assert.ok(Date.now() - started >= 150, 'two heartbeats take about two intervals');
    sse.close();
    await sse.ended;
  });

  test('onecloud_event_waiters counts a waiting long-poll, and drops when it is answered', async () => {
    const waiters = async () =>
      Number(/^onecloud_event_waiters (\d+)/m.exec(await (await fetch(`${base}/metrics`)).text())?.[1]);
    assert.equal(await waiters(), 0);
    const tk = await token();
    const waiting = fetch(url('?timeout=30&types=test.wake'), { headers: bearer(tk) });
    await eventually(async () => (await waiters()) === 1, 'the long-poll to wait');
    const e = await emit({ type: 'test.wake', userId: o.users.alice!.id });
    const res = await waiting;
    const body = (await res.json()) as { events: { seq: number }[] };
    assert.deepEqual(
      body.events.map((x) => x.seq),
      [e.seq],
    );
    assert.equal(await waiters(), 0);
  });

  test('an agent removed from its group: the stream ends (access-changed), the resumed one no longer sees the group', async () => {
    const group = await createAcdGroup(ctx.handle, 'test', o.org, {
      name: `Support ${randomBytes(2).toString('hex')}`,
    });
    await addAgent(ctx.handle, 'test', o.org, group.id, { user: 'alice' });
    const tk = await token();
    const types = '?types=test.queue,test.mine';
    const sse = await openSse(url(types), bearer(tk));
    // Bob's stream: his visibility does not change, it stays open.
    const bobs = await openSse(url(types, 'bob'), bearer(await token('bob')));
    const before = await emit({ type: 'test.queue', groupId: group.id });
    await sse.until((evs) => evs.some((e) => e.id === String(before.seq)));
    await removeAgent(ctx.handle, 'test', o.org, group.id, 'alice');
    // In the same log right after the removal: never delivered to the old stream.
    const afterRemoval = await emit({ type: 'test.queue', groupId: group.id });
    await sse.ended;
    const last = sse.events[sse.events.length - 1]!;
    assert.equal(last.event, 'stream.closed');
    assert.deepEqual(JSON.parse(last.data), { reason: 'access-changed' });
    assert.ok(!sse.events.some((e) => e.id === String(afterRemoval.seq)));
    const lastId = [...sse.events].reverse().find((e) => e.id !== undefined)!.id!;

    const mine = await emit({ type: 'test.mine', userId: o.users.alice!.id });
    const resumed = await openSse(url(types), { ...bearer(tk), 'last-event-id': lastId });
    assert.equal(resumed.status, 200);
    await resumed.until((evs) => evs.some((e) => e.id === String(mine.seq)));
    assert.deepEqual(
      resumed.events.map((e) => Number(e.id)),
      [mine.seq],
      'the group events after the removal are not visible any more; nothing else is lost',
    );
    resumed.close();
    const bobMine = await emit({ type: 'test.mine', userId: o.users.bob!.id });
    await bobs.until((evs) => evs.some((e) => e.id === String(bobMine.seq)));
    bobs.close();
    await Promise.all([resumed.ended, bobs.ended]);
  });

  test('a waiting long-poll answers at once when the user becomes an agent, then sees the group', async () => {
    const group = await createAcdGroup(ctx.handle, 'test', o.org, {
      name: `Sales ${randomBytes(2).toString('hex')}`,
    });
    const tk = await token('bob');
    const start = (await (await fetch(url('?timeout=0', 'bob'), { headers: bearer(tk) })).json()) as {
      next: number;
    };
    const waiting = fetch(url(`?since=${start.next}&timeout=30&types=test.queue`, 'bob'), {
      headers: bearer(tk),
    });
    await eventually(() => t.app.events.hub.waiterCount === 1, 'the long-poll to wait');
    const asked = Date.now();
    await addAgent(ctx.handle, 'test', o.org, group.id, { user: 'bob' });
    const res = (await (await waiting).json()) as { events: unknown[]; next: number };
    assert.ok(Date.now() - asked < 1000, 'answered within a second');
    assert.deepEqual(res, { events: [], next: start.next });
    const queued = await emit({ type: 'test.queue', groupId: group.id });
    const again = (await (
      await fetch(url(`?since=${res.next}&timeout=5&types=test.queue`, 'bob'), { headers: bearer(tk) })
    ).json()) as { events: { seq: number }[] };
    assert.deepEqual(
      again.events.map((e) => e.seq),
      [queued.seq],
    );
  });

  test('losing the ACD_SUPERVISOR role through a user group ends the supervisor’s stream', async () => {
    const group = await createAcdGroup(ctx.handle, 'test', o.org, {
      name: `Ops ${randomBytes(2).toString('hex')}`,
    });
    const supervisors = await createUserGroup(ctx.handle, 'test', o.org, {
      name: `Supervisors ${randomBytes(2).toString('hex')}`,
      roles: ['ACD_SUPERVISOR'],
      members: ['carol'],
    });
    const sse = await openSse(url('?types=test.queue', 'carol'), bearer(await token('carol')));
    const seen = await emit({ type: 'test.queue', groupId: group.id, userId: o.users.alice!.id });
    await sse.until((evs) => evs.some((e) => e.id === String(seen.seq)));
    await changeGroupMember(ctx.handle, 'test', o.org, supervisors.id, 'carol', false);
    await sse.ended;
    assert.deepEqual(JSON.parse(sse.events[sse.events.length - 1]!.data), { reason: 'access-changed' });
  });

  test('ticket expiry ends an open stream (ticket.expired) and a waiting long-poll (401) within a second', async () => {
    const expiresAt = Date.now() + 1500;
    const streaming = await ticketExpiringAt('alice', expiresAt);
    const polling = await ticketExpiringAt('bob', expiresAt);
    const sse = await openSse(url(), bearer(streaming));
    assert.equal(sse.status, 200);
    const poll = fetch(url('?timeout=30', 'bob'), { headers: bearer(polling) });
    await sse.ended;
    const streamEnded = Date.now();
    const res = await poll;
    const pollEnded = Date.now();
    assert.equal(sse.events[sse.events.length - 1]?.event, 'ticket.expired');
    assert.ok(streamEnded >= expiresAt - 5, `not before the expiry (${streamEnded - expiresAt} ms)`);
    assert.ok(streamEnded - expiresAt < 1000, `stream ended ${streamEnded - expiresAt} ms after the expiry`);
    assert.equal(res.status, 401, await res.text());
    assert.ok(pollEnded - expiresAt < 1000, `long-poll ended ${pollEnded - expiresAt} ms after the expiry`);
    await eventually(() => t.app.events.openStreams === 0, 'the expired streams to leave');
  });

  test('backpressure over a real socket: a reader that stops is closed past the limit, memory stays bounded, it resumes without loss', async () => {
    const tk = await token();
    const path = `/api/events/v1/${o.domain}/alice?types=test.bp`;
    const serverSide = new Promise<ServerResponse>((resolve) => {
      const onRequest = (req: IncomingMessage, res: ServerResponse) => {
        if (req.url !== path) return;
        t.app.server.off('request', onRequest);
        resolve(res);
      };
      t.app.server.on('request', onRequest);
    });
    const { port } = new URL(base);
    const socket = connect(Number(port), '127.0.0.1');
    await once(socket, 'connect');
    socket.write(
      `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${tk}\r\nAccept: text/event-stream\r\n\r\n`,
    );
    let received = '';
    const onData = (d: Buffer) => (received += d.toString('utf8'));
    socket.on('data', onData);
    await new Promise<void>((resolve) => {
      const check = () => {
        if (received.includes(': stream open')) {
          socket.off('data', check);
          resolve();
        }
      };
      socket.on('data', check);
    });
    const res = await serverSide;
    // The reader stops reading: whatever the kernel buffers fill up, then the server must hold.
    socket.pause();

    let maxQueued = 0;
    let maxBuffered = 0;
    const unlisten = t.app.events.hub.onAnyEvent(() => {
      maxQueued = Math.max(maxQueued, t.app.events.hub.queuedEvents);
      maxBuffered = Math.max(maxBuffered, res.writableLength);
    });
    const closesBefore = t.app.events.hub.slowConsumerCloses;
    const padding = 'x'.repeat(2000);
    const frameBytes = 2300; // one event's SSE frame with its padding, generously
    const produced: number[] = [];
    // Write until the server gives up on the reader (bounded: 60,000 events, ~120 MB of frames).
    for (let i = 0; i < 600 && t.app.events.hub.slowConsumerCloses === closesBefore; i++) {
      const batch = await appendEvents(ctx.handle.db, 100, (j) => ({
        organizationId: o.org.id,
        type: 'test.bp',
        userId: o.users.alice!.id,
        data: { n: i * 100 + j, padding },
      }));
      produced.push(...batch.map((e) => e.seq));
      await t.app.events.hub.wake();
    }
    unlisten();
    assert.equal(t.app.events.hub.slowConsumerCloses, closesBefore + 1, 'the slow reader was closed');
    // Held by the server at any time: at most the queue limit, plus one hub batch (500 events) in
    // the socket's write buffer, however much was produced.
    assert.ok(maxQueued <= MAX_QUEUE, `queued at most the limit (${maxQueued})`);
    assert.ok(
      maxBuffered <= 500 * frameBytes + 65_536,
      `server-side buffer bounded: ${maxBuffered} bytes (${produced.length * frameBytes} produced)`,
    );

    // The reader reads again: it gets what was in flight, then the closing event and the end.
    const ended = once(socket, 'end');
    socket.resume();
    await ended;
    socket.destroy();
    const body = received.slice(received.indexOf('\r\n\r\n') + 4);
    const first = parseSse(body);
    const closing = first[first.length - 1]!;
    assert.equal(closing.event, 'stream.closed');
    assert.deepEqual(JSON.parse(closing.data), { reason: 'slow-consumer' });
    const firstIds = first.filter((e) => e.id !== undefined).map((e) => Number(e.id));
    assert.ok(
      firstIds.length > 0 && firstIds.length < produced.length,
      `${firstIds.length} of ${produced.length}`,
    );

    const resumed = await openSse(url('?types=test.bp'), {
      ...bearer(tk),
      'last-event-id': String(firstIds[firstIds.length - 1]),
    });
    await resumed.until((evs) => firstIds.length + evs.length >= produced.length, 60_000);
    resumed.close();
    const all = [...firstIds, ...resumed.events.map((e) => Number(e.id))];
    assert.deepEqual(all, produced, 'every event exactly once, in order');
  });
});
