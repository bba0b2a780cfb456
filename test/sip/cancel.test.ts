/**
 * A CANCEL that arrives while its INVITE is still being authenticated or routed ends the call:
 * the caller gets 487 and the callee is never rung. The window is made certain by TCP: the INVITE
 * and the CANCEL travel in one write, so the server reads the CANCEL right after the INVITE's
 * handler reached its first await (the organization, then the routing lookups in the database).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { SipMessage, SipResponse } from '../../src/sip/message.js';
import { telephony, waitFor, type Telephony } from './peers.js';
import { cancelOf, contact, invite, register, registerTcp, tcpPeer, ua, type Ua } from './node-ua.js';

const response =
  (method: string, status: number) =>
  (m: SipMessage): boolean =>
    m.type === 'response' &&
    m.status === status &&
    m.headers.some((h) => h.name === 'CSeq' && h.value.endsWith(method));

describe('CANCEL during authentication and routing', () => {
  let t: Telephony;
  let bob: Ua;
  before(async () => {
    t = await telephony(['alice', 'bob']);
    bob = await ua(() => t.server.port);
    assert.equal((await register(bob, t.accounts.bob!, [contact(bob, 'bob')])).res.status, 200);
  });
  after(async () => {
    await bob.close();
    await t.close();
  });

  test('INVITE and CANCEL in one TCP write: 200 for the CANCEL, 487 for the INVITE, the callee never rung', async () => {
    const alice = await tcpPeer(t.server.port);
    try {
      assert.equal((await registerTcp(alice, t.accounts.alice!)).status, 200);
      const inv = invite({ transport: 'TCP', port: alice.port }, t.accounts.alice!, 'bob');
      alice.write(inv, cancelOf(inv));
      const rung = bob.nextRequest('INVITE').then(() => 'the callee was rung');
      const outcome = await Promise.race([
        Promise.all([alice.next(response('CANCEL', 200)), alice.next(response('INVITE', 487))]),
        rung,
      ]);
      assert.notEqual(outcome, 'the callee was rung');
      const [, terminated] = outcome as [SipMessage, SipResponse];
      assert.equal(terminated.status, 487);
      await waitFor('no call left', () => t.server.stats.activeCalls === 0);
      assert.deepEqual(
        bob.received.map((r) => r.method),
        [],
      );
    } finally {
      alice.close();
    }
  });
});
