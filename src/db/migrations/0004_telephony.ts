import type { Kysely } from 'kysely';
import { helpersFor } from '../dialects/index.js';

/**
 * Telephony core (issue 5):
 * - `sip_registrations`: one row per registered contact of a device (RFC 3261 §10 bindings). The
 *   Contact URI is kept exactly as the device sent it; `source_*` is where its REGISTER came from
 *   (requests to the device go there: NAT-friendly, and the only route to a TCP client). Rows
 *   survive a restart; expired rows are swept by the registrar.
 * - `call_records`: one row per user leg of a finished call (call history, CDR export).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  const h = helpersFor(db);
  const big = h.bigintType;

  await h
    .autoIdColumn(db.schema.createTable('sip_registrations'), 'id')
    .addColumn('organization_id', big, (c) => c.notNull().references('organizations.id').onDelete('cascade'))
    .addColumn('device_id', big, (c) => c.notNull().references('devices.id').onDelete('cascade'))
    .addColumn('user_id', big, (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('aor', 'text', (c) => c.notNull())
    .addColumn('contact', 'text', (c) => c.notNull())
    .addColumn('call_id', 'text', (c) => c.notNull())
    .addColumn('cseq', big, (c) => c.notNull())
    .addColumn('source_transport', 'text', (c) => c.notNull())
    .addColumn('source_address', 'text', (c) => c.notNull())
    .addColumn('source_port', 'integer', (c) => c.notNull())
    .addColumn('user_agent', 'text')
    .addColumn('expires_at', big, (c) => c.notNull())
    .addColumn('registered_at', big, (c) => c.notNull())
    .addColumn('updated_at', big, (c) => c.notNull())
    .addUniqueConstraint('sip_registrations_device_contact_unique', ['device_id', 'contact'])
    .execute();
  await db.schema
    .createIndex('sip_registrations_user_idx')
    .on('sip_registrations')
    .columns(['organization_id', 'user_id'])
    .execute();
  await db.schema
    .createIndex('sip_registrations_expires_idx')
    .on('sip_registrations')
    .column('expires_at')
    .execute();

  await h
    .autoIdColumn(db.schema.createTable('call_records'), 'id')
    .addColumn('organization_id', big, (c) => c.notNull().references('organizations.id').onDelete('cascade'))
    .addColumn('call_id', 'text', (c) => c.notNull())
    .addColumn('branch_id', 'text', (c) => c.notNull())
    .addColumn('direction', 'text', (c) => c.notNull())
    .addColumn('user_id', big, (c) => c.references('users.id').onDelete('set null'))
    .addColumn('local_number', 'text')
    .addColumn('remote_number', 'text')
    .addColumn('device_type', 'text')
    .addColumn('started_at', big, (c) => c.notNull())
    .addColumn('answered_at', big)
    .addColumn('ended_at', big, (c) => c.notNull())
    .addColumn('termination_reason', 'text', (c) => c.notNull())
    .addUniqueConstraint('call_records_branch_unique', ['branch_id'])
    .execute();
  await db.schema
    .createIndex('call_records_org_started_idx')
    .on('call_records')
    .columns(['organization_id', 'started_at'])
    .execute();
  await db.schema
    .createIndex('call_records_user_idx')
    .on('call_records')
    .columns(['user_id', 'started_at'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('call_records').execute();
  await db.schema.dropTable('sip_registrations').execute();
}
