import type { Kysely, Selectable } from 'kysely';
import { mapConflict, pageLimit, toPage, type Page, type PageRequest } from '../../db/common.js';
import { fromJson, toJson } from '../../db/dialects/index.js';
import type { DB, UserGroupsTable } from '../../db/schema.js';
import { NotFoundError } from '../../errors.js';

export interface UserGroup {
  id: number;
  organizationId: number;
  name: string;
  /** e.g. `["ACD_SUPERVISOR"]` */
  roles: string[];
  createdAt: number;
  updatedAt: number;
}

export interface GroupMember {
  id: number;
  userId: string;
  firstName: string;
  lastName: string;
}

function toGroup(r: Selectable<UserGroupsTable>): UserGroup {
  return {
    id: r.id,
    organizationId: r.organization_id,
    name: r.name,
    roles: fromJson<string[]>(r.roles, []),
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

const uniqueRoles = (roles: string[]): string[] => [...new Set(roles)].sort();

export class UserGroupRepository {
  constructor(private readonly db: Kysely<DB>) {}

  async create(
    organizationId: number,
    input: { name: string; roles?: string[] },
    now = Date.now(),
  ): Promise<UserGroup> {
    const r = await mapConflict(
      this.db,
      () =>
        this.db
          .insertInto('user_groups')
          .values({
            organization_id: organizationId,
            name: input.name,
            roles: toJson(uniqueRoles(input.roles ?? [])),
            created_at: now,
            updated_at: now,
          })
          .returningAll()
          .executeTakeFirstOrThrow(),
      () => `user group "${input.name}" already exists in this organization`,
    );
    return toGroup(r);
  }

  async get(organizationId: number, id: number): Promise<UserGroup | undefined> {
    const r = await this.db
      .selectFrom('user_groups')
      .selectAll()
      .where('organization_id', '=', organizationId)
      .where('id', '=', id)
      .executeTakeFirst();
    return r && toGroup(r);
  }

  async getByName(organizationId: number, name: string): Promise<UserGroup | undefined> {
    const r = await this.db
      .selectFrom('user_groups')
      .selectAll()
      .where('organization_id', '=', organizationId)
      .where('name', '=', name)
      .executeTakeFirst();
    return r && toGroup(r);
  }

  async list(organizationId: number, page: PageRequest = {}): Promise<Page<UserGroup>> {
    const limit = pageLimit(page.limit);
    let q = this.db
      .selectFrom('user_groups')
      .selectAll()
      .where('organization_id', '=', organizationId)
      .orderBy('id')
      .limit(limit + 1);
    if (page.after != null) q = q.where('id', '>', page.after);
    return toPage(await q.execute(), limit, toGroup, (r) => r.id);
  }

  async update(
    organizationId: number,
    id: number,
    patch: { name?: string; roles?: string[] },
    now = Date.now(),
  ): Promise<UserGroup> {
    const r = await mapConflict(
      this.db,
      () =>
        this.db
          .updateTable('user_groups')
          .set({
            updated_at: now,
            ...(patch.name !== undefined && { name: patch.name }),
            ...(patch.roles !== undefined && { roles: toJson(uniqueRoles(patch.roles)) }),
          })
          .where('organization_id', '=', organizationId)
          .where('id', '=', id)
          .returningAll()
          .executeTakeFirst(),
      () => `user group "${patch.name ?? ''}" already exists in this organization`,
    );
    if (!r) throw new NotFoundError(`user group ${id} not found`);
    return toGroup(r);
  }

  async setRoles(organizationId: number, id: number, roles: string[]): Promise<UserGroup> {
    return this.update(organizationId, id, { roles });
  }

  /** Deletes the group, its memberships (cascade) and its group-level External API grants. */
  async delete(organizationId: number, id: number): Promise<boolean> {
    await this.db
      .deleteFrom('external_api_grants')
      .where('organization_id', '=', organizationId)
      .where('level', '=', 'USER_GROUP')
      .where('target_id', '=', id)
      .execute();
    const r = await this.db
      .deleteFrom('user_groups')
      .where('organization_id', '=', organizationId)
      .where('id', '=', id)
      .executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  }

  /**
   * Adds a user (internal id) to a group. Both must belong to the organization (NotFoundError).
   * Returns false if the user already was a member.
   */
  async addMember(organizationId: number, groupId: number, userId: number): Promise<boolean> {
    await this.requireBoth(organizationId, groupId, userId);
    const r = await this.db
      .insertInto('user_group_members')
      .values({ group_id: groupId, user_id: userId, organization_id: organizationId })
      .onConflict((oc) => oc.columns(['group_id', 'user_id']).doNothing())
      .executeTakeFirst();
    return Number(r.numInsertedOrUpdatedRows ?? 0) > 0;
  }

  /** Which of these group ids exist in the organization. */
  async existingIds(organizationId: number, ids: number[]): Promise<Set<number>> {
    if (ids.length === 0) return new Set();
    const rows = await this.db
      .selectFrom('user_groups')
      .select('id')
      .where('organization_id', '=', organizationId)
      .where('id', 'in', [...new Set(ids)])
      .execute();
    return new Set(rows.map((r) => r.id));
  }

  /** Adds memberships in bulk (pairs already checked to be in the organization). */
  async addMemberships(organizationId: number, pairs: { groupId: number; userId: number }[]): Promise<void> {
    for (let i = 0; i < pairs.length; i += 500) {
      await this.db
        .insertInto('user_group_members')
        .values(
          pairs
            .slice(i, i + 500)
            .map((p) => ({ group_id: p.groupId, user_id: p.userId, organization_id: organizationId })),
        )
        .onConflict((oc) => oc.columns(['group_id', 'user_id']).doNothing())
        .execute();
    }
  }

  /** Makes the user a member of exactly these groups. */
  async setGroupsOfUser(organizationId: number, userId: number, groupIds: number[]): Promise<void> {
    await this.db
      .deleteFrom('user_group_members')
      .where('organization_id', '=', organizationId)
      .where('user_id', '=', userId)
      .execute();
    await this.addMemberships(
      organizationId,
      [...new Set(groupIds)].map((groupId) => ({ groupId, userId })),
    );
  }

  /** Makes exactly these users (internal ids) the group's members. */
  async setMembers(organizationId: number, groupId: number, userIds: number[]): Promise<void> {
    await this.db
      .deleteFrom('user_group_members')
      .where('organization_id', '=', organizationId)
      .where('group_id', '=', groupId)
      .execute();
    await this.addMemberships(
      organizationId,
      [...new Set(userIds)].map((userId) => ({ groupId, userId })),
    );
  }

  async countMembers(organizationId: number, groupIds: number[]): Promise<Map<number, number>> {
    const out = new Map<number, number>();
    if (groupIds.length === 0) return out;
    const rows = await this.db
      .selectFrom('user_group_members')
      .select(['group_id', (eb) => eb.fn.countAll<number>().as('n')])
      .where('organization_id', '=', organizationId)
      .where('group_id', 'in', groupIds)
      .groupBy('group_id')
      .execute();
    for (const r of rows) out.set(r.group_id, Number(r.n));
    return out;
  }

  async removeMember(organizationId: number, groupId: number, userId: number): Promise<boolean> {
    const r = await this.db
      .deleteFrom('user_group_members')
      .where('organization_id', '=', organizationId)
      .where('group_id', '=', groupId)
      .where('user_id', '=', userId)
      .executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  }

  async listMembers(organizationId: number, groupId: number): Promise<GroupMember[]> {
    const rows = await this.db
      .selectFrom('user_group_members as m')
      .innerJoin('users as u', 'u.id', 'm.user_id')
      .select(['u.id', 'u.user_id', 'u.first_name', 'u.last_name'])
      .where('m.organization_id', '=', organizationId)
      .where('m.group_id', '=', groupId)
      .orderBy('u.user_id')
      .execute();
    return rows.map((r) => ({ id: r.id, userId: r.user_id, firstName: r.first_name, lastName: r.last_name }));
  }

  /** Members by user id, keyset-paginated (`after` is the last user id of the previous page). */
  async listMembersPage(
    organizationId: number,
    groupId: number,
    page: PageRequest<string> = {},
  ): Promise<Page<GroupMember, string>> {
    const limit = pageLimit(page.limit);
    let q = this.db
      .selectFrom('user_group_members as m')
      .innerJoin('users as u', 'u.id', 'm.user_id')
      .select(['u.id', 'u.user_id', 'u.first_name', 'u.last_name'])
      .where('m.organization_id', '=', organizationId)
      .where('m.group_id', '=', groupId)
      .orderBy('u.user_id')
      .limit(limit + 1);
    if (page.after != null) q = q.where('u.user_id', '>', page.after);
    return toPage(
      await q.execute(),
      limit,
      (r) => ({ id: r.id, userId: r.user_id, firstName: r.first_name, lastName: r.last_name }),
      (r) => r.user_id,
    );
  }

  /** The union of the roles of every group the user is a member of. */
  async rolesOfUser(organizationId: number, userId: number): Promise<string[]> {
    const rows = await this.db
      .selectFrom('user_group_members as m')
      .innerJoin('user_groups as g', 'g.id', 'm.group_id')
      .select('g.roles')
      .where('m.organization_id', '=', organizationId)
      .where('m.user_id', '=', userId)
      .execute();
    return uniqueRoles(rows.flatMap((r) => fromJson<string[]>(r.roles, [])));
  }

  private async requireBoth(organizationId: number, groupId: number, userId: number): Promise<void> {
    const group = await this.db
      .selectFrom('user_groups')
      .select('id')
      .where('organization_id', '=', organizationId)
      .where('id', '=', groupId)
      .executeTakeFirst();
    if (!group) throw new NotFoundError(`user group ${groupId} not found`);
    const user = await this.db
      .selectFrom('users')
      .select('id')
      .where('organization_id', '=', organizationId)
      .where('id', '=', userId)
      .executeTakeFirst();
    if (!user) throw new NotFoundError(`user ${userId} not found`);
  }
}
