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
});

/** [user, termination reason] of each call.terminated event of a call, in order. */
async function endReasons(t: Telephony, callId: string): Promise<[string | null, string | null][]> {
  await t.server.flush();
  const rows = await t.tdb.handle.db
    .selectFrom('events')
    .select(['type', 'data'])
    .where('type', '=', 'call.terminated')
    .orderBy('seq')
    .execute();
  return rows
    .map((r) =>
      fromJson<{ call_id: string; local_user_id: string | null; termination_reason: string | null }>(r.data, {
        call_id: '',
        local_user_id: null,
        termination_reason: null,
      }),
    )
    .filter((d) => d.call_id === callId)
    .map((d) => [d.local_user_id, d.termination_reason]);
}
