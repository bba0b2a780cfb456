import type { FastifyInstance } from 'fastify';
import type { AppDeps } from '../app.js';
import { declaredRoutes } from './declared/routes.js';
import { ticketRoutes } from './tickets/routes.js';
import { userRoutes } from './users/routes.js';
import { deviceRoutes } from './devices/routes.js';
import { contactRoutes } from './contacts/routes.js';
import { adminRoutes } from './admin.js';
import { eventRoutes } from './events/routes.js';

/** Every API area's routes. */
export async function apiRoutes(app: FastifyInstance, opts: { deps: AppDeps }): Promise<void> {
  await app.register(declaredRoutes);
  await app.register(ticketRoutes, opts);
  await app.register(userRoutes, opts);
  await app.register(deviceRoutes, opts);
  await app.register(contactRoutes, opts);
  await app.register(adminRoutes, opts);
  await app.register(eventRoutes, opts);
}
