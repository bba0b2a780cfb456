import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import type { AppDeps } from '../../app.js';
import { ForbiddenError } from '../../errors.js';
import { DomainUserParams, errorResponses } from '../../http/schemas.js';
import { DeviceRepository } from './repository.js';
import { DeviceInfoSchema, DeviceShortSchema } from './schemas.js';
import { devicesWithRegistrations } from './service.js';

/** User side: the devices of the ticket's own user: the shortlist [real shape], and in full [ours]. */
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

  app.get(
    '/api/device/info/v1/:domain/:user',
    {
      schema: {
        summary: 'My devices in full, with SIP registration state',
        description:
          'Each device as in the shortlist, plus its number, SIP username and its current registrations ' +
          '(`registered` is true while a desk phone or softphone has an unexpired registration).',
        tags: ['USER_INFO'],
        params: DomainUserParams,
        response: { 200: Type.Array(DeviceInfoSchema), ...errorResponses },
      },
      config: { access: { kind: 'user', scope: 'USER_INFO' }, xmlRoot: 'devices', xmlItem: 'device' },
    },
    async (request) => {
      const p = request.principal;
      if (p.kind !== 'user-ticket') throw new ForbiddenError();
      const devices = await devicesWithRegistrations(deps.database, p.user.organizationId, p.user.id);
      return devices.map(({ device: d, registrations }) => ({
        deviceId: d.deviceId,
        deviceType: d.kind,
        deviceName: d.name,
        deviceIcon: d.icon,
        number: d.number,
        sipUsername: d.sipUsername,
        registered: registrations.length > 0,
        registrations,
      }));
    },
  );
}
