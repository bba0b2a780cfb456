import { randomBytes } from 'node:crypto';
import type { Command } from 'commander';
import type { DatabaseHandle } from '../db/database.js';
import type { Config } from '../config.js';
import { recordChange } from '../db/changes.js';
import { OrganizationRepository } from '../areas/organizations/repository.js';
import { createOrganization, requireOrganization } from '../areas/organizations/service.js';
import { createUser, requireUser } from '../areas/users/service.js';
import { createDevice, type SipAccount } from '../areas/devices/service.js';
import { setExternalApiGrants } from '../areas/externalapi/service.js';
import { createUserTicket, createSystemTicket } from '../areas/tickets/service.js';
import { UserGroupRepository } from '../areas/usergroups/repository.js';
import { AcdRepository } from '../areas/acd/repository.js';
import { NumberRepository } from '../areas/numbers/repository.js';
import { USER_APIS } from '../areas/common/schemas.js';
import { output, withContext } from './context.js';

export const DEMO_DOMAIN = 'example.com';

const PEOPLE = [
  { userId: 'alice', firstName: 'Alice', lastName: 'Andersson', extension: '201', number: '+46812345601' },
  { userId: 'bob', firstName: 'Bob', lastName: 'Berg', extension: '202', number: '+46812345602' },
  { userId: 'carol', firstName: 'Carol', lastName: 'Carlsson', extension: '203', number: '+46812345603' },
];

export interface DemoResult {
  created: boolean;
  domain: string;
  passwords: Record<string, string>;
  sip: Record<string, SipAccount>;
  userTicket: { user: string; token: string; allowedApis: string[]; expires: string };
  systemTicket?: { token: string; secret: string };
}

/**
 * Seeds `example.com`: a superuser, three users with softphones and numbers (alice also a
 * mobile), a user group of supervisors, an ACD group with agents, every user API allowed at the
 * organization level; then a fresh ticket for alice. Run again, it only makes a new ticket.
 */
export async function seedDemo(database: DatabaseHandle, config: Config): Promise<DemoResult> {
  const actor = 'cli:demo';
  const passwords: Record<string, string> = {};
  const legacy = { legacyPasswordTokens: config.legacyPasswordTokens };
  const sip: Record<string, SipAccount> = {};
  const exists = await new OrganizationRepository(database.db).getByDomain(DEMO_DOMAIN);
  let systemTicket: DemoResult['systemTicket'];
  if (!exists) {
    const org = await createOrganization(database, actor, {
      domain: DEMO_DOMAIN,
      name: 'Example Ltd',
      numberPlan: [{ prefix: '0', replace: '+46' }],
    });
    const pw = () => randomBytes(9).toString('base64url');
    passwords.boss = pw();
    await createUser(
      database,
      actor,
      DEMO_DOMAIN,
      {
        userId: 'boss',
        password: passwords.boss,
        role: 'SUPERUSER',
        firstName: 'Bo',
        lastName: 'Boss',
        email: `boss@${DEMO_DOMAIN}`,
      },
      'body',
      legacy,
    );
    const ids: Record<string, number> = {};
    for (const p of PEOPLE) {
      passwords[p.userId] = pw();
      const { user } = await createUser(
        database,
        actor,
        DEMO_DOMAIN,
        {
          userId: p.userId,
          password: passwords[p.userId],
          firstName: p.firstName,
          lastName: p.lastName,
          email: `${p.userId}@${DEMO_DOMAIN}`,
          extension: p.extension,
          title: 'Customer service agent',
          department: 'Customer services',
        },
        'body',
        legacy,
      );
      ids[p.userId] = user.id;
      const soft = await createDevice(database, actor, DEMO_DOMAIN, p.userId, {
        deviceType: 'SOFTPHONE',
        deviceName: `${p.firstName}'s softphone`,
      });
      if (soft.sip) sip[p.userId] = soft.sip;
    }
    await createDevice(database, actor, DEMO_DOMAIN, 'alice', {
      deviceType: 'MOBILE',
      deviceName: 'Work mobile',
      number: '+46701234501',
    });
    await database.db.transaction().execute(async (trx) => {
      const numbers = new NumberRepository(trx);
      await numbers.addRange(org.id, '+46812345600', 10);
      for (const p of PEOPLE) await numbers.assignToUser(org.id, p.number, ids[p.userId]!);
      const groups = new UserGroupRepository(trx);
      const supervisors = await groups.create(org.id, { name: 'Supervisors', roles: ['ACD_SUPERVISOR'] });
      await groups.addMember(org.id, supervisors.id, ids.carol!);
      const acd = new AcdRepository(trx);
      const queue = await acd.createGroup(org.id, {
        name: 'Customer services',
        type: 'ACD',
        distributionType: 'LONGEST_IDLE',
        queueTimeoutSeconds: 120,
        allowUsingFunctionNumber: true,
      });
      await numbers.assignToAcdGroup(org.id, '+46812345600', queue.id);
      await acd.addAgent(org.id, queue.id, ids.alice!, 3);
      await acd.addAgent(org.id, queue.id, ids.bob!, 2);
      await recordChange(trx, {
        organizationId: org.id,
        actor,
        action: 'demo.seeded',
        entity: 'organization',
        entityId: DEMO_DOMAIN,
        data: { numbers: '+46812345600..09', userGroup: supervisors.name, acdGroup: queue.name },
      });
    });
    await setExternalApiGrants(database, actor, org, 'ORGANIZATION', 0, [...USER_APIS]);
    const sys = await createSystemTicket(database, config, actor, {
      name: 'demo admin',
      scopes: ['ADMIN'],
      domains: [DEMO_DOMAIN],
    });
    systemTicket = { token: sys.token, secret: sys.secret };
  }
  const organization = await requireOrganization(database, DEMO_DOMAIN);
  const alice = await requireUser(database, organization, 'alice');
  const ticket = await createUserTicket(database, config, actor, {
    organization,
    user: alice,
    apis: ['USER_INFO', 'CONTACT', 'DISTRIBUTION_GROUP', 'CALL_CONTROL', 'EVENT_CHANNEL'],
    name: 'demo',
    platform: 'other',
  });
  return {
    created: !exists,
    domain: DEMO_DOMAIN,
    passwords,
    sip,
    userTicket: {
      user: `alice@${DEMO_DOMAIN}`,
      token: ticket.token,
      allowedApis: ticket.answer.allowedApis,
      expires: ticket.answer.expires,
    },
    ...(systemTicket ? { systemTicket } : {}),
  };
}

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description(`seed the demo organization ${DEMO_DOMAIN} and print how to call the API`)
    .option('--json', 'print the result as JSON')
    .action(async (opts: { json?: boolean }) => {
      await withContext(async ({ database, config }) => {
        const r = await seedDemo(database, config);
        const host = config.httpHost.includes(':') ? `[${config.httpHost}]` : config.httpHost;
        const base = `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${config.httpPort}`;
        output(!!opts.json, r, () => [
          r.created
            ? `Seeded ${DEMO_DOMAIN}: superuser boss; users alice, bob, carol with softphones and numbers +46812345601..03;`
            : `${DEMO_DOMAIN} was already seeded; made a new ticket for alice.`,
          ...(r.created
            ? [
                '  user group "Supervisors" (ACD_SUPERVISOR: carol); ACD group "Customer services" +46812345600 (agents alice, bob);',
                '  every user API allowed for the organization.',
                '',
                'Passwords (shown once):',
                ...Object.entries(r.passwords).map(([u, p]) => `  ${u}@${DEMO_DOMAIN}  ${p}`),
                '',
                'SIP accounts (shown once):',
                ...Object.entries(r.sip).map(
                  ([u, s]) => `  ${u}: username ${s.username}  password ${s.password}  domain ${s.domain}`,
                ),
              ]
            : []),
          '',
          `A ticket for alice (${r.userTicket.allowedApis.join(', ')}), expires ${r.userTicket.expires}:`,
          `  ${r.userTicket.token}`,
          '',
          'With the server running (npm start), try:',
          `  curl -H "Authorization: Bearer ${r.userTicket.token}" ${base}/api/device/info/v1/shortlist/${DEMO_DOMAIN}/alice`,
          `  curl -H "Accept: application/xml" "${base}/api/contacts/list/${DEMO_DOMAIN}/alice?t=${r.userTicket.token}"`,
          ...(r.systemTicket
            ? [
                '',
                'A system ticket for the admin API (limited to example.com):',
                `  ONECLOUD_TOKEN=${r.systemTicket.token} ONECLOUD_SECRET=${r.systemTicket.secret} npx onecloud api GET /api/admin/users/${DEMO_DOMAIN}`,
              ]
            : []),
        ]);
      });
    });
}
