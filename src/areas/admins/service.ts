import { randomBytes } from 'node:crypto';
import type { DatabaseHandle } from '../../db/database.js';
import { recordChange } from '../../db/changes.js';
import { hashPassword, verifyPassword } from '../../security/passwords.js';
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

/** Checks a system administrator's login; undefined when the name or password is wrong. */
export async function verifyAdminLogin(
  database: DatabaseHandle,
  username: string,
  password: string,
): Promise<SystemAdmin | undefined> {
  const repo = new AdminRepository(database.db);
  const hash = await repo.getPasswordHash(username);
  // Verify against a dummy hash when the name is unknown, so timing tells nothing.
  const ok = await verifyPassword(password, hash ?? (await dummyHash()));
  if (!ok || !hash) return undefined;
  return repo.getByUsername(username);
}

let dummy: Promise<string> | undefined;
function dummyHash(): Promise<string> {
  dummy ??= hashPassword(randomBytes(16).toString('hex'));
  return dummy;
}
