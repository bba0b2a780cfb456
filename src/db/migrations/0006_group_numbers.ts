import { sql, type Kysely } from 'kysely';

/**
 * An ACD/attendant group's function number lives in one place, the numbers table (the number
 * whose `acd_group_id` is the group, what routing reads): `acd_groups.number`, no longer read or
 * written, goes; and the database now holds the rule that a group has at most one number. A
 * database from before that rule may have given a group several: the lowest stays the group's,
 * the others are released (they stay the organization's).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    update numbers set acd_group_id = null
    where acd_group_id is not null
      and number not in (select min(n.number) from numbers n where n.acd_group_id is not null group by n.acd_group_id)
  `.execute(db);
  await sql`create unique index numbers_one_per_group on numbers (acd_group_id) where acd_group_id is not null`.execute(
    db,
  );
  await db.schema.alterTable('acd_groups').dropColumn('number').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('acd_groups').addColumn('number', 'text').execute();
  await sql`
    update acd_groups set number = (select min(n.number) from numbers n where n.acd_group_id = acd_groups.id)
  `.execute(db);
  await db.schema.dropIndex('numbers_one_per_group').execute();
}
