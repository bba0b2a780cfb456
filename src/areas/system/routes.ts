import type { FastifyInstance } from 'fastify';
import { sql } from 'kysely';
import type { DatabaseHandle } from '../../db/database.js';

/** Health and metrics: for operators and load balancers, outside the API's conventions. */
export async function systemRoutes(app: FastifyInstance, opts: { database: DatabaseHandle }): Promise<void> {
  app.get('/healthz', { schema: { hide: true }, config: { formats: 'raw' } }, async (_request, reply) => {
    try {
      await sql`select 1`.execute(opts.database.db);
      return { status: 'ok', database: opts.database.dialect };
    } catch {
      reply.code(503);
      return { status: 'unavailable', database: opts.database.dialect };
    }
  });
  app.get('/metrics', { schema: { hide: true }, config: { formats: 'raw' } }, async (_request, reply) => {
    reply.type(app.metrics.contentType);
    return app.metrics.metrics();
  });
}
