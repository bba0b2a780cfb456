import type { Kysely, Selectable } from 'kysely';
import { pageLimit, toPage, mapConflict, type Page, type PageRequest } from '../../db/common.js';
import { toBool } from '../../db/dialects/index.js';
import type { AcdGroupType, AcdGroupsTable, Availability, DB } from '../../db/schema.js';
import { NotFoundError } from '../../errors.js';

export type { AcdGroupType } from '../../db/schema.js';

export interface AcdGroup {
  /** The public int64 group id. */
  id: number;
  organizationId: number;
  name: string;
  type: AcdGroupType;
  distributionType: string;
  nightMode: boolean;
  /**
   * The group's function number: read from the numbers table (the number whose `acd_group_id` is
   * this group), the one source of truth that inbound routing uses too. Set it through
   * `setNumberOwner` (src/areas/numbers/service.ts); at most one (migration 0006).
   */
  number: string | null;
  queueTimeoutSeconds: number;
  overflowDestination: string | null;
  allowUsingFunctionNumber: boolean;
  createdAt: number;
  updatedAt: number;
}

export interface NewAcdGroup {
  name: string;
  type?: AcdGroupType;
  distributionType?: string;
  nightMode?: boolean;
  queueTimeoutSeconds?: number;
  overflowDestination?: string | null;
  allowUsingFunctionNumber?: boolean;
}

export type AcdGroupPatch = Partial<NewAcdGroup>;

export interface AcdAgent {
  groupId: number;
  organizationId: number;
  /** Internal user id. */
  userId: number;
  /** The user id in its domain. */
  userName: string;
  firstName: string;
  lastName: string;
  email: string | null;
  availability: Availability;
  skillLevel: number;
  loggedIn: boolean;
  loggedInAt: number | null;
}

export interface AgentMembership {
  group: AcdGroup;
  skillLevel: number;
  loggedIn: boolean;
  loggedInAt: number | null;
}

type GroupRow = Selectable<AcdGroupsTable> & { function_number: string | null };

function toGroup(r: GroupRow): AcdGroup {
  return {
    id: r.id,
    organizationId: r.organization_id,
    name: r.name,
    type: r.type,
    distributionType: r.distribution_type,
    nightMode: toBool(r.night_mode),
    number: r.function_number,
    queueTimeoutSeconds: r.queue_timeout_seconds,
    overflowDestination: r.overflow_destination,
    allowUsingFunctionNumber: toBool(r.allow_using_function_number),
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

function checkSkill(skillLevel: number): number {
  if (!Number.isInteger(skillLevel) || skillLevel < 1 || skillLevel > 10)
    throw new RangeError(`skill level must be an integer 1..10, got ${skillLevel}`);
  return skillLevel;
}

export class AcdRepository {
  constructor(private readonly db: Kysely<DB>) {}

  /** Groups with their function number (the lowest number assigned to the group; there is one at most). */
  private groups() {
    return this.db
      .selectFrom('acd_groups as g')
      .selectAll('g')
      .select((eb) =>
        eb
          .selectFrom('numbers as n')
          .select((e) => e.fn.min<string>('n.number').as('n'))
          .whereRef('n.acd_group_id', '=', 'g.id')
          .as('function_number'),
      );
  }

  /** A new group, without a function number (assign one with setNumberOwner). */
  async createGroup(organizationId: number, input: NewAcdGroup, now = Date.now()): Promise<AcdGroup> {
    const r = await this.db
      .insertInto('acd_groups')
      .values({
        organization_id: organizationId,
        name: input.name,
        type: input.type ?? 'ACD',
        distribution_type: input.distributionType ?? 'RING_ALL',
        night_mode: input.nightMode ?? false,
        queue_timeout_seconds: input.queueTimeoutSeconds ?? 0,
        overflow_destination: input.overflowDestination ?? null,
        allow_using_function_number: input.allowUsingFunctionNumber ?? false,
        created_at: now,
        updated_at: now,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    return toGroup({ ...r, function_number: null });
  }

  async getGroup(organizationId: number, id: number): Promise<AcdGroup | undefined> {
    const r = await this.groups()
      .where('g.organization_id', '=', organizationId)
      .where('g.id', '=', id)
      .executeTakeFirst();
    return r && toGroup(r);
  }

  async listGroups(organizationId: number, page: PageRequest = {}): Promise<Page<AcdGroup>> {
    const limit = pageLimit(page.limit);
    let q = this.groups()
      .where('g.organization_id', '=', organizationId)
      .orderBy('g.id')
      .limit(limit + 1);
    if (page.after != null) q = q.where('g.id', '>', page.after);
    return toPage(await q.execute(), limit, toGroup, (r) => r.id);
  }

  async updateGroup(
    organizationId: number,
    id: number,
    patch: AcdGroupPatch,
    now = Date.now(),
  ): Promise<AcdGroup> {
    const r = await this.db
      .updateTable('acd_groups')
      .set({
        updated_at: now,
        ...(patch.name !== undefined && { name: patch.name }),
        ...(patch.type !== undefined && { type: patch.type }),
        ...(patch.distributionType !== undefined && { distribution_type: patch.distributionType }),
        ...(patch.nightMode !== undefined && { night_mode: patch.nightMode }),
        ...(patch.queueTimeoutSeconds !== undefined && { queue_timeout_seconds: patch.queueTimeoutSeconds }),
        ...(patch.overflowDestination !== undefined && { overflow_destination: patch.overflowDestination }),
        ...(patch.allowUsingFunctionNumber !== undefined && {
          allow_using_function_number: patch.allowUsingFunctionNumber,
        }),
      })
      .where('organization_id', '=', organizationId)
      .where('id', '=', id)
      .executeTakeFirst();
    if (Number(r.numUpdatedRows) === 0) throw new NotFoundError(`ACD group ${id} not found`);
    return (await this.getGroup(organizationId, id))!;
  }

  /** Deletes the group and its agents (cascade); its numbers are released. */
  async deleteGroup(organizationId: number, id: number): Promise<boolean> {
    const r = await this.db
      .deleteFrom('acd_groups')
      .where('organization_id', '=', organizationId)
      .where('id', '=', id)
      .executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  }

  /** Adds a user (internal id) as an agent. ConflictError if it already is one. */
  async addAgent(organizationId: number, groupId: number, userId: number, skillLevel = 1): Promise<AcdAgent> {
    await this.requireGroupAndUser(organizationId, groupId, userId);
    await mapConflict(
      this.db,
      () =>
        this.db
          .insertInto('acd_agents')
          .values({
            group_id: groupId,
            user_id: userId,
            organization_id: organizationId,
            skill_level: checkSkill(skillLevel),
            logged_in: false,
            logged_in_at: null,
          })
          .execute(),
      () => `user ${userId} is already an agent of group ${groupId}`,
    );
    return (await this.getAgent(organizationId, groupId, userId))!;
  }

  async removeAgent(organizationId: number, groupId: number, userId: number): Promise<boolean> {
    const r = await this.db
      .deleteFrom('acd_agents')
      .where('organization_id', '=', organizationId)
      .where('group_id', '=', groupId)
      .where('user_id', '=', userId)
      .executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  }

  async setSkill(
    organizationId: number,
    groupId: number,
    userId: number,
    skillLevel: number,
  ): Promise<AcdAgent> {
    const r = await this.db
      .updateTable('acd_agents')
      .set({ skill_level: checkSkill(skillLevel) })
      .where('organization_id', '=', organizationId)
      .where('group_id', '=', groupId)
      .where('user_id', '=', userId)
      .executeTakeFirst();
    if (Number(r.numUpdatedRows) === 0)
      throw new NotFoundError(`user ${userId} is not an agent of group ${groupId}`);
    return (await this.getAgent(organizationId, groupId, userId))!;
  }

  async getAgent(organizationId: number, groupId: number, userId: number): Promise<AcdAgent | undefined> {
    const rows = await this.agentQuery(organizationId)
      .where('a.group_id', '=', groupId)
      .where('a.user_id', '=', userId)
      .execute();
    const r = rows[0];
    return r && this.toAgent(r);
  }

  /** Agents by user id, keyset-paginated (`after` is the last user id of the previous page). */
  async listAgentsPage(
    organizationId: number,
    groupId: number,
    page: PageRequest<string> = {},
  ): Promise<Page<AcdAgent, string>> {
    const limit = pageLimit(page.limit);
    let q = this.agentQuery(organizationId)
      .where('a.group_id', '=', groupId)
      .orderBy('u.user_id')
      .limit(limit + 1);
    if (page.after != null) q = q.where('u.user_id', '>', page.after);
    return toPage(
      await q.execute(),
      limit,
      (r) => this.toAgent(r),
      (r) => r.user_name,
    );
  }

  async countAgents(organizationId: number, groupIds: number[]): Promise<Map<number, number>> {
    const out = new Map<number, number>();
    if (groupIds.length === 0) return out;
    const rows = await this.db
      .selectFrom('acd_agents')
      .select(['group_id', (eb) => eb.fn.countAll<number>().as('n')])
      .where('organization_id', '=', organizationId)
      .where('group_id', 'in', groupIds)
      .groupBy('group_id')
      .execute();
    for (const r of rows) out.set(r.group_id, Number(r.n));
    return out;
  }

  async listAgents(organizationId: number, groupId: number): Promise<AcdAgent[]> {
    const rows = await this.agentQuery(organizationId)
      .where('a.group_id', '=', groupId)
      .orderBy('u.user_id')
      .execute();
    return rows.map((r) => this.toAgent(r));
  }

  /**
   * Logs the agent in (`loggedIn` true) or out. `changed` is false when it already was in that
   * state (the service decides whether that is a 409). NotFoundError if not an agent of the group.
   */
  async setLoggedIn(
    organizationId: number,
    groupId: number,
    userId: number,
    loggedIn: boolean,
    now = Date.now(),
  ): Promise<{ changed: boolean; agent: AcdAgent }> {
    const r = await this.db
      .updateTable('acd_agents')
      .set({ logged_in: loggedIn, logged_in_at: loggedIn ? now : null })
      .where('organization_id', '=', organizationId)
      .where('group_id', '=', groupId)
      .where('user_id', '=', userId)
      .where('logged_in', '=', !loggedIn)
      .executeTakeFirst();
    const agent = await this.getAgent(organizationId, groupId, userId);
    if (!agent) throw new NotFoundError(`user ${userId} is not an agent of group ${groupId}`);
    return { changed: Number(r.numUpdatedRows) > 0, agent };
  }

  login(organizationId: number, groupId: number, userId: number, now = Date.now()) {
    return this.setLoggedIn(organizationId, groupId, userId, true, now);
  }

  logout(organizationId: number, groupId: number, userId: number, now = Date.now()) {
    return this.setLoggedIn(organizationId, groupId, userId, false, now);
  }

  /** The groups a user is an agent of, with its agent state in each. */
  async groupsOfUser(organizationId: number, userId: number): Promise<AgentMembership[]> {
    const rows = await this.groups()
      .innerJoin('acd_agents as a', 'a.group_id', 'g.id')
      .select(['a.skill_level', 'a.logged_in', 'a.logged_in_at'])
      .where('a.organization_id', '=', organizationId)
      .where('a.user_id', '=', userId)
      .orderBy('g.id')
      .execute();
    return rows.map((r) => ({
      group: toGroup(r),
      skillLevel: r.skill_level,
      loggedIn: toBool(r.logged_in),
      loggedInAt: r.logged_in_at,
    }));
  }

  private agentQuery(organizationId: number) {
    return this.db
      .selectFrom('acd_agents as a')
      .innerJoin('users as u', 'u.id', 'a.user_id')
      .select([
        'a.group_id',
        'a.organization_id',
        'a.user_id',
        'u.user_id as user_name',
        'u.first_name',
        'u.last_name',
        'u.email',
        'u.availability',
        'a.skill_level',
        'a.logged_in',
        'a.logged_in_at',
      ])
      .where('a.organization_id', '=', organizationId);
  }

  private toAgent(r: {
    group_id: number;
    organization_id: number;
    user_id: number;
    user_name: string;
    first_name: string;
    last_name: string;
    email: string | null;
    availability: Availability;
    skill_level: number;
    logged_in: boolean | number;
    logged_in_at: number | null;
  }): AcdAgent {
    return {
      groupId: r.group_id,
      organizationId: r.organization_id,
      userId: r.user_id,
      userName: r.user_name,
      firstName: r.first_name,
      lastName: r.last_name,
      email: r.email,
      availability: r.availability,
      skillLevel: r.skill_level,
      loggedIn: toBool(r.logged_in),
      loggedInAt: r.logged_in_at,
    };
  }

  private async requireGroupAndUser(organizationId: number, groupId: number, userId: number): Promise<void> {
    if (!(await this.getGroup(organizationId, groupId)))
      throw new NotFoundError(`ACD group ${groupId} not found`);
    const user = await this.db
      .selectFrom('users')
      .select('id')
      .where('organization_id', '=', organizationId)
      .where('id', '=', userId)
      .executeTakeFirst();
    if (!user) throw new NotFoundError(`user ${userId} not found`);
  }
}
