import type { Kysely } from 'kysely';
import type { DatabaseHandle } from '../../db/database.js';
import type { DB } from '../../db/schema.js';
import { recordChange } from '../../db/changes.js';
import { ConflictError, NotFoundError, ValidationError } from '../../errors.js';
import { assertValid } from '../../http/validation.js';
import type { Actor } from '../common/actor.js';
import type { Organization } from '../organizations/repository.js';
import { NumberRepository } from '../numbers/repository.js';
import { setNumberOwner } from '../numbers/service.js';
import { UserRepository } from '../users/repository.js';
import { AcdRepository, type AcdAgent, type AcdGroup } from './repository.js';
import {
  NewAcdGroupSchema,
  NewAgentSchema,
  UpdateAcdGroupSchema,
  UpdateAgentSchema,
  type NewAcdGroupInput,
  type NewAgentInput,
  type UpdateAcdGroupInput,
  type UpdateAgentInput,
} from './schemas.js';

export async function requireAcdGroup(db: Kysely<DB>, org: Organization, id: number): Promise<AcdGroup> {
  const g = await new AcdRepository(db).getGroup(org.id, id);
  if (!g) throw new NotFoundError(`no ACD/attendant group ${id} in ${org.domain}`);
  return g;
}

async function record(
  trx: Kysely<DB>,
  actor: Actor,
  org: Organization,
  action: string,
  groupId: number,
  data: Record<string, unknown>,
  userId: number | null = null,
) {
  const payload = { groupId, ...data };
  await recordChange(trx, {
    organizationId: org.id,
    actor,
    action,
    entity: action.startsWith('acd.agent') ? 'acd-agent' : 'acd-group',
    entityId: action.startsWith('acd.agent') ? `${groupId}:${String(data.agent)}` : groupId,
    data: payload,
    event: { type: action, groupId, userId, data: payload },
  });
}

/**
 * Makes `number` the group's function number through the numbers service (one source of truth,
 * the same rules as the numbers API): a number of the organization, free or already the
 * group's; another user's or group's is 409 naming the number and its owner (move it with the
 * numbers API's `"move": true`). The group's previous function number is released.
 */
async function takeNumber(
  trx: Kysely<DB>,
  org: Organization,
  group: AcdGroup,
  number: string,
  field: string,
) {
  await setNumberOwner(
    trx,
    org,
    number,
    { acdGroup: group },
    {
      missing: () =>
        new ValidationError([
          {
            field,
            message: `${number} is not a number of ${org.domain}; add it first with POST /api/admin/numbers/${org.domain}`,
          },
        ]),
    },
  );
}

/** Releases the group's function number, if it has one (it stays in the organization). */
async function dropNumber(trx: Kysely<DB>, org: Organization, groupId: number) {
  const numbers = new NumberRepository(trx);
  for (const n of await numbers.listByAcdGroup(org.id, groupId)) await numbers.release(org.id, n.number);
}

export async function createAcdGroup(
  database: DatabaseHandle,
  actor: Actor,
  org: Organization,
  input: unknown,
  prefix = 'body',
): Promise<AcdGroup> {
  const data = assertValid<NewAcdGroupInput>(NewAcdGroupSchema, input, prefix);
  return database.db.transaction().execute(async (trx) => {
    const repo = new AcdRepository(trx);
    const { number, ...fields } = data;
    const g = await repo.createGroup(org.id, fields);
    if (number != null) await takeNumber(trx, org, g, number, `${prefix}.number`);
    const created = number != null ? (await repo.getGroup(org.id, g.id))! : g;
    await record(trx, actor, org, 'acd.group.created', g.id, {
      name: g.name,
      type: g.type,
      number: created.number,
    });
    return created;
  });
}

export async function updateAcdGroup(
  database: DatabaseHandle,
  actor: Actor,
  org: Organization,
  id: number,
  input: unknown,
  prefix = 'body',
): Promise<AcdGroup> {
  const data = assertValid<UpdateAcdGroupInput>(UpdateAcdGroupSchema, input ?? {}, prefix);
  if (data.id !== undefined && data.id !== id) {
    throw new ValidationError([
      { field: `${prefix}.id`, message: `cannot be changed (is ${id}); leave it out` },
    ]);
  }
  return database.db.transaction().execute(async (trx) => {
    const before = await requireAcdGroup(trx, org, id);
    const { id: _id, number, ...patch } = data;
    void _id;
    if (number !== undefined && number !== before.number) {
      if (number === null) await dropNumber(trx, org, id);
      else await takeNumber(trx, org, before, number, `${prefix}.number`);
    }
    const g = await new AcdRepository(trx).updateGroup(org.id, id, patch);
    await record(trx, actor, org, 'acd.group.updated', id, {
      fields: Object.keys(data)
        .filter((k) => k !== 'id')
        .sort(),
      ...(number !== undefined ? { number: g.number, previousNumber: before.number } : {}),
      ...(data.nightMode !== undefined ? { nightMode: g.nightMode } : {}),
    });
    return g;
  });
}

/** Deletes the group: its agents go with it, its numbers are released to the organization. */
export async function deleteAcdGroup(
  database: DatabaseHandle,
  actor: Actor,
  org: Organization,
  id: number,
): Promise<{ agents: number; numbersReleased: string[] }> {
  return database.db.transaction().execute(async (trx) => {
    const g = await requireAcdGroup(trx, org, id);
    const repo = new AcdRepository(trx);
    const agents = (await repo.countAgents(org.id, [id])).get(id) ?? 0;
    const numbers = new NumberRepository(trx);
    const numbersReleased = (await numbers.listByAcdGroup(org.id, id)).map((n) => n.number);
    for (const n of numbersReleased) await numbers.release(org.id, n);
    await repo.deleteGroup(org.id, id);
    await record(trx, actor, org, 'acd.group.deleted', id, { name: g.name, agents, numbersReleased });
    return { agents, numbersReleased };
  });
}

export async function requireAgent(
  db: Kysely<DB>,
  org: Organization,
  groupId: number,
  userId: string,
): Promise<AcdAgent> {
  await requireAcdGroup(db, org, groupId);
  const user = await new UserRepository(db).get(org.id, userId);
  const agent = user && (await new AcdRepository(db).getAgent(org.id, groupId, user.id));
  if (!agent) throw new NotFoundError(`${userId} is not an agent of group ${groupId}`);
  return agent;
}

export async function addAgent(
  database: DatabaseHandle,
  actor: Actor,
  org: Organization,
  groupId: number,
  input: unknown,
  prefix = 'body',
): Promise<AcdAgent> {
  const data = assertValid<NewAgentInput>(NewAgentSchema, input, prefix);
  return database.db.transaction().execute(async (trx) => {
    await requireAcdGroup(trx, org, groupId);
    const user = await new UserRepository(trx).get(org.id, data.user);
    if (!user)
      throw new ValidationError([
        { field: `${prefix}.user`, message: `no user "${data.user}" in ${org.domain}` },
      ]);
    const repo = new AcdRepository(trx);
    if (await repo.getAgent(org.id, groupId, user.id)) {
      throw new ConflictError(
        `${data.user} is already an agent of group ${groupId}; change the skill level with PUT`,
      );
    }
    const agent = await repo.addAgent(org.id, groupId, user.id, data.skillLevel ?? 1);
    await record(
      trx,
      actor,
      org,
      'acd.agent.added',
      groupId,
      { agent: `${user.userId}@${org.domain}`, skillLevel: agent.skillLevel },
      user.id,
    );
    return agent;
  });
}

export async function updateAgent(
  database: DatabaseHandle,
  actor: Actor,
  org: Organization,
  groupId: number,
  userId: string,
  input: unknown,
  prefix = 'body',
): Promise<AcdAgent> {
  const data = assertValid<UpdateAgentInput>(UpdateAgentSchema, input ?? {}, prefix);
  if (data.user !== undefined && data.user !== userId) {
    throw new ValidationError([
      { field: `${prefix}.user`, message: `cannot be changed (is ${userId}); leave it out` },
    ]);
  }
  return database.db.transaction().execute(async (trx) => {
    const agent = await requireAgent(trx, org, groupId, userId);
    const updated = await new AcdRepository(trx).setSkill(org.id, groupId, agent.userId, data.skillLevel);
    await record(
      trx,
      actor,
      org,
      'acd.agent.updated',
      groupId,
      { agent: `${userId}@${org.domain}`, skillLevel: data.skillLevel },
      agent.userId,
    );
    return updated;
  });
}

export async function removeAgent(
  database: DatabaseHandle,
  actor: Actor,
  org: Organization,
  groupId: number,
  userId: string,
): Promise<void> {
  await database.db.transaction().execute(async (trx) => {
    const agent = await requireAgent(trx, org, groupId, userId);
    await new AcdRepository(trx).removeAgent(org.id, groupId, agent.userId);
    await record(
      trx,
      actor,
      org,
      'acd.agent.removed',
      groupId,
      { agent: `${userId}@${org.domain}` },
      agent.userId,
    );
  });
}
