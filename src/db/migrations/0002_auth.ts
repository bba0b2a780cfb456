import type { Kysely } from 'kysely';
import { helpersFor } from '../dialects/index.js';

/**
 * Authentication state (issue 3):
 * - `used_nonces`: SNT-HMACv1 nonces seen within the 300 s window, shared by every process (a
 *   replay is a unique violation); pruned by expiry;
 * - `users.legacy_ha1`: md5(user:domain:password), kept only while legacy password tokens are
 *   switched on (the deprecated `t=D...` of old clients needs it);
 * - `web_sessions`: cookie sessions of the administrator interface and the user portal (only a
 *   hash of the session id is stored).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  const h = helpersFor(db);
  const big = h.bigintType;

  await db.schema
    .createTable('used_nonces')
    .addColumn('ticket_id', big, (c) => c.notNull())
    .addColumn('nonce', 'text', (c) => c.notNull())
    .addColumn('expires_at', big, (c) => c.notNull())
    .addPrimaryKeyConstraint('used_nonces_pk', ['ticket_id', 'nonce'])
    .execute();
  await db.schema.createIndex('used_nonces_expires').on('used_nonces').column('expires_at').execute();

  await db.schema.alterTable('users').addColumn('legacy_ha1', 'text').execute();

  await db.schema
    .createTable('web_sessions')
    .addColumn('id_hash', 'text', (c) => c.primaryKey())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('admin_id', big, (c) => c.references('system_admins.id').onDelete('cascade'))
    .addColumn('organization_id', big, (c) => c.references('organizations.id').onDelete('cascade'))
    .addColumn('user_id', big, (c) => c.references('users.id').onDelete('cascade'))
    .addColumn('csrf_token', 'text', (c) => c.notNull())
    .addColumn('created_at', big, (c) => c.notNull())
    .addColumn('expires_at', big, (c) => c.notNull())
    .execute();
  await db.schema.createIndex('web_sessions_expires').on('web_sessions').column('expires_at').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('web_sessions').execute();
  await db.schema.alterTable('users').dropColumn('legacy_ha1').execute();
  await db.schema.dropTable('used_nonces').execute();
}
