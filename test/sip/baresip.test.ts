/**
 * The registrar and the B2BUA against real softphones: two headless baresip 1.0 instances
 * (test/sip/baresip.ts) register with digest through the server and call each other through the
 * B2BUA, driven over ctrl_tcp. Events, call records and device registrations are read back from
 * the database. Skipped when baresip is not installed.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { fromJson } from '../../src/db/dialects/index.js';
import type { B2bua } from '../../src/sip/b2bua.js';
import { Baresip, hasBaresip } from './baresip.js';
import { telephony, type Telephony } from './peers.js';

interface EventRow {
  type: string;
  userId: number | null;
  data: Record<string, unknown>;
}

async function eventsOf(t: Telephony, like: string): Promise<EventRow[]> {
  await t.server.flush();
  const rows = await t.tdb.handle.db
    .selectFrom('events')
    .select(['type', 'user_id', 'data'])
    .where('type', 'like', like)
    .orderBy('seq')
    .execute();
  return rows.map((r) => ({
    type: r.type,
    userId: r.user_id,
    data: fromJson<Record<string, unknown>>(r.data, {}),
  }));
}

/** Polls `fn` until it returns true; fails with `what` after `ms`. */
async function eventually(fn: () => boolean, what: string, ms = 3000): Promise<void> {
  const until = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > until) throw new Error(`${what} (after ${ms} ms)`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('B2BUA with baresip softphones', { skip: hasBaresip ? false : 'baresip is not installed' }, () => {
  let t: Telephony;
  let alice: Baresip;
  let bob: Baresip;

  before(async () => {
    // MD5 only: libre 1.1 (baresip 1.0) gives up on a 401 with any challenge that is not MD5
    // ("Register: Function not implemented"), so the default MD5 + SHA-256 pair locks it out.
    t = await telephony(['alice', 'bob'], { digestAlgorithms: ['MD5'] });
    const server = t.server.port;
    [alice, bob] = await Promise.all([
      Baresip.start({ name: 'alice', account: t.accounts.alice!, server, toneHz: 1000 }),
      Baresip.start({ name: 'bob', account: t.accounts.bob!, server, toneHz: 400 }),
    ]);
    await Promise.all([alice.registered(), bob.registered()]);
  });
  after(async () => {
    await Baresip.stopAll();
    await t?.close();
  });

  test('both registered with digest (REGISTER_OK): bindings and device.registered', async () => {
    for (const u of ['alice', 'bob']) {
      const state = await t.server.registrationState(t.seeded.org.id, t.seeded.users[u]!.id);
      assert.deepEqual(
        state.map((s) => s.registered),
        [true],
        `${u}: ${JSON.stringify(state)}`,
      );
    }
    const registered = await eventsOf(t, 'device.registered');
    assert.equal(registered.length, 2, JSON.stringify(registered));
    for (const u of ['alice', 'bob'] as const) {
      const e = registered.find((r) => r.userId === t.seeded.users[u]!.id);
      assert.ok(e, `no device.registered for ${u}`);
      assert.equal(e.data.deviceId, t.accounts[u]!.deviceId);
      assert.equal(e.data.aor, `sip:${t.accounts[u]!.username}@${t.seeded.domain}`);
      // baresip's Contact user is a per-UA token (`alice-0x…`), stored as sent.
      const contacts = e.data.contacts as string[];
      assert.equal(contacts.length, 1);
      assert.match(contacts[0]!, new RegExp(`^sip:${t.accounts[u]!.username}-0x[0-9a-f]+@127\\.0\\.0\\.1:`));
      assert.match(String(e.data.userAgent), /^baresip/);
    }
  });

  test('alice calls bob, bob accepts, alice hangs up: events and call records', async () => {
    const started = Date.now();
    await alice.ok('dial', `sip:bob@${t.seeded.domain}`);
    const incoming = await bob.waitFor('CALL_INCOMING', { what: 'the INVITE never reached bob' });
    assert.equal(incoming.direction, 'incoming');
    await alice.waitFor('CALL_RINGING', { what: 'no 180 relayed to alice' });
    await bob.ok('accept');
    const [ae, be] = await Promise.all([
      alice.waitFor('CALL_ESTABLISHED', { what: 'alice: call not established' }),
      bob.waitFor('CALL_ESTABLISHED', { what: 'bob: call not established' }),
    ]);
    assert.equal(ae.direction, 'outgoing');
    assert.equal(be.direction, 'incoming');
    await Promise.all([
      alice.waitFor('CALL_RTPESTAB', { what: 'alice: no RTP from bob' }),
      bob.waitFor('CALL_RTPESTAB', { what: 'bob: no RTP from alice' }),
    ]);
    assert.equal(t.server.stats.activeCalls, 1);
    const view = t.server.calls.list({ organizationId: t.seeded.org.id, id: t.seeded.users.alice!.id })[0];
    assert.equal(view?.state, 'CONFIRMED');

    await alice.ok('hangup');
    const [ac, bc] = await Promise.all([
      alice.waitFor('CALL_CLOSED', { what: 'alice: call not closed after hangup' }),
      bob.waitFor('CALL_CLOSED', { what: 'bob: no BYE reached bob' }),
    ]);
    assert.ok(ac && bc);
    await eventually(() => t.server.stats.activeCalls === 0, 'the B2BUA still has the call');

    const callId = view.callId;
    const events = (await eventsOf(t, 'call.%')).filter((e) => e.data.call_id === callId);
    assert.deepEqual(
      events.map((e) => `${e.type}:${String(e.data.local_user_id)}`),
      [
        'call.early:alice',
        'call.early:bob',
        'call.confirmed:alice',
        'call.confirmed:bob',
        'call.terminated:alice',
        'call.terminated:bob',
      ],
    );
    const ended = events.filter((e) => e.type === 'call.terminated');
    assert.deepEqual(
      ended.map((e) => [e.data.direction, e.data.termination_reason, e.data.device_type]),
      [
        ['OUTGOING', 'local_hangup', 'SOFTPHONE'],
        ['INCOMING', 'remote_hangup', 'SOFTPHONE'],
      ],
    );
    const records = await t.tdb.handle.db
      .selectFrom('call_records')
      .selectAll()
      .where('call_id', '=', callId)
      .orderBy('id')
      .execute();
    assert.deepEqual(
      records.map((r) => [r.direction, r.user_id, r.remote_number, r.device_type, r.termination_reason]),
      [
        ['OUTGOING', t.seeded.users.alice!.id, 'bob', 'SOFTPHONE', 'local_hangup'],
        ['INCOMING', t.seeded.users.bob!.id, 'alice', 'SOFTPHONE', 'remote_hangup'],
      ],
    );
    for (const r of records) {
      assert.equal(r.organization_id, t.seeded.org.id);
      assert.ok(r.started_at >= started - 1000, 'started_at');
      assert.ok(r.answered_at !== null && r.answered_at >= r.started_at, 'answered_at');
      assert.ok(r.ended_at >= r.answered_at, 'ended_at');
    }
  });

  test('hold and resume from alice pass through as re-INVITEs; DTMF goes as RTP; bob hangs up', async () => {
    // Every request the phones send to the B2BUA (INVITE, re-INVITE, INFO, BYE...).
    const b2bua = t.server.calls as B2bua;
    const seen: { method: string; body: string }[] = [];
    const original = b2bua.handleRequest.bind(b2bua);
    b2bua.handleRequest = (req, tx, source) => {
      seen.push({ method: req.method, body: req.body.toString() });
      original(req, tx, source);
    };
    try {
      await alice.ok('dial', `sip:bob@${t.seeded.domain}`);
      await bob.waitFor('CALL_INCOMING', { what: 'the INVITE never reached bob' });
      await bob.ok('accept');
      await Promise.all([
        alice.waitFor('CALL_ESTABLISHED', { what: 'alice: call not established' }),
        bob.waitFor('CALL_ESTABLISHED', { what: 'bob: call not established' }),
      ]);
      const view = t.server.calls.list({ organizationId: t.seeded.org.id, id: t.seeded.users.alice!.id })[0];
      assert.equal(view?.state, 'CONFIRMED');
      const callId = view.callId;

      // hold: alice re-INVITEs with a=sendonly; the B2BUA offers it to bob and relays his answer.
      for (const [command, direction, held] of [
        ['hold', 'sendonly', true],
        ['resume', 'sendrecv', false],
      ] as const) {
        const [a0, b0, n0] = [alice.mark(), bob.mark(), seen.length];
        await alice.ok(command);
        await bob.waitFor('CALL_REMOTE_SDP', {
          since: b0,
          where: (e) => e.param === 'offer',
          what: `${command}: the re-INVITE never reached bob`,
        });
        await alice.waitFor('CALL_REMOTE_SDP', {
          since: a0,
          where: (e) => e.param === 'answer',
          what: `${command}: bob's answer never came back to alice`,
        });
        const reinvites = seen.slice(n0).filter((r) => r.method === 'INVITE');
        assert.equal(reinvites.length, 1, `${command}: ${JSON.stringify(seen.slice(n0))}`);
        assert.match(reinvites[0]!.body, new RegExp(`a=${direction}`));
        assert.equal(t.server.calls.get(callId)?.held, held, `${command}: held in the call model`);
        assert.equal(t.server.calls.get(callId)?.state, 'CONFIRMED');
      }

      // sndcode: an RFC 4733 telephone-event in RTP, straight to bob (the B2BUA does not anchor
      // media): bob sees the digit, and no INFO came through the B2BUA.
      const b1 = bob.mark();
      await alice.ok('sndcode', '5');
      const start = await bob.waitFor('CALL_DTMF_START', { since: b1, what: 'DTMF 5 never reached bob' });
      assert.equal(start.param, '5');
      await bob.waitFor('CALL_DTMF_END', { since: b1, what: 'no end of DTMF 5 at bob' });
      assert.deepEqual(
        seen.filter((r) => r.method === 'INFO'),
        [],
      );

      // bob (the callee) hangs up.
      await bob.ok('hangup');
      await Promise.all([
        alice.waitFor('CALL_CLOSED', { what: 'alice: no BYE reached alice' }),
        bob.waitFor('CALL_CLOSED', { what: 'bob: call not closed after hangup' }),
      ]);
      await eventually(() => t.server.stats.activeCalls === 0, 'the B2BUA still has the call');
      const ended = (await eventsOf(t, 'call.terminated')).filter((e) => e.data.call_id === callId);
      assert.deepEqual(
        ended.map((e) => [e.data.local_user_id, e.data.direction, e.data.termination_reason]),
        [
          ['alice', 'OUTGOING', 'remote_hangup'],
          ['bob', 'INCOMING', 'local_hangup'],
        ],
      );
    } finally {
      b2bua.handleRequest = original;
    }
  });
});
