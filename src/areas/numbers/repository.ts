import type { Kysely, Selectable } from 'kysely';
import {
  mapBatchConflict,
  mapConflict,
  pageLimit,
  toPage,
  type Page,
  type PageRequest,
} from '../../db/common.js';
import type { DB, NumbersTable } from '../../db/schema.js';
import { ConflictError, NotFoundError } from '../../errors.js';

export interface PhoneNumber {
  /** E.164, e.g. `+46850000000`. Globally unique: a number belongs to one organization at most. */
  number: string;
  organizationId: number;
  /** Internal id of the user it is assigned to, or null. */
  userId: number | null;
  /** Id of the ACD/attendant group (function number) it is assigned to, or null. */
  acdGroupId: number | null;
  createdAt: number;
}

export interface NumberOwner {
  number: string;
  organizationId: number;
  domain: string;
  userId: number | null;
  /** The owner's user id in its domain, when assigned to a user. */
  userName: string | null;
  acdGroupId: number | null;
}

/** The largest range `addRange` accepts in one call. */
export const MAX_RANGE = 10_000;

function toNumber(r: Selectable<NumbersTable>): PhoneNumber {
  return {
    number: r.number,
    organizationId: r.organization_id,
    userId: r.user_id,
    acdGroupId: r.acd_group_id,
    createdAt: r.created_at,
  };
}

/** `count` consecutive E.164 numbers starting at `first` (same length; no wrap-around). */
export function numberRange(first: string, count: number): string[] {
  const m = /^\+([1-9]\d{1,14})$/.exec(first);
  if (!m?.[1]) throw new RangeError(`"${first}" is not an E.164 number (+ and 2 to 15 digits)`);
  if (!Number.isInteger(count) || count < 1 || count > MAX_RANGE)
    throw new RangeError(`range size must be 1..${MAX_RANGE}`);
  const digits = m[1];
  const start = BigInt(digits);
  const out: string[] = [];
  for (let i = 0n; i < BigInt(count); i++) {
    const s = (start + i).toString().padStart(digits.length, '0');
    if (s.length > digits.length)
      throw new RangeError(`range from ${first} of ${count} overflows its length`);
    out.push(`+${s}`);
  }
  return out;
}

export class NumberRepository {
  constructor(private readonly db: Kysely<DB>) {}

  async add(organizationId: number, number: string, now = Date.now()): Promise<PhoneNumber> {
    const r = await mapConflict(
      this.db,
      () =>
        this.db
          .insertInto('numbers')
          .values({ number, organization_id: organizationId, created_at: now })
          .returningAll()
          .executeTakeFirstOrThrow(),
      () => `number ${number} is already taken`,
    );
    return toNumber(r);
  }

  /**
   * Adds `count` consecutive numbers from `first`, all or nothing: if any is taken (by any
   * organization) nothing is added and the ConflictError names the first taken one.
   * Run inside a transaction for atomicity against concurrent adds.
   */
  async addRange(organizationId: number, first: string, count: number, now = Date.now()): Promise<string[]> {
    const numbers = numberRange(first, count);
    const taken = await this.firstTaken(numbers);
    if (taken !== undefined) throw new ConflictError(`number ${taken} is already taken`);
    await this.insertMany(organizationId, numbers, now);
    return numbers;
  }

  /** The first of these numbers (in order) that some organization has, if any. */
  async firstTaken(numbers: string[]): Promise<string | undefined> {
    for (let i = 0; i < numbers.length; i += 500) {
      const taken = await this.db
        .selectFrom('numbers')
        .select('number')
        .where('number', 'in', numbers.slice(i, i + 500))
        .orderBy('number')
        .limit(1)
        .executeTakeFirst();
      if (taken) return taken.number;
    }
    return undefined;
  }

  /**
   * Inserts the numbers without checking first (addRange checks). One that is taken meanwhile
   * (a concurrent add won the race) is a ConflictError naming it; run in a transaction so that
   * nothing is added then.
   */
  async insertMany(organizationId: number, numbers: string[], now = Date.now()): Promise<void> {
    for (let i = 0; i < numbers.length; i += 500) {
      const chunk = numbers.slice(i, i + 500);
      await mapBatchConflict(
        this.db,
        () =>
          this.db
            .insertInto('numbers')
            .values(chunk.map((number) => ({ number, organization_id: organizationId, created_at: now })))
            .execute(),
        (_column, value) =>
          value === undefined
            ? `a number of ${chunk[0]}..${chunk[chunk.length - 1]} is already taken`
            : `number ${value} is already taken`,
        async () => (await this.firstTaken(chunk)) ?? chunk.find((n, j) => chunk.indexOf(n) !== j),
      );
    }
  }

  async get(organizationId: number, number: string): Promise<PhoneNumber | undefined> {
    const r = await this.db
      .selectFrom('numbers')
      .selectAll()
      .where('organization_id', '=', organizationId)
      .where('number', '=', number)
      .executeTakeFirst();
    return r && toNumber(r);
  }

  /** Ordered by number; `after` is the last number of the previous page. */
  async list(organizationId: number, page: PageRequest<string> = {}): Promise<Page<PhoneNumber, string>> {
    const limit = pageLimit(page.limit);
    let q = this.db
      .selectFrom('numbers')
      .selectAll()
      .where('organization_id', '=', organizationId)
      .orderBy('number')
      .limit(limit + 1);
    if (page.after != null) q = q.where('number', '>', page.after);
    return toPage(await q.execute(), limit, toNumber, (r) => r.number);
  }

  /** A page of the organization's numbers with the owning user's id (by number). */
  async listWithOwners(
    organizationId: number,
    page: PageRequest<string> = {},
    only?: string,
  ): Promise<Page<PhoneNumber & { userName: string | null }, string>> {
    const limit = pageLimit(page.limit);
    let q = this.db
      .selectFrom('numbers as n')
      .leftJoin('users as u', 'u.id', 'n.user_id')
      .selectAll('n')
      .select('u.user_id as user_name')
      .where('n.organization_id', '=', organizationId)
      .orderBy('n.number')
      .limit(limit + 1);
    if (only !== undefined) q = q.where('n.number', '=', only);
    if (page.after != null) q = q.where('n.number', '>', page.after);
    return toPage(
      await q.execute(),
      limit,
      (r) => ({ ...toNumber(r), userName: r.user_name }),
      (r) => r.number,
    );
  }

  async listByUser(organizationId: number, userId: number): Promise<PhoneNumber[]> {
    const rows = await this.db
      .selectFrom('numbers')
      .selectAll()
      .where('organization_id', '=', organizationId)
      .where('user_id', '=', userId)
      .orderBy('number')
      .execute();
    return rows.map(toNumber);
  }

  /** Every number assigned to a user in the organization, by user (for the directory). */
  async listUserNumbers(organizationId: number): Promise<Map<number, string[]>> {
    const rows = await this.db
      .selectFrom('numbers')
      .select(['user_id', 'number'])
      .where('organization_id', '=', organizationId)
      .where('user_id', 'is not', null)
      .orderBy('number')
      .execute();
    const byUser = new Map<number, string[]>();
    for (const r of rows) {
      const list = byUser.get(r.user_id!) ?? [];
      list.push(r.number);
      byUser.set(r.user_id!, list);
    }
    return byUser;
  }

  async listByAcdGroup(organizationId: number, groupId: number): Promise<PhoneNumber[]> {
    const rows = await this.db
      .selectFrom('numbers')
      .selectAll()
      .where('organization_id', '=', organizationId)
      .where('acd_group_id', '=', groupId)
      .orderBy('number')
      .execute();
    return rows.map(toNumber);
  }

  /** Assigns to a user of the same organization (moving it from any previous owner). */
  async assignToUser(organizationId: number, number: string, userId: number): Promise<PhoneNumber> {
    const user = await this.db
      .selectFrom('users')
      .select('id')
      .where('organization_id', '=', organizationId)
      .where('id', '=', userId)
      .executeTakeFirst();
    if (!user) throw new NotFoundError(`user ${userId} not found`);
    return this.setOwner(organizationId, number, userId, null);
  }

  /** Assigns to an ACD/attendant group of the same organization (a function number). */
  async assignToAcdGroup(organizationId: number, number: string, groupId: number): Promise<PhoneNumber> {
    const group = await this.db
      .selectFrom('acd_groups')
      .select('id')
      .where('organization_id', '=', organizationId)
      .where('id', '=', groupId)
      .executeTakeFirst();
    if (!group) throw new NotFoundError(`ACD group ${groupId} not found`);
    return this.setOwner(organizationId, number, null, groupId);
  }

  /** Unassigns the number; it stays in the organization. */
  async release(organizationId: number, number: string): Promise<PhoneNumber> {
    return this.setOwner(organizationId, number, null, null);
  }

  /** Removes the number from the organization. */
  async remove(organizationId: number, number: string): Promise<boolean> {
    const r = await this.db
      .deleteFrom('numbers')
      .where('organization_id', '=', organizationId)
      .where('number', '=', number)
      .executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  }

  /** Who has this number, in any organization (inbound routing). */
  async findOwner(number: string): Promise<NumberOwner | undefined> {
    const r = await this.db
      .selectFrom('numbers as n')
      .innerJoin('organizations as o', 'o.id', 'n.organization_id')
      .leftJoin('users as u', 'u.id', 'n.user_id')
      .select([
        'n.number',
        'n.organization_id',
        'o.domain',
        'n.user_id',
        'u.user_id as user_name',
        'n.acd_group_id',
      ])
      .where('n.number', '=', number)
      .executeTakeFirst();
    return (
      r && {
        number: r.number,
        organizationId: r.organization_id,
        domain: r.domain,
        userId: r.user_id,
        userName: r.user_name,
        acdGroupId: r.acd_group_id,
      }
    );
  }

  private async setOwner(
    organizationId: number,
    number: string,
    userId: number | null,
    acdGroupId: number | null,
  ): Promise<PhoneNumber> {
    const r = await this.db
      .updateTable('numbers')
      .set({ user_id: userId, acd_group_id: acdGroupId })
      .where('organization_id', '=', organizationId)
      .where('number', '=', number)
      .returningAll()
      .executeTakeFirst();
    if (!r) throw new NotFoundError(`number ${number} not found`);
    return toNumber(r);
  }
}
