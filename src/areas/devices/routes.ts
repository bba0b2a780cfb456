import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import type { AppDeps } from '../../app.js';
import { ForbiddenError } from '../../errors.js';
import { DomainUserParams, errorResponses } from '../../http/schemas.js';
import { DeviceRepository } from './repository.js';
import { DeviceShortSchema } from './schemas.js';

/** User side: the device shortlist of the ticket's own user [real shape]. */
export async function deviceRoutes(app: FastifyInstance, { deps }: { deps: AppDeps }): Promise<void> {
  app.get(
    '/api/device/info/v1/shortlist/:domain/:user',
    {
      schema: {
        summary: 'My devices, short form',
        tags: ['USER_INFO'],
        params: DomainUserParams,
        response: { 200: Type.Array(DeviceShortSchema), ...errorResponses },
      },
      config: { access: { kind: 'user', scope: 'USER_INFO' }, xmlRoot: 'devices', xmlItem: 'device' },
    },
    async (request) => {
      const p = request.principal;
      if (p.kind !== 'user-ticket') throw new ForbiddenError();
      const devices = await new DeviceRepository(deps.database.db).listByUser(
        p.user.organizationId,
        p.user.id,
      );
      return devices.map((d) => ({
        deviceId: d.deviceId,
        deviceType: d.kind,
        deviceName: d.name,
        deviceIcon: d.icon,
      }));
    },
  );
}
