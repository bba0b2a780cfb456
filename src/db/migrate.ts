import { Migrator, type Kysely, type MigrationProvider, type MigrationResult } from 'kysely';
import type { DatabaseHandle } from './database.js';
import { migrations } from './migrations/index.js';

const provider: MigrationProvider = {
  getMigrations: async () => migrations,
};

export interface MigrateReport {
  /** Names of the migrations applied by this run, in order (empty when already up to date). */
  applied: string[];
}

/**
 * Brings the schema to the latest version. Safe to run concurrently from several processes
 * (Kysely's migrator takes a lock). `log` receives one line per applied migration.
 */
export async function migrateToLatest(
  handle: Pick<DatabaseHandle, 'db' | 'helpers'>,
  log?: (line: string) => void,
): Promise<MigrateReport> {
  return migrate(handle, (m) => m.migrateToLatest(), log);
}

/** Brings the schema to the version of migration `name` (up or down): for tests of a migration. */
export async function migrateTo(
  handle: Pick<DatabaseHandle, 'db' | 'helpers'>,
  name: string,
  log?: (line: string) => void,
): Promise<MigrateReport> {
  if (!Object.hasOwn(migrations, name)) throw new Error(`no migration ${name}`);
  return migrate(handle, (m) => m.migrateTo(name), log);
}

async function migrate(
  handle: Pick<DatabaseHandle, 'db' | 'helpers'>,
  run: (migrator: Migrator) => ReturnType<Migrator['migrateToLatest']>,
  log?: (line: string) => void,
): Promise<MigrateReport> {
  const db = handle.db as unknown as Kysely<unknown>;
  const schema = await handle.helpers.migrationSchema(db);
  const migrator = new Migrator({
    db,
    provider,
    ...(schema ? { migrationTableSchema: schema } : {}),
  });
  const { error, results } = await run(migrator);
  const applied: string[] = [];
  for (const r of results ?? []) {
    if (r.status === 'Success') {
      applied.push(r.migrationName);
      log?.(`migration ${r.migrationName} applied`);
    } else if (r.status === 'Error') {
      log?.(`migration ${r.migrationName} failed`);
    }
  }
  if (error) {
    const failed = (results ?? []).find((r: MigrationResult) => r.status === 'Error');
    const message = error instanceof Error ? error.message : JSON.stringify(error);
    throw new Error(`database migration ${failed ? `${failed.migrationName} ` : ''}failed: ${message}`, {
      cause: error,
    });
  }
  if (applied.length === 0) log?.('database schema is up to date');
  return { applied };
}

/** Names of all migrations this build knows, in order. */
export function knownMigrations(): string[] {
  return Object.keys(migrations).sort();
}
