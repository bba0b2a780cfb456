import type { FastifyInstance } from 'fastify';
import type { AppDeps } from '../app.js';
import { organizationAdminRoutes } from './organizations/routes.js';
import { userAdminRoutes } from './users/admin-routes.js';
import { userGroupAdminRoutes } from './usergroups/routes.js';
import { externalApiAdminRoutes } from './externalapi/routes.js';
import { ticketAdminRoutes } from './tickets/admin-routes.js';
import { numberAdminRoutes } from './numbers/routes.js';
import { deviceAdminRoutes } from './devices/admin-routes.js';
import { acdAdminRoutes } from './acd/routes.js';
import { auditAdminRoutes } from './audit/routes.js';
import { webhookAdminRoutes } from './webhooks/routes.js';

/** The admin API (spec §6): every resource under /api/admin, signed with system tickets. */
export async function adminRoutes(app: FastifyInstance, opts: { deps: AppDeps }): Promise<void> {
  await app.register(organizationAdminRoutes, opts);
  await app.register(userAdminRoutes, opts);
  await app.register(userGroupAdminRoutes, opts);
  await app.register(externalApiAdminRoutes, opts);
  await app.register(ticketAdminRoutes, opts);
  await app.register(numberAdminRoutes, opts);
  await app.register(deviceAdminRoutes, opts);
  await app.register(acdAdminRoutes, opts);
  await app.register(auditAdminRoutes, opts);
  await app.register(webhookAdminRoutes, opts);
}
