import type { FastifyInstance } from 'fastify';
import type { AppDeps } from '../app.js';
import { organizationAdminRoutes } from './organizations/routes.js';

/** The admin API (spec §6): every resource under /api/admin, signed with system tickets. */
export async function adminRoutes(app: FastifyInstance, opts: { deps: AppDeps }): Promise<void> {
  await app.register(organizationAdminRoutes, opts);
}
