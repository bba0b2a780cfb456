import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { buildApp, type AppDeps } from '../../src/app.js';
import { readConfig, type Config } from '../../src/config.js';
import { createDatabase, type DatabaseHandle } from '../../src/db/database.js';
import { migrateToLatest } from '../../src/db/migrate.js';
import { createLogger } from '../../src/http/logging.js';

/** Captures the server's log lines so tests can find a request's log token in them. */
export class LogCapture extends Writable {
  readonly lines: Record<string, unknown>[] = [];
  override _write(chunk: Buffer, _enc: string, done: () => void): void {
    for (const line of chunk.toString().split('\n')) {
      if (line.trim() !== '') this.lines.push(JSON.parse(line) as Record<string, unknown>);
    }
    done();
  }
  withToken(token: string): Record<string, unknown>[] {
    return this.lines.filter((l) => l.logToken === token);
  }
}

export interface TestApp {
  app: FastifyInstance;
  database: DatabaseHandle;
  config: Config;
  logs: LogCapture;
  close(): Promise<void>;
}

export function testConfig(overrides: Partial<Config> = {}): Config {
  const base = readConfig({
    ONECLOUD_DATA_DIR: '/tmp/onecloud-test-unused',
    ONECLOUD_DATABASE_URL: 'sqlite::memory:',
  });
  const { secretKeyHex: _unused, ...rest } = base;
  // Generous rate limits: tests that check the limits set their own.
  return {
    ...rest,
    secretKey: Buffer.alloc(32, 7),
    logLevel: 'info',
    authFailureLimit: 1_000_000,
    passwordTryLimit: 1_000_000,
    ...overrides,
  };
}

/** The real app on a fresh, migrated database (SQLite in memory unless a handle is given). */
export async function startTestApp(
  opts: {
    database?: DatabaseHandle;
    /** The URL of `database` (PostgreSQL: enables LISTEN/NOTIFY wake-ups). */
    url?: string;
    config?: Partial<Config>;
    extraApi?: AppDeps['extraApi'];
  } = {},
): Promise<TestApp> {
  const database = opts.database ?? (await createDatabase('sqlite::memory:'));
  if (!opts.database) await migrateToLatest(database);
  const config = testConfig({ ...(opts.url ? { databaseUrl: opts.url } : {}), ...opts.config });
  const logs = new LogCapture();
  const app = await buildApp({
    config,
    database,
    logger: createLogger('info', logs),
    ...(opts.extraApi ? { extraApi: opts.extraApi } : {}),
  });
  return {
    app,
    database,
    config,
    logs,
    close: async () => {
      await app.close();
      if (!opts.database) await database.close();
    },
  };
}
