/**
 * Test databases on both dialects. SQLite always (a temp file); PostgreSQL when
 * ONECLOUD_TEST_DATABASE_URL is set, in a fresh schema per database so test files running in
 * parallel on the same server never see each other's rows. Import from other test suites:
 *
 *   forEachDialect('users', (t) => { test('...', async () => { const { db } = t.handle; ... }) });
 *   const tdb = await openTestDatabase('postgres'); // tdb.url works as ONECLOUD_DATABASE_URL
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe } from 'node:test';
import { sql } from 'kysely';
import { createDatabase, type DatabaseHandle } from '../../src/db/database.js';
import { migrateToLatest } from '../../src/db/migrate.js';
import type { DialectName } from '../../src/db/dialects/index.js';

export const PG_URL = process.env.ONECLOUD_TEST_DATABASE_URL;
export const PG_SKIP_MESSAGE = 'PostgreSQL half skipped: set ONECLOUD_TEST_DATABASE_URL to run it';
export const DIALECTS: readonly DialectName[] = ['sqlite', 'postgres'];

export interface TestDatabase {
  dialect: DialectName;
  /** A URL that opens this same database (and schema) with createDatabase. */
  url: string;
  handle: DatabaseHandle;
  /** Closes the handle and deletes the file or drops the schema. */
  cleanup(): Promise<void>;
}

/** A fresh, empty database (migrated unless `migrate: false`). */
export async function openTestDatabase(
  dialect: DialectName,
  opts: { migrate?: boolean } = {},
): Promise<TestDatabase> {
  if (dialect === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'onecloud-test-'));
    const url = `sqlite:${join(dir, 'test.db')}`;
    const handle = await createDatabase(url);
    if (opts.migrate !== false) await migrateToLatest(handle);
    return {
      dialect,
      url,
      handle,
      async cleanup() {
        await handle.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  if (!PG_URL) throw new Error(PG_SKIP_MESSAGE);
  const schema = `onecloud_test_${randomBytes(6).toString('hex')}`;
  const admin = await createDatabase(PG_URL, { poolSize: 1 });
  await sql`create schema ${sql.id(schema)}`.execute(admin.db);
  await admin.close();
  const u = new URL(PG_URL);
  u.searchParams.set('schema', schema);
  u.searchParams.set('pool', '4');
  const url = u.toString();
  const handle = await createDatabase(url);
  if (opts.migrate !== false) await migrateToLatest(handle);
  return {
    dialect,
    url,
    handle,
    async cleanup() {
      await handle.close();
      const a = await createDatabase(PG_URL, { poolSize: 1 });
      await sql`drop schema if exists ${sql.id(schema)} cascade`.execute(a.db);
      await a.close();
    },
  };
}

export interface DialectContext {
  dialect: DialectName;
  /** The migrated database of this suite (valid inside tests). */
  readonly handle: DatabaseHandle;
  /** The URL of that database. */
  readonly url: string;
}

/**
 * Declares the suite `fn` once per dialect, each with its own fresh migrated database. The
 * PostgreSQL copy is skipped, visibly, when ONECLOUD_TEST_DATABASE_URL is not set.
 */
export function forEachDialect(name: string, fn: (ctx: DialectContext) => void): void {
  for (const dialect of DIALECTS) {
    const skip = dialect === 'postgres' && !PG_URL ? PG_SKIP_MESSAGE : false;
    void describe(`${name} [${dialect}]`, { skip }, () => {
      let tdb: TestDatabase | undefined;
      before(async () => {
        tdb = await openTestDatabase(dialect);
      });
      after(async () => {
        await tdb?.cleanup();
      });
      fn({
        dialect,
        get handle(): DatabaseHandle {
          if (!tdb) throw new Error('test database not open yet');
          return tdb.handle;
        },
        get url(): string {
          if (!tdb) throw new Error('test database not open yet');
          return tdb.url;
        },
      });
    });
  }
}

let counter = 0;
/** A domain unique within the test run, for suites that share one database. */
export function uniqueDomain(prefix = 'org'): string {
  counter += 1;
  return `${prefix}-${counter}-${randomBytes(3).toString('hex')}.example.com`;
}
