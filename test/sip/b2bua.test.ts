/**
 * The registrar and the B2BUA against real SIP peers: sipp phones register with digest and call
 * each other through the server over UDP on loopback; every call command is driven against sipp
 * phones. Events and call records are read back from the database.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { addSoftphone } from '../helpers/fixtures.js';
import { fromJson } from '../../src/db/dialects/index.js';
import type { CallView } from '../../src/sip/b2bua.js';
import {
  freePort,
  hasSipp,
  phone,
  registerFrom,
  runSipp,
  telephony,
  type Account,
  type Telephony,
} from './peers.js';

const ok = (r: { code: number | null; output: string }): void => assert.equal(r.code, 0, r.output);

interface CallEvent {
  type: string;
  data: {
    call_id: string;
    branch_id: string;
    direction: string;
    local_user_id: string | null;
    device_type: string | null;
    remote_number: string | null;
    termination_reason: string | null;
  };
}

async function callEvents(t: Telephony): Promise<CallEvent[]> {
  await t.server.flush();
  const rows = await t.tdb.handle.db
    .selectFrom('events')
    .select(['type', 'data'])
    .where('type', 'like', 'call.%')
    .orderBy('seq')
    .execute();
  return rows.map((r) => ({
    type: r.type,
    data: fromJson<CallEvent['data']>(r.data, {} as CallEvent['data']),
  }));
}

/** Waits (polling the call model) until `pred` holds for the call, up to `ms`. */
async function until(
  t: Telephony,
  callId: string,
  pred: (v: CallView | undefined) => boolean,
  ms = 8000,
): Promise<CallView | undefined> {
  const end = Date.now() + ms;
  for (;;) {
    const v = t.server.calls.get(callId);
    if (pred(v)) return v;
    if (Date.now() > end) throw new Error(`call ${callId} never reached the state (${JSON.stringify(v)})`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('B2BUA with sipp phones', { skip: hasSipp ? false : 'sipp is not installed' }, () => {
  let t: Telephony;
  const ports: Record<string, number> = {};
  let alice2: Account & { deviceId: string };
  let bob2: Account & { deviceId: string };

  before(async () => {
    t = await telephony(['alice', 'bob', 'carol'], { noAnswerTimeoutMs: 1500 });
    for (const u of ['alice', 'bob', 'carol', 'alice2', 'bob2']) ports[u] = await freePort();
    const a2 = await addSoftphone(t.tdb.handle, t.seeded, 'alice', 'Second');
    const b2 = await addSoftphone(t.tdb.handle, t.seeded, 'bob', 'Second');
    alice2 = { ...a2.sip!, deviceId: a2.device.deviceId };
    bob2 = { ...b2.sip!, deviceId: b2.device.deviceId };
  });
  after(async () => {
    await t.close();
  });

  const srv = (): number => t.server.port;
  const acc = (u: string): Account => t.accounts[u]!;

  test('REGISTER with digest: wrong password 403, right password 200, device.registered', async () => {
    await registerFrom(srv(), ports.alice!, { ...acc('alice'), password: 'wrong' }, 403);
    for (const u of ['alice', 'bob', 'carol']) await registerFrom(srv(), ports[u]!, acc(u));
    await registerFrom(srv(), ports.alice2!, alice2);
    const state = await t.server.registrationState(t.seeded.org.id, t.seeded.users.alice!.id);
    assert.equal(state.length, 2);
    assert.ok(state.every((s) => s.registered));
    await t.server.flush();
    const events = await t.tdb.handle.db
      .selectFrom('events')
      .select('type')
      .where('type', '=', 'device.registered')
      .execute();
    assert.equal(events.length, 4);
  });

  test('A → B answered, caller hangs up: events and call records', async () => {
    const bob = await phone('serve.xml', { server: srv(), port: ports.bob!, account: acc('bob') });
    ok(
      await runSipp('call-bye.xml', {
        server: srv(),
        port: ports.alice!,
        account: acc('alice'),
        service: 'bob',
      }),
    );
    ok(await bob.done);
    const events = await callEvents(t);
    const callId = events[0]!.data.call_id;
    const mine = events.filter((e) => e.data.call_id === callId);
    assert.deepEqual(
      mine.map((e) => `${e.type}:${e.data.local_user_id}`),
      [
        'call.early:alice',
        'call.early:bob',
        'call.confirmed:alice',
        'call.confirmed:bob',
        'call.terminated:alice',
        'call.terminated:bob',
      ],
    );
    const ended = mine.filter((e) => e.type === 'call.terminated');
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
      .execute();
    assert.equal(records.length, 2);
    assert.ok(records.every((r) => r.answered_at !== null && r.ended_at >= r.started_at));
    assert.equal(t.server.stats.activeCalls, 0);
  });

  test('A → B answered, callee hangs up', async () => {
    const bob = await phone('answer-bye.xml', { server: srv(), port: ports.bob!, account: acc('bob') });
    ok(
      await runSipp('call-wait.xml', {
        server: srv(),
        port: ports.alice!,
        account: acc('alice'),
        service: 'bob',
      }),
    );
    ok(await bob.done);
    const events = await callEvents(t);
    const last = events.slice(-2);
    assert.deepEqual(
      last.map((e) => [e.data.local_user_id, e.data.termination_reason]),
      [
        ['alice', 'remote_hangup'],
        ['bob', 'local_hangup'],
      ],
    );
  });

  test('CANCEL while ringing', async () => {
    const bob = await phone('uas-ring.xml', { server: srv(), port: ports.bob!, account: acc('bob') });
    ok(
      await runSipp('call-cancel.xml', {
        server: srv(),
        port: ports.alice!,
        account: acc('alice'),
        service: 'bob',
      }),
    );
    ok(await bob.done);
    const last = (await callEvents(t)).slice(-2);
    assert.deepEqual(
      last.map((e) => [e.type, e.data.termination_reason]),
      [
        ['call.terminated', 'local_hangup'],
        ['call.terminated', 'cancelled'],
      ],
    );
  });

  for (const [status, reason] of [
    ['486', 'busy'],
    ['603', 'declined'],
  ] as const) {
    test(`callee rejects with ${status} → caller gets ${status}`, async () => {
      const bob = await phone('uas-reject.xml', {
        server: srv(),
        port: ports.bob!,
        account: acc('bob'),
        fill: { STATUS: status },
      });
      ok(
        await runSipp('call-fail.xml', {
          server: srv(),
          port: ports.alice!,
          account: acc('alice'),
          service: 'bob',
          fill: { STATUS: status },
        }),
      );
      ok(await bob.done);
      const last = (await callEvents(t)).slice(-1)[0]!;
      assert.equal(last.data.termination_reason, reason);
    });
  }

  test('no answer: the callee is cancelled after the ring timeout, caller gets 480', async () => {
    const bob = await phone('uas-ring.xml', { server: srv(), port: ports.bob!, account: acc('bob') });
    ok(
      await runSipp('call-fail.xml', {
        server: srv(),
        port: ports.alice!,
        account: acc('alice'),
        service: 'bob',
        fill: { STATUS: '480' },
      }),
    );
    ok(await bob.done);
    assert.equal((await callEvents(t)).slice(-1)[0]!.data.termination_reason, 'no_answer');
  });

  test('unknown number → 404', async () => {
    ok(
      await runSipp('call-fail.xml', {
        server: srv(),
        port: ports.alice!,
        account: acc('alice'),
        service: 'nobody',
        fill: { STATUS: '404' },
      }),
    );
  });

  /**
   * bob's second device (bob2) registered and running `scenario` while alice calls bob and bob's
   * first device answers; bob2 is unregistered again afterwards (a sweep in the past).
   */
  async function callBobTwice(scenario: string, pauseMs: number): Promise<void> {
    await registerFrom(srv(), ports.bob2!, bob2);
    const second = await phone(scenario, { server: srv(), port: ports.bob2!, account: bob2 });
    const answerer = await phone('serve.xml', { server: srv(), port: ports.bob!, account: acc('bob') });
    ok(
      await runSipp('call-bye.xml', {
        server: srv(),
        port: ports.alice!,
        account: acc('alice'),
        service: 'bob',
        pauseMs,
      }),
    );
    ok(await answerer.done);
    ok(await second.done);
    const { RegistrationRepository } = await import('../../src/areas/registrations/repository.js');
    const dev = await t.tdb.handle.db
      .selectFrom('devices')
      .select('id')
      .where('sip_username', '=', bob2.username)
      .executeTakeFirstOrThrow();
    await new RegistrationRepository(t.tdb.handle.db).removeAllOfDevice(dev.id);
    await t.server.sweepRegistrations(0);
  }

  test('forking to two registered devices: first answer wins, the other is cancelled', async () => {
    await callBobTwice('uas-ring.xml', 300);
  });

  test('a device that answers after the call ended gets its 200 ACKed, then BYE', async () => {
    // late-fork.xml answers 200 to the INVITE after the CANCEL, once the call is over: it ends
    // only when that 200 was ACKed and its dialog ended with BYE.
    await callBobTwice('late-fork.xml', 100);
  });

  test('re-INVITE hold and resume from the phone pass through', async () => {
    const bob = await phone('serve.xml', { server: srv(), port: ports.bob!, account: acc('bob') });
    ok(
      await runSipp('call-hold.xml', {
        server: srv(),
        port: ports.alice!,
        account: acc('alice'),
        service: 'bob',
      }),
    );
    ok(await bob.done);
  });

  test('INFO DTMF from the phone passes through', async () => {
    const bob = await phone('serve.xml', { server: srv(), port: ports.bob!, account: acc('bob') });
    ok(
      await runSipp('call-dtmf.xml', {
        server: srv(),
        port: ports.alice!,
        account: acc('alice'),
        service: 'bob',
      }),
    );
    ok(await bob.done);
  });

  test('call commands: originate, hold, resume, DTMF, move, blind transfer, hangup', async () => {
    const calls = t.server.calls;
    const alice = { organizationId: t.seeded.org.id, id: t.seeded.users.alice!.id };
    const aliceDesk = await phone('serve.xml', { server: srv(), port: ports.alice!, account: acc('alice') });
    // bob checks what each command sends him: a=sendonly, a=sendrecv, the INFOs, the new SDPs.
    const bob = await phone('far-commands.xml', {
      server: srv(),
      port: ports.bob!,
      account: acc('bob'),
      fill: { MOVED_TO: 'alice2', TRANSFERRED_TO: 'carol' },
    });
    const view = await calls.originate(alice, t.accounts.alice!.deviceId, 'bob');
    assert.equal(view.state, 'EARLY');
    await until(t, view.callId, (v) => v?.state === 'CONFIRMED');
    assert.equal(calls.list(alice).length, 1);
    await calls.hold(view.callId);
    assert.equal(calls.get(view.callId)?.held, true);
    await calls.resume(view.callId);
    assert.equal(calls.get(view.callId)?.held, false);
    await calls.sendDtmf(view.callId, '12#');
    // Move alice's side to her second device; the first one gets BYE.
    const second = await phone('serve.xml', {
      server: srv(),
      port: ports.alice2!,
      account: alice2,
      fill: { SESSION: 'alice2' },
    });
    await calls.move(view.callId, alice2.deviceId);
    ok(await aliceDesk.done);
    assert.equal(calls.get(view.callId)?.deviceId, alice2.deviceId);
    // Blind transfer: alice's leg ends at once; bob ends up talking to carol.
    const carol = await phone('serve.xml', {
      server: srv(),
      port: ports.carol!,
      account: acc('carol'),
      fill: { SESSION: 'carol' },
    });
    await calls.blindTransfer(view.callId, 'carol');
    assert.equal(calls.list(alice).length, 0);
    ok(await second.done);
    const carolUser = { organizationId: t.seeded.org.id, id: t.seeded.users.carol!.id };
    await until(t, view.callId, () => calls.list(carolUser)[0]?.state === 'CONFIRMED');
    assert.deepEqual(
      calls.list(carolUser).map((v) => [v.callId, v.state, v.remoteNumber]),
      [[view.callId, 'CONFIRMED', 'bob']],
    );
    await calls.hangup(view.callId);
    ok(await bob.done);
    ok(await carol.done);
    const events = (await callEvents(t)).filter((e) => e.data.call_id === view.callId);
    assert.deepEqual(
      events.filter((e) => e.data.local_user_id === 'alice').map((e) => e.type),
      [
        'call.early',
        'call.confirmed',
        'call.held',
        'call.resumed',
        'call.moved',
        'call.transferred',
        'call.terminated',
      ],
    );
    const ended = events
      .filter((e) => e.type === 'call.terminated')
      .map((e) => [e.data.local_user_id, e.data.termination_reason]);
    assert.deepEqual(ended, [
      ['alice', 'transferred'],
      ['bob', 'hangup_command'],
      ['carol', 'hangup_command'],
    ]);
  });

  test('hangup command while the device rings sends CANCEL', async () => {
    const calls = t.server.calls;
    const alice = { organizationId: t.seeded.org.id, id: t.seeded.users.alice!.id };
    const ringer = await phone('uas-ring.xml', { server: srv(), port: ports.alice!, account: acc('alice') });
    const view = await calls.originate(alice, t.accounts.alice!.deviceId, 'bob');
    await new Promise((r) => setTimeout(r, 200));
    await calls.hangup(view.callId);
    ok(await ringer.done);
    assert.equal(calls.get(view.callId), undefined);
  });
});
