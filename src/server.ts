import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { buildApp } from './app.js';
import type { Config } from './config.js';
import { createDatabase, type DatabaseHandle } from './db/database.js';
import { migrateToLatest } from './db/migrate.js';
import { createLogger } from './http/logging.js';
import { ensureSystemAdmin } from './areas/admins/service.js';
import { redactUrl } from './config.js';
import { registerSipMetrics } from './sip/metrics.js';
import { startSipServer, type SipServer, type SipServerOptions } from './sip/server.js';
import { serverSubkey } from './security/tokens.js';

export interface RunningServer {
  app: FastifyInstance;
  database: DatabaseHandle;
  url: string;
  logger: Logger;
  /** The SIP core, unless ONECLOUD_SIP_ENABLED=false. */
  sip: SipServer | undefined;
  close(): Promise<void>;
}

/**
 * Opens the database, migrates it, makes sure the `admin` account exists, and listens: HTTP, and
 * SIP (UDP and TCP) unless it is disabled.
 */
export async function startServer(
  config: Config,
  print: (line: string) => void = console.log,
): Promise<RunningServer> {
  const logger = createLogger(config.logLevel);
  print(`OneCloud: opening database ${redactUrl(config.databaseUrl)}`);
  const database = await createDatabase(config.databaseUrl);
  let app: FastifyInstance | undefined;
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
    app = await buildApp({ config, database, logger });
    const address = await app.listen({ host: config.httpHost, port: config.httpPort });
    const hub = app.events.hub;
    const sip = config.sip.enabled
      ? await startSip(config, database, logger, (listener) => hub.onAnyEvent(listener))
      : undefined;
    if (sip) registerSipMetrics(app.metrics, () => sip.stats);
    const base = address.replace('[::1]', 'localhost');
    print(`OneCloud: listening on ${base}`);
    print(`  API:       ${base}/api/`);
    print(`  API docs:  ${base}/api/docs   (OpenAPI: ${base}/api/openapi.json)`);
    print(`  Health:    ${base}/healthz    Metrics: ${base}/metrics`);
    print(`  Admin UI:  ${base}/admin      User portal: ${base}/portal`);
    print(
      sip
        ? `  SIP:       udp and tcp ${sip.host}:${sip.port} (registrar and B2BUA), advertised as ${sip.advertisedHost}`
        : '  SIP:       off (ONECLOUD_SIP_ENABLED=false)',
    );
    const running = app;
    return {
      app: running,
      database,
      url: base,
      logger,
      sip,
      close: async () => {
        await sip?.close();
        await running.close();
        await database.close();
      },
    };
  } catch (err) {
    await app?.close();
    await database.close();
    throw err;
  }
}

async function startSip(
  config: Config,
  database: DatabaseHandle,
  logger: Logger,
  changes: SipServerOptions['changes'],
): Promise<SipServer> {
  try {
    return await startSipServer({
      database,
      host: config.sip.host,
      port: config.sip.port,
      advertisedHost: config.sip.advertisedHost,
      logger: logger.child({ component: 'sip' }),
      // Derived from the server key: digest nonces stay valid across restarts and processes.
      secret: serverSubkey(config.secretKey, 'sip-nonce'),
      timers: { T1: config.sip.t1Ms, T2: config.sip.t2Ms, T4: config.sip.t4Ms },
      noAnswerTimeoutMs: config.sip.noAnswerTimeoutMs,
      overload: config.sip.overloadDelayMs > 0 ? { targetDelayMs: config.sip.overloadDelayMs } : false,
      changes,
    });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE' || code === 'EACCES') {
      throw new Error(
        `cannot bind SIP to ${config.sip.host}:${config.sip.port} (${code}): set ONECLOUD_SIP_PORT to a free port, or ONECLOUD_SIP_ENABLED=false`,
      );
    }
    throw err;
  }
}
