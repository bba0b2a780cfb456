/**
 * The CRM webhook connector through the admin API over real HTTP: configure (the generated
 * secret shown once), read, validation, scope, a call state delivered to a local receiver with a
 * signature that verifies with that secret, the delivery log, enable, delete; JSON and XML.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { forEachDialect } from '../db/helpers.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { seedOrg, systemTicket, type SeededOrg } from '../helpers/fixtures.js';
import { recordChange } from '../../src/db/changes.js';
import { EventRepository } from '../../src/events/repository.js';
import { announceEvents } from '../../src/events/local.js';
import { verifyWebhookSignature } from '../../src/events/webhook-dispatcher.js';
import { admin, type ErrorAnswer, type Page, type Rec, type Ticket } from './helpers.js';

interface Hit {
  body: string;
  signature: string;
  delivery: string;
}

/** A CRM on 127.0.0.1 that answers 204 and hands each request to whoever waits for it. */
async function crm(): Promise<{ url: string; next(): Promise<Hit>; close(): Promise<void> }> {
  const hits: Hit[] = [];
  const waiting: ((h: Hit) => void)[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const hit = {
        body: Buffer.concat(chunks).toString('utf8'),
        signature: String(req.headers['x-onecloud-signature'] ?? ''),
        delivery: String(req.headers['x-onecloud-delivery'] ?? ''),
      };
      res.statusCode = 204;
      res.end();
      const w = waiting.shift();
      if (w) w(hit);
      else hits.push(hit);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/onecloud`,
    next: () => {
      const h = hits.shift();
      if (h) return Promise.resolve(h);
      return new Promise<Hit>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error('the webhook was not delivered within 20 s')),
          20_000,
        );
        waiting.push((hit) => {
          clearTimeout(timer);
          resolve(hit);
        });
      });
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

forEachDialect('admin API: CRM webhooks', (ctx) => {
  let t: TestApp;
  let o: SeededOrg;
  let sys: Ticket;
  let receiver: Awaited<ReturnType<typeof crm>>;
  before(async () => {
    // The CRM receiver runs on loopback: private targets allowed (a test below checks the default).
    t = await startTestApp({ database: ctx.handle, url: ctx.url, config: { webhookAllowPrivate: true } });
    o = await seedOrg(ctx.handle, t.config, [{ userId: 'alice' }]);
    sys = await systemTicket(ctx.handle, t.config, ['ADMIN_WEBHOOKS']);
    receiver = await crm();
  });
  after(async () => {
    await t.close();
    await receiver.close();
  });
  const path = (suffix = '') => `/api/admin/webhooks/${o.domain}${suffix}`;

  test('by default (ONECLOUD_WEBHOOK_ALLOW_PRIVATE unset) a loopback, private or link-local URL is 400 on url', async () => {
    const strict = await startTestApp({ database: ctx.handle, url: ctx.url });
    try {
      assert.equal(strict.config.webhookAllowPrivate, false);
      for (const url of [
        receiver.url,
        'http://10.0.0.8/crm',
        'http://169.254.169.254/',
        'http://localhost:8080/x',
      ]) {
        const res = await admin<ErrorAnswer>(strict, sys, 'PUT', path(), { url });
        assert.equal(res.status, 400, `${url}: ${res.body}`);
        assert.deepEqual(
          (res.json.errors ?? []).map((e) => e.field),
          ['url'],
        );
        assert.match(res.body, /ONECLOUD_WEBHOOK_ALLOW_PRIVATE/);
      }
      assert.equal((await admin(strict, sys, 'GET', path())).status, 404, 'nothing was configured');
    } finally {
      await strict.close();
    }
  });

  test('no webhook yet is 404; bad input is 400 naming every field; another scope is 403', async () => {
    assert.equal((await admin(t, sys, 'GET', path())).status, 404);
    const bad = await admin<ErrorAnswer>(t, sys, 'PUT', path(), {
      url: 'https://crm.example/x',
      eventTypes: ['user.created'],
      secret: 'short',
      colour: 'blue',
    });
    assert.equal(bad.status, 400, bad.body);
    const fields = (bad.json.errors ?? []).map((e) => e.field).sort();
    assert.ok(
      fields.some((f) => f.includes('eventTypes')),
      bad.body,
    );
    assert.ok(
      fields.some((f) => f.includes('secret')),
      bad.body,
    );
    assert.ok(
      fields.some((f) => f.includes('colour')),
      bad.body,
    );
    const ftp = await admin<ErrorAnswer>(t, sys, 'PUT', path(), { url: 'ftp://crm.example/x' });
    assert.equal(ftp.status, 400);
    assert.match(ftp.body, /https/);
    const users = await systemTicket(ctx.handle, t.config, ['ADMIN_USERS']);
    assert.equal((await admin(t, users, 'GET', path())).status, 403);
  });

  test('configure, deliver a signed call state, read the delivery log, enable, delete', async () => {
    const created = await admin<Rec>(t, sys, 'PUT', path(), { url: receiver.url });
    assert.equal(created.status, 200, created.body);
    const secret = created.json.secret as string;
    assert.equal(typeof secret, 'string');
    assert.ok(secret.length >= 32);
    assert.deepEqual(created.json.eventTypes, ['call.confirmed', 'call.early', 'call.terminated']);
    const read = await admin<Rec>(t, sys, 'GET', path());
    assert.equal(read.status, 200);
    assert.equal(read.json.secret, undefined);
    assert.ok(!read.body.includes(secret), 'the secret is never shown again');
    const xml = await admin(t, sys, 'GET', path(), undefined, { accept: 'application/xml' });
    assert.match(xml.body, /^<\?xml[^>]*\?>\s*<webhook><domain>/);
    assert.ok(!xml.body.includes(secret));

    // A call state of one of the organization's users, as the telephony core writes it.
    const { event } = await ctx.handle.db.transaction().execute((trx) =>
      recordChange(trx, {
        organizationId: o.org.id,
        actor: 'sip',
        action: 'call.early',
        entity: 'call',
        entityId: 'call-1',
        event: {
          type: 'call.early',
          userId: o.users.alice!.id,
          // As src/sip/b2bua.ts writes it.
          data: {
            call_id: 'call-1',
            branch_id: 'call-1.1',
            direction: 'OUTGOING',
            local_user_id: 'alice',
            local_number: '+46812345',
            device_type: 'SOFTPHONE',
            remote_number: '+46700000',
            termination_reason: null,
            held: false,
            device_id: null,
            timestamps: { started: Date.now(), answered: null, ended: null, event: Date.now() },
          },
        },
      }),
    );
    const hit = await receiver.next();
    assert.ok(verifyWebhookSignature(secret, hit.body, hit.signature, Math.floor(Date.now() / 1000)));
    const states = JSON.parse(hit.body) as Rec[];
    assert.equal(states.length, 1);
    assert.equal(states[0]!.seq_num, event!.seq);
    assert.equal(states[0]!.state, 'EARLY');
    assert.equal(states[0]!.local_user_id, `alice@${o.domain}`);
    assert.equal(states[0]!.direction, 'OUTGOING');
    assert.equal(states[0]!.device_type, 'SOFT');
    assert.ok(!('termination-reason' in states[0]!), 'only a TERMINATED state has a termination-reason');

    // The log says delivered once the dispatcher has read the receiver's answer.
    let entry: Rec | undefined;
    for (let i = 0; i < 400 && entry?.status !== 'delivered'; i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, 25));
      const log = await admin<Page>(t, sys, 'GET', path('/deliveries'));
      assert.equal(log.status, 200, log.body);
      entry = log.json.items.find((d) => d.eventSeq === event!.seq);
    }
    assert.ok(entry, 'the delivery is in the log');
    assert.equal(String(entry.id), hit.delivery);
    assert.equal(entry.status, 'delivered');
    assert.equal(entry.attempts, 1);
    const delivered = await admin<Page>(t, sys, 'GET', path('/deliveries?status=delivered&limit=1'));
    assert.equal(delivered.json.items.length, 1);
    assert.equal((await admin(t, sys, 'GET', path('/deliveries?status=lost'))).status, 400);

    // Enabling an enabled webhook changes nothing; the override header reaches PUT too.
    const enabled = await admin<Rec>(t, sys, 'POST', path('/enable'));
    assert.equal(enabled.status, 200);
    assert.equal(enabled.json.enabled, true);
    const replaced = await admin<Rec>(
      t,
      sys,
      'POST',
      path(),
      { url: receiver.url, eventTypes: ['call.terminated'], rotateSecret: true },
      { headers: { 'x-http-method-override': 'PUT' } },
    );
    assert.equal(replaced.status, 200, replaced.body);
    assert.deepEqual(replaced.json.eventTypes, ['call.terminated']);
    assert.notEqual(replaced.json.secret, secret, 'a rotated secret is new');

    const audit = await admin<Page>(t, sys, 'GET', `/api/admin/audit/${o.domain}`);
    const adminAudit = await systemTicket(ctx.handle, t.config, ['ADMIN_AUDIT']);
    const actions = (await admin<Page>(t, adminAudit, 'GET', `/api/admin/audit/${o.domain}`)).json.items.map(
      (a) => a.action,
    );
    assert.equal(audit.status, 403, 'the audit log needs ADMIN_AUDIT');
    assert.ok(actions.includes('webhook.created') && actions.includes('webhook.updated'), String(actions));

    const del = await admin(t, sys, 'DELETE', path());
    assert.equal(del.status, 200);
    assert.equal((await admin(t, sys, 'GET', path())).status, 404);
    assert.equal((await admin<Page>(t, sys, 'GET', path('/deliveries'))).json.items.length, 0);
  });

  test('a disabled webhook holds the call states and sends them in order after POST .../enable', async () => {
    const put = await admin<Rec>(t, sys, 'PUT', path(), { url: receiver.url, enabled: false });
    assert.equal(put.status, 200, put.body);
    assert.equal(put.json.enabled, false);
    const at = Date.now();
    const leg = (reason: string | null) => ({
      call_id: 'call-2',
      branch_id: 'call-2.2',
      direction: 'INCOMING',
      local_user_id: 'alice',
      local_number: '+46812345',
      device_type: 'DESKPHONE',
      remote_number: '+46700001',
      termination_reason: reason,
      held: false,
      device_id: null,
      timestamps: { started: at, answered: null, ended: null, event: at },
    });
    const seqs: number[] = [];
    for (const [type, reason] of [
      ['call.early', null],
      ['call.confirmed', null],
      ['call.terminated', 'remote_hangup'],
    ] as const) {
      const [e] = await ctx.handle.db
        .transaction()
        .execute((trx) =>
          new EventRepository(trx).appendMany([
            { organizationId: o.org.id, type, userId: o.users.alice!.id, data: leg(reason) },
          ]),
        );
      seqs.push(e!.seq);
    }
    announceEvents(seqs[2]!);
    // Queued while disabled, not sent.
    let pending: Rec[] = [];
    for (let i = 0; i < 400 && pending.length < 3; i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, 25));
      pending = (await admin<Page>(t, sys, 'GET', path('/deliveries?status=pending'))).json.items;
    }
    assert.deepEqual(pending.map((d) => d.eventSeq).reverse(), seqs);
    const enabled = await admin<Rec>(t, sys, 'POST', path('/enable'));
    assert.equal(enabled.status, 200, enabled.body);
    assert.equal(enabled.json.enabled, true);
    const hits = [await receiver.next(), await receiver.next(), await receiver.next()];
    const states = hits.map((h) => (JSON.parse(h.body) as Rec[])[0]!);
    assert.deepEqual(
      states.map((x) => [x.seq_num, x.state, x['termination-reason'] ?? null, x.direction, x.device_type]),
      [
        [seqs[0], 'EARLY', null, 'INCOMING', 'DESK'],
        [seqs[1], 'CONFIRMED', null, 'INCOMING', 'DESK'],
        [seqs[2], 'TERMINATED', 'HANGUP', 'INCOMING', 'DESK'],
      ],
    );
  });
});
