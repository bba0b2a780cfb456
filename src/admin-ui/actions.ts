import type { DatabaseHandle } from '../db/database.js';
import { recordChange } from '../db/changes.js';
import { NotFoundError, ValidationError } from '../errors.js';
import type { Actor } from '../areas/common/actor.js';
import type { Organization } from '../areas/organizations/repository.js';
import { UserGroupRepository, type UserGroup } from '../areas/usergroups/repository.js';
import { UserRepository, type Role, type User } from '../areas/users/repository.js';
import { ROLES } from '../areas/users/schemas.js';

/**
 * Changes the web interface makes for which no area service exists (yet): each in one
 * transaction with its audit row, through the repositories.
 */

export async function setUserRole(
  database: DatabaseHandle,
  actor: Actor,
  organization: Organization,
  user: User,
  role: string,
): Promise<User> {
  if (!(ROLES as readonly string[]).includes(role)) {
    throw new ValidationError([{ field: 'role', message: `must be one of ${ROLES.join(', ')}` }]);
  }
  if (role === user.role) return user;
  return database.db.transaction().execute(async (trx) => {
    const updated = await new UserRepository(trx).update(organization.id, user.id, { role: role as Role });
    const data = { userId: user.userId, role };
    await recordChange(trx, {
      organizationId: organization.id,
      actor,
      action: 'user.updated',
      entity: 'user',
      entityId: `${user.userId}@${organization.domain}`,
      data,
      event: {
        type: 'user.updated',
        userId: user.id,
        data: { id: `${user.userId}@${organization.domain}`, role },
      },
    });
    return updated;
  });
}

export async function createUserGroup(
  database: DatabaseHandle,
  actor: Actor,
  organization: Organization,
  name: string,
): Promise<UserGroup> {
  const trimmed = name.trim();
  if (trimmed === '' || trimmed.length > 200) {
    throw new ValidationError([{ field: 'name', message: 'must be 1 to 200 characters long' }]);
  }
  return database.db.transaction().execute(async (trx) => {
    const group = await new UserGroupRepository(trx).create(organization.id, { name: trimmed });
    await recordChange(trx, {
      organizationId: organization.id,
      actor,
      action: 'usergroup.created',
      entity: 'usergroup',
      entityId: group.id,
      data: { id: group.id, name: group.name },
      event: { type: 'usergroup.created', groupId: group.id, data: { id: group.id, name: group.name } },
    });
    return group;
  });
}

/** Makes exactly `groupIds` the groups of a user; returns the groups added and removed. */
export async function setUserGroups(
  database: DatabaseHandle,
  actor: Actor,
  organization: Organization,
  user: User,
  groupIds: number[],
): Promise<{ added: number[]; removed: number[] }> {
  return database.db.transaction().execute(async (trx) => {
    const groups = new UserGroupRepository(trx);
    const current = (await new UserRepository(trx).groupsOf(organization.id, user.id)).map((g) => g.id);
    const wanted = [...new Set(groupIds)];
    const added = wanted.filter((g) => !current.includes(g));
    const removed = current.filter((g) => !wanted.includes(g));
    for (const g of added) await groups.addMember(organization.id, g, user.id);
    for (const g of removed) await groups.removeMember(organization.id, g, user.id);
    if (added.length + removed.length > 0) {
      const data = { userId: user.userId, added, removed };
      await recordChange(trx, {
        organizationId: organization.id,
        actor,
        action: 'user.groups.changed',
        entity: 'user',
        entityId: `${user.userId}@${organization.domain}`,
        data,
        event: { type: 'user.groups.changed', userId: user.id, data },
      });
    }
    return { added, removed };
  });
}

/** Makes exactly `userIds` (internal ids) the members of a group. */
export async function setGroupMembers(
  database: DatabaseHandle,
  actor: Actor,
  organization: Organization,
  groupId: number,
  userIds: number[],
): Promise<{ added: number[]; removed: number[] }> {
  return database.db.transaction().execute(async (trx) => {
    const groups = new UserGroupRepository(trx);
    const group = await groups.get(organization.id, groupId);
    if (!group) throw new NotFoundError(`no user group ${groupId} in ${organization.domain}`);
    const current = (await groups.listMembers(organization.id, groupId)).map((m) => m.id);
    const wanted = [...new Set(userIds)];
    const added = wanted.filter((u) => !current.includes(u));
    const removed = current.filter((u) => !wanted.includes(u));
    for (const u of added) await groups.addMember(organization.id, groupId, u);
    for (const u of removed) await groups.removeMember(organization.id, groupId, u);
    if (added.length + removed.length > 0) {
      const data = { groupId, name: group.name, added, removed };
      await recordChange(trx, {
        organizationId: organization.id,
        actor,
        action: 'usergroup.members.changed',
        entity: 'usergroup',
        entityId: groupId,
        data,
        event: { type: 'usergroup.members.changed', groupId, data },
      });
    }
    return { added, removed };
  });
}
