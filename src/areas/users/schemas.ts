import { Type, type Static } from 'typebox';
import { OptionalText, Password, UserId } from '../common/schemas.js';

export const ROLES = ['USER', 'SUPERUSER'] as const;
export const AVAILABILITIES = ['AVAILABLE', 'BUSY', 'AWAY', 'DND', 'OFFLINE'] as const;

export const NewUserSchema = Type.Object(
  {
    userId: UserId,
    password: Type.Optional(Password),
    role: Type.Optional(Type.Enum([...ROLES])),
    firstName: Type.Optional(Type.String({ maxLength: 100 })),
    lastName: Type.Optional(Type.String({ maxLength: 100 })),
    email: Type.Optional(Type.Union([Type.String({ format: 'email', maxLength: 254 }), Type.Null()])),
    language: OptionalText(20),
    title: OptionalText(),
    department: OptionalText(),
    extension: Type.Optional(Type.Union([Type.String({ pattern: '^[0-9]{2,8}$' }), Type.Null()])),
  },
  { additionalProperties: false },
);
export type NewUserInput = Static<typeof NewUserSchema>;
