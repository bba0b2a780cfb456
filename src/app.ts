import Fastify, { type FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Logger } from 'pino';
import type { Config } from './config.js';
import type { DatabaseHandle } from './db/database.js';
import { platform, platformServerOptions } from './http/platform.js';
import { auth } from './http/auth.js';
import { eventChannel } from './events/channel.js';
import { metrics } from './http/metrics.js';
import { openapi } from './http/openapi.js';
import { systemRoutes } from './areas/system/routes.js';
import { apiRoutes } from './areas/index.js';
import { webUi } from './admin-ui/index.js';

export interface AppDeps {
  config: Config;
  database: DatabaseHandle;
  logger: Logger;
  /** Extra API routes (tests of the platform layer); registered like the areas' own routes. */
  extraApi?: (api: FastifyInstance) => Promise<void>;
}

/** Builds the whole HTTP application; the caller decides whether to listen or to inject. */
export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const app = Fastify(
    platformServerOptions(deps.logger, {
      bodyLimit: deps.config.bodyLimit,
      xmlBodyLimit: deps.config.xmlBodyLimit,
    }),
  ).withTypeProvider<TypeBoxTypeProvider>();
  await app.register(metrics);
  await app.register(platform, { bodyLimit: deps.config.bodyLimit, xmlBodyLimit: deps.config.xmlBodyLimit });
  await app.register(auth, { config: deps.config, database: deps.database });
  await app.register(eventChannel, { config: deps.config, database: deps.database });
  await app.register(openapi);
  await app.register(webUi, { config: deps.config, database: deps.database });
  await app.register(systemRoutes, { database: deps.database });
  await app.register(async (api) => {
    // Routes registered here follow the API conventions (negotiated JSON/XML).
    api.addHook('onRoute', (route) => {
      route.config = { ...(route.config ?? {}), formats: route.config?.formats ?? 'api' };
    });
    await api.register(apiRoutes, { deps });
    if (deps.extraApi) await api.register(deps.extraApi);
  });
  await app.ready();
  return app;
}
