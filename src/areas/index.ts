import type { FastifyInstance } from 'fastify';
import type { AppDeps } from '../app.js';
import { declaredRoutes } from './declared/routes.js';

/** Every API area's routes. */
export async function apiRoutes(app: FastifyInstance, _opts: { deps: AppDeps }): Promise<void> {
  await app.register(declaredRoutes);
}
