/**
 * Routing through the organization's number plan, with real calls from a sipp phone (digest) to
 * sipp phones and a sipp SIP trunk: a user id, an extension, an E.164 number owned by a user, a
 * function number (ACD group) with and without a logged-in agent, an unknown number without and
 * with the organization's trunk (set in the admin API's organization), and calls coming in from
 * the trunk to a number of the organization.
 *
 * Agent login state is the `logged_in` flag of acd_agents (AcdRepository.setLoggedIn); no user API
 * sets it yet, so the test sets it through the repository.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { fromJson } from '../../src/db/dialects/index.js';
import { updateOrganization } from '../../src/areas/organizations/service.js';
import { OrganizationRepository } from '../../src/areas/organizations/repository.js';
import { updateUser } from '../../src/areas/users/service.js';
import { addNumbers, assignNumber } from '../../src/areas/numbers/service.js';
import { addAgent, createAcdGroup } from '../../src/areas/acd/service.js';
import { AcdRepository } from '../../src/areas/acd/repository.js';
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

const CAROL = '+46855501001';
const SUPPORT = '+46855501100';
const NIGHT = '+46855501200';
const OUTSIDE = '+4631999000';
const PRESENTED = '+46855501000';

describe(
  'routing with sipp phones and a sipp trunk',
  { skip: hasSipp ? false : 'sipp is not installed' },
  () => {
    let t: Telephony;
    const ports: Record<string, number> = {};
    let trunkPort = 0;

    before(async () => {
      // Settings are read again on every call (no cache): the trunk set below takes effect at once.
      t = await telephony(['alice', 'bob', 'carol', 'dave'], { noAnswerTimeoutMs: 3000, settingsCacheMs: 0 });
      const db = t.tdb.handle;
      const org = t.seeded.org;
      await updateUser(db, 'test', org, 'bob', { extension: '201' });
      for (const number of [CAROL, SUPPORT, NIGHT, PRESENTED]) await addNumbers(db, 'test', org, { number });
      await assignNumber(db, 'test', org, CAROL, { user: 'carol' });
      const support = await createAcdGroup(db, 'test', org, { name: 'Support', number: SUPPORT });
      await addAgent(db, 'test', org, support.id, { user: 'dave' });
      await new AcdRepository(db.db).setLoggedIn(org.id, support.id, t.seeded.users.dave!.id, true);
      const night = await createAcdGroup(db, 'test', org, { name: 'Night', number: NIGHT });
      await addAgent(db, 'test', org, night.id, { user: 'carol' }); // never logged in
      for (const u of ['alice', 'bob', 'carol', 'dave']) {
        ports[u] = await freePort();
        await registerFrom(t.server.port, ports[u], t.accounts[u]!);
      }
      trunkPort = await freePort();
    });
    after(async () => {
      await t.close();
    });

    const acc = (u: string): Account => t.accounts[u]!;
    const call = (dialled: string, scenario = 'call-bye.xml', fill?: Record<string, string>) =>
      runSipp(scenario, {
        server: t.server.port,
        port: ports.alice!,
        account: acc('alice'),
        service: dialled,
        ...(fill ? { fill } : {}),
      });

    /** Who answered (local user of the last call.confirmed of the callee side). */
    async function answeredBy(): Promise<string | null> {
      await t.server.flush();
      const rows = await t.tdb.handle.db
        .selectFrom('events')
        .select('data')
        .where('type', '=', 'call.confirmed')
        .orderBy('seq', 'desc')
        .limit(1)
        .execute();
      return fromJson<{ local_user_id: string | null }>(rows[0]?.data, { local_user_id: null }).local_user_id;
    }

    for (const [label, dialled, user] of [
      ['a user id', 'bob', 'bob'],
      ['an extension', '201', 'bob'],
      ['an E.164 number owned by a user', CAROL, 'carol'],
      ['a function number with a logged-in agent: the agent rings', SUPPORT, 'dave'],
    ] as const) {
      test(`${label} (${dialled}) → ${user}`, async () => {
        const callee = await phone('serve.xml', {
          server: t.server.port,
          port: ports[user]!,
          account: acc(user),
        });
        ok(await call(dialled));
        ok(await callee.done);
        assert.equal(await answeredBy(), user);
      });
    }

    test('a function number whose group has no logged-in agent → 480', async () => {
      ok(await call(NIGHT, 'call-fail.xml', { STATUS: '480' }));
    });

    test('an unknown number and no trunk → 404', async () => {
      ok(await call(OUTSIDE, 'call-fail.xml', { STATUS: '404' }));
    });

    test("with the organization's SIP trunk set: an unknown number goes to the trunk, with the caller number presented", async () => {
      const org = await updateOrganization(t.tdb.handle, 'test', t.seeded.org, {
        sipTrunk: { host: '127.0.0.1', port: trunkPort, transport: 'udp', callerNumber: PRESENTED },
      });
      assert.equal(org.sipTrunk?.port, trunkPort);
      const trunk = await phone('trunk-uas.xml', {
        server: t.server.port,
        port: trunkPort,
        fill: {
          RURI_RE: `^INVITE sip:\\${OUTSIDE}@127\\.0\\.0\\.1 SIP/2\\.0`,
          FROM_RE: `sip:\\${PRESENTED}@`,
        },
      });
      ok(await call(OUTSIDE));
      ok(await trunk.done);
      // A user's number still goes to the user, not to the trunk.
      const bob = await phone('serve.xml', { server: t.server.port, port: ports.bob!, account: acc('bob') });
      ok(await call('201'));
      ok(await bob.done);
    });

    test('from the trunk (its address and port, no digest) to a number of the organization: its owner rings', async () => {
      const carol = await phone('serve.xml', {
        server: t.server.port,
        port: ports.carol!,
        account: acc('carol'),
      });
      ok(await runSipp('trunk-call.xml', { server: t.server.port, port: trunkPort, service: CAROL }));
      ok(await carol.done);
      assert.equal(await answeredBy(), 'carol');
      // A number that is not the organization's: 404; the same INVITE from elsewhere must authenticate.
      ok(
        await runSipp('trunk-fail.xml', {
          server: t.server.port,
          port: trunkPort,
          service: OUTSIDE,
          fill: { STATUS: '404' },
        }),
      );
      ok(
        await runSipp('trunk-fail.xml', {
          server: t.server.port,
          port: await freePort(),
          service: CAROL,
          fill: { STATUS: '403' },
        }),
      );
    });

    test('removing the trunk (null): unknown numbers are 404 again', async () => {
      const org = await new OrganizationRepository(t.tdb.handle.db).getById(t.seeded.org.id);
      await updateOrganization(t.tdb.handle, 'test', org!, { sipTrunk: null });
      ok(await call(OUTSIDE, 'call-fail.xml', { STATUS: '404' }));
    });
  },
);
