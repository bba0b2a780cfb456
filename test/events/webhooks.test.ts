import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import type { Kysely } from 'kysely';
import { AuditRepository } from '../../src/areas/audit/repository.js';
import {
  configureWebhook,
  enableWebhook,
  getWebhook,
  listDeliveries,
} from '../../src/areas/webhooks/service.js';
import { recordChange } from '../../src/db/changes.js';
import type { DB } from '../../src/db/schema.js';
import { ValidationError } from '../../src/errors.js';
import { EventRepository } from '../../src/events/repository.js';
import {
  WebhookDispatcher,
  verifyWebhookSignature,
  type CrmCallState,
} from '../../src/events/webhook-dispatcher.js';
import { forEachDialect } from '../db/helpers.js';
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

async function callEvent(db: Kysely<DB>, orgId: number, type: string, callId: string, extra = {}) {
  return db.transaction().execute(async (trx) => {
    const { event } = await recordChange(trx, {
      organizationId: orgId,
      actor: 'test',
      action: type,
      entity: 'call',
      entityId: callId,
      event: {
        type,
        userId: null,
        data: {
          call_id: callId,
          branch_id: `${callId}-b1`,
          direction: 'inbound',
          local_user_id: 'alice',
          local_number: '+4681234500',
          device_type: 'SOFTPHONE',
          remote_number: '+46700000001',
          ...extra,
        },
      },
    });
    return event!;
  });
}

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
      await configureWebhook(handle, serverKey, 'admin:test', org.domain, { url: rx.url, secret: SECRET });
      const make = () =>
        new WebhookDispatcher({ db, serverKey, clock: { now }, random: () => 0, disableAfterFailures: 50 });
      // Events committed before the dispatcher first runs are still sent (the cursor is in the DB).
      const events = [
        await callEvent(db, org.id, 'call.early', 'c1'),
        await callEvent(db, org.id, 'call.confirmed', 'c1'),
        await callEvent(db, org.id, 'user.created', 'not-a-call'),
        await callEvent(db, org.id, 'call.terminated', 'c1', { termination_reason: 'REMOTE_HANGUP' }),
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
      assert.equal(term['termination-reason'], 'REMOTE_HANGUP');
      assert.equal(term.call_id, 'c1');
      assert.equal(term.timestamp, new Date(events[3]!.time).toISOString());
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
      await configureWebhook(handle, serverKey, 'admin:test', org.domain, { url: rx.url, secret: SECRET });
      const d = new WebhookDispatcher({
        db,
        serverKey,
        clock: { now },
        random: () => 0,
        disableAfterFailures: 4,
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
});
