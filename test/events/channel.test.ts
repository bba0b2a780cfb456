import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { forEachDialect } from '../db/helpers.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { addSoftphone, PASSWORD, seedOrg, userToken, type SeededOrg } from '../helpers/fixtures.js';
import { recordChange } from '../../src/db/changes.js';
import { EventRetention } from '../../src/events/retention.js';
import { setExternalApiGrants } from '../../src/areas/externalapi/service.js';
import { USER_APIS } from '../../src/areas/common/schemas.js';
import { openSse } from './sse-client.js';

interface Poll {
  events: { seq: number; type: string; time: string; data: Record<string, unknown> }[];
  next: number;
}

forEachDialect('event channel over HTTP', (ctx) => {
  let t: TestApp;
  let base: string;
  let o: SeededOrg;
  let aliceToken: string;
  before(async () => {
    t = await startTestApp({ database: ctx.handle, url: ctx.url, config: { eventStreamsPerTicket: 3 } });
    base = await t.app.listen({ host: '127.0.0.1', port: 0 });
    o = await seedOrg(ctx.handle, t.config, [{ userId: 'alice' }, { userId: 'bob' }]);
    aliceToken = await userToken(ctx.handle, t.config, o, 'alice', ['EVENT_CHANNEL']);
  });
  after(async () => {
    // fetch's pool may hold connections that never carried a request; the server would wait for
    // its headers timeout (60 s) before closing them.
    t.app.server.closeAllConnections();
    await t.close();
  });

  const url = (query = '', user = 'alice') => `${base}/api/events/v1/${o.domain}/${user}${query}`;
  const auth = (token = aliceToken) => ({ authorization: `Bearer ${token}` });
  const poll = async (query: string, headers: Record<string, string> = {}, user = 'alice') => {
    const res = await fetch(url(query, user), { headers: { ...auth(), ...headers } });
    return { status: res.status, body: await res.text() };
  };

  /** Writes `n` events about a user, in transactions of `batch`, as the services do. */
  async function emit(userId: number, n: number, type = 'test.ping', batch = 500): Promise<void> {
    for (let i = 0; i < n; i += batch) {
      await ctx.handle.db.transaction().execute(async (trx) => {
        for (let j = i; j < Math.min(n, i + batch); j++) {
          await recordChange(trx, {
            organizationId: o.org.id,
            actor: 'test',
            action: type,
            entity: 'test',
            entityId: j,
            event: { type, userId, data: { n: j } },
          });
        }
      });
    }
  }

  test('long-poll answers at once with events after since, in JSON and XML', async () => {
    await addSoftphone(ctx.handle, o, 'alice', 'Poll phone');
    const res = await poll('?since=0&timeout=0');
    assert.equal(res.status, 200, res.body);
    const body = JSON.parse(res.body) as Poll;
    const created = body.events.find((e) => e.type === 'device.created');
    assert.ok(created, 'the device.created event of alice is there');
    assert.equal(created.data.user, `alice@${o.domain}`);
    assert.equal(body.next, body.events[body.events.length - 1]!.seq);
    const xml = await poll('?since=0&timeout=0&types=device.created', { accept: 'application/xml' });
    assert.match(xml.body, /<events><events><seq>\d+<\/seq><type>device\.created<\/type>/);
  });

  test('long-poll waits for the first event, and times out with the same next', async () => {
    const now = JSON.parse((await poll('?since=0&timeout=0')).body) as Poll;
    const waiting = poll(`?since=${now.next}&timeout=20`);
    await addSoftphone(ctx.handle, o, 'alice', 'Second phone');
    const res = JSON.parse((await waiting).body) as Poll;
    assert.deepEqual(
      res.events.map((e) => e.type),
      ['device.created'],
    );
    assert.ok(res.next > now.next);
    const empty = JSON.parse((await poll(`?since=${res.next}&timeout=1`)).body) as Poll;
    assert.deepEqual(empty, { events: [], next: res.next });
  });

  test("one user never sees another's events", async () => {
    const start = (JSON.parse((await poll('?since=0&timeout=0')).body) as Poll).next;
    await addSoftphone(ctx.handle, o, 'bob', "Bob's phone");
    await emit(o.users.bob!.id, 20, 'test.bob');
    const res = JSON.parse((await poll(`?since=${start}&timeout=1`)).body) as Poll;
    assert.deepEqual(res.events, []);
    const bobToken = await userToken(ctx.handle, t.config, o, 'bob', ['EVENT_CHANNEL']);
    const bobs = JSON.parse(
      (await poll(`?since=${start}&timeout=0&limit=1000`, auth(bobToken), 'bob')).body,
    ) as Poll;
    assert.equal(bobs.events.filter((e) => e.type === 'test.bob').length, 20);
  });

  test('SSE: 10,000 events, a forced disconnect, resume from Last-Event-ID: none lost, none twice', async () => {
    const start = (JSON.parse((await poll('?since=0&timeout=0')).body) as Poll).next;
    const total = 10_000;
    const first = await openSse(url(`?since=${start}&types=test.bulk`), auth());
    assert.equal(first.status, 200);
    const producing = emit(o.users.alice!.id, total, 'test.bulk');
    await first.until((evs) => evs.length >= 2500, 60_000);
    first.close();
    await first.ended;
    const seen = first.events.map((e) => Number(e.id));
    const lastId = String(seen[seen.length - 1]);
    await producing;
    const second = await openSse(url('?types=test.bulk'), { ...auth(), 'last-event-id': lastId });
    assert.equal(second.status, 200);
    await second.until((evs) => seen.length + evs.length >= total, 60_000);
    second.close();
    const all = [...seen, ...second.events.map((e) => Number(e.id))];
    assert.equal(all.length, total);
    assert.equal(new Set(all).size, total, 'no duplicates');
    for (let i = 1; i < all.length; i++) assert.ok(all[i]! > all[i - 1]!, 'in order');
    const ns = [...first.events, ...second.events].map(
      (e) => (JSON.parse(e.data) as { data: { n: number } }).data.n,
    );
    assert.deepEqual(
      ns,
      Array.from({ length: total }, (_, i) => i),
      'every event exactly once',
    );
  });

  test('revoking the ticket ends its stream with a ticket.revoked event', async () => {
    const create = await fetch(`${base}/api/tickets/${o.domain}/alice?api=EVENT_CHANNEL`, {
      method: 'POST',
      headers: { authorization: `Basic ${Buffer.from(`alice@${o.domain}:${PASSWORD}`).toString('base64')}` },
    });
    const { token } = (await create.json()) as { token: string };
    const sse = await openSse(url(), auth(token));
    assert.equal(sse.status, 200);
    const started = Date.now();
    const del = await fetch(`${base}/api/tickets/${o.domain}/alice/${token.split('.')[0]}`, {
      method: 'DELETE',
      headers: { authorization: `Basic ${Buffer.from(`alice@${o.domain}:${PASSWORD}`).toString('base64')}` },
    });
    assert.equal(del.status, 200);
    await sse.ended;
    const took = Date.now() - started;
    assert.equal(sse.events[sse.events.length - 1]?.event, 'ticket.revoked');
    assert.ok(took < 1000, `the stream closed ${took} ms after the revocation (at most 1 s)`);
    const after = await poll('?timeout=0', auth(token));
    assert.equal(after.status, 401);
  });

  test('withdrawing EVENT_CHANNEL ends an open long-poll', async () => {
    const token = await userToken(ctx.handle, t.config, o, 'alice', ['EVENT_CHANNEL']);
    const waiting = poll('?timeout=30', auth(token));
    // The grant changes while the long-poll waits.
    while (t.app.events.hub.waiterCount === 0) await new Promise((r) => setTimeout(r, 5));
    await setExternalApiGrants(ctx.handle, 'test', o.org, 'ORGANIZATION', 0, ['CONTACT']);
    try {
      const res = await waiting;
      assert.ok(res.status === 401 || res.status === 403, `${res.status} ${res.body}`);
    } finally {
      await setExternalApiGrants(ctx.handle, 'test', o.org, 'ORGANIZATION', 0, [...USER_APIS]);
    }
  });

  test('a since older than the retained log is 409 with the oldest seq', async () => {
    await emit(o.users.alice!.id, 1200, 'test.old');
    await new EventRetention(ctx.handle.db, { maxCount: 100, maxAgeMs: 365 * 86_400_000 }).runOnce();
    const res = await poll('?since=1&timeout=0');
    assert.equal(res.status, 409, res.body);
    const body = JSON.parse(res.body) as { oldestSeq: number; validationResult: string };
    assert.ok(body.oldestSeq > 1);
    const resumed = await poll(`?since=${body.oldestSeq}&timeout=0`);
    assert.equal(resumed.status, 200);
  });

  test('streams per ticket are limited (429), and counted in /metrics', async () => {
    const streams = [];
    for (let i = 0; i < 3; i++) streams.push(await openSse(url(), auth()));
    assert.deepEqual(
      streams.map((s) => s.status),
      [200, 200, 200],
    );
    const fourth = await poll('?timeout=0');
    assert.equal(fourth.status, 429);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    assert.match(metrics, /onecloud_event_subscribers [1-9]/);
    for (const s of streams) s.close();
    await Promise.all(streams.map((s) => s.ended));
  });
});
