/**
 * The registrar through real UDP from a small Node UA (so SHA-256 digest, nonce replay and
 * restarts can be checked precisely): 423, several contacts, unregister, bindings restored after
 * a restart, brute-force blocking, OPTIONS, hostile datagrams, expiry sweeps.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { generateCallId, getHeaders } from '../../src/sip/message.js';
import { startSipServer } from '../../src/sip/server.js';
import { telephony, waitBound, type Account, type Telephony } from './peers.js';
import { authorization, challengeOf, contact, register, request, ua, type Ua } from './node-ua.js';

const GUARD = { maxFailures: 3, blockMs: 60_000 };

describe('registrar', () => {
  let t: Telephony;
  let client: Ua;
  let port = 0;
  before(async () => {
    t = await telephony(['alice', 'bob'], { guard: GUARD });
    port = t.server.port;
    client = await ua(() => port);
  });
  after(async () => {
    await client.close();
    await t.close();
  });
  const alice = (): Account => t.accounts.alice!;

  test('SHA-256 digest, two contacts, 200 lists both with their expiry', async () => {
    const { res } = await register(client, alice(), [
      contact(client, 'a1', 120),
      { name: 'Expires', value: '300' },
    ]);
    assert.equal(res.status, 200);
    const { res: res2 } = await register(client, alice(), [contact(client, 'a2')], { algorithm: 'MD5' });
    assert.equal(res2.status, 200);
    const contacts = getHeaders(res2, 'Contact');
    assert.equal(contacts.length, 2);
    assert.match(contacts.join(','), /a1@.*expires=1[12][0-9]/);
    assert.equal(t.server.stats.bindings, 2);
    const state = await t.server.registrationState(t.seeded.org.id, t.seeded.users.alice!.id);
    assert.equal(state[0]?.contacts.length, 2);
  });

  test('a nonce-count cannot be replayed', async () => {
    const { callId, auth } = await register(client, alice(), [contact(client, 'a1', 120)]);
    const replay = await client.send(
      request(
        client,
        'REGISTER',
        alice(),
        [contact(client, 'a1', 120), { name: 'Authorization', value: auth }],
        callId,
        3,
      ),
    );
    assert.equal(replay.status, 403);
  });

  test('too short an expiry → 423 with Min-Expires', async () => {
    const { res } = await register(client, alice(), [contact(client, 'a3', 10)]);
    assert.equal(res.status, 423);
    assert.deepEqual(getHeaders(res, 'Min-Expires'), ['60']);
  });

  test('bindings survive a restart; Contact * with Expires 0 removes them all (device.unregistered)', async () => {
    await t.server.close();
    t.server = await startSipServer({
      database: t.tdb.handle,
      host: '127.0.0.1',
      port: 0,
      secret: Buffer.alloc(32, 9),
      guard: GUARD,
    });
    port = t.server.port;
    assert.equal(t.server.stats.bindings, 2);
    const { res } = await register(client, alice(), [
      { name: 'Contact', value: '*' },
      { name: 'Expires', value: '0' },
    ]);
    assert.equal(res.status, 200);
    assert.equal(t.server.stats.bindings, 0);
    await t.server.flush();
    const events = await t.tdb.handle.db
      .selectFrom('events')
      .select('type')
      .where('type', 'like', 'device.%registered')
      .execute();
    assert.deepEqual(
      events.map((e) => e.type),
      ['device.registered', 'device.unregistered'],
    );
  });

  test('a server still starting answers 503 with Retry-After (no request waits unanswered), then takes work', async () => {
    // Restarted on the same port; held in its startup window (bound, not ready) by the gate.
    const same = t.server.port;
    await t.server.close();
    let open = (): void => {};
    const gate = new Promise<void>((resolve) => (open = resolve));
    const starting = startSipServer({
      database: t.tdb.handle,
      host: '127.0.0.1',
      port: same,
      secret: Buffer.alloc(32, 9),
      guard: GUARD,
      startupGate: gate,
    });
    try {
      await waitBound(same, 20_000);
      const early = await client.send(request(client, 'OPTIONS', alice(), [], generateCallId(), 1));
      assert.equal(early.status, 503);
      assert.deepEqual(getHeaders(early, 'Retry-After'), ['1']);
    } finally {
      open();
      t.server = await starting;
    }
    port = t.server.port;
    const res = await client.send(request(client, 'OPTIONS', alice(), [], generateCallId(), 1));
    assert.equal(res.status, 200);
  });

  test('expired bindings are swept with device.unregistered', async () => {
    const { res } = await register(client, alice(), [contact(client, 'a4', 60)]);
    assert.equal(res.status, 200);
    assert.equal(await t.server.sweepRegistrations(Date.now() + 61_000), 1);
    assert.equal(t.server.stats.bindings, 0);
  });

  test('OPTIONS is answered 200 with Allow', async () => {
    const res = await client.send(request(client, 'OPTIONS', alice(), [], generateCallId(), 1));
    assert.equal(res.status, 200);
    assert.match(getHeaders(res, 'Allow').join(','), /REGISTER/);
  });

  test('hostile datagrams never crash the server', async () => {
    const s = createSocket('udp4');
    const junk = [
      Buffer.from('garbage\r\n\r\n'),
      Buffer.from('REGISTER sip:x SIP/2.0\r\nVia: nonsense\r\n\r\n'),
      Buffer.from(`INVITE sip:bob@x SIP/2.0\r\n${'X: y\r\n'.repeat(5000)}\r\n`),
      Buffer.alloc(60000, 0x41),
      Buffer.from(
        `REGISTER sip:${alice().domain} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKx\r\nFrom: <sip:a@${alice().domain}>;tag=1\r\nTo: <sip:a@${alice().domain}>\r\nCall-ID: x\r\nCSeq: 1 REGISTER\r\nAuthorization: Digest username="${'a'.repeat(2000)}"\r\nContent-Length: 0\r\n\r\n`,
      ),
    ];
    for (const j of junk) await new Promise<void>((r) => s.send(j, port, '127.0.0.1', () => r()));
    s.close();
    const res = await client.send(request(client, 'OPTIONS', alice(), [], generateCallId(), 1));
    assert.equal(res.status, 200);
  });

  test('repeated failures from one source are answered 403 for a while, even with the right password', async () => {
    const bob = t.accounts.bob!;
    // (the replay above already counted one failure against 127.0.0.1)
    for (let i = 0; i < 3; i++) {
      const first = await client.send(
        request(client, 'REGISTER', bob, [contact(client, 'b1')], generateCallId(), 1),
      );
      if (first.status === 403) break;
      const auth = authorization(bob, challengeOf(first, 'MD5'), 'MD5', '00000001', 'wrong');
      const res = await client.send(
        request(
          client,
          'REGISTER',
          bob,
          [contact(client, 'b1'), { name: 'Authorization', value: auth }],
          generateCallId(),
          2,
        ),
      );
      assert.equal(res.status, 403);
    }
    const blocked = await client.send(
      request(client, 'REGISTER', bob, [contact(client, 'b1')], generateCallId(), 1),
    );
    assert.equal(blocked.status, 403);
  });
});
