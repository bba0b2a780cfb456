/**
 * The host our SIP messages carry (Via sent-by, Contact) is ONECLOUD_SIP_ADVERTISED_HOST, by
 * default the bound address, or 127.0.0.1 when SIP listens on 0.0.0.0: never 0.0.0.0, which no
 * phone can send to. Checked in the configuration and on the INVITE a registered Node UA receives.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, readConfig } from '../../src/config.js';
import { createResponse, getHeader, getTopVia } from '../../src/sip/message.js';
import { telephony, waitFor, type Telephony } from './peers.js';
import { contact, register, ua, type Ua } from './node-ua.js';

describe('ONECLOUD_SIP_ADVERTISED_HOST', () => {
  const sip = (env: Record<string, string>) => readConfig(env).sip;

  test('defaults to the listen host, or 127.0.0.1 when listening on every interface', () => {
    assert.equal(sip({ ONECLOUD_SIP_HOST: '0.0.0.0' }).advertisedHost, '127.0.0.1');
    assert.equal(sip({ ONECLOUD_SIP_HOST: '::' }).advertisedHost, '127.0.0.1');
    assert.equal(sip({ ONECLOUD_SIP_HOST: '192.0.2.7' }).advertisedHost, '192.0.2.7');
    assert.equal(sip({}).advertisedHost, '127.0.0.1');
  });

  test('takes an IP address or a host name', () => {
    const env = { ONECLOUD_SIP_HOST: '0.0.0.0' };
    assert.equal(
      sip({ ...env, ONECLOUD_SIP_ADVERTISED_HOST: 'pbx.example.com' }).advertisedHost,
      'pbx.example.com',
    );
    assert.equal(
      sip({ ...env, ONECLOUD_SIP_ADVERTISED_HOST: '198.51.100.4' }).advertisedHost,
      '198.51.100.4',
    );
    assert.equal(
      sip({ ...env, ONECLOUD_SIP_ADVERTISED_HOST: '[2001:db8::1]' }).advertisedHost,
      '2001:db8::1',
    );
  });

  test('rejects the unspecified address and things that are no host, naming the variable', () => {
    for (const bad of ['0.0.0.0', '::', 'pbx example', 'sip:pbx.example.com', '-pbx']) {
      assert.throws(
        () => readConfig({ ONECLOUD_SIP_ADVERTISED_HOST: bad }),
        (err: unknown) =>
          err instanceof ConfigError &&
          err.problems.some((p) =>
            p.startsWith(`ONECLOUD_SIP_ADVERTISED_HOST=${JSON.stringify(bad)} must be`),
          ),
        bad,
      );
    }
  });
});

for (const [label, options, expected] of [
  ['listening on 0.0.0.0, nothing advertised', { host: '0.0.0.0' }, '127.0.0.1'],
  ['an advertised host name', { advertisedHost: 'pbx.example.test' }, 'pbx.example.test'],
] as const) {
  describe(`Via and Contact of our requests: ${label}`, () => {
    let t: Telephony;
    let phone: Ua;
    before(async () => {
      t = await telephony(['alice', 'bob'], options);
      phone = await ua(() => t.server.port);
    });
    after(async () => {
      await phone.close();
      await t.close();
    });

    test(`the INVITE to a registered phone says ${expected}`, async () => {
      assert.equal(t.server.advertisedHost, expected);
      const { res } = await register(phone, t.accounts.alice!, [contact(phone, 'alice')]);
      assert.equal(res.status, 200);
      const alice = { organizationId: t.seeded.org.id, id: t.seeded.users.alice!.id };
      const view = await t.server.calls.originate(alice, t.accounts.alice!.deviceId, 'bob');
      const { req, tx } = await phone.nextRequest('INVITE');
      const via = getTopVia(req);
      assert.equal(via.host, expected);
      assert.equal(via.port, t.server.port);
      assert.equal(getHeader(req, 'Contact'), `<sip:onecloud@${expected}:${t.server.port}>`);
      // Declining reaches the server (the response goes back to where the INVITE came from).
      tx!.respond(createResponse(req, 486, { toTag: 'declined' }));
      await waitFor('the call to end', () => t.server.calls.get(view.callId) === undefined);
    });
  });
}
