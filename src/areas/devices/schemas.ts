import { Type, type Static } from 'typebox';
import { nullableLike, NullableString } from '../common/admin.js';
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

export const RegistrationSchema = Type.Object({
  contact: Type.String({ description: 'the Contact URI the device registered' }),
  expires: Type.String({ format: 'date-time' }),
  userAgent: NullableString,
  source: Type.String({ description: 'transport:address:port the registration came from' }),
});

/** A device in full, with its SIP registration state [ours]. */
export const DeviceInfoSchema = Type.Object({
  ...DeviceShortSchema.properties,
  number: NullableString,
  sipUsername: Type.Union([Type.String(), Type.Null()], {
    description: 'desk phones and softphones: the SIP account',
  }),
  registered: Type.Boolean({ description: 'a SIP device with at least one unexpired registration' }),
  registrations: Type.Array(RegistrationSchema),
});

export const UpdateDeviceSchema = Type.Object(
  {
    deviceId: Type.Optional(Type.String({ description: 'if given, must be the device’s own id' })),
    deviceType: Type.Optional(
      Type.Enum([...DEVICE_KINDS], { description: 'if given, must be the device’s own type' }),
    ),
    deviceName: Type.Optional(Type.String({ maxLength: 100 })),
    deviceIcon: Type.Optional(
      Type.String({ pattern: '^[A-Z_]{1,30}$', description: 'upper-case letters and _, e.g. DEFAULT' }),
    ),
    number: Type.Optional(nullableLike(E164)),
  },
  { additionalProperties: false },
);
export type UpdateDeviceInput = Static<typeof UpdateDeviceSchema>;

export const SipAccountSchema = Type.Object({
  username: Type.String(),
  password: Type.String({ description: 'shown this once; only digest HA1 values are stored' }),
  domain: Type.String(),
  realm: Type.String(),
});

export const AdminDeviceSchema = Type.Object({
  deviceId: Type.String(),
  deviceType: Type.Enum([...DEVICE_KINDS]),
  deviceName: Type.String(),
  deviceIcon: Type.String(),
  owner: Type.String({ description: 'user@domain' }),
  number: NullableString,
  sipUsername: NullableString,
  createdAt: Type.String({ format: 'date-time' }),
  updatedAt: Type.String({ format: 'date-time' }),
});

export const AdminDeviceWithRegistrationsSchema = Type.Object({
  ...AdminDeviceSchema.properties,
  registered: Type.Boolean({ description: 'a SIP device with at least one unexpired registration' }),
  registrations: Type.Array(RegistrationSchema),
});

export const CreatedDeviceSchema = Type.Object({
  ...AdminDeviceSchema.properties,
  sip: Type.Optional(SipAccountSchema),
});
