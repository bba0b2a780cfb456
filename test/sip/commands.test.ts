/**
 * Call commands and the call model against sipp phones over UDP on loopback: originate when the
 * destination answers late, blind transfer, the call.held / call.resumed / call.moved /
 * call.transferred events, UPDATE passing through. Events are read back from the database.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { fromJson } from '../../src/db/dialects/index.js';
import {
  freePort,
  hasSipp,
  phone,
  registerFrom,
  runSipp,
  sipp,
  telephony,
  waitFor,
  type Account,
  type Telephony,
} from './peers.js';

const ok = (r: { code: number | null; output: string }): void => assert.equal(r.code, 0, r.output);

describe('call commands with sipp phones', { skip: hasSipp ? false : 'sipp is not installed' }, () => {
  let t: Telephony;
  const ports: Record<string, number> = {};

  before(async () => {
    t = await telephony(['alice', 'bob', 'carol'], { noAnswerTimeoutMs: 5000 });
    for (const u of ['alice', 'bob', 'carol']) {
      ports[u] = await freePort();
      await registerFrom(t.server.port, ports[u], t.accounts[u]!);
    }
  });
  after(async () => {
    await t.close();
  });

  const acc = (u: string): Account => t.accounts[u]!;
  const user = (u: string) => ({ organizationId: t.seeded.org.id, id: t.seeded.users[u]!.id });
  const at = (u: string) => ({ server: t.server.port, port: ports[u]!, account: acc(u) });

  test('originate: the destination answers after 1.5 s while the device retransmits its 200', async () => {
    // The device checks that its ACK carries the answer: an ACK without SDP (and a BYE) fails it.
    const device = await phone('device-3pcc.xml', at('alice'));
    const bob = await phone('serve.xml', { ...at('bob'), fill: { ANSWER_DELAY: '1500' } });
    const view = await t.server.calls.originate(user('alice'), t.accounts.alice!.deviceId, 'bob');
    await waitFor('the call to be answered', () => t.server.calls.get(view.callId)?.state === 'CONFIRMED');
    await t.server.calls.hangup(view.callId);
    ok(await device.done);
    ok(await bob.done);
    const ended = await endReasons(t, view.callId);
    assert.deepEqual(ended, [
      ['alice', 'hangup_command'],
      ['bob', 'hangup_command'],
    ]);
  });

  test('blind transfer: the user leg is released at once; the target, answering 1.5 s later, is connected to the far party', async () => {
    const device = await phone('serve.xml', at('alice'));
    // bob must get a re-INVITE with carol's SDP (session name "carol").
    const bob = await phone('serve.xml', { ...at('bob'), fill: { REINVITE_EXPECT: 's=carol' } });
    const view = await t.server.calls.originate(user('alice'), t.accounts.alice!.deviceId, 'bob');
    await waitFor('the call to be answered', () => t.server.calls.get(view.callId)?.state === 'CONFIRMED');
    const carol = await phone('serve.xml', {
      ...at('carol'),
      fill: { ANSWER_DELAY: '1500', SESSION: 'carol' },
    });
    await t.server.calls.blindTransfer(view.callId, 'carol');
    ok(await device.done); // alice's device got its BYE ...
    assert.equal(t.server.calls.list(user('carol'))[0]?.state, 'EARLY'); // ... while carol still rings
    assert.deepEqual(t.server.calls.list(user('alice')), []);
    await waitFor('carol to answer', () => t.server.calls.list(user('carol'))[0]?.state === 'CONFIRMED');
    await t.server.calls.hangup(view.callId);
    ok(await bob.done);
    ok(await carol.done);
    assert.deepEqual(await endReasons(t, view.callId), [
      ['alice', 'transferred'],
      ['bob', 'hangup_command'],
      ['carol', 'hangup_command'],
    ]);
    const transferred = (await eventsOf(t, view.callId)).find((e) => e.type === 'call.transferred');
    assert.equal(transferred?.data.local_user_id, 'alice');
    assert.equal(transferred?.data.transfer_target, 'carol');
  });

  test('blind transfer to a target that is busy: the far party is hung up with transfer_failed', async () => {
    const device = await phone('serve.xml', at('alice'));
    const bob = await phone('serve.xml', at('bob'));
    const view = await t.server.calls.originate(user('alice'), t.accounts.alice!.deviceId, 'bob');
    await waitFor('the call to be answered', () => t.server.calls.get(view.callId)?.state === 'CONFIRMED');
    const carol = await phone('uas-reject.xml', { ...at('carol'), fill: { STATUS: '486' } });
    await t.server.calls.blindTransfer(view.callId, 'carol');
    ok(await device.done);
    ok(await carol.done);
    ok(await bob.done); // the BYE of the failed transfer
    assert.equal(t.server.calls.get(view.callId), undefined);
    assert.deepEqual(await endReasons(t, view.callId), [
      ['alice', 'transferred'],
      ['carol', 'busy'],
      ['bob', 'transfer_failed'],
    ]);
  });

  test('hold and resume from the phone (re-INVITE a=sendonly, a=sendrecv): call.held and call.resumed', async () => {
    const bob = await phone('serve.xml', at('bob'));
    ok(
      await runSipp('call-hold.xml', {
        server: t.server.port,
        port: ports.alice!,
        account: acc('alice'),
        service: 'bob',
      }),
    );
    ok(await bob.done);
    const events = await eventsOf(t);
    const last = events.filter((e) => e.data.call_id === events[events.length - 1]!.data.call_id);
    assert.deepEqual(
      last
        .filter((e) => e.type === 'call.held' || e.type === 'call.resumed')
        .map((e) => [e.type, e.data.local_user_id, e.data.initiator, e.data.held]),
      [
        ['call.held', 'alice', 'device', true],
        ['call.resumed', 'alice', 'device', false],
      ],
    );
    assert.ok(last.every((e) => typeof e.data.timestamps.event === 'number'));
  });

  test('UPDATE with an offer passes through with the o= version bumped; a later resume offers the updated SDP', async () => {
    const bob = await phone('far-update.xml', at('bob'));
    const alice = await sipp('call-update.xml', { ...at('alice'), service: 'bob' });
    // The UPDATE holds (a=sendonly): the call model sees it, so it was relayed and answered.
    const view = await waitFor('the UPDATE to hold the call', () =>
      t.server.calls.list(user('alice')).find((v) => v.held),
    );
    await t.server.calls.resume(view.callId);
    await t.server.calls.hangup(view.callId);
    ok(await alice.done);
    ok(await bob.done);
  });
});

interface CallEventRow {
  type: string;
  data: {
    call_id: string;
    local_user_id: string | null;
    termination_reason: string | null;
    initiator?: string;
    held?: boolean;
    transfer_target?: string;
    timestamps: { event?: number };
  };
}

/** The call events in the database (of one call if given), in order. */
async function eventsOf(t: Telephony, callId?: string): Promise<CallEventRow[]> {
  await t.server.flush();
  const rows = await t.tdb.handle.db
    .selectFrom('events')
    .select(['type', 'data'])
    .where('type', 'like', 'call.%')
    .orderBy('seq')
    .execute();
  return rows
    .map((r) => ({
      type: r.type,
      data: fromJson<CallEventRow['data']>(r.data, {
        call_id: '',
        local_user_id: null,
        termination_reason: null,
        timestamps: {},
      }),
    }))
    .filter((e) => callId === undefined || e.data.call_id === callId);
}

/** [user, termination reason] of each call.terminated event of a call, in order. */
async function endReasons(t: Telephony, callId: string): Promise<[string | null, string | null][]> {
  return (await eventsOf(t, callId))
    .filter((e) => e.type === 'call.terminated')
    .map((e) => [e.data.local_user_id, e.data.termination_reason]);
}
