/**
 * A call through the B2BUA over TCP end to end: the caller is sipp on one TCP connection (407 and
 * digest on it, as it never registered there), the callee a Node client registered over its own
 * TCP connection, which the B2BUA reuses to ring it (its only route: the source port of a TCP
 * client accepts no new connections). The caller hangs up.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createResponse, type SipMessage, type SipRequest } from '../../src/sip/message.js';
import { freePort, hasSipp, runSipp, telephony, waitFor, type Telephony } from './peers.js';
import { registerTcp, tcpPeer, type TcpPeer } from './node-ua.js';

const request = (method: string) => (m: SipMessage) => m.type === 'request' && m.method === method;

const ANSWER = Buffer.from(
  'v=0\r\no=bob 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40002 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n',
);

describe('a B2BUA call over TCP', { skip: hasSipp ? false : 'sipp is not installed' }, () => {
  let t: Telephony;
  let bob: TcpPeer;
  before(async () => {
    t = await telephony(['alice', 'bob']);
    bob = await tcpPeer(t.server.port);
    assert.equal((await registerTcp(bob, t.accounts.bob!)).status, 200);
  });
  after(async () => {
    bob.close();
    await t.close();
  });

  test('sipp on TCP calls a phone registered over TCP; answered, then hung up by the caller', async () => {
    const caller = runSipp('call-bye.xml', {
      server: t.server.port,
      port: await freePort(),
      account: t.accounts.alice!,
      service: 'bob',
      transport: 't1',
    });
    const inv = (await bob.next(request('INVITE'))) as SipRequest;
    const contact = { name: 'Contact', value: `<sip:bob@127.0.0.1:${bob.port};transport=tcp>` };
    bob.write(createResponse(inv, 180, { toTag: 'bob-tcp', headers: [contact] }));
    bob.write(
      createResponse(inv, 200, {
        toTag: 'bob-tcp',
        headers: [contact, { name: 'Content-Type', value: 'application/sdp' }],
        body: ANSWER,
      }),
    );
    await bob.next(request('ACK'));
    const bye = (await bob.next(request('BYE'))) as SipRequest;
    bob.write(createResponse(bye, 200));
    const r = await caller;
    assert.equal(r.code, 0, r.output);
    await waitFor('the call to end', () => t.server.stats.activeCalls === 0);
    await t.server.flush();
    const types = await t.tdb.handle.db
      .selectFrom('events')
      .select('type')
      .where('type', 'like', 'call.%')
      .orderBy('seq')
      .execute();
    assert.deepEqual(
      types.map((e) => e.type),
      ['call.early', 'call.early', 'call.confirmed', 'call.confirmed', 'call.terminated', 'call.terminated'],
    );
  });
});
