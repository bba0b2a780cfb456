import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { sql, type Kysely } from 'kysely';
import { createDatabase, redactUrl } from '../../src/db/database.js';
import { knownMigrations, migrateTo, migrateToLatest } from '../../src/db/migrate.js';
import { DIALECTS, openTestDatabase, PG_SKIP_MESSAGE, PG_URL } from './helpers.js';

const TABLES = [
  'acd_agents',
  'acd_groups',
  'audit_log',
  'devices',
  'events',
  'external_api_grants',
  'numbers',
  'organizations',
  'system_admins',
  'tickets',
  'user_group_members',
  'user_groups',
  'users',
];

for (const dialect of DIALECTS) {
  const skip = dialect === 'postgres' && !PG_URL ? PG_SKIP_MESSAGE : false;

  test(`[${dialect}] migrations run from scratch, then are a no-op`, { skip }, async () => {
    const tdb = await openTestDatabase(dialect, { migrate: false });
    try {
      const lines: string[] = [];
      const first = await migrateToLatest(tdb.handle, (l) => lines.push(l));
      assert.deepEqual(first.applied, knownMigrations());
      assert.ok(lines.some((l) => l.includes('0001_core')));
      const second = await migrateToLatest(tdb.handle, (l) => lines.push(l));
      assert.deepEqual(second.applied, []);
      assert.equal(lines.at(-1), 'database schema is up to date');
      // PostgreSQL introspection sees every schema: keep only this test's own.
      const schema = await tdb.handle.helpers.migrationSchema(tdb.handle.db);
      const tables = (await tdb.handle.db.introspection.getTables())
        .filter((t) => schema === undefined || t.schema === schema)
        .map((t) => t.name)
        .filter((n) => TABLES.includes(n))
        .sort();
      assert.deepEqual(tables, TABLES);
      // A second handle on the same database sees the schema as current.
      const other = await createDatabase(tdb.url);
      try {
        assert.deepEqual((await migrateToLatest(other)).applied, []);
      } finally {
        await other.close();
      }
    } finally {
      await tdb.cleanup();
    }
  });
}

test('[sqlite] pragmas: WAL, foreign keys, busy timeout, synchronous NORMAL', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'onecloud-pragma-'));
  const path = join(dir, 'nested', 'deeper', 'x.db');
  const h = await createDatabase(`sqlite:${path}`);
  try {
    const one = async (name: string) =>
      (await sql.raw(`pragma ${name}`).execute(h.db)).rows[0] as Record<string, unknown>;
    assert.equal((await one('journal_mode')).journal_mode, 'wal');
    assert.equal((await one('foreign_keys')).foreign_keys, 1);
    assert.equal((await one('busy_timeout')).timeout, 5000);
    assert.equal((await one('synchronous')).synchronous, 1);
    assert.equal(h.dialect, 'sqlite');
    assert.equal(h.helpers.name, 'sqlite');
  } finally {
    await h.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('[sqlite] in-memory database works and migrates', async () => {
  const h = await createDatabase('sqlite::memory:');
  try {
    assert.deepEqual((await migrateToLatest(h)).applied, knownMigrations());
  } finally {
    await h.close();
  }
});

test('bad URLs say what to fix', async () => {
  await assert.rejects(createDatabase('mysql://localhost/x'), /use sqlite:<path>.*postgres:\/\//);
  await assert.rejects(createDatabase('sqlite:'), /names no file/);
  await assert.rejects(createDatabase('postgres://u:p@127.0.0.1:1/db'), (err: Error) => {
    assert.match(err.message, /cannot connect to PostgreSQL at 127\.0\.0\.1:1\/db/);
    assert.match(err.message, /is PostgreSQL running/);
    assert.doesNotMatch(err.message, /u:p@/);
    return true;
  });
  assert.equal(redactUrl('postgres://bob:secret@h:5432/d'), 'postgres://bob:***@h:5432/d');
});

test(
  '[postgres] wrong password and missing database are explained',
  { skip: PG_URL ? false : PG_SKIP_MESSAGE },
  async () => {
    const u = new URL(PG_URL!);
    u.password = 'definitely-wrong';
    await assert.rejects(createDatabase(u.toString()), /password/);
    const v = new URL(PG_URL!);
    v.pathname = '/onecloud_no_such_db_x';
    await assert.rejects(createDatabase(v.toString()), /create the database|password|does not exist/);
  },
);

for (const dialect of DIALECTS) {
  const skip = dialect === 'postgres' && !PG_URL ? PG_SKIP_MESSAGE : false;

  test(
    `[${dialect}] 0006: a group keeps one function number, the database holds that rule`,
    { skip },
    async () => {
      const tdb = await openTestDatabase(dialect, { migrate: false });
      try {
        await migrateTo(tdb.handle, '0005_sip_trunk');
        const db = tdb.handle.db as unknown as Kysely<Record<string, Record<string, unknown>>>;
        const now = Date.now();
        const org = await db
          .insertInto('organizations')
          .values({ domain: 'm6.example', name: 'M6', number_plan: '[]', created_at: now, updated_at: now })
          .returning('id')
          .executeTakeFirstOrThrow();
        const group = await db
          .insertInto('acd_groups')
          .values({
            organization_id: org.id,
            name: 'Q',
            number: '+4681000002',
            created_at: now,
            updated_at: now,
          })
          .returning('id')
          .executeTakeFirstOrThrow();
        for (const number of ['+4681000002', '+4681000001', '+4681000003'])
          await db
            .insertInto('numbers')
            .values({ number, organization_id: org.id, acd_group_id: group.id, created_at: now })
            .execute();

        assert.deepEqual((await migrateToLatest(tdb.handle)).applied, ['0006_group_numbers']);
        const owned = await db
          .selectFrom('numbers')
          .select(['number', 'acd_group_id'])
          .orderBy('number')
          .execute();
        assert.deepEqual(
          owned.map((n) => [n.number, n.acd_group_id === null ? null : Number(n.acd_group_id)]),
          [
            ['+4681000001', Number(group.id)],
            ['+4681000002', null],
            ['+4681000003', null],
          ],
          'the lowest stays the group’s, the others are released but stay the organization’s',
        );
        await assert.rejects(
          db
            .updateTable('numbers')
            .set({ acd_group_id: group.id })
            .where('number', '=', '+4681000002')
            .execute(),
          'a second number for the group is refused by the database',
        );
        const schema = await tdb.handle.helpers.migrationSchema(tdb.handle.db);
        const columns = (await tdb.handle.db.introspection.getTables()).find(
          (t) => t.name === 'acd_groups' && (schema === undefined || t.schema === schema),
        );
        assert.ok(columns && !columns.columns.some((c) => c.name === 'number'), 'acd_groups.number is gone');
      } finally {
        await tdb.cleanup();
      }
    },
  );
}
