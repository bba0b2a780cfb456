import type { Kysely, Selectable } from 'kysely';
import {
  mapBatchConflict,
  mapConflict,
  pageLimit,
  toPage,
  type Page,
  type PageRequest,
} from '../../db/common.js';
import { escapeLike, fromJson, helpersFor } from '../../db/dialects/index.js';
import type { Availability, DB, Role, UsersTable } from '../../db/schema.js';
import { NotFoundError } from '../../errors.js';

export type { Availability, Role } from '../../db/schema.js';

export interface User {
  id: number;
  organizationId: number;
  /** The user id inside its domain (case-sensitive), e.g. `aki.huolman`. */
  userId: string;
  role: Role;
  firstName: string;
  lastName: string;
  email: string | null;
  language: string | null;
  title: string | null;
  department: string | null;
  extension: string | null;
  availability: Availability;
  availabilityMessage: string | null;
  hasPassword: boolean;
  createdAt: number;
  updatedAt: number;
}

export interface NewUser {
  userId: string;
  role?: Role;
  firstName?: string;
  lastName?: string;
  email?: string | null;
  /** Already hashed (src/security/passwords.ts). */
  passwordHash?: string | null;
  language?: string | null;
  title?: string | null;
  department?: string | null;
  extension?: string | null;
  availability?: Availability;
  availabilityMessage?: string | null;
}

export type UserPatch = Partial<Omit<NewUser, 'userId' | 'passwordHash'>>;

export interface UserGroupRef {
  id: number;
  name: string;
  roles: string[];
}

function toUser(r: Selectable<UsersTable>): User {
  return {
    id: r.id,
    organizationId: r.organization_id,
    userId: r.user_id,
    role: r.role,
    firstName: r.first_name,
    lastName: r.last_name,
    email: r.email,
    language: r.language,
    title: r.title,
    department: r.department,
    extension: r.extension,
    availability: r.availability,
    availabilityMessage: r.availability_message,
    hasPassword: r.password_hash !== null,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

function conflictMessage(input: { userId?: string; extension?: string | null }) {
  return (columns: string[]): string =>
    columns.includes('extension')
      ? `extension "${input.extension ?? ''}" is already used in this organization`
      : `user "${input.userId ?? ''}" already exists in this organization`;
}

export class UserRepository {
  constructor(private readonly db: Kysely<DB>) {}

  async create(organizationId: number, input: NewUser, now = Date.now()): Promise<User> {
    const row = await mapConflict(
      this.db,
      () =>
        this.db
          .insertInto('users')
          .values({
            organization_id: organizationId,
            user_id: input.userId,
            role: input.role ?? 'USER',
            first_name: input.firstName ?? '',
            last_name: input.lastName ?? '',
            email: input.email ?? null,
            password_hash: input.passwordHash ?? null,
            language: input.language ?? null,
            title: input.title ?? null,
            department: input.department ?? null,
            extension: input.extension ?? null,
            availability: input.availability ?? 'AVAILABLE',
            availability_message: input.availabilityMessage ?? null,
            created_at: now,
            updated_at: now,
          })
          .returningAll()
          .executeTakeFirstOrThrow(),
      conflictMessage(input),
    );
    return toUser(row);
  }

  /**
   * Inserts many users in multi-row statements (run inside a transaction: all or nothing).
   * Returned in input order. A duplicate raises a ConflictError naming the user id or extension
   * (the caller checks first; this is a concurrent change that won the race).
   */
  async createMany(organizationId: number, inputs: NewUser[], now = Date.now()): Promise<User[]> {
    const out: User[] = [];
    for (let i = 0; i < inputs.length; i += 400) {
      const chunk = inputs.slice(i, i + 400);
      const rows = await mapBatchConflict(
        this.db,
        () =>
          this.db
            .insertInto('users')
            .values(
              chunk.map((input) => ({
                organization_id: organizationId,
                user_id: input.userId,
                role: input.role ?? 'USER',
                first_name: input.firstName ?? '',
                last_name: input.lastName ?? '',
                email: input.email ?? null,
                password_hash: input.passwordHash ?? null,
                language: input.language ?? null,
                title: input.title ?? null,
                department: input.department ?? null,
                extension: input.extension ?? null,
                availability: input.availability ?? 'AVAILABLE',
                availability_message: input.availabilityMessage ?? null,
                created_at: now,
                updated_at: now,
              })),
            )
            .returningAll()
            .execute(),
        (column, value) =>
          column === 'extension'
            ? `extension ${value === undefined ? 'of a user in this batch' : `"${value}"`} is already used in this organization`
            : `user ${value === undefined ? 'id of this batch' : `"${value}"`} already exists in this organization`,
        (column) => this.firstTaken(organizationId, chunk, column === 'extension' ? 'extension' : 'user_id'),
      );
      const byUserId = new Map(rows.map((r) => [r.user_id, r]));
      for (const input of chunk) out.push(toUser(byUserId.get(input.userId)!));
    }
    return out;
  }

  /** The first user id (or extension) of `chunk` that is stored already or given twice in it. */
  private async firstTaken(
    organizationId: number,
    chunk: NewUser[],
    column: 'user_id' | 'extension',
  ): Promise<string | undefined> {
    const values = chunk
      .map((u) => (column === 'user_id' ? u.userId : u.extension))
      .filter((v): v is string => typeof v === 'string');
    if (values.length === 0) return undefined;
    const stored = await this.db
      .selectFrom('users')
      .select(column)
      .where('organization_id', '=', organizationId)
      .where(column, 'in', values)
      .execute();
    const taken = new Set(stored.map((r) => r[column]));
    const seen = new Set<string>();
    return values.find((v) => {
      if (taken.has(v) || seen.has(v)) return true;
      seen.add(v);
      return false;
    });
  }

  /** Internal ids of these user ids (those that exist), in one query per 500. */
  async idsOf(organizationId: number, userIds: string[]): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    for (let i = 0; i < userIds.length; i += 500) {
      const rows = await this.db
        .selectFrom('users')
        .select(['id', 'user_id'])
        .where('organization_id', '=', organizationId)
        .where('user_id', 'in', userIds.slice(i, i + 500))
        .execute();
      for (const r of rows) out.set(r.user_id, r.id);
    }
    return out;
  }

  /** Which of these user ids already exist in the organization. */
  async existingUserIds(organizationId: number, userIds: string[]): Promise<Set<string>> {
    const found = new Set<string>();
    for (let i = 0; i < userIds.length; i += 500) {
      const rows = await this.db
        .selectFrom('users')
        .select('user_id')
        .where('organization_id', '=', organizationId)
        .where('user_id', 'in', userIds.slice(i, i + 500))
        .execute();
      for (const r of rows) found.add(r.user_id);
    }
    return found;
  }

  /** Which of these extensions are already used in the organization. */
  async existingExtensions(organizationId: number, extensions: string[]): Promise<Set<string>> {
    const found = new Set<string>();
    for (let i = 0; i < extensions.length; i += 500) {
      const rows = await this.db
        .selectFrom('users')
        .select('extension')
        .where('organization_id', '=', organizationId)
        .where('extension', 'in', extensions.slice(i, i + 500))
        .execute();
      for (const r of rows) if (r.extension !== null) found.add(r.extension);
    }
    return found;
  }

  /** The groups (id, name) of each of these users, for list views; one query. */
  async groupsOfUsers(
    organizationId: number,
    ids: number[],
  ): Promise<Map<number, { id: number; name: string }[]>> {
    const out = new Map<number, { id: number; name: string }[]>();
    if (ids.length === 0) return out;
    const rows = await this.db
      .selectFrom('user_group_members as m')
      .innerJoin('user_groups as g', 'g.id', 'm.group_id')
      .select(['m.user_id', 'g.id', 'g.name'])
      .where('m.organization_id', '=', organizationId)
      .where('m.user_id', 'in', ids)
      .orderBy('g.name')
      .execute();
    for (const r of rows) {
      const list = out.get(r.user_id) ?? [];
      list.push({ id: r.id, name: r.name });
      out.set(r.user_id, list);
    }
    return out;
  }

  /** By user id within the organization (case-sensitive). */
  async get(organizationId: number, userId: string): Promise<User | undefined> {
    const r = await this.db
      .selectFrom('users')
      .selectAll()
      .where('organization_id', '=', organizationId)
      .where('user_id', '=', userId)
      .executeTakeFirst();
    return r && toUser(r);
  }

  async require(organizationId: number, userId: string): Promise<User> {
    const u = await this.get(organizationId, userId);
    if (!u) throw new NotFoundError(`user "${userId}" not found`);
    return u;
  }

  async getById(organizationId: number, id: number): Promise<User | undefined> {
    const r = await this.db
      .selectFrom('users')
      .selectAll()
      .where('organization_id', '=', organizationId)
      .where('id', '=', id)
      .executeTakeFirst();
    return r && toUser(r);
  }

  /** The stored password hash (null: no password set), for login checks only. */
  async getPasswordHash(organizationId: number, userId: string): Promise<string | null | undefined> {
    const r = await this.db
      .selectFrom('users')
      .select('password_hash')
      .where('organization_id', '=', organizationId)
      .where('user_id', '=', userId)
      .executeTakeFirst();
    return r ? r.password_hash : undefined;
  }

  /** md5(user:domain:password) for the deprecated legacy password token; null when not kept. */
  async getLegacyHa1(organizationId: number, id: number): Promise<string | null> {
    const r = await this.db
      .selectFrom('users')
      .select('legacy_ha1')
      .where('organization_id', '=', organizationId)
      .where('id', '=', id)
      .executeTakeFirst();
    return r?.legacy_ha1 ?? null;
  }

  async setLegacyHa1(organizationId: number, id: number, ha1: string | null): Promise<void> {
    await this.db
      .updateTable('users')
      .set({ legacy_ha1: ha1 })
      .where('organization_id', '=', organizationId)
      .where('id', '=', id)
      .execute();
  }

  /** Ordered by id; `after` is the last id of the previous page. */
  async list(organizationId: number, page: PageRequest = {}): Promise<Page<User>> {
    const limit = pageLimit(page.limit);
    let q = this.db
      .selectFrom('users')
      .selectAll()
      .where('organization_id', '=', organizationId)
      .orderBy('id')
      .limit(limit + 1);
    if (page.after != null) q = q.where('id', '>', page.after);
    return toPage(await q.execute(), limit, toUser, (r) => r.id);
  }

  /** Case-insensitive substring search in user id, names, email and extension. */
  async search(organizationId: number, text: string, limit = 50): Promise<User[]> {
    const h = helpersFor(this.db);
    const pattern = `%${escapeLike(text)}%`;
    const rows = await this.db
      .selectFrom('users')
      .selectAll()
      .where('organization_id', '=', organizationId)
      .where((eb) =>
        eb.or([
          h.ilike('user_id', pattern),
          h.ilike('first_name', pattern),
          h.ilike('last_name', pattern),
          h.ilike('email', pattern),
          h.ilike('extension', pattern),
        ]),
      )
      .orderBy('last_name')
      .orderBy('first_name')
      .orderBy('id')
      .limit(pageLimit(limit))
      .execute();
    return rows.map(toUser);
  }

  async count(organizationId: number): Promise<number> {
    const r = await this.db
      .selectFrom('users')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('organization_id', '=', organizationId)
      .executeTakeFirstOrThrow();
    return Number(r.n);
  }

  async update(organizationId: number, id: number, patch: UserPatch, now = Date.now()): Promise<User> {
    const set = {
      updated_at: now,
      ...(patch.role !== undefined && { role: patch.role }),
      ...(patch.firstName !== undefined && { first_name: patch.firstName }),
      ...(patch.lastName !== undefined && { last_name: patch.lastName }),
      ...(patch.email !== undefined && { email: patch.email }),
      ...(patch.language !== undefined && { language: patch.language }),
      ...(patch.title !== undefined && { title: patch.title }),
      ...(patch.department !== undefined && { department: patch.department }),
      ...(patch.extension !== undefined && { extension: patch.extension }),
      ...(patch.availability !== undefined && { availability: patch.availability }),
      ...(patch.availabilityMessage !== undefined && { availability_message: patch.availabilityMessage }),
    };
    const r = await mapConflict(
      this.db,
      () =>
        this.db
          .updateTable('users')
          .set(set)
          .where('organization_id', '=', organizationId)
          .where('id', '=', id)
          .returningAll()
          .executeTakeFirst(),
      conflictMessage(patch),
    );
    if (!r) throw new NotFoundError(`user ${id} not found`);
    return toUser(r);
  }

  async setPassword(organizationId: number, id: number, passwordHash: string | null, now = Date.now()) {
    const r = await this.db
      .updateTable('users')
      .set({ password_hash: passwordHash, updated_at: now })
      .where('organization_id', '=', organizationId)
      .where('id', '=', id)
      .executeTakeFirst();
    if (Number(r.numUpdatedRows) === 0) throw new NotFoundError(`user ${id} not found`);
  }

  /**
   * Deletes the user. Its devices, group memberships, agent rows and tickets go by cascade, its
   * numbers are released, and its user-level External API grants (polymorphic target, no foreign
   * key) are deleted here. False if there was no such user.
   */
  async delete(organizationId: number, id: number): Promise<boolean> {
    await this.db
      .deleteFrom('external_api_grants')
      .where('organization_id', '=', organizationId)
      .where('level', '=', 'USER')
      .where('target_id', '=', id)
      .execute();
    const r = await this.db
      .deleteFrom('users')
      .where('organization_id', '=', organizationId)
      .where('id', '=', id)
      .executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  }

  /** The user groups the user is a member of, by name. */
  async groupsOf(organizationId: number, id: number): Promise<UserGroupRef[]> {
    const rows = await this.db
      .selectFrom('user_group_members as m')
      .innerJoin('user_groups as g', 'g.id', 'm.group_id')
      .select(['g.id', 'g.name', 'g.roles'])
      .where('m.organization_id', '=', organizationId)
      .where('m.user_id', '=', id)
      .orderBy('g.name')
      .execute();
    return rows.map((r) => ({ id: r.id, name: r.name, roles: fromJson<string[]>(r.roles, []) }));
  }
}
