import { loadConfig, type Config } from '../config.js';
import { createDatabase, type DatabaseHandle } from '../db/database.js';
import { migrateToLatest } from '../db/migrate.js';

/** What a CLI command works with: the configuration and a migrated database. */
export interface CliContext {
  config: Config;
  database: DatabaseHandle;
}

export async function withContext<T>(
  fn: (ctx: CliContext) => Promise<T>,
  opts: { migrate?: boolean } = {},
): Promise<T> {
  const config = loadConfig();
  const database = await createDatabase(config.databaseUrl);
  try {
    if (opts.migrate !== false) await migrateToLatest(database);
    return await fn({ config, database });
  } finally {
    await database.close();
  }
}

/** Prints a result: JSON for scripts (`--json`), or readable lines for people. */
export function output(json: boolean, value: unknown, human: () => string[]): void {
  if (json) process.stdout.write(JSON.stringify(value, null, 2) + '\n');
  else for (const line of human()) process.stdout.write(line + '\n');
}
