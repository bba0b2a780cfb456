import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, test } from 'node:test';
import type { Kysely } from 'kysely';
import { AuditRepository } from '../../src/areas/audit/repository.js';
import {
  configureWebhook,
  enableWebhook,
  getWebhook,
  listDeliveries,
} from '../../src/areas/webhooks/service.js';
import type { DB } from '../../src/db/schema.js';
import { ValidationError } from '../../src/errors.js';
import { EventRepository } from '../../src/events/repository.js';
import {
  toCrmCallState,
  WebhookDispatcher,
  verifyWebhookSignature,
  type CrmCallState,
} from '../../src/events/webhook-dispatcher.js';
import { isPrivateAddress } from '../../src/events/webhook-target.js';
import { WebhookRepository } from '../../src/areas/webhooks/repository.js';
import type { StoredEvent } from '../../src/events/repository.js';
import { forEachDialect } from '../db/helpers.js';
import { freePort, hasSipp, phone, registerFrom, runSipp, telephony } from '../sip/peers.js';
import { newOrg } from './helpers.js';

const serverKey = randomBytes(32);
const SECRET = 'crm-shared-secret-0123456789';

interface Received {
  deliveryId: string;
  attempt: string;
  body: string;
  signatureOk: boolean;
  status: number;
}

/** A CRM receiver on 127.0.0.1 that answers 500 to the first `failFirst` requests. */
async function receiver(opts: { failFirst: number; now: () => number; secret?: string }) {
  const got: Received[] = [];
  let failuresLeft = opts.failFirst;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const sig = String(req.headers['x-onecloud-signature'] ?? '');
      const status = failuresLeft > 0 ? 500 : 204;
      if (failuresLeft > 0) failuresLeft -= 1;
      got.push({
        deliveryId: String(req.headers['x-onecloud-delivery']),
        attempt: String(req.headers['x-onecloud-attempt']),
        body,
        signatureOk: verifyWebhookSignature(opts.secret ?? SECRET, body, sig, Math.floor(opts.now() / 1000)),
        status,
      });
      res.statusCode = status;
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    got,
    setFailures(n: number) {
      failuresLeft = n;
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/**
 * A call event exactly as the telephony core writes it (src/sip/b2bua.ts `emit`): one user's leg,
 * `direction` INCOMING/OUTGOING, device kinds, lower-case termination reasons, timestamps.
 */
async function callEvent(
  db: Kysely<DB>,
  orgId: number,
  type: string,
  callId: string,
  extra: Record<string, unknown> = {},
  userId: number | null = null,
) {
  const time = Date.now();
  const [event] = await db.transaction().execute((trx) =>
    new EventRepository(trx).appendMany([
      {
        organizationId: orgId,
        type,
        time,
        userId,
        data: {
          call_id: callId,
          branch_id: `${callId}.1`,
          direction: 'INCOMING',
          local_user_id: 'alice',
          local_number: '+4681234500',
          device_type: 'SOFTPHONE',
          remote_number: '+46700000001',
          termination_reason: null,
          held: false,
          device_id: '2.7d4c3b2a-0000-4000-8000-000000000001',
          timestamps: { started: time, answered: null, ended: null, event: time },
          ...extra,
        },
      },
    ]),
  );
  return event!;
}

const allowPrivate = { allowPrivateTargets: true };

forEachDialect('CRM webhooks', (t) => {
  test('configuration is validated; the secret is generated once and never shown again', async () => {
    const { handle } = t;
    const org = await newOrg(handle.db, 'whcfg');
    await assert.rejects(
      configureWebhook(handle, serverKey, 'test', org.domain, {
        url: 'ftp://x',
        eventTypes: ['user.created'],
      }),
      (err: unknown) => err instanceof ValidationError && err.problems.length === 2,
    );
    const created = await configureWebhook(handle, serverKey, 'test', org.domain, {
      url: 'https://crm.example/x',
    });
    assert.equal(typeof created.secret, 'string');
    assert.deepEqual(created.webhook.eventTypes, ['call.confirmed', 'call.early', 'call.terminated']);
    const again = await configureWebhook(handle, serverKey, 'test', org.domain, {
      url: 'https://crm.example/y',
      eventTypes: ['call.terminated'],
    });
    assert.equal(again.secret, undefined);
    const view = await getWebhook(handle, org.domain);
    assert.equal(view.url, 'https://crm.example/y');
    assert.ok(!JSON.stringify(view).includes(created.secret!));
  });

  test('retries with backoff, order per webhook, signatures, delivery log, restart mid-retries', async () => {
    const { handle } = t;
    const { db } = handle;
    const org = await newOrg(db, 'wh');
    const clock = { t: Date.UTC(2026, 2, 21, 9, 0, 0) };
    const now = () => clock.t;
    const rx = await receiver({ failFirst: 3, now });
    try {
      await configureWebhook(
        handle,
        serverKey,
        'admin:test',
        org.domain,
        { url: rx.url, secret: SECRET },
        allowPrivate,
      );
      const make = () =>
        new WebhookDispatcher({
          db,
          serverKey,
          clock: { now },
          random: () => 0,
          disableAfterFailures: 50,
          ...allowPrivate,
        });
      // Events committed before the dispatcher first runs are still sent (the cursor is in the DB).
      const events = [
        await callEvent(db, org.id, 'call.early', 'c1'),
        await callEvent(db, org.id, 'call.confirmed', 'c1'),
        await callEvent(db, org.id, 'user.created', 'not-a-call'),
        await callEvent(db, org.id, 'call.terminated', 'c1', { termination_reason: 'remote_hangup' }),
      ];
      let d = make();
      const r1 = await d.tick();
      assert.equal(r1.enqueued, 3);
      assert.equal(r1.attempted, 1);
      assert.equal(r1.failed, 1);
      // Not due yet: nothing is sent.
      clock.t += 29_000;
      assert.equal((await d.tick()).attempted, 0);
      clock.t += 1_000;
      assert.equal((await d.tick()).failed, 1); // attempt 2, after 30 s
      // "Restart": a new dispatcher on the same database picks up where the old one stopped.
      await d.stop();
      d = make();
      const late = await callEvent(db, org.id, 'call.early', 'c2');
      clock.t += 60_000;
      const r3 = await d.tick(); // attempt 3 fails (third failure)
      assert.equal(r3.enqueued, 1);
      assert.equal(r3.failed, 1);
      clock.t += 119_000;
      assert.equal((await d.tick()).attempted, 0);
      clock.t += 1_000;
      const r4 = await d.tick(); // attempt 4 of the head succeeds, then the rest go in order
      assert.equal(r4.delivered, 4);
      await d.stop();

      const ok = rx.got.filter((g) => g.status === 204);
      assert.ok(rx.got.every((g) => g.signatureOk));
      const states = ok.map((g) => JSON.parse(g.body) as CrmCallState[]);
      assert.ok(states.every((s) => s.length === 1));
      assert.deepEqual(
        states.map((s) => s[0]!.seq_num),
        [events[0]!.seq, events[1]!.seq, events[3]!.seq, late.seq],
      );
      assert.deepEqual(
        states.map((s) => s[0]!.state),
        ['EARLY', 'CONFIRMED', 'TERMINATED', 'EARLY'],
      );
      const term = states[2]![0]!;
      assert.deepEqual(Object.keys(term), [
        'seq_num',
        'call_id',
        'branch_id',
        'timestamp',
        'state',
        'termination-reason',
        'direction',
        'local_user_id',
        'local_number',
        'device_type',
        'remote_number',
      ]);
      assert.equal(term['termination-reason'], 'HANGUP');
      assert.equal(term.call_id, 'c1');
      assert.equal(term.timestamp, new Date(events[3]!.time).toISOString().replace('Z', '+00:00'));
      // The same delivery id on every attempt of the head, attempts counted.
      const head = rx.got.filter((g) => g.deliveryId === rx.got[0]!.deliveryId);
      assert.deepEqual(
        head.map((g) => [g.attempt, g.status]),
        [
          ['1', 500],
          ['2', 500],
          ['3', 500],
          ['4', 204],
        ],
      );
      const log = await listDeliveries(handle, org.domain);
      assert.equal(log.items.length, 4);
      assert.ok(log.items.every((i) => i.status === 'delivered'));
      assert.deepEqual(
        log.items.map((i) => i.attempts),
        [1, 1, 1, 4],
      );
      assert.equal(log.items[3]!.lastStatusCode, 204);
      assert.equal((await getWebhook(handle, org.domain)).consecutiveFailures, 0);
    } finally {
      await rx.close();
    }
  });

  test('backoff: at least 8 attempts over at least an hour', async () => {
    const d = new WebhookDispatcher({ db: t.handle.db, serverKey, random: () => 0 });
    let total = 0;
    for (let a = 1; a <= 7; a += 1) total += d.retryDelay(a);
    assert.ok(total >= 3_600_000, `7 waits: ${total} ms`);
    const jittered = new WebhookDispatcher({ db: t.handle.db, serverKey, random: () => 0.999 });
    assert.ok(jittered.retryDelay(1) > d.retryDelay(1));
    assert.ok(jittered.retryDelay(20) <= 3_600_000 * 1.25);
  });

  test('consecutive failures disable the webhook (audit + event); enable resumes the queue', async () => {
    const { handle } = t;
    const { db } = handle;
    const org = await newOrg(db, 'whdis');
    const clock = { t: Date.UTC(2026, 2, 21, 12, 0, 0) };
    const now = () => clock.t;
    const rx = await receiver({ failFirst: 1000, now });
    try {
      await configureWebhook(
        handle,
        serverKey,
        'admin:test',
        org.domain,
        { url: rx.url, secret: SECRET },
        allowPrivate,
      );
      const d = new WebhookDispatcher({
        db,
        serverKey,
        clock: { now },
        random: () => 0,
        disableAfterFailures: 4,
        ...allowPrivate,
      });
      const ev = await callEvent(db, org.id, 'call.early', 'd1');
      for (let i = 0; i < 10 && (await getWebhook(handle, org.domain)).enabled; i += 1) {
        await d.tick();
        clock.t += 3_600_000;
      }
      const view = await getWebhook(handle, org.domain);
      assert.equal(view.enabled, false);
      assert.match(view.disabledReason ?? '', /4 consecutive failed deliveries/);
      assert.equal(rx.got.length, 4);
      const audit = await new AuditRepository(db).list(org.id, {});
      assert.ok(audit.items.some((a) => a.action === 'webhook.disabled'));
      const events = await new EventRepository(db).readAfter(org.id, ev.seq, 100);
      assert.ok(events.some((e) => e.type === 'webhook.disabled'));
      // Disabled: nothing is sent.
      await d.tick();
      assert.equal(rx.got.length, 4);
      rx.setFailures(0);
      await enableWebhook(handle, 'admin:test', org.domain, clock.t);
      const r = await d.tick();
      assert.equal(r.delivered, 1);
      const log = await listDeliveries(handle, org.domain, { status: 'delivered' });
      assert.equal(log.items[0]!.attempts, 5);
    } finally {
      await rx.close();
    }
  });

  test('the CRM payload of call events as the telephony core writes them', () => {
    const at = Date.UTC(2026, 2, 21, 10, 36, 19, 315);
    const leg = (type: string, data: Record<string, unknown>, seq = 7): StoredEvent => ({
      seq,
      organizationId: 1,
      type,
      time: at,
      userId: 5,
      groupId: null,
      data: {
        call_id: 'tvNAazZlEwDZ',
        branch_id: 'tvNAazZlEwDZ.2',
        direction: 'OUTGOING',
        local_user_id: 'alice',
        local_number: '+46812345',
        device_type: 'DESKPHONE',
        remote_number: '+46700000',
        termination_reason: null,
        held: false,
        device_id: '2.x',
        timestamps: { started: at, answered: null, ended: null, event: at },
        ...data,
      },
    });
    assert.deepEqual(toCrmCallState(leg('call.early', {}), 'example.org'), {
      seq_num: 7,
      call_id: 'tvNAazZlEwDZ',
      branch_id: 'tvNAazZlEwDZ.2',
      timestamp: '2026-03-21T10:36:19.315+00:00',
      state: 'EARLY',
      direction: 'OUTGOING',
      local_user_id: 'alice@example.org',
      local_number: '+46812345',
      device_type: 'DESK',
      remote_number: '+46700000',
    });
    const ended = toCrmCallState(
      leg('call.terminated', {
        direction: 'INCOMING',
        device_type: 'SOFTPHONE',
        termination_reason: 'local_hangup',
      }),
      'example.org',
    )!;
    assert.deepEqual(Object.keys(ended), [
      'seq_num',
      'call_id',
      'branch_id',
      'timestamp',
      'state',
      'termination-reason',
      'direction',
      'local_user_id',
      'local_number',
      'device_type',
      'remote_number',
    ]);
    assert.deepEqual(
      [ended['termination-reason'], ended.direction, ended.device_type],
      ['HANGUP', 'INCOMING', 'SOFT'],
    );
    const reasons = [
      'remote_hangup',
      'busy',
      'no_answer',
      'cancelled',
      'declined',
      'unavailable',
      'not_found',
    ].map(
      (r) => toCrmCallState(leg('call.terminated', { termination_reason: r }), 'd')!['termination-reason'],
    );
    assert.deepEqual(reasons, [
      'HANGUP',
      'BUSY',
      'NO_ANSWER',
      'CANCELLED',
      'DECLINED',
      'UNAVAILABLE',
      'NOT_FOUND',
    ]);
    assert.equal(toCrmCallState(leg('call.early', { device_type: 'MOBILE' }), 'd')!.device_type, 'MOBILE');
    // A leg without a user of the organization (a trunk, a function number) is not sent.
    assert.equal(toCrmCallState({ ...leg('call.early', { local_user_id: null }), userId: null }, 'd'), null);
    assert.equal(toCrmCallState(leg('call.held', {}), 'd'), null);
  });

  test('a disabled webhook holds its events (up to maxHeld) and sends them in order once enabled', async () => {
    const { handle } = t;
    const { db } = handle;
    const org = await newOrg(db, 'whheld');
    // The real time, from after the configuration below (which stamps disabledAt with it).
    const clock = { t: 0 };
    const now = () => clock.t;
    const rx = await receiver({ failFirst: 0, now });
    try {
      await configureWebhook(
        handle,
        serverKey,
        'admin:test',
        org.domain,
        { url: rx.url, secret: SECRET, enabled: false },
        allowPrivate,
      );
      clock.t = Date.now() + 1;
      const d = new WebhookDispatcher({
        db,
        serverKey,
        clock: { now },
        random: () => 0,
        maxHeld: 4,
        ...allowPrivate,
      });
      const held = [];
      for (let i = 0; i < 6; i++) held.push(await callEvent(db, org.id, 'call.early', `h${i}`));
      const r1 = await d.tick();
      assert.deepEqual([r1.enqueued, r1.dropped, r1.attempted], [4, 2, 0], 'held, not sent');
      assert.equal(rx.got.length, 0);
      const log = await listDeliveries(handle, org.domain);
      assert.deepEqual(
        log.items.map((i) => [i.eventSeq, i.status]).reverse(),
        held.slice(0, 4).map((e) => [e.seq, 'pending']),
      );
      // The overflow is recorded once, with the first seq that was not queued.
      await callEvent(db, org.id, 'call.early', 'h6');
      assert.equal((await d.tick()).dropped, 1);
      const full = (await new EventRepository(db).readAfter(org.id, 0, 1000)).filter(
        (e) => e.type === 'webhook.queue_full',
      );
      assert.equal(full.length, 1);
      assert.equal((full[0]!.data as { firstDroppedSeq: number }).firstDroppedSeq, held[4]!.seq);
      const audit = await new AuditRepository(db).list(org.id, {});
      assert.ok(audit.items.some((a) => a.action === 'webhook.queue_full'));

      await enableWebhook(handle, 'admin:test', org.domain, clock.t);
      const later = await callEvent(db, org.id, 'call.confirmed', 'h0');
      const r2 = await d.tick();
      assert.equal(r2.delivered, 5);
      assert.deepEqual(
        rx.got.map((g) => (JSON.parse(g.body) as CrmCallState[])[0]!.seq_num),
        [...held.slice(0, 4).map((e) => e.seq), later.seq],
        'the held events first, in order, then the new one',
      );
      assert.ok(rx.got.every((g) => g.signatureOk));
    } finally {
      await rx.close();
    }
  });

  test('private targets: refused at configuration and at delivery unless allowed', async () => {
    const { handle } = t;
    const { db } = handle;
    for (const ip of [
      '127.0.0.1',
      '10.1.2.3',
      '172.16.0.1',
      '192.168.1.1',
      '169.254.169.254',
      '100.64.0.1',
      '0.0.0.0',
      '::1',
      'fe80::1',
      'fd00::1',
      '::ffff:127.0.0.1',
      '::ffff:a00:1',
      '::127.0.0.1', // IPv4-compatible
      '64:ff9b::a9fe:a9fe', // NAT64 of 169.254.169.254
      '64:ff9b:1::1', // local-use NAT64
      '2002:7f00:1::1', // 6to4 of 127.0.0.1
      '2002:c0a8:101::', // 6to4 of 192.168.1.1
      '2001:0:4136:e378::1', // Teredo
      'fec0::1',
    ])
      assert.ok(isPrivateAddress(ip), ip);
    for (const ip of [
      '93.184.216.34',
      '8.8.8.8',
      '2606:4700::1111',
      '::ffff:8.8.8.8',
      '2002:808:808::1', // 6to4 of 8.8.8.8
      '64:ff9b::808:808',
    ])
      assert.ok(!isPrivateAddress(ip), ip);
    const org = await newOrg(db, 'whssrf');
    for (const url of [
      'http://127.0.0.1:8080/x',
      'https://[::1]/x',
      'http://169.254.169.254/latest/meta-data',
      'http://localhost/x',
      'http://crm.localhost./x',
      'http://[::ffff:10.0.0.1]/x',
      'http://2130706433/x',
    ]) {
      await assert.rejects(
        configureWebhook(handle, serverKey, 'test', org.domain, { url }),
        (err: unknown) =>
          err instanceof ValidationError &&
          err.problems.length === 1 &&
          err.problems[0]!.field === 'url' &&
          /ONECLOUD_WEBHOOK_ALLOW_PRIVATE/.test(err.problems[0]!.message),
        url,
      );
    }
    const clock = { t: Date.UTC(2026, 2, 23, 9, 0, 0) };
    const now = () => clock.t;
    const rx = await receiver({ failFirst: 0, now });
    try {
      // Allowed, a loopback receiver is configured; a dispatcher that refuses private targets
      // then refuses it at delivery, by IP literal and by a name that resolves to loopback.
      const byName = rx.url.replace('127.0.0.1', 'localhost');
      await configureWebhook(
        handle,
        serverKey,
        'test',
        org.domain,
        { url: byName, secret: SECRET },
        allowPrivate,
      );
      const strict = new WebhookDispatcher({ db, serverKey, clock: { now }, random: () => 0 });
      await callEvent(db, org.id, 'call.early', 's1');
      const r1 = await strict.tick();
      assert.deepEqual([r1.attempted, r1.failed], [1, 1]);
      const head = (await listDeliveries(handle, org.domain)).items[0]!;
      assert.match(
        head.lastError ?? '',
        /^refused: localhost resolves to (127\.0\.0\.1|::1), a private address/,
      );
      const w = (await new WebhookRepository(db).getByOrganization(org.id))!;
      await configureWebhook(
        handle,
        serverKey,
        'test',
        org.domain,
        { url: rx.url, eventTypes: w.eventTypes },
        allowPrivate,
      );
      clock.t += 3_600_000;
      const r2 = await strict.tick();
      assert.deepEqual([r2.attempted, r2.failed], [1, 1]);
      assert.match(
        (await listDeliveries(handle, org.domain)).items[0]!.lastError ?? '',
        /^refused: 127\.0\.0\.1/,
      );
      assert.equal(rx.got.length, 0, 'nothing reached the receiver');
      // With private targets allowed, the same delivery goes out.
      clock.t += 3_600_000;
      const lax = new WebhookDispatcher({ db, serverKey, clock: { now }, random: () => 0, ...allowPrivate });
      assert.equal((await lax.tick()).delivered, 1);
      assert.equal(rx.got.length, 1);
    } finally {
      await rx.close();
    }
  });
});

describe(
  'CRM webhook from a real call through the B2BUA',
  { skip: hasSipp ? false : 'sipp is not installed' },
  () => {
    test('alice calls bob (sipp phones), alice hangs up: six call states reach the CRM in the real shape', async () => {
      const tel = await telephony(['alice', 'bob']);
      const rx = await receiver({ failFirst: 0, now: () => Date.now() });
      try {
        const { handle } = tel.tdb;
        const { domain } = tel.seeded;
        await configureWebhook(
          handle,
          serverKey,
          'test',
          domain,
          { url: rx.url, secret: SECRET },
          allowPrivate,
        );
        const ports = { alice: await freePort(), bob: await freePort() };
        for (const u of ['alice', 'bob'] as const)
          await registerFrom(tel.server.port, ports[u], tel.accounts[u]!);
        const bob = await phone('serve.xml', {
          server: tel.server.port,
          port: ports.bob,
          account: tel.accounts.bob!,
        });
        const call = await runSipp('call-bye.xml', {
          server: tel.server.port,
          port: ports.alice,
          account: tel.accounts.alice!,
          service: 'bob',
        });
        assert.equal(call.code, 0, call.output);
        assert.equal((await bob.done).code, 0);
        await tel.server.flush();
        const d = new WebhookDispatcher({ db: handle.db, serverKey, ...allowPrivate });
        const r = await d.tick();
        assert.equal(r.delivered, 6, JSON.stringify(r));
        const states = rx.got.map((g) => (JSON.parse(g.body) as CrmCallState[])[0]!);
        assert.ok(rx.got.every((g) => g.signatureOk));
        assert.deepEqual(
          states.map((x) => [x.state, x.local_user_id, x.direction, x.device_type, x['termination-reason']]),
          [
            ['EARLY', `alice@${domain}`, 'OUTGOING', 'SOFT', undefined],
            // Ringing: no device has answered yet, the core knows none.
            ['EARLY', `bob@${domain}`, 'INCOMING', null, undefined],
            ['CONFIRMED', `alice@${domain}`, 'OUTGOING', 'SOFT', undefined],
            ['CONFIRMED', `bob@${domain}`, 'INCOMING', 'SOFT', undefined],
            ['TERMINATED', `alice@${domain}`, 'OUTGOING', 'SOFT', 'HANGUP'],
            ['TERMINATED', `bob@${domain}`, 'INCOMING', 'SOFT', 'HANGUP'],
          ],
        );
        assert.equal(new Set(states.map((x) => x.call_id)).size, 1, 'one call');
        assert.ok(states.every((x) => /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$/.test(x.timestamp)));
        const seqs = states.map((x) => x.seq_num);
        assert.deepEqual(
          seqs,
          [...seqs].sort((a, b) => a - b),
          'in seq order',
        );
      } finally {
        await rx.close();
        await tel.close();
      }
    });
  },
);
