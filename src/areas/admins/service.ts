import { randomBytes } from 'node:crypto';
import type { DatabaseHandle } from '../../db/database.js';
import { recordChange } from '../../db/changes.js';
import { NotFoundError, ValidationError } from '../../errors.js';
import { hashPassword, verifyLoginPassword } from '../../security/passwords.js';
import { WebSessionRepository } from '../sessions/repository.js';
import type { Actor } from '../common/actor.js';
import { AdminRepository, type SystemAdmin } from './repository.js';

export const DEFAULT_ADMIN = 'admin';

/**
 * Makes sure the system administrator `admin` exists. On first start it is created with the
 * given password, or with a generated one that the caller prints once.
 */
export async function ensureSystemAdmin(
  database: DatabaseHandle,
  password: string | undefined,
): Promise<{ created: boolean; generatedPassword?: string }> {
  const repo = new AdminRepository(database.db);
  if (await repo.getByUsername(DEFAULT_ADMIN)) return { created: false };
  const generated = password === undefined ? randomBytes(12).toString('base64url') : undefined;
  const hash = await hashPassword(password ?? generated!);
  await database.db.transaction().execute(async (trx) => {
    const admin = await new AdminRepository(trx).create(DEFAULT_ADMIN, hash);
    await recordChange(trx, {
      organizationId: null,
      actor: 'system',
      action: 'admin.created',
      entity: 'system_admin',
      entityId: admin.id,
      data: { username: DEFAULT_ADMIN },
    });
  });
  return generated ? { created: true, generatedPassword: generated } : { created: true };
}

const USERNAME = /^[a-z][a-z0-9._-]{1,63}$/;

/** Problems are named `<prefix>.name` / `<prefix>.password` (the CLI's prefix `-` shows `--name`). */
function checkAdminInput(username: string, password: string | undefined, prefix = '-'): void {
  const problems = [];
  if (!USERNAME.test(username))
    problems.push({
      field: `${prefix}.name`,
      message: 'must be 2-64 characters: lower-case letters, digits, ".", "_" or "-", starting with a letter',
    });
  if (password !== undefined && (password.length < 8 || password.length > 200))
    problems.push({ field: `${prefix}.password`, message: 'must be 8 to 200 characters' });
  if (problems.length > 0) throw new ValidationError(problems);
}

/**
 * Creates another system administrator. Without a password one is generated and returned once.
 * 409 when the name is taken.
 */
export async function createSystemAdmin(
  database: DatabaseHandle,
  actor: Actor,
  username: string,
  password?: string,
): Promise<{ admin: SystemAdmin; generatedPassword?: string }> {
  checkAdminInput(username, password);
  const generated = password === undefined ? randomBytes(12).toString('base64url') : undefined;
  const hash = await hashPassword(password ?? generated!);
  const admin = await database.db.transaction().execute(async (trx) => {
    const a = await new AdminRepository(trx).create(username, hash);
    await recordChange(trx, {
      organizationId: null,
      actor,
      action: 'admin.created',
      entity: 'system_admin',
      entityId: a.id,
      data: { username },
    });
    return a;
  });
  return generated ? { admin, generatedPassword: generated } : { admin };
}

/**
 * Sets (or, without one, generates and returns once) a system administrator's password, and
 * ends its web sessions: whoever was logged in with the old password is logged out.
 */
export async function setSystemAdminPassword(
  database: DatabaseHandle,
  actor: Actor,
  username: string,
  password?: string,
): Promise<{ admin: SystemAdmin; generatedPassword?: string; sessionsEnded: number }> {
  checkAdminInput(username, password);
  const generated = password === undefined ? randomBytes(12).toString('base64url') : undefined;
  const hash = await hashPassword(password ?? generated!);
  return database.db.transaction().execute(async (trx) => {
    const repo = new AdminRepository(trx);
    const admin = await repo.getByUsername(username);
    if (!admin) throw new NotFoundError(`system administrator "${username}" not found`);
    await repo.setPassword(username, hash);
    const sessionsEnded = await new WebSessionRepository(trx).deleteByAdmin(admin.id);
    await recordChange(trx, {
      organizationId: null,
      actor,
      action: 'admin.password_changed',
      entity: 'system_admin',
      entityId: admin.id,
      data: { username, sessionsEnded },
    });
    return { admin, sessionsEnded, ...(generated ? { generatedPassword: generated } : {}) };
  });
}

export async function listSystemAdmins(database: DatabaseHandle): Promise<SystemAdmin[]> {
  return new AdminRepository(database.db).list();
}

/** Checks a system administrator's login; undefined when the name or password is wrong. */
export async function verifyAdminLogin(
  database: DatabaseHandle,
  username: string,
  password: string,
): Promise<SystemAdmin | undefined> {
  const repo = new AdminRepository(database.db);
  const hash = await repo.getPasswordHash(username);
  // An unknown name is checked against a throwaway hash, so timing tells nothing.
  const ok = await verifyLoginPassword(password, hash);
  if (!ok || !hash) return undefined;
  return repo.getByUsername(username);
}
