import { sql, type Kysely } from 'kysely';
import { helpersFor } from '../dialects/index.js';

/**
 * The event channel (issue 6):
 *
 * - PostgreSQL: **commit order = seq order**. A sequence hands out numbers at insert time, so two
 *   concurrent transactions can commit seq 11 before seq 10; a reader that moved its cursor to 11
 *   would never see 10. A BEFORE INSERT trigger therefore takes a transaction-scoped advisory lock
 *   (released at commit or rollback) and only then draws the seq from `events_seq_ordered` (the
 *   identity of `events.seq` is dropped: the trigger is the one source of numbers). Event-writing
 *   transactions are serialized from their first event row to their commit; readers and pruning
 *   are not. An AFTER INSERT statement trigger sends `NOTIFY onecloud_events, '<max seq>'`, which
 *   PostgreSQL delivers only when (and if) the transaction commits.
 *   SQLite needs neither: one writer at a time, so rowids are allocated in commit order.
 * - `event_log_state`: named positions in the log: `pruned_through` (retention: every event with
 *   seq <= it may be gone; a `since` below it is a gap) and `webhooks` (the dispatcher's cursor).
 * - `webhooks`: one CRM webhook per organization. The signing secret is stored encrypted with the
 *   server key (AES-256-GCM, `encryptSecret`): the server needs it in clear to sign.
 * - `webhook_deliveries`: one row per (webhook, event), the delivery log and the retry queue.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  const h = helpersFor(db);
  const big = h.bigintType;

  await db.schema
    .createTable('event_log_state')
    .addColumn('name', 'text', (c) => c.primaryKey())
    .addColumn('seq', big, (c) => c.notNull())
    .execute();
  await sql`insert into event_log_state (name, seq) values ('pruned_through', 0)`.execute(db);
  // The webhook dispatcher starts at the end of the log: history is not replayed to CRMs.
  await sql`insert into event_log_state (name, seq) select 'webhooks', coalesce(max(seq), 0) from events`.execute(
    db,
  );

  await h
    .autoIdColumn(db.schema.createTable('webhooks'), 'id')
    .addColumn('organization_id', big, (c) =>
      c.notNull().unique().references('organizations.id').onDelete('cascade'),
    )
    .addColumn('url', 'text', (c) => c.notNull())
    .addColumn('secret_enc', 'text', (c) => c.notNull())
    .addColumn('event_types', h.jsonType, (c) => c.notNull())
    .$call((t) => h.booleanColumn(t, 'enabled', true))
    .addColumn('consecutive_failures', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('disabled_at', big)
    .addColumn('disabled_reason', 'text')
    .addColumn('created_at', big, (c) => c.notNull())
    .addColumn('updated_at', big, (c) => c.notNull())
    .execute();

  await h
    .autoIdColumn(db.schema.createTable('webhook_deliveries'), 'id')
    .addColumn('webhook_id', big, (c) => c.notNull().references('webhooks.id').onDelete('cascade'))
    .addColumn('organization_id', big, (c) => c.notNull())
    .addColumn('event_seq', big, (c) => c.notNull())
    .addColumn('event_type', 'text', (c) => c.notNull())
    .addColumn('payload', 'text', (c) => c.notNull())
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('next_attempt_at', big, (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull().defaultTo('pending'))
    .addColumn('last_status_code', 'integer')
    .addColumn('last_error', 'text')
    .addColumn('lease_until', big)
    .addColumn('created_at', big, (c) => c.notNull())
    .addColumn('delivered_at', big)
    .addUniqueConstraint('webhook_deliveries_webhook_event', ['webhook_id', 'event_seq'])
    .addCheckConstraint(
      'webhook_deliveries_status',
      sql`status in ('pending', 'delivered', 'failed', 'dead')`,
    )
    .execute();
  await db.schema
    .createIndex('webhook_deliveries_webhook_status')
    .on('webhook_deliveries')
    .columns(['webhook_id', 'status', 'id'])
    .execute();
  await db.schema
    .createIndex('webhook_deliveries_org_id')
    .on('webhook_deliveries')
    .columns(['organization_id', 'id'])
    .execute();
  await db.schema.createIndex('events_time_idx').on('events').column('time').execute();

  if (h.name === 'postgres') {
    await sql`alter table events alter column seq drop identity if exists`.execute(db);
    await sql`create sequence events_seq_ordered`.execute(db);
    await sql`select setval('events_seq_ordered', coalesce((select max(seq) from events), 0) + 1, false)`.execute(
      db,
    );
    await sql
      .raw(
        `create function onecloud_events_order() returns trigger language plpgsql as $$
begin
  perform pg_advisory_xact_lock(hashtext('onecloud_events:' || current_schema()));
  new.seq := nextval('events_seq_ordered');
  return new;
end $$`,
      )
      .execute(db);
    await sql`create trigger events_order before insert on events for each row execute function onecloud_events_order()`.execute(
      db,
    );
    await sql
      .raw(
        `create function onecloud_events_notify() returns trigger language plpgsql as $$
declare
  top bigint;
begin
  select max(seq) into top from inserted;
  if top is not null then
    perform pg_notify('onecloud_events', top::text);
  end if;
  return null;
end $$`,
      )
      .execute(db);
    await sql`create trigger events_notify after insert on events referencing new table as inserted for each statement execute function onecloud_events_notify()`.execute(
      db,
    );
  }
}

export async function down(db: Kysely<unknown>): Promise<void> {
  const h = helpersFor(db);
  if (h.name === 'postgres') {
    await sql`drop trigger if exists events_notify on events`.execute(db);
    await sql`drop trigger if exists events_order on events`.execute(db);
    await sql`drop function if exists onecloud_events_notify()`.execute(db);
    await sql`drop function if exists onecloud_events_order()`.execute(db);
    await sql`alter table events alter column seq add generated by default as identity`.execute(db);
    await sql`select setval(pg_get_serial_sequence('events', 'seq'), coalesce((select max(seq) from events), 0) + 1, false)`.execute(
      db,
    );
    await sql`drop sequence if exists events_seq_ordered`.execute(db);
  }
  await db.schema.dropIndex('events_time_idx').ifExists().execute();
  await db.schema.dropTable('webhook_deliveries').execute();
  await db.schema.dropTable('webhooks').execute();
  await db.schema.dropTable('event_log_state').execute();
}
