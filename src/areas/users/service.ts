import { availableParallelism } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { DatabaseHandle } from '../../db/database.js';
import type { DB } from '../../db/schema.js';
import { recordChange, recordChanges, type Change } from '../../db/changes.js';
import { AppError, NotFoundError, ValidationError, type FieldProblem } from '../../errors.js';
import { assertValid, MAX_PROBLEMS } from '../../http/validation.js';
import { hashPassword } from '../../security/passwords.js';
import { legacyHa1 } from '../../security/tokens.js';
import type { Actor } from '../common/actor.js';
import { requireOrganization } from '../organizations/service.js';
import type { Organization } from '../organizations/repository.js';
import { UserGroupRepository } from '../usergroups/repository.js';
import { DeviceRepository } from '../devices/repository.js';
import { TicketRepository } from '../tickets/repository.js';
import { NumberRepository } from '../numbers/repository.js';
import { AcdRepository } from '../acd/repository.js';
import {
  MAX_BULK_USERS,
  NewUserSchema,
  SetPasswordSchema,
  UpdateUserSchema,
  type NewUserInput,
  type SetPasswordInput,
  type UpdateUserInput,
} from './schemas.js';
import { UserRepository, type NewUser, type User } from './repository.js';

export interface UserOptions {
  /** Keep md5(user:domain:password) for the deprecated legacy password token. */
  legacyPasswordTokens?: boolean;
}

const fullId = (user: { userId: string }, org: Organization) => `${user.userId}@${org.domain}`;

function toNewUser(data: NewUserInput, passwordHash: string | null): NewUser {
  return {
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
  };
}

async function requireGroups(
  trx: Kysely<DB>,
  organization: Organization,
  groupIds: number[],
  field: string,
): Promise<void> {
  if (groupIds.length === 0) return;
  const found = await new UserGroupRepository(trx).existingIds(organization.id, groupIds);
  const missing = [...new Set(groupIds)].filter((g) => !found.has(g));
  if (missing.length > 0) {
    throw new ValidationError([
      {
        field,
        message: `no user group ${missing.join(', ')} in ${organization.domain}; list them with GET /api/admin/usergroups/${organization.domain}`,
      },
    ]);
  }
}

async function recordUserCreated(
  trx: Kysely<DB>,
  actor: Actor,
  org: Organization,
  user: User,
  groups: number[],
) {
  await recordChange(trx, userCreatedChange(actor, org, user, groups, false));
}

export async function createUser(
  database: DatabaseHandle,
  actor: Actor,
  domain: string,
  input: unknown,
  prefix = 'body',
  options: UserOptions = {},
): Promise<{ organization: Organization; user: User }> {
  const data = assertValid<NewUserInput>(NewUserSchema, input, prefix);
  const organization = await requireOrganization(database, domain);
  const passwordHash = data.password === undefined ? null : await hashPassword(data.password);
  const user = await database.db.transaction().execute(async (trx) => {
    const groups = data.groups ?? [];
    await requireGroups(trx, organization, groups, `${prefix}.groups`);
    const created = await new UserRepository(trx).create(organization.id, toNewUser(data, passwordHash));
    if (data.password !== undefined && options.legacyPasswordTokens) {
      await new UserRepository(trx).setLegacyHa1(
        organization.id,
        created.id,
        legacyHa1(created.userId, organization.domain, data.password),
      );
    }
    if (groups.length > 0)
      await new UserGroupRepository(trx).setGroupsOfUser(organization.id, created.id, groups);
    await recordUserCreated(trx, actor, organization, created, groups);
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

/** PUT: the fields given replace the stored ones (null clears); `groups` replaces the memberships. */
export async function updateUser(
  database: DatabaseHandle,
  actor: Actor,
  organization: Organization,
  userId: string,
  input: unknown,
  prefix = 'body',
): Promise<User> {
  const body = input ?? {};
  if (typeof body === 'object' && body !== null && 'password' in body) {
    throw new ValidationError([
      {
        field: `${prefix}.password`,
        message: `is not changed by PUT; send POST /api/admin/users/${organization.domain}/${userId}/password`,
      },
    ]);
  }
  const data = assertValid<UpdateUserInput>(UpdateUserSchema, body, prefix);
  if (data.userId !== undefined && data.userId !== userId) {
    throw new ValidationError([
      {
        field: `${prefix}.userId`,
        message: `cannot be changed (is ${userId}); create a new user and delete this one`,
      },
    ]);
  }
  return database.db.transaction().execute(async (trx) => {
    const repo = new UserRepository(trx);
    const user = await repo.get(organization.id, userId);
    if (!user) throw new NotFoundError(`no user "${userId}" in ${organization.domain}`);
    const { userId: _same, groups, ...patch } = data;
    void _same;
    const updated = await repo.update(organization.id, user.id, patch);
    if (groups !== undefined) {
      await requireGroups(trx, organization, groups, `${prefix}.groups`);
      await new UserGroupRepository(trx).setGroupsOfUser(organization.id, user.id, groups);
    }
    const changed = {
      userId,
      fields: Object.keys(data)
        .filter((k) => k !== 'userId')
        .sort(),
    };
    await recordChange(trx, {
      organizationId: organization.id,
      actor,
      action: 'user.updated',
      entity: 'user',
      entityId: fullId(user, organization),
      data: { ...changed, ...(data.role !== undefined ? { role: data.role } : {}) },
      event: { type: 'user.updated', userId: user.id, data: { id: fullId(user, organization), ...changed } },
    });
    return updated;
  });
}

/** A generated password: 18 characters of base64url (108 bits). */
export function newUserPassword(): string {
  return randomBytes(14).toString('base64url').slice(0, 18);
}

/**
 * Sets the user's password (`{"password": "..."}`) or generates one (`{"generate": true}`,
 * returned once). Existing tickets stay valid: revoke them separately if the reset is for a
 * compromise.
 */
export async function setUserPassword(
  database: DatabaseHandle,
  actor: Actor,
  organization: Organization,
  userId: string,
  input: unknown,
  options: UserOptions = {},
  prefix = 'body',
): Promise<{ user: User; generated?: string }> {
  const data = assertValid<SetPasswordInput>(SetPasswordSchema, input ?? {}, prefix);
  if ((data.password === undefined) === (data.generate !== true)) {
    throw new ValidationError([
      {
        field: prefix,
        message:
          data.password === undefined
            ? 'send either {"password": "<8+ characters>"} or {"generate": true}'
            : 'send either a password or generate=true, not both',
      },
    ]);
  }
  const password = data.password ?? newUserPassword();
  const hash = await hashPassword(password);
  const user = await database.db.transaction().execute(async (trx) => {
    const repo = new UserRepository(trx);
    const u = await repo.get(organization.id, userId);
    if (!u) throw new NotFoundError(`no user "${userId}" in ${organization.domain}`);
    await repo.setPassword(organization.id, u.id, hash);
    await repo.setLegacyHa1(
      organization.id,
      u.id,
      options.legacyPasswordTokens ? legacyHa1(u.userId, organization.domain, password) : null,
    );
    const data2 = { userId, generated: data.generate === true };
    await recordChange(trx, {
      organizationId: organization.id,
      actor,
      action: 'user.password_changed',
      entity: 'user',
      entityId: fullId(u, organization),
      data: data2,
      event: { type: 'user.password_changed', userId: u.id, data: { id: fullId(u, organization) } },
    });
    return { ...u, hasPassword: true };
  });
  return data.generate === true ? { user, generated: password } : { user };
}

export interface UserDeleted {
  id: string;
  devices: string[];
  ticketsRevoked: number[];
  numbersReleased: string[];
  groupMemberships: number;
  agentMemberships: number;
}

/**
 * Deletes a user and what depends on it, in one transaction, each step audited: its live
 * tickets are revoked first (`ticket.revoked`; the rows then go with the user by cascade, so a
 * token of it is unknown from then on), its devices deleted (`device.deleted`, SIP accounts
 * gone), its numbers released to the organization, its group and agent memberships and its
 * user-level External API grants removed; then `user.deleted` lists all of it.
 */
export async function deleteUser(
  database: DatabaseHandle,
  actor: Actor,
  organization: Organization,
  userId: string,
): Promise<UserDeleted> {
  return database.db.transaction().execute(async (trx) => {
    const repo = new UserRepository(trx);
    const user = await repo.get(organization.id, userId);
    if (!user) throw new NotFoundError(`no user "${userId}" in ${organization.domain}`);
    const id = fullId(user, organization);
    const tickets = new TicketRepository(trx);
    const ticketsRevoked: number[] = [];
    for (const t of await tickets.listByUser(organization.id, user.id)) {
      await tickets.revoke(organization.id, t.id);
      ticketsRevoked.push(t.id);
      const data = { ticketId: t.id, name: t.name, reason: `user ${id} deleted` };
      await recordChange(trx, {
        organizationId: organization.id,
        actor,
        action: 'ticket.revoked',
        entity: 'ticket',
        entityId: t.id,
        data,
        event: { type: 'ticket.revoked', userId: user.id, data },
      });
    }
    const devicesRepo = new DeviceRepository(trx);
    const devices: string[] = [];
    for (const d of await devicesRepo.listByUser(organization.id, user.id)) {
      await devicesRepo.delete(organization.id, d.deviceId);
      devices.push(d.deviceId);
      const data = { deviceId: d.deviceId, deviceType: d.kind, user: id, reason: `user ${id} deleted` };
      await recordChange(trx, {
        organizationId: organization.id,
        actor,
        action: 'device.deleted',
        entity: 'device',
        entityId: d.deviceId,
        data,
        event: { type: 'device.deleted', userId: user.id, data },
      });
    }
    const numbersRepo = new NumberRepository(trx);
    const numbersReleased: string[] = [];
    for (const n of await numbersRepo.listByUser(organization.id, user.id)) {
      await numbersRepo.release(organization.id, n.number);
      numbersReleased.push(n.number);
    }
    const groupMemberships = (await repo.groupsOf(organization.id, user.id)).length;
    const agentMemberships = (await new AcdRepository(trx).groupsOfUser(organization.id, user.id)).length;
    await repo.delete(organization.id, user.id);
    const summary = { devices, ticketsRevoked, numbersReleased, groupMemberships, agentMemberships };
    await recordChange(trx, {
      organizationId: organization.id,
      actor,
      action: 'user.deleted',
      entity: 'user',
      entityId: id,
      data: { userId, ...summary },
      event: { type: 'user.deleted', userId: user.id, data: { id, ...summary } },
    });
    return { id, ...summary };
  });
}

/** Runs `fn` over `items` with at most `limit` calls in flight; results in input order. */
export async function mapLimit<T, R>(
  items: T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return out;
}

/**
 * How many scrypt hashes run at once in a bulk import: the libuv thread pool does the work, so
 * more than its size only queues (and would starve other requests' file and DNS work).
 */
export const HASH_PARALLELISM = Math.max(
  1,
  Math.min(Number(process.env.UV_THREADPOOL_SIZE ?? 4) || 4, availableParallelism()),
);

export interface BulkCreated {
  organization: Organization;
  users: { index: number; user: User }[];
}

/**
 * Creates up to 1,000 users, all or nothing. Every row is checked first (schema, duplicates
 * inside the request, user ids and extensions already used, unknown groups); any problem
 * answers with every bad row named (`body.users.<index>.<field>`) and creates nothing (400, or
 * 409 when the only problems are conflicts). Passwords, when given, are hashed with bounded
 * parallelism before the transaction; then the rows are inserted in multi-row statements and
 * each user gets its `user.created` audit row and event in the same transaction.
 */
export async function bulkCreateUsers(
  database: DatabaseHandle,
  actor: Actor,
  organization: Organization,
  input: unknown,
  options: UserOptions & { prefix?: string } = {},
): Promise<BulkCreated> {
  const prefix = options.prefix ?? 'body';
  const body = assertValidShape(input, prefix);
  const rows = await checkBulkRows(database, organization, body.users, (i) => `${prefix}.users.${i}`);
  return insertBulkRows(database, actor, organization, rows, options);
}

/**
 * Checks rows of users to create (schema, duplicates among them, user ids and extensions
 * already used, unknown groups) without writing; throws a 400 (409 when every problem is a
 * conflict) listing the problems, schema problems and conflicts together, each field named by
 * `fieldOf(row index)`. At most `maxListed` are listed (default MAX_PROBLEMS): then a last
 * entry (field `whole`) and the summary say how many more there are.
 */
export async function checkBulkRows(
  database: DatabaseHandle,
  organization: Organization,
  items: unknown[],
  fieldOf: (index: number) => string,
  opts: { whole?: string; maxListed?: number } = {},
): Promise<NewUserInput[]> {
  const whole = opts.whole ?? 'body.users';
  const maxListed = opts.maxListed ?? MAX_PROBLEMS;
  const rows: NewUserInput[] = [];
  const invalid: (FieldProblem & { row: number })[] = [];
  const conflicts: (FieldProblem & { row: number })[] = [];
  items.forEach((item, i) => {
    try {
      rows.push(assertValid<NewUserInput>(NewUserSchema, item, fieldOf(i)));
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      invalid.push(...err.problems.map((p) => ({ ...p, row: i })));
      rows.push(item as NewUserInput);
    }
  });
  // A value that is itself invalid is reported once, as invalid, not also as a duplicate.
  const badFields = new Set(invalid.map((p) => p.field));
  const usable = (i: number, key: 'userId' | 'extension', v: unknown): v is string =>
    typeof v === 'string' && !badFields.has(`${fieldOf(i)}.${key}`);
  const seenIds = new Map<string, number>();
  const seenExt = new Map<string, number>();
  rows.forEach((r, i) => {
    if (usable(i, 'userId', r?.userId)) {
      const first = seenIds.get(r.userId);
      if (first !== undefined)
        conflicts.push({
          row: i,
          field: `${fieldOf(i)}.userId`,
          message: `"${r.userId}" is also given at ${fieldOf(first)}; give each user once`,
        });
      else seenIds.set(r.userId, i);
    }
    if (usable(i, 'extension', r?.extension)) {
      const first = seenExt.get(r.extension);
      if (first !== undefined)
        conflicts.push({
          row: i,
          field: `${fieldOf(i)}.extension`,
          message: `"${r.extension}" is also given at ${fieldOf(first)}; extensions are unique in an organization`,
        });
      else seenExt.set(r.extension, i);
    }
  });
  const repo = new UserRepository(database.db);
  const existing = await repo.existingUserIds(organization.id, [...seenIds.keys()]);
  const existingExt = await repo.existingExtensions(organization.id, [...seenExt.keys()]);
  const allGroups = rows.flatMap((r) => (Array.isArray(r?.groups) ? r.groups : []));
  const groups = await new UserGroupRepository(database.db).existingIds(
    organization.id,
    allGroups.filter((g): g is number => Number.isInteger(g)),
  );
  rows.forEach((r, i) => {
    if (usable(i, 'userId', r?.userId) && existing.has(r.userId))
      conflicts.push({
        row: i,
        field: `${fieldOf(i)}.userId`,
        message: `user "${r.userId}" already exists in ${organization.domain}`,
      });
    if (usable(i, 'extension', r?.extension) && existingExt.has(r.extension))
      conflicts.push({
        row: i,
        field: `${fieldOf(i)}.extension`,
        message: `extension "${r.extension}" is already used in ${organization.domain}`,
      });
    const missing = (Array.isArray(r?.groups) ? r.groups : []).filter(
      (g) => Number.isInteger(g) && !groups.has(g),
    );
    if (missing.length > 0)
      invalid.push({
        row: i,
        field: `${fieldOf(i)}.groups`,
        message: `no user group ${missing.join(', ')} in ${organization.domain}`,
      });
  });
  if (invalid.length > 0 || conflicts.length > 0) {
    const all = [...invalid, ...conflicts].sort((a, b) => a.row - b.row);
    const bad = new Set(all.map((p) => p.row));
    const problems = all.slice(0, maxListed).map(({ field, message }) => ({ field, message }));
    const left = all.length - problems.length;
    let listed = '';
    if (left > 0) {
      const leftRows = new Set(all.slice(maxListed).map((p) => p.row));
      for (const p of all.slice(0, maxListed)) leftRows.delete(p.row);
      const more = `${left} more problem${left === 1 ? '' : 's'} (${leftRows.size} more row${leftRows.size === 1 ? '' : 's'}) not listed`;
      problems.push({ field: whole, message: `${more}; fix these and send again to see them` });
      listed = `, ${all.length} problems, the first ${maxListed} listed`;
    }
    const summary = `${bad.size} of ${rows.length} rows cannot be created${listed} (first: ${problems[0]!.field}: ${problems[0]!.message}); nothing was created`;
    if (invalid.length > 0) throw new ValidationError(problems, summary);
    throw new AppError(409, summary, { problems });
  }
  return rows;
}

/** Inserts rows that `checkBulkRows` accepted, in one transaction (see bulkCreateUsers). */
export async function insertBulkRows(
  database: DatabaseHandle,
  actor: Actor,
  organization: Organization,
  rows: NewUserInput[],
  options: UserOptions = {},
): Promise<BulkCreated> {
  const hashes = await hashRows(rows);
  const created = await database.db
    .transaction()
    .execute((trx) => insertRowsIn(trx, actor, organization, rows, hashes, options));
  return { organization, users: created.map((user, index) => ({ index, user })) };
}

/** The scrypt hashes of the rows' passwords (null: none given), with bounded parallelism. */
async function hashRows(rows: NewUserInput[], onHashed?: (done: number) => void): Promise<(string | null)[]> {
  let done = 0;
  return mapLimit(rows, HASH_PARALLELISM, async (r) => {
    if (r.password === undefined) return null;
    const hash = await hashPassword(r.password);
    onHashed?.(++done);
    return hash;
  });
}

/** Inserts checked rows in the caller's transaction, each user with its audit row and event. */
async function insertRowsIn(
  trx: Kysely<DB>,
  actor: Actor,
  organization: Organization,
  rows: NewUserInput[],
  hashes: (string | null)[],
  options: UserOptions,
): Promise<User[]> {
  const users = await new UserRepository(trx).createMany(
    organization.id,
    rows.map((r, i) => toNewUser(r, hashes[i] ?? null)),
  );
  const pairs = users.flatMap((u, i) =>
    [...new Set(rows[i]!.groups ?? [])].map((groupId) => ({ groupId, userId: u.id })),
  );
  if (pairs.length > 0) await new UserGroupRepository(trx).addMemberships(organization.id, pairs);
  if (options.legacyPasswordTokens) {
    const userRepo = new UserRepository(trx);
    for (let i = 0; i < users.length; i++) {
      const pw = rows[i]!.password;
      if (pw !== undefined)
        await userRepo.setLegacyHa1(
          organization.id,
          users[i]!.id,
          legacyHa1(users[i]!.userId, organization.domain, pw),
        );
    }
  }
  await recordChanges(
    trx,
    users.map((user, i) => userCreatedChange(actor, organization, user, rows[i]!.groups ?? [], true)),
  );
  return users;
}

export interface ImportProgress {
  phase: 'hashing' | 'inserting';
  done: number;
  total: number;
}

/**
 * Imports any number of checked rows (`onecloud import users`), all or nothing: passwords are
 * hashed first, then every row is inserted in ONE transaction, `batch` rows per statement
 * group, with progress after each batch. If anything fails, nothing is imported and the
 * AppError names the rows of the failing batch (`rowsOf(first, last)`) and the cause.
 */
export async function importUserRows(
  database: DatabaseHandle,
  actor: Actor,
  organization: Organization,
  rows: NewUserInput[],
  options: UserOptions & {
    batch?: number;
    onProgress?: (p: ImportProgress) => void;
    rowsOf?: (first: number, last: number) => string;
  } = {},
): Promise<number> {
  const batch = options.batch ?? MAX_BULK_USERS;
  const withPassword = rows.filter((r) => r.password !== undefined).length;
  const hashes = await hashRows(rows, (done) => {
    if (done % batch === 0 || done === withPassword)
      options.onProgress?.({ phase: 'hashing', done, total: withPassword });
  });
  let at = 0;
  try {
    await database.db.transaction().execute(async (trx) => {
      for (at = 0; at < rows.length; at += batch) {
        const end = Math.min(at + batch, rows.length);
        await insertRowsIn(trx, actor, organization, rows.slice(at, end), hashes.slice(at, end), options);
        options.onProgress?.({ phase: 'inserting', done: end, total: rows.length });
      }
    });
  } catch (err) {
    const last = Math.min(at + batch, rows.length) - 1;
    const where = options.rowsOf ? options.rowsOf(at, last) : `rows ${at}..${last}`;
    const cause = err instanceof Error ? err.message : String(err);
    throw new AppError(
      err instanceof AppError ? err.statusCode : 500,
      `the batch of ${where} failed: ${cause}; nothing was imported (all rows are imported in one transaction)`,
    );
  }
  return rows.length;
}

/** The audit row and event of a user created in bulk. */
/** The audit entry and `user.created` event of a new user (`bulk` marks the bulk endpoint's). */
function userCreatedChange(
  actor: Actor,
  org: Organization,
  user: User,
  groups: number[],
  bulk: boolean,
): Change {
  const summary = {
    userId: user.userId,
    role: user.role,
    ...(bulk ? { bulk: true } : {}),
    ...(groups.length > 0 ? { groups } : {}),
  };
  return {
    organizationId: org.id,
    actor,
    action: 'user.created',
    entity: 'user',
    entityId: fullId(user, org),
    data: summary,
    event: { type: 'user.created', userId: user.id, data: { id: fullId(user, org), ...summary } },
  };
}

function assertValidShape(input: unknown, prefix: string): { users: unknown[] } {
  // The envelope only: rows are checked one by one so every bad row is reported.
  const users = (input as { users?: unknown } | undefined)?.users;
  if (!Array.isArray(users)) {
    throw new ValidationError([
      { field: `${prefix}.users`, message: 'is required: an array of 1 to 1000 users' },
    ]);
  }
  if (users.length === 0 || users.length > BULK_LIMIT) {
    throw new ValidationError([
      {
        field: `${prefix}.users`,
        message: `must have 1 to ${BULK_LIMIT} items (has ${users.length}); split the import into several requests`,
      },
    ]);
  }
  const extra = Object.keys(input as object).filter((k) => k !== 'users');
  if (extra.length > 0) {
    throw new ValidationError(
      extra.map((k) => ({ field: `${prefix}.${k}`, message: 'is not a known field; remove it' })),
    );
  }
  return { users };
}

const BULK_LIMIT = MAX_BULK_USERS;
