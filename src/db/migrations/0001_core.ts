import { sql, type Kysely } from 'kysely';
import { helpersFor } from '../dialects/index.js';

/**
 * The core data model (issue 2): administrators, organizations, users, user groups, numbers,
 * devices, ACD/attendant groups, External API grants, tickets, the event log and the audit log.
 * Timestamps are epoch milliseconds. Every child row carries organization_id and goes with its
 * organization (ON DELETE CASCADE); the event log and the audit log are history and have no
 * foreign key, so they outlive what they describe.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  const h = helpersFor(db);
  const big = h.bigintType;

  await h
    .autoIdColumn(db.schema.createTable('system_admins'), 'id')
    .addColumn('username', 'text', (c) => c.notNull().unique())
    .addColumn('password_hash', 'text', (c) => c.notNull())
    .addColumn('created_at', big, (c) => c.notNull())
    .execute();

  await h
    .autoIdColumn(db.schema.createTable('organizations'), 'id')
    .addColumn('domain', 'text', (c) => c.notNull().unique())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('number_plan', h.jsonType, (c) => c.notNull().defaultTo('[]'))
    .addColumn('created_at', big, (c) => c.notNull())
    .addColumn('updated_at', big, (c) => c.notNull())
    .addCheckConstraint('organizations_domain_lowercase', sql`domain = lower(domain)`)
    .execute();

  await h
    .autoIdColumn(db.schema.createTable('users'), 'id')
    .addColumn('organization_id', big, (c) => c.notNull().references('organizations.id').onDelete('cascade'))
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('role', 'text', (c) => c.notNull().defaultTo('USER'))
    .addColumn('first_name', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('last_name', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('email', 'text')
    .addColumn('password_hash', 'text')
    .addColumn('language', 'text')
    .addColumn('title', 'text')
    .addColumn('department', 'text')
    .addColumn('extension', 'text')
    .addColumn('availability', 'text', (c) => c.notNull().defaultTo('AVAILABLE'))
    .addColumn('availability_message', 'text')
    .addColumn('created_at', big, (c) => c.notNull())
    .addColumn('updated_at', big, (c) => c.notNull())
    .addUniqueConstraint('users_org_user_id_unique', ['organization_id', 'user_id'])
    .addUniqueConstraint('users_org_extension_unique', ['organization_id', 'extension'])
    .addCheckConstraint('users_role_check', sql`role in ('USER', 'SUPERUSER')`)
    .addCheckConstraint(
      'users_availability_check',
      sql`availability in ('AVAILABLE', 'BUSY', 'AWAY', 'DND', 'OFFLINE')`,
    )
    .execute();

  await h
    .autoIdColumn(db.schema.createTable('user_groups'), 'id')
    .addColumn('organization_id', big, (c) => c.notNull().references('organizations.id').onDelete('cascade'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('roles', h.jsonType, (c) => c.notNull().defaultTo('[]'))
    .addColumn('created_at', big, (c) => c.notNull())
    .addColumn('updated_at', big, (c) => c.notNull())
    .addUniqueConstraint('user_groups_org_name_unique', ['organization_id', 'name'])
    .execute();

  await db.schema
    .createTable('user_group_members')
    .addColumn('group_id', big, (c) => c.notNull().references('user_groups.id').onDelete('cascade'))
    .addColumn('user_id', big, (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('organization_id', big, (c) => c.notNull().references('organizations.id').onDelete('cascade'))
    .addPrimaryKeyConstraint('user_group_members_pk', ['group_id', 'user_id'])
    .execute();
  await db.schema
    .createIndex('user_group_members_user_idx')
    .on('user_group_members')
    .column('user_id')
    .execute();

  await h
    .autoIdColumn(db.schema.createTable('acd_groups'), 'id')
    .addColumn('organization_id', big, (c) => c.notNull().references('organizations.id').onDelete('cascade'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('type', 'text', (c) => c.notNull().defaultTo('ACD'))
    .addColumn('distribution_type', 'text', (c) => c.notNull().defaultTo('RING_ALL'))
    .$call((t) => h.booleanColumn(t, 'night_mode', false))
    .addColumn('number', 'text')
    .addColumn('queue_timeout_seconds', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('overflow_destination', 'text')
    .$call((t) => h.booleanColumn(t, 'allow_using_function_number', false))
    .addColumn('created_at', big, (c) => c.notNull())
    .addColumn('updated_at', big, (c) => c.notNull())
    .addCheckConstraint('acd_groups_type_check', sql`type in ('ACD', 'ACD_LIGHT', 'ATTENDANT')`)
    .execute();
  await db.schema.createIndex('acd_groups_org_idx').on('acd_groups').column('organization_id').execute();

  await db.schema
    .createTable('acd_agents')
    .addColumn('group_id', big, (c) => c.notNull().references('acd_groups.id').onDelete('cascade'))
    .addColumn('user_id', big, (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('organization_id', big, (c) => c.notNull().references('organizations.id').onDelete('cascade'))
    .addColumn('skill_level', 'integer', (c) => c.notNull().defaultTo(1))
    .$call((t) => h.booleanColumn(t, 'logged_in', false))
    .addColumn('logged_in_at', big)
    .addPrimaryKeyConstraint('acd_agents_pk', ['group_id', 'user_id'])
    .addCheckConstraint('acd_agents_skill_check', sql`skill_level between 1 and 10`)
    .execute();
  await db.schema.createIndex('acd_agents_user_idx').on('acd_agents').column('user_id').execute();

  await db.schema
    .createTable('numbers')
    .addColumn('number', 'text', (c) => c.primaryKey())
    .addColumn('organization_id', big, (c) => c.notNull().references('organizations.id').onDelete('cascade'))
    .addColumn('user_id', big, (c) => c.references('users.id').onDelete('set null'))
    .addColumn('acd_group_id', big, (c) => c.references('acd_groups.id').onDelete('set null'))
    .addColumn('created_at', big, (c) => c.notNull())
    .addCheckConstraint('numbers_one_owner', sql`user_id is null or acd_group_id is null`)
    .execute();
  await db.schema
    .createIndex('numbers_org_idx')
    .on('numbers')
    .columns(['organization_id', 'number'])
    .execute();
  await db.schema.createIndex('numbers_user_idx').on('numbers').column('user_id').execute();
  await db.schema.createIndex('numbers_acd_group_idx').on('numbers').column('acd_group_id').execute();

  await h
    .autoIdColumn(db.schema.createTable('devices'), 'id')
    .addColumn('organization_id', big, (c) => c.notNull().references('organizations.id').onDelete('cascade'))
    .addColumn('user_id', big, (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('device_key', 'text', (c) => c.notNull())
    .addColumn('name', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('icon', 'text', (c) => c.notNull().defaultTo('DEFAULT'))
    .addColumn('sip_username', 'text')
    .addColumn('ha1_md5', 'text')
    .addColumn('ha1_sha256', 'text')
    .addColumn('number', 'text')
    .addColumn('created_at', big, (c) => c.notNull())
    .addColumn('updated_at', big, (c) => c.notNull())
    .addUniqueConstraint('devices_org_kind_key_unique', ['organization_id', 'kind', 'device_key'])
    .addUniqueConstraint('devices_org_sip_username_unique', ['organization_id', 'sip_username'])
    .addCheckConstraint('devices_kind_check', sql`kind in ('MOBILE', 'DESKPHONE', 'SOFTPHONE')`)
    .execute();
  await db.schema.createIndex('devices_user_idx').on('devices').column('user_id').execute();

  await db.schema
    .createTable('external_api_grants')
    .addColumn('organization_id', big, (c) => c.notNull().references('organizations.id').onDelete('cascade'))
    .addColumn('level', 'text', (c) => c.notNull())
    .addColumn('target_id', big, (c) => c.notNull())
    .addColumn('api', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('external_api_grants_pk', ['organization_id', 'level', 'target_id', 'api'])
    .addCheckConstraint(
      'external_api_grants_level_check',
      sql`level in ('ORGANIZATION', 'USER_GROUP', 'USER')`,
    )
    .execute();

  await h
    .autoIdColumn(db.schema.createTable('tickets'), 'id')
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('organization_id', big, (c) => c.references('organizations.id').onDelete('cascade'))
    .addColumn('user_id', big, (c) => c.references('users.id').onDelete('cascade'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('scopes', h.jsonType, (c) => c.notNull())
    .addColumn('organizations', h.jsonType)
    .addColumn('secret_hash', 'text', (c) => c.notNull())
    .addColumn('signing_secret_enc', 'text')
    .addColumn('platform', 'text')
    .addColumn('created_by', 'text', (c) => c.notNull())
    .addColumn('created_at', big, (c) => c.notNull())
    .addColumn('expires_at', big, (c) => c.notNull())
    .addColumn('revoked_at', big)
    .addColumn('last_used_at', big)
    .addCheckConstraint('tickets_kind_check', sql`kind in ('USER', 'SYSTEM')`)
    .execute();
  await db.schema.createIndex('tickets_user_idx').on('tickets').column('user_id').execute();
  await db.schema.createIndex('tickets_org_idx').on('tickets').column('organization_id').execute();

  await h
    .autoIdColumn(db.schema.createTable('events'), 'seq')
    .addColumn('organization_id', big)
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('time', big, (c) => c.notNull())
    .addColumn('user_id', big)
    .addColumn('group_id', big)
    .addColumn('data', h.jsonType, (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('events_org_seq_idx')
    .on('events')
    .columns(['organization_id', 'seq'])
    .execute();

  await h
    .autoIdColumn(db.schema.createTable('audit_log'), 'id')
    .addColumn('organization_id', big)
    .addColumn('actor', 'text', (c) => c.notNull())
    .addColumn('action', 'text', (c) => c.notNull())
    .addColumn('entity', 'text', (c) => c.notNull())
    .addColumn('entity_id', 'text', (c) => c.notNull())
    .addColumn('data', h.jsonType, (c) => c.notNull())
    .addColumn('at', big, (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('audit_log_org_at_idx')
    .on('audit_log')
    .columns(['organization_id', 'at'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const table of [
    'audit_log',
    'events',
    'tickets',
    'external_api_grants',
    'devices',
    'numbers',
    'acd_agents',
    'acd_groups',
    'user_group_members',
    'user_groups',
    'users',
    'organizations',
    'system_admins',
  ]) {
    await db.schema.dropTable(table).ifExists().execute();
  }
}
