import type { Kysely } from 'kysely';
import type { DatabaseHandle } from '../../db/database.js';
import type { DB } from '../../db/schema.js';
import { recordChange } from '../../db/changes.js';
import { NotFoundError, ValidationError } from '../../errors.js';
import { assertValid } from '../../http/validation.js';
import type { Actor } from '../common/actor.js';
import type { Organization } from '../organizations/repository.js';
import { UserRepository } from '../users/repository.js';
import { ExternalApiRepository } from '../externalapi/repository.js';
import { UserGroupRepository, type UserGroup } from './repository.js';
import {
  MembersSchema,
  NewUserGroupSchema,
  RolesSchema,
  UpdateUserGroupSchema,
  type NewUserGroupInput,
  type UpdateUserGroupInput,
} from './schemas.js';

/** Internal ids of user ids; a missing one is a 400 naming it. */
async function memberIds(
  trx: Kysely<DB>,
  org: Organization,
  userIds: string[],
  field: string,
): Promise<number[]> {
  const unique = [...new Set(userIds)];
  const ids = await new UserRepository(trx).idsOf(org.id, unique);
  const missing = unique.filter((u) => !ids.has(u));
  if (missing.length > 0) {
    throw new ValidationError([
      {
        field,
        message: `no user ${missing
          .slice(0, 10)
          .map((m) => JSON.stringify(m))
          .join(
            ', ',
          )}${missing.length > 10 ? ` (and ${missing.length - 10} more)` : ''} in ${org.domain}; create them first`,
      },
    ]);
  }
  return unique.map((u) => ids.get(u)!);
}

async function record(
  trx: Kysely<DB>,
  actor: Actor,
  org: Organization,
  action: string,
  group: { id: number; name: string },
  data: Record<string, unknown>,
) {
  const payload = { groupId: group.id, name: group.name, ...data };
  await recordChange(trx, {
    organizationId: org.id,
    actor,
    action,
    entity: 'usergroup',
    entityId: group.id,
    data: payload,
    event: { type: action, data: payload },
  });
}

export async function requireGroup(db: Kysely<DB>, org: Organization, id: number): Promise<UserGroup> {
  const g = await new UserGroupRepository(db).get(org.id, id);
  if (!g) throw new NotFoundError(`no user group ${id} in ${org.domain}`);
  return g;
}

export async function createUserGroup(
  database: DatabaseHandle,
  actor: Actor,
  org: Organization,
  input: unknown,
  prefix = 'body',
): Promise<UserGroup> {
  const data = assertValid<NewUserGroupInput>(NewUserGroupSchema, input, prefix);
  return database.db.transaction().execute(async (trx) => {
    const repo = new UserGroupRepository(trx);
    const members = data.members ? await memberIds(trx, org, data.members, `${prefix}.members`) : [];
    const g = await repo.create(org.id, { name: data.name, roles: data.roles ?? [] });
    if (members.length > 0) await repo.setMembers(org.id, g.id, members);
    await record(trx, actor, org, 'usergroup.created', g, { roles: g.roles, members: data.members ?? [] });
    return g;
  });
}

export async function updateUserGroup(
  database: DatabaseHandle,
  actor: Actor,
  org: Organization,
  id: number,
  input: unknown,
  prefix = 'body',
): Promise<UserGroup> {
  const data = assertValid<UpdateUserGroupInput>(UpdateUserGroupSchema, input ?? {}, prefix);
  if (data.id !== undefined && data.id !== id) {
    throw new ValidationError([
      { field: `${prefix}.id`, message: `cannot be changed (is ${id}); leave it out` },
    ]);
  }
  return database.db.transaction().execute(async (trx) => {
    await requireGroup(trx, org, id);
    const repo = new UserGroupRepository(trx);
    const members = data.members ? await memberIds(trx, org, data.members, `${prefix}.members`) : undefined;
    const g = await repo.update(org.id, id, {
      ...(data.name !== undefined ? { name: data.name } : {}),
      ...(data.roles !== undefined ? { roles: data.roles } : {}),
    });
    if (members) await repo.setMembers(org.id, id, members);
    await record(trx, actor, org, 'usergroup.updated', g, {
      fields: Object.keys(data)
        .filter((k) => k !== 'id')
        .sort(),
      ...(data.roles !== undefined ? { roles: g.roles } : {}),
      ...(data.members !== undefined ? { members: data.members } : {}),
    });
    return g;
  });
}

export async function setGroupRoles(
  database: DatabaseHandle,
  actor: Actor,
  org: Organization,
  id: number,
  input: unknown,
): Promise<UserGroup> {
  const data = assertValid<{ roles: string[] }>(RolesSchema, input ?? {}, 'body');
  return database.db.transaction().execute(async (trx) => {
    await requireGroup(trx, org, id);
    const g = await new UserGroupRepository(trx).setRoles(org.id, id, data.roles);
    await record(trx, actor, org, 'usergroup.roles_changed', g, { roles: g.roles });
    return g;
  });
}

export async function setGroupMembers(
  database: DatabaseHandle,
  actor: Actor,
  org: Organization,
  id: number,
  input: unknown,
): Promise<UserGroup> {
  const data = assertValid<{ members: string[] }>(MembersSchema, input ?? {}, 'body');
  return database.db.transaction().execute(async (trx) => {
    const g = await requireGroup(trx, org, id);
    const ids = await memberIds(trx, org, data.members, 'body.members');
    await new UserGroupRepository(trx).setMembers(org.id, id, ids);
    await record(trx, actor, org, 'usergroup.members_changed', g, {
      members: [...new Set(data.members)].sort(),
    });
    return g;
  });
}

/** Adds (`add` true) or removes one member. Adding a member twice is harmless. */
export async function changeGroupMember(
  database: DatabaseHandle,
  actor: Actor,
  org: Organization,
  id: number,
  userId: string,
  add: boolean,
): Promise<boolean> {
  return database.db.transaction().execute(async (trx) => {
    const g = await requireGroup(trx, org, id);
    const user = await new UserRepository(trx).get(org.id, userId);
    if (!user) throw new NotFoundError(`no user "${userId}" in ${org.domain}`);
    const repo = new UserGroupRepository(trx);
    const changed = add
      ? await repo.addMember(org.id, id, user.id)
      : await repo.removeMember(org.id, id, user.id);
    if (!add && !changed) throw new NotFoundError(`user "${userId}" is not a member of user group ${id}`);
    if (changed) {
      await record(trx, actor, org, add ? 'usergroup.member_added' : 'usergroup.member_removed', g, {
        user: `${userId}@${org.domain}`,
      });
    }
    return changed;
  });
}

/** Deletes the group: its memberships go with it, and its group-level External API grants. */
export async function deleteUserGroup(
  database: DatabaseHandle,
  actor: Actor,
  org: Organization,
  id: number,
): Promise<{ memberships: number; externalApiGrants: string[] }> {
  return database.db.transaction().execute(async (trx) => {
    const g = await requireGroup(trx, org, id);
    const repo = new UserGroupRepository(trx);
    const memberships = (await repo.countMembers(org.id, [id])).get(id) ?? 0;
    const externalApiGrants = await new ExternalApiRepository(trx).listGrants(org.id, 'USER_GROUP', id);
    await repo.delete(org.id, id);
    await record(trx, actor, org, 'usergroup.deleted', g, { memberships, externalApiGrants });
    return { memberships, externalApiGrants };
  });
}
