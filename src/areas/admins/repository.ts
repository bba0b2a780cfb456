import type { Kysely } from 'kysely';
import { mapConflict } from '../../db/common.js';
import type { DB } from '../../db/schema.js';
import { NotFoundError } from '../../errors.js';

/** A system administrator: operator of the whole installation, outside any organization. */
export interface SystemAdmin {
  id: number;
  username: string;
  createdAt: number;
}

export class AdminRepository {
  constructor(private readonly db: Kysely<DB>) {}

  async create(username: string, passwordHash: string, now = Date.now()): Promise<SystemAdmin> {
    const r = await mapConflict(
      this.db,
      () =>
        this.db
          .insertInto('system_admins')
          .values({ username, password_hash: passwordHash, created_at: now })
          .returning(['id', 'username', 'created_at'])
          .executeTakeFirstOrThrow(),
      () => `system administrator "${username}" already exists`,
    );
    return { id: r.id, username: r.username, createdAt: r.created_at };
  }

  async getByUsername(username: string): Promise<SystemAdmin | undefined> {
    const r = await this.db
      .selectFrom('system_admins')
      .select(['id', 'username', 'created_at'])
      .where('username', '=', username)
      .executeTakeFirst();
    return r && { id: r.id, username: r.username, createdAt: r.created_at };
  }

  /** The stored password hash, for login checks only. */
  async getPasswordHash(username: string): Promise<string | undefined> {
    const r = await this.db
      .selectFrom('system_admins')
      .select('password_hash')
      .where('username', '=', username)
      .executeTakeFirst();
    return r?.password_hash;
  }

  async list(): Promise<SystemAdmin[]> {
    const rows = await this.db
      .selectFrom('system_admins')
      .select(['id', 'username', 'created_at'])
      .orderBy('id')
      .execute();
    return rows.map((r) => ({ id: r.id, username: r.username, createdAt: r.created_at }));
  }

  async count(): Promise<number> {
    const r = await this.db
      .selectFrom('system_admins')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirstOrThrow();
    return Number(r.n);
  }

  async setPassword(username: string, passwordHash: string): Promise<void> {
    const r = await this.db
      .updateTable('system_admins')
      .set({ password_hash: passwordHash })
      .where('username', '=', username)
      .executeTakeFirst();
    if (Number(r.numUpdatedRows) === 0)
      throw new NotFoundError(`system administrator "${username}" not found`);
  }

  async delete(username: string): Promise<boolean> {
    const r = await this.db.deleteFrom('system_admins').where('username', '=', username).executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  }
}
