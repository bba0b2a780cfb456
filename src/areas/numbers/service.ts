import type { Kysely } from 'kysely';
import type { DatabaseHandle } from '../../db/database.js';
import type { DB } from '../../db/schema.js';
import { recordChange } from '../../db/changes.js';
import { ConflictError, NotFoundError, ValidationError, type AppError } from '../../errors.js';
import { assertValid } from '../../http/validation.js';
import type { Actor } from '../common/actor.js';
import type { Organization } from '../organizations/repository.js';
import { UserRepository, type User } from '../users/repository.js';
import { AcdRepository, type AcdGroup } from '../acd/repository.js';
import { NumberRepository, type PhoneNumber } from './repository.js';
import {
  AddNumbersSchema,
  AssignNumberSchema,
  type AddNumbersInput,
  type AssignNumberInput,
} from './schemas.js';

/** Adds one number or a range to the organization; 409 names the first number already taken anywhere. */
export async function addNumbers(
  database: DatabaseHandle,
  actor: Actor,
  org: Organization,
  input: unknown,
  prefix = 'body',
): Promise<string[]> {
  const data = assertValid<AddNumbersInput>(AddNumbersSchema, input, prefix);
  const count = data.count ?? 1;
  return database.db.transaction().execute(async (trx) => {
    let numbers: string[];
    try {
      numbers = await new NumberRepository(trx).addRange(org.id, data.number, count);
    } catch (err) {
      if (err instanceof RangeError)
        throw new ValidationError([{ field: `${prefix}.count`, message: err.message }]);
      throw err;
    }
    const summary = { first: numbers[0], last: numbers[numbers.length - 1], count: numbers.length };
    await recordChange(trx, {
      organizationId: org.id,
      actor,
      action: 'number.added',
      entity: 'number',
      entityId: numbers[0]!,
      data: summary,
      event: { type: 'number.added', data: summary },
    });
    return numbers;
  });
}

/** Who a number is assigned to, as the API names it: `user aki@example.com`, `ACD/attendant group 12 (Support)`. */
async function describeOwner(trx: Kysely<DB>, org: Organization, n: PhoneNumber): Promise<string | null> {
  if (n.userId !== null) {
    const u = await new UserRepository(trx).getById(org.id, n.userId);
    return `user ${u ? `${u.userId}@${org.domain}` : String(n.userId)}`;
  }
  if (n.acdGroupId !== null) {
    const g = await new AcdRepository(trx).getGroup(org.id, n.acdGroupId);
    return `ACD/attendant group ${n.acdGroupId}${g ? ` (${g.name})` : ''}`;
  }
  return null;
}

export type NumberTarget = { user: User } | { acdGroup: AcdGroup };

export interface OwnerChange {
  before: PhoneNumber;
  after: PhoneNumber;
  /** The previous owner when the number was moved from someone else (`move`), else null. */
  movedFrom: string | null;
  /** The group's previous function number, released because a group has one at most. */
  replaced: string | null;
}

/**
 * The one place a number changes hands, in the caller's transaction: the numbers API
 * (`PUT /api/admin/numbers/{domain}/{number}`) and the ACD group API (`number` of a group) both
 * go through here, so they agree.
 *
 * - Taking a number that another user or group has is a 409 naming the number and its owner,
 *   unless `move` is set (the numbers API's `"move": true`): then it moves, and the change says
 *   from whom.
 * - A group has one function number at most: giving it another releases the previous one
 *   (`replaced`).
 * - The number must be the organization's: `missing` builds the error when it is not.
 */
export async function setNumberOwner(
  trx: Kysely<DB>,
  org: Organization,
  number: string,
  target: NumberTarget,
  opts: { move?: boolean; missing: () => AppError },
): Promise<OwnerChange> {
  const repo = new NumberRepository(trx);
  const before = await repo.get(org.id, number);
  if (!before) throw opts.missing();
  const same = 'user' in target ? before.userId === target.user.id : before.acdGroupId === target.acdGroup.id;
  if (same) return { before, after: before, movedFrom: null, replaced: null };
  const current = await describeOwner(trx, org, before);
  if (current !== null && opts.move !== true) {
    throw new ConflictError(
      `number ${number} is assigned to ${current}; release it first ` +
        `(PUT /api/admin/numbers/${org.domain}/${encodeURIComponent(number)} with {"user": null}) ` +
        'or move it with {"move": true} there',
    );
  }
  let replaced: string | null = null;
  let after: PhoneNumber;
  if ('user' in target) {
    after = await repo.assignToUser(org.id, number, target.user.id);
  } else {
    for (const n of await repo.listByAcdGroup(org.id, target.acdGroup.id)) {
      await repo.release(org.id, n.number);
      replaced = n.number;
    }
    after = await repo.assignToAcdGroup(org.id, number, target.acdGroup.id);
  }
  return { before, after, movedFrom: current, replaced };
}

/**
 * Assigns the number to a user (`user`) or an ACD/attendant group as its function number
 * (`acdGroup`), or releases it (both null or left out); it stays in the organization. A number
 * another user or group has is 409 naming it and its owner unless `"move": true` (see
 * setNumberOwner).
 */
export async function assignNumber(
  database: DatabaseHandle,
  actor: Actor,
  org: Organization,
  number: string,
  input: unknown,
  prefix = 'body',
): Promise<PhoneNumber> {
  const data = assertValid<AssignNumberInput>(AssignNumberSchema, input ?? {}, prefix);
  if (data.number !== undefined && data.number !== number) {
    throw new ValidationError([
      { field: `${prefix}.number`, message: `cannot be changed (is ${number}); leave it out` },
    ]);
  }
  if (data.user != null && data.acdGroup != null) {
    throw new ValidationError([
      {
        field: `${prefix}.acdGroup`,
        message: 'a number has one owner: give either user or acdGroup, not both',
      },
    ]);
  }
  return database.db.transaction().execute(async (trx) => {
    const missing = () =>
      new NotFoundError(
        `no number ${number} in ${org.domain}; add it with POST /api/admin/numbers/${org.domain}`,
      );
    let change: OwnerChange;
    let owner: string | null = null;
    if (data.user != null) {
      const user = await new UserRepository(trx).get(org.id, data.user);
      if (!user)
        throw new ValidationError([
          { field: `${prefix}.user`, message: `no user "${data.user}" in ${org.domain}` },
        ]);
      change = await setNumberOwner(trx, org, number, { user }, { move: data.move, missing });
      owner = `${user.userId}@${org.domain}`;
    } else if (data.acdGroup != null) {
      const group = await new AcdRepository(trx).getGroup(org.id, data.acdGroup);
      if (!group)
        throw new ValidationError([
          {
            field: `${prefix}.acdGroup`,
            message: `no ACD/attendant group ${data.acdGroup} in ${org.domain}`,
          },
        ]);
      change = await setNumberOwner(trx, org, number, { acdGroup: group }, { move: data.move, missing });
      owner = `acd:${group.id}`;
    } else {
      const repo = new NumberRepository(trx);
      const before = await repo.get(org.id, number);
      if (!before) throw missing();
      change = { before, after: await repo.release(org.id, number), movedFrom: null, replaced: null };
    }
    const { before, after } = change;
    const summary = {
      number,
      owner,
      ...(change.movedFrom !== null ? { movedFrom: change.movedFrom } : {}),
      ...(change.replaced !== null ? { released: change.replaced } : {}),
    };
    await recordChange(trx, {
      organizationId: org.id,
      actor,
      action: owner === null ? 'number.released' : 'number.assigned',
      entity: 'number',
      entityId: number,
      data: summary,
      event: {
        type: owner === null ? 'number.released' : 'number.assigned',
        userId: after.userId ?? before.userId,
        groupId: after.acdGroupId ?? before.acdGroupId,
        data: summary,
      },
    });
    return after;
  });
}

/** Removes the number from the organization (any assignment goes with it); it can be added anywhere again. */
export async function removeNumber(
  database: DatabaseHandle,
  actor: Actor,
  org: Organization,
  number: string,
): Promise<PhoneNumber> {
  return database.db.transaction().execute(async (trx) => {
    const repo = new NumberRepository(trx);
    const n = await repo.get(org.id, number);
    if (!n) throw new NotFoundError(`no number ${number} in ${org.domain}`);
    if (!(await repo.remove(org.id, number)))
      throw new ConflictError(`number ${number} changed meanwhile; try again`);
    const summary = {
      number,
      wasAssignedTo: n.userId !== null ? 'user' : n.acdGroupId !== null ? 'acdGroup' : null,
    };
    await recordChange(trx, {
      organizationId: org.id,
      actor,
      action: 'number.removed',
      entity: 'number',
      entityId: number,
      data: summary,
      event: { type: 'number.removed', userId: n.userId, groupId: n.acdGroupId, data: summary },
    });
    return n;
  });
}
