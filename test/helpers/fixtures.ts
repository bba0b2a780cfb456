import type { Config } from '../../src/config.js';
import type { DatabaseHandle } from '../../src/db/database.js';
import { createOrganization } from '../../src/areas/organizations/service.js';
import { createUser } from '../../src/areas/users/service.js';
import { createDevice } from '../../src/areas/devices/service.js';
import { setExternalApiGrants } from '../../src/areas/externalapi/service.js';
import { createSystemTicket, createUserTicket } from '../../src/areas/tickets/service.js';
import { TicketRepository } from '../../src/areas/tickets/repository.js';
import { USER_APIS } from '../../src/areas/common/schemas.js';
import { hashTokenSecret, sntAuthorization } from '../../src/security/tokens.js';
import type { Organization } from '../../src/areas/organizations/repository.js';
import type { User } from '../../src/areas/users/repository.js';
import { randomBytes } from 'node:crypto';
import { uniqueDomain } from '../db/helpers.js';

export const PASSWORD = 'correct horse battery';

export interface SeededOrg {
  org: Organization;
  domain: string;
  users: Record<string, User>;
}

/** An organization with the given users (password PASSWORD), every user API allowed org-wide. */
export async function seedOrg(
  database: DatabaseHandle,
  config: Config,
  users: { userId: string; superuser?: boolean }[],
  opts: { grantAll?: boolean } = {},
): Promise<SeededOrg> {
  const domain = uniqueDomain();
  const org = await createOrganization(database, 'test', { domain, name: `Org ${domain}` });
  const out: Record<string, User> = {};
  for (const u of users) {
    const { user } = await createUser(
      database,
      'test',
      domain,
      {
        userId: u.userId,
        password: PASSWORD,
        role: u.superuser ? 'SUPERUSER' : 'USER',
        firstName: u.userId,
        lastName: 'Test',
        email: `${u.userId}@${domain}`,
      },
      'body',
      { legacyPasswordTokens: config.legacyPasswordTokens },
    );
    out[u.userId] = user;
  }
  if (opts.grantAll !== false)
    await setExternalApiGrants(database, 'test', org, 'ORGANIZATION', 0, [...USER_APIS]);
  return { org, domain, users: out };
}

export async function userToken(
  database: DatabaseHandle,
  config: Config,
  seeded: SeededOrg,
  userId: string,
  apis: string[] = [...USER_APIS],
): Promise<string> {
  const created = await createUserTicket(database, config, 'test', {
    organization: seeded.org,
    user: seeded.users[userId]!,
    apis,
  });
  return created.token;
}

/** A ticket that expired yesterday (inserted directly: the service never makes one). */
export async function expiredToken(
  database: DatabaseHandle,
  config: Config,
  seeded: SeededOrg,
  userId: string,
): Promise<string> {
  const secretPart = randomBytes(32).toString('base64url');
  const t = await new TicketRepository(database.db).insert({
    kind: 'USER',
    organizationId: seeded.org.id,
    userId: seeded.users[userId]!.id,
    name: 'expired',
    scopes: [...USER_APIS],
    secretHash: hashTokenSecret(config.secretKey, secretPart),
    createdBy: 'test',
    createdAt: Date.now() - 10 * 86_400_000,
    expiresAt: Date.now() - 86_400_000,
  });
  return `${t.id}.${secretPart}`;
}

export async function systemTicket(
  database: DatabaseHandle,
  config: Config,
  scopes: string[] = ['ADMIN'],
  domains?: string[],
): Promise<{ token: string; secret: string; id: number }> {
  const created = await createSystemTicket(database, config, 'test', {
    scopes,
    ...(domains ? { domains } : {}),
  });
  return { token: created.token, secret: created.secret, id: created.ticket.id };
}

export async function addSoftphone(
  database: DatabaseHandle,
  seeded: SeededOrg,
  userId: string,
  name = 'Softphone',
) {
  return createDevice(database, 'test', seeded.domain, userId, { deviceType: 'SOFTPHONE', deviceName: name });
}

/** Headers of a signed admin request. */
export function signed(
  ticket: { token: string; secret: string },
  method: string,
  pathAndQuery: string,
  body = '',
  extra: { ts?: number; nonce?: string } = {},
): Record<string, string> {
  return {
    authorization: sntAuthorization({
      token: ticket.token,
      secret: ticket.secret,
      method,
      pathAndQuery,
      body,
      ...extra,
    }),
    ...(body !== '' ? { 'content-type': 'application/json' } : {}),
  };
}
