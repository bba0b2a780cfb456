import type { DatabaseHandle } from '../../db/database.js';
import { recordChange } from '../../db/changes.js';
import { ConflictError, NotFoundError, ValidationError } from '../../errors.js';
import { assertValid } from '../../http/validation.js';
import type { Actor } from '../common/actor.js';
import type { Organization } from '../organizations/repository.js';
import { UserRepository } from '../users/repository.js';
import { AcdRepository } from '../acd/repository.js';
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

/**
 * Assigns the number to a user (`user`) or an ACD/attendant group as its function number
 * (`acdGroup`), or releases it (both null or left out); it stays in the organization.
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
    const repo = new NumberRepository(trx);
    const before = await repo.get(org.id, number);
    if (!before)
      throw new NotFoundError(
        `no number ${number} in ${org.domain}; add it with POST /api/admin/numbers/${org.domain}`,
      );
    const acd = new AcdRepository(trx);
    let after: PhoneNumber;
    let owner: string | null = null;
    if (data.user != null) {
      const user = await new UserRepository(trx).get(org.id, data.user);
      if (!user)
        throw new ValidationError([
          { field: `${prefix}.user`, message: `no user "${data.user}" in ${org.domain}` },
        ]);
      after = await repo.assignToUser(org.id, number, user.id);
      owner = `${user.userId}@${org.domain}`;
    } else if (data.acdGroup != null) {
      if (!(await acd.getGroup(org.id, data.acdGroup)))
        throw new ValidationError([
          {
            field: `${prefix}.acdGroup`,
            message: `no ACD/attendant group ${data.acdGroup} in ${org.domain}`,
          },
        ]);
      after = await repo.assignToAcdGroup(org.id, number, data.acdGroup);
      owner = `acd:${data.acdGroup}`;
    } else {
      after = await repo.release(org.id, number);
    }
    if (before.acdGroupId !== null && before.acdGroupId !== after.acdGroupId)
      await acd.clearNumber(org.id, number);
    const summary = { number, owner };
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
    if (n.acdGroupId !== null) await new AcdRepository(trx).clearNumber(org.id, number);
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
