import { Type, type Static } from 'typebox';
import { IdSchema, Password, UserId } from '../common/schemas.js';
import { nullableString } from '../common/admin.js';

export const ROLES = ['USER', 'SUPERUSER'] as const;
export const AVAILABILITIES = ['AVAILABLE', 'BUSY', 'AWAY', 'DND', 'OFFLINE'] as const;

const EXTENSION = { pattern: '^[0-9]{2,8}$', description: 'a short number of 2 to 8 digits, e.g. 2001' };
const EMAIL = { format: 'email', maxLength: 254, description: 'an e-mail address such as aki@example.com' };
const OptionalText = (maxLength = 200) => Type.Optional(nullableString({ maxLength }));
const GroupIds = Type.Array(IdSchema, {
  maxItems: 200,
  description: 'ids of user groups of the same organization the user is a member of',
});

const userFields = {
  role: Type.Optional(Type.Enum([...ROLES])),
  firstName: Type.Optional(Type.String({ maxLength: 100 })),
  lastName: Type.Optional(Type.String({ maxLength: 100 })),
  email: Type.Optional(nullableString(EMAIL)),
  language: OptionalText(20),
  title: OptionalText(),
  department: OptionalText(),
  extension: Type.Optional(nullableString(EXTENSION)),
  groups: Type.Optional(GroupIds),
};

export const NewUserSchema = Type.Object(
  {
    userId: UserId,
    password: Type.Optional(Password),
    ...userFields,
  },
  { additionalProperties: false },
);
export type NewUserInput = Static<typeof NewUserSchema>;

/** PUT body: every field optional; a field given replaces the stored one (null clears it). */
export const UpdateUserSchema = Type.Object(
  {
    userId: Type.Optional(Type.String({ description: 'if given, must be the user’s own id' })),
    ...userFields,
    availability: Type.Optional(Type.Enum([...AVAILABILITIES])),
    availabilityMessage: OptionalText(200),
  },
  { additionalProperties: false },
);
export type UpdateUserInput = Static<typeof UpdateUserSchema>;

export const SetPasswordSchema = Type.Object(
  {
    password: Type.Optional(Password),
    generate: Type.Optional(
      Type.Boolean({ description: 'true: the server generates a password and shows it once' }),
    ),
  },
  { additionalProperties: false },
);
export type SetPasswordInput = Static<typeof SetPasswordSchema>;

export const MAX_BULK_USERS = 1000;

export const BulkUsersSchema = Type.Object(
  { users: Type.Array(NewUserSchema, { minItems: 1, maxItems: MAX_BULK_USERS }) },
  { additionalProperties: false },
);

const NullableString = Type.Union([Type.String(), Type.Null()]);

export const AdminUserSchema = Type.Object({
  id: Type.String({ description: 'user@domain' }),
  userId: Type.String(),
  domain: Type.String(),
  role: Type.Enum([...ROLES]),
  firstName: Type.String(),
  lastName: Type.String(),
  email: NullableString,
  language: NullableString,
  title: NullableString,
  department: NullableString,
  extension: NullableString,
  availability: Type.Enum([...AVAILABILITIES]),
  availabilityMessage: NullableString,
  hasPassword: Type.Boolean(),
  groups: Type.Array(Type.Object({ id: Type.Integer(), name: Type.String() })),
  createdAt: Type.String({ format: 'date-time' }),
  updatedAt: Type.String({ format: 'date-time' }),
});

export const UserDeletedSchema = Type.Object({
  deleted: Type.String({ description: 'user@domain' }),
  removed: Type.Object({
    devices: Type.Array(Type.String({ description: 'deviceId' })),
    ticketsRevoked: Type.Array(Type.Integer()),
    numbersReleased: Type.Array(Type.String()),
    groupMemberships: Type.Integer(),
    agentMemberships: Type.Integer(),
  }),
});

export const PasswordSetSchema = Type.Object({
  id: Type.String({ description: 'user@domain' }),
  passwordSet: Type.Boolean(),
  password: Type.Optional(Type.String({ description: 'the generated password, shown this once' })),
});

export const BulkResultSchema = Type.Object({
  created: Type.Integer(),
  users: Type.Array(
    Type.Object({
      index: Type.Integer(),
      id: Type.String({ description: 'user@domain' }),
      status: Type.Enum(['created']),
    }),
  ),
});
