import type { DatabaseHandle } from '../../db/database.js';
import { recordChange } from '../../db/changes.js';
import { NotFoundError } from '../../errors.js';
import { assertValid } from '../../http/validation.js';
import { hashPassword } from '../../security/passwords.js';
import { legacyHa1 } from '../../security/tokens.js';
import type { Actor } from '../common/actor.js';
import { requireOrganization } from '../organizations/service.js';
import type { Organization } from '../organizations/repository.js';
import { NewUserSchema, type NewUserInput } from './schemas.js';
import { UserRepository, type User } from './repository.js';

export async function createUser(
  database: DatabaseHandle,
  actor: Actor,
  domain: string,
  input: unknown,
  prefix = 'body',
  options: { legacyPasswordTokens?: boolean } = {},
): Promise<{ organization: Organization; user: User }> {
  const data = assertValid<NewUserInput>(NewUserSchema, input, prefix);
  const organization = await requireOrganization(database, domain);
  const passwordHash = data.password === undefined ? null : await hashPassword(data.password);
  const user = await database.db.transaction().execute(async (trx) => {
    const created = await new UserRepository(trx).create(organization.id, {
      userId: data.userId,
      role: data.role ?? 'USER',
      firstName: data.firstName ?? '',
      lastName: data.lastName ?? '',
      email: data.email ?? null,
      passwordHash,
      language: data.language ?? null,
      title: data.title ?? null,
      department: data.department ?? null,
      extension: data.extension ?? null,
    });
    if (data.password !== undefined && options.legacyPasswordTokens) {
      await new UserRepository(trx).setLegacyHa1(
        organization.id,
        created.id,
        legacyHa1(created.userId, organization.domain, data.password),
      );
    }
    const summary = { userId: created.userId, role: created.role };
    await recordChange(trx, {
      organizationId: organization.id,
      actor,
      action: 'user.created',
      entity: 'user',
      entityId: `${created.userId}@${organization.domain}`,
      data: summary,
      event: {
        type: 'user.created',
        userId: created.id,
        data: { id: `${created.userId}@${organization.domain}`, ...summary },
      },
    });
    return created;
  });
  return { organization, user };
}

export async function requireUser(
  database: DatabaseHandle,
  organization: Organization,
  userId: string,
): Promise<User> {
  const user = await new UserRepository(database.db).get(organization.id, userId);
  if (!user) throw new NotFoundError(`no user "${userId}" in ${organization.domain}`);
  return user;
}
