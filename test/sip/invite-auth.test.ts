/**
 * Who may place a call: over UDP every out-of-dialog INVITE needs digest credentials (a source
 * address can be forged, so being registered from that ip:port is not enough); over TCP an INVITE
 * on the very connection over which the device's REGISTER was digest-authenticated is trusted.
 * Real SIP on loopback from a Node UA (UDP) and a raw TCP client. The dialled number is unknown,
 * so an INVITE that passes authentication is answered 404 by routing.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { getHeaders, type SipResponse } from '../../src/sip/message.js';
import { telephony, waitFor, type Telephony } from './peers.js';
import {
  contact,
  credentials,
  finalTo,
  invite,
  proxyChallengeOf,
  register,
  registerTcp,
  tcpPeer,
  ua,
  type Ua,
} from './node-ua.js';

describe('INVITE authentication', () => {
  let t: Telephony;
  let phone: Ua;
  before(async () => {
    t = await telephony(['alice', 'bob']);
    phone = await ua(() => t.server.port);
    const { res } = await register(phone, t.accounts.alice!, [contact(phone, 'alice')]);
    assert.equal(res.status, 200);
  });
  after(async () => {
    await phone.close();
    await t.close();
  });
  const alice = () => t.accounts.alice!;
  const udp = () => ({ transport: 'UDP' as const, port: phone.transport.port });

  test('UDP from the port alice registered from, without credentials: 407 (a source can be forged)', async () => {
    const res = await phone.send(invite(udp(), alice(), 'nobody'));
    assert.equal(res.status, 407);
    assert.equal(getHeaders(res, 'Proxy-Authenticate').length, 2);
  });

  test('UDP with credentials after the 407: authenticated (routing answers 404); the nonce is reused with nc 2', async () => {
    const first = await phone.send(invite(udp(), alice(), 'nobody'));
    const c = proxyChallengeOf(first, 'MD5');
    const uri = `sip:nobody@${alice().domain}`;
    const withAuth = (nc: number) =>
      invite(udp(), alice(), 'nobody', {
        cseq: nc + 1,
        headers: [
          { name: 'Proxy-Authorization', value: credentials(alice(), c, { method: 'INVITE', uri, nc }) },
        ],
      });
    assert.equal((await phone.send(withAuth(1))).status, 404);
    assert.equal((await phone.send(withAuth(2))).status, 404);
    // The same nonce count again is a replay.
    assert.equal((await phone.send(withAuth(2))).status, 403);
  });

  test("alice's credentials with From bob: 403", async () => {
    const first = await phone.send(invite(udp(), alice(), 'nobody', { fromUser: t.accounts.bob!.username }));
    assert.equal(first.status, 407);
    const c = proxyChallengeOf(first, 'SHA-256');
    const res = await phone.send(
      invite(udp(), alice(), 'nobody', {
        fromUser: t.accounts.bob!.username,
        cseq: 2,
        headers: [
          {
            name: 'Proxy-Authorization',
            value: credentials(alice(), c, {
              method: 'INVITE',
              uri: `sip:nobody@${alice().domain}`,
              algorithm: 'SHA-256',
            }),
          },
        ],
      }),
    );
    assert.equal(res.status, 403);
    assert.equal(res.reason, 'From Does Not Match the Credentials');
  });

  test('TCP: trusted on the connection alice registered over, for alice only; not on another connection', async () => {
    const registered = await tcpPeer(t.server.port);
    const stranger = await tcpPeer(t.server.port);
    try {
      assert.equal((await registerTcp(registered, alice())).status, 200);
      const tcp = (port: number) => ({ transport: 'TCP' as const, port });
      registered.write(invite(tcp(registered.port), alice(), 'nobody'));
      assert.equal(((await registered.next(finalTo('INVITE'))) as SipResponse).status, 404);
      registered.write(
        invite(tcp(registered.port), alice(), 'nobody', { fromUser: t.accounts.bob!.username }),
      );
      assert.equal(((await registered.next(finalTo('INVITE'))) as SipResponse).status, 407);
      stranger.write(invite(tcp(stranger.port), alice(), 'nobody'));
      assert.equal(((await stranger.next(finalTo('INVITE'))) as SipResponse).status, 407);
    } finally {
      registered.close();
      stranger.close();
    }
  });

  test('TCP: the trust ends when the device changes (password rotated), at once', async () => {
    const registered = await tcpPeer(t.server.port);
    try {
      assert.equal((await registerTcp(registered, alice())).status, 200);
      const tcp = { transport: 'TCP' as const, port: registered.port };
      registered.write(invite(tcp, alice(), 'nobody'));
      assert.equal(((await registered.next(finalTo('INVITE'))) as SipResponse).status, 404);
      const { rotateSipPassword } = await import('../../src/areas/devices/service.js');
      const heard = t.server.stats.directory.invalidations;
      const rotated = await rotateSipPassword(
        t.tdb.handle,
        'test',
        t.seeded.org,
        t.seeded.users.alice!,
        alice().deviceId,
      );
      // Once the rotation's event has reached the SIP server (milliseconds after the commit).
      await waitFor('the rotation to reach the SIP server', () =>
        t.server.stats.directory.invalidations > heard ? true : undefined,
      );
      registered.write(invite(tcp, alice(), 'nobody'));
      assert.equal(((await registered.next(finalTo('INVITE'))) as SipResponse).status, 407);
      t.accounts.alice!.password = rotated.sip.password;
    } finally {
      registered.close();
    }
  });
});
