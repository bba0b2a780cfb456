import { Type, type Static } from 'typebox';
import { E164 } from '../common/schemas.js';

export const DEVICE_KINDS = ['MOBILE', 'DESKPHONE', 'SOFTPHONE'] as const;

export const NewDeviceSchema = Type.Object(
  {
    deviceType: Type.Enum([...DEVICE_KINDS]),
    deviceName: Type.Optional(Type.String({ maxLength: 100 })),
    deviceIcon: Type.Optional(Type.String({ pattern: '^[A-Z_]{1,30}$' })),
    number: Type.Optional(E164),
  },
  { additionalProperties: false },
);
export type NewDeviceInput = Static<typeof NewDeviceSchema>;

/** The device shortlist entry [real shape]. */
export const DeviceShortSchema = Type.Object({
  deviceId: Type.String(),
  deviceType: Type.Enum([...DEVICE_KINDS]),
  deviceName: Type.String(),
  deviceIcon: Type.String(),
});
