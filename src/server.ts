import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { buildApp } from './app.js';
import type { Config } from './config.js';
import { createDatabase, type DatabaseHandle } from './db/database.js';
import { migrateToLatest } from './db/migrate.js';
import { createLogger } from './http/logging.js';
import { ensureSystemAdmin } from './areas/admins/service.js';
import { redactUrl } from './config.js';

export interface RunningServer {
  app: FastifyInstance;
  database: DatabaseHandle;
  url: string;
  logger: Logger;
  close(): Promise<void>;
}

/** Opens the database, migrates it, makes sure the `admin` account exists, and listens. */
export async function startServer(
  config: Config,
  print: (line: string) => void = console.log,
): Promise<RunningServer> {
  const logger = createLogger(config.logLevel);
  print(`OneCloud: opening database ${redactUrl(config.databaseUrl)}`);
  const database = await createDatabase(config.databaseUrl);
  try {
    await migrateToLatest(database, (line) => print(`OneCloud: ${line}`));
    const admin = await ensureSystemAdmin(database, config.adminPassword);
    if (admin.created && admin.generatedPassword) {
      print('');
      print('  Created the system administrator "admin" with this one-time password:');
      print(`      ${admin.generatedPassword}`);
      print('  It is not shown again. Set ONECLOUD_ADMIN_PASSWORD on first start to choose it yourself.');
      print('');
    } else if (admin.created) {
      print(
        'OneCloud: created the system administrator "admin" with the password from ONECLOUD_ADMIN_PASSWORD',
      );
    }
    const app = await buildApp({ config, database, logger });
    const address = await app.listen({ host: config.httpHost, port: config.httpPort });
    const base = address.replace('[::1]', 'localhost');
    print(`OneCloud: listening on ${base}`);
    print(`  API:       ${base}/api/`);
    print(`  API docs:  ${base}/api/docs   (OpenAPI: ${base}/api/openapi.json)`);
    print(`  Health:    ${base}/healthz    Metrics: ${base}/metrics`);
    return {
      app,
      database,
      url: base,
      logger,
      close: async () => {
        await app.close();
        await database.close();
      },
    };
  } catch (err) {
    await database.close();
    throw err;
  }
}
