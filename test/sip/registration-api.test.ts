/**
 * SIP registrations as the HTTP APIs show them: a device that registers over real SIP (a Node UA
 * on UDP, digest) is `registered` in the user's device API and in the admin device API, with its
 * contact; its `device.registered` / `device.unregistered` events reach the user's event channel;
 * after unregistering it is no longer registered. The SIP server and the app share one database,
 * as `onecloud serve` runs them, on SQLite and PostgreSQL.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { DIALECTS, PG_SKIP_MESSAGE, PG_URL } from '../db/helpers.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { signed, systemTicket, userToken } from '../helpers/fixtures.js';
import { setExternalApiGrants } from '../../src/areas/externalapi/service.js';
import { USER_APIS } from '../../src/areas/common/schemas.js';
import { telephony, type Telephony } from './peers.js';
import { contact, register, ua, type Ua } from './node-ua.js';

interface DeviceInfo {
  deviceId: string;
  deviceType: string;
  sipUsername: string | null;
  registered: boolean;
  registrations: { contact: string; expires: string; userAgent: string | null; source: string }[];
}

for (const dialect of DIALECTS) {
  const skip = dialect === 'postgres' && !PG_URL ? PG_SKIP_MESSAGE : false;
  describe(`registration state in the device APIs [${dialect}]`, { skip }, () => {
    let t: Telephony;
    let app: TestApp;
    let client: Ua;
    let token: string;
    before(async () => {
      t = await telephony(['alice'], {}, dialect);
      app = await startTestApp({ database: t.tdb.handle, url: t.tdb.url });
      await setExternalApiGrants(t.tdb.handle, 'test', t.seeded.org, 'ORGANIZATION', 0, [...USER_APIS]);
      token = await userToken(t.tdb.handle, app.config, t.seeded, 'alice', ['USER_INFO', 'EVENT_CHANNEL']);
      client = await ua(() => t.server.port);
    });
    after(async () => {
      await client.close();
      await app.close();
      await t.close();
    });

    const path = () => `/api/device/info/v1/${t.seeded.domain}/alice`;
    const devices = async (): Promise<DeviceInfo[]> => {
      const res = await app.app.inject({ url: path(), headers: { authorization: `Bearer ${token}` } });
      assert.equal(res.statusCode, 200, res.body);
      return res.json<DeviceInfo[]>();
    };

    test('a registered softphone is registered, with its contact; unregistering ends it', async () => {
      const account = t.accounts.alice!;
      const [before] = await devices();
      assert.equal(before?.deviceId, account.deviceId);
      assert.equal(before.sipUsername, account.username);
      assert.equal(before.registered, false);
      assert.deepEqual(before.registrations, []);

      const { res } = await register(client, account, [
        contact(client, 'alice-desk', 300),
        { name: 'User-Agent', value: 'test-phone/1.0' },
      ]);
      assert.equal(res.status, 200);
      const [now] = await devices();
      assert.equal(now?.registered, true);
      assert.equal(now.registrations.length, 1);
      const reg = now.registrations[0]!;
      assert.equal(reg.contact, `sip:alice-desk@127.0.0.1:${client.transport.port}`);
      assert.equal(reg.userAgent, 'test-phone/1.0');
      assert.equal(reg.source, `udp:127.0.0.1:${client.transport.port}`);
      const expiresIn = Date.parse(reg.expires) - Date.now();
      assert.ok(expiresIn > 250_000 && expiresIn <= 300_000, `expires in ${expiresIn} ms`);

      // The admin API shows the same for that device.
      const sys = await systemTicket(t.tdb.handle, app.config, ['ADMIN_DEVICES']);
      const adminPath = `/api/admin/devices/${t.seeded.domain}/alice/${account.deviceId}`;
      const adminRes = await app.app.inject({ url: adminPath, headers: signed(sys, 'GET', adminPath) });
      assert.equal(adminRes.statusCode, 200, adminRes.body);
      const adminView = adminRes.json<DeviceInfo>();
      assert.equal(adminView.registered, true);
      assert.deepEqual(adminView.registrations, now.registrations);

      // XML carries the same fields.
      const xml = await app.app.inject({
        url: path(),
        headers: { authorization: `Bearer ${token}`, accept: 'application/xml' },
      });
      assert.match(xml.body, /<registered>true<\/registered>/);

      const { res: gone } = await register(client, account, [contact(client, 'alice-desk', 0)]);
      assert.equal(gone.status, 200);
      const [after] = await devices();
      assert.equal(after?.registered, false);
      assert.deepEqual(after.registrations, []);
    });

    test("the registration events are on the user's event channel", async () => {
      await t.server.flush();
      const res = await app.app.inject({
        url: `/api/events/v1/${t.seeded.domain}/alice?since=0&timeout=0&types=device.registered,device.unregistered`,
        headers: { authorization: `Bearer ${token}` },
      });
      assert.equal(res.statusCode, 200, res.body);
      const body = res.json<{ events: { type: string; data: Record<string, unknown> }[] }>();
      assert.deepEqual(
        body.events.map((e) => e.type),
        ['device.registered', 'device.unregistered'],
      );
      assert.equal(body.events[0]!.data.deviceId, t.accounts.alice!.deviceId);
    });
  });
}
