import type { Kysely } from 'kysely';
import type { DB, Role, WebSessionKind } from '../../db/schema.js';

export interface WebSession {
  kind: WebSessionKind;
  csrfToken: string;
  expiresAt: number;
  adminId: number | null;
  username: string | null;
  user: { id: number; userId: string; role: Role; organizationId: number; domain: string } | null;
}

/** Cookie sessions of the web interface; only a hash of the session id is stored. */
export class WebSessionRepository {
  constructor(private readonly db: Kysely<DB>) {}

  async create(input: {
    idHash: string;
    kind: WebSessionKind;
    adminId?: number | null;
    organizationId?: number | null;
    userId?: number | null;
    csrfToken: string;
    now: number;
    expiresAt: number;
  }): Promise<void> {
    await this.db
      .insertInto('web_sessions')
      .values({
        id_hash: input.idHash,
        kind: input.kind,
        admin_id: input.adminId ?? null,
        organization_id: input.organizationId ?? null,
        user_id: input.userId ?? null,
        csrf_token: input.csrfToken,
        created_at: input.now,
        expires_at: input.expiresAt,
      })
      .execute();
  }

  /** A live session with its administrator or user, in one query. */
  async get(idHash: string, now: number): Promise<WebSession | undefined> {
    const r = await this.db
      .selectFrom('web_sessions as s')
      .leftJoin('system_admins as a', 'a.id', 's.admin_id')
      .leftJoin('users as u', 'u.id', 's.user_id')
      .leftJoin('organizations as o', 'o.id', 's.organization_id')
      .select([
        's.kind',
        's.csrf_token',
        's.expires_at',
        's.admin_id',
        'a.username',
        'u.id as u_id',
        'u.user_id as u_user_id',
        'u.role as u_role',
        'o.id as o_id',
        'o.domain as o_domain',
      ])
      .where('s.id_hash', '=', idHash)
      .where('s.expires_at', '>', now)
      .executeTakeFirst();
    if (!r) return undefined;
    const user =
      r.u_id !== null && r.u_user_id !== null && r.u_role !== null && r.o_id !== null && r.o_domain !== null
        ? { id: r.u_id, userId: r.u_user_id, role: r.u_role, organizationId: r.o_id, domain: r.o_domain }
        : null;
    if (r.kind === 'ADMIN' && r.username === null) return undefined;
    if (r.kind === 'USER' && user === null) return undefined;
    return {
      kind: r.kind,
      csrfToken: r.csrf_token,
      expiresAt: r.expires_at,
      adminId: r.admin_id,
      username: r.username,
      user,
    };
  }

  async delete(idHash: string): Promise<void> {
    await this.db.deleteFrom('web_sessions').where('id_hash', '=', idHash).execute();
  }

  /** Ends every session of a system administrator (after its password changed). */
  async deleteByAdmin(adminId: number): Promise<number> {
    const r = await this.db.deleteFrom('web_sessions').where('admin_id', '=', adminId).executeTakeFirst();
    return Number(r.numDeletedRows);
  }

  async prune(now: number): Promise<number> {
    const r = await this.db.deleteFrom('web_sessions').where('expires_at', '<=', now).executeTakeFirst();
    return Number(r.numDeletedRows);
  }
}
