import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import type { AppDeps } from '../../app.js';
import { actorOf } from '../../http/auth.js';
import { encodeCursor, PageQuery, pageOf } from '../../http/pagination.js';
import { errorResponses } from '../../http/schemas.js';
import { adminAccess, adminLocation, iso, orgOf, pageRequest } from '../common/admin.js';
import type { Organization } from '../organizations/repository.js';
import type { User } from '../users/repository.js';
import { requireUser } from '../users/service.js';
import { DeviceRepository, type Device } from './repository.js';
import {
  AdminDeviceSchema,
  AdminDeviceWithRegistrationsSchema,
  CreatedDeviceSchema,
  NewDeviceSchema,
  SipAccountSchema,
  UpdateDeviceSchema,
} from './schemas.js';
import {
  createDevice,
  deleteDevice,
  registrationsOf,
  requireDevice,
  rotateSipPassword,
  updateDevice,
} from './service.js';

const UserParams = Type.Object({
  domain: Type.String({ maxLength: 253 }),
  user: Type.String({ maxLength: 64 }),
});
const DeviceParams = Type.Object({
  domain: Type.String({ maxLength: 253 }),
  user: Type.String({ maxLength: 64 }),
  deviceId: Type.String({
    maxLength: 100,
    description: '`0.<E.164>` mobile, `1.<uuid>` desk phone, `2.<uuid>` softphone',
  }),
});

export function viewAdminDevice(org: Organization, user: User, d: Device) {
  return {
    deviceId: d.deviceId,
    deviceType: d.kind,
    deviceName: d.name,
    deviceIcon: d.icon,
    owner: `${user.userId}@${org.domain}`,
    number: d.number,
    sipUsername: d.sipUsername,
    createdAt: iso(d.createdAt),
    updatedAt: iso(d.updatedAt),
  };
}

/** Admin API: a user's devices, SIP accounts and mobiles (ADMIN_DEVICES). SIP passwords are shown once. */
export async function deviceAdminRoutes(app: FastifyInstance, { deps }: { deps: AppDeps }): Promise<void> {
  const access = adminAccess('ADMIN_DEVICES');
  const tags = ['Admin: devices'];
  const target = async (request: { params: unknown; organization: Organization | undefined }) => {
    const org = orgOf(request as Parameters<typeof orgOf>[0]);
    const p = request.params as { user: string; deviceId?: string };
    return { org, user: await requireUser(deps.database, org, p.user), deviceId: p.deviceId ?? '' };
  };

  app.get(
    '/api/admin/devices/:domain/:user',
    {
      schema: {
        summary: 'List a user’s devices (creation order)',
        tags,
        params: UserParams,
        querystring: PageQuery,
        response: { 200: pageOf(AdminDeviceSchema), ...errorResponses },
      },
      config: { access, xmlRoot: 'devices' },
    },
    async (request) => {
      const { org, user } = await target(request);
      const page = await new DeviceRepository(deps.database.db).listByUserPage(
        org.id,
        user.id,
        pageRequest<number>(request.query, 'number'),
      );
      return { items: page.items.map((d) => viewAdminDevice(org, user, d)), next: encodeCursor(page.next) };
    },
  );

  app.post(
    '/api/admin/devices/:domain/:user',
    {
      schema: {
        summary: 'Create a device',
        description:
          'A DESKPHONE or SOFTPHONE gets a SIP account: its username and a generated password are in `sip`, this once. ' +
          'A MOBILE needs its E.164 `number`; 409 names a number already used.',
        tags,
        params: UserParams,
        body: NewDeviceSchema,
        response: { 201: CreatedDeviceSchema, ...errorResponses },
      },
      config: { access, xmlRoot: 'device' },
    },
    async (request, reply) => {
      const { org, user } = await target(request);
      const { device, sip } = await createDevice(
        deps.database,
        actorOf(request.principal),
        org.domain,
        user.userId,
        request.body,
      );
      reply.code(201).header('location', adminLocation('devices', org.domain, user.userId, device.deviceId));
      return { ...viewAdminDevice(org, user, device), ...(sip ? { sip } : {}) };
    },
  );

  app.get(
    '/api/admin/devices/:domain/:user/:deviceId',
    {
      schema: {
        summary: 'One device, with its SIP registrations',
        tags,
        params: DeviceParams,
        response: { 200: AdminDeviceWithRegistrationsSchema, ...errorResponses },
      },
      config: { access, xmlRoot: 'device' },
    },
    async (request) => {
      const { org, user, deviceId } = await target(request);
      const device = await requireDevice(deps.database, org, user, deviceId);
      const registrations = await registrationsOf(deps.database, device);
      return {
        ...viewAdminDevice(org, user, device),
        registered: registrations.length > 0,
        registrations,
      };
    },
  );

  app.put(
    '/api/admin/devices/:domain/:user/:deviceId',
    {
      schema: {
        summary: 'Update a device (name, icon, number)',
        tags,
        params: DeviceParams,
        body: UpdateDeviceSchema,
        response: { 200: AdminDeviceSchema, ...errorResponses },
      },
      config: { access, xmlRoot: 'device' },
    },
    async (request) => {
      const { org, user, deviceId } = await target(request);
      const d = await updateDevice(
        deps.database,
        actorOf(request.principal),
        org,
        user,
        deviceId,
        request.body,
      );
      return viewAdminDevice(org, user, d);
    },
  );

  app.delete(
    '/api/admin/devices/:domain/:user/:deviceId',
    {
      schema: {
        summary: 'Delete a device (its SIP account with it)',
        tags,
        params: DeviceParams,
        response: { 200: Type.Object({ deleted: Type.String() }), ...errorResponses },
      },
      config: { access, xmlRoot: 'deleted' },
    },
    async (request) => {
      const { org, user, deviceId } = await target(request);
      const d = await deleteDevice(deps.database, actorOf(request.principal), org, user, deviceId);
      return { deleted: d.deviceId };
    },
  );

  app.post(
    '/api/admin/devices/:domain/:user/:deviceId/password',
    {
      schema: {
        summary: 'Rotate a SIP device’s password (the new one is shown once)',
        tags,
        params: DeviceParams,
        response: { 200: Type.Object({ deviceId: Type.String(), sip: SipAccountSchema }), ...errorResponses },
      },
      config: { access, xmlRoot: 'device' },
    },
    async (request) => {
      const { org, user, deviceId } = await target(request);
      const { device, sip } = await rotateSipPassword(
        deps.database,
        actorOf(request.principal),
        org,
        user,
        deviceId,
      );
      return { deviceId: device.deviceId, sip };
    },
  );
}
