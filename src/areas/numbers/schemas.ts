import { Type, type Static } from 'typebox';
import { nullableLike } from '../common/admin.js';
import { E164, IdSchema, UserId } from '../common/schemas.js';
import { MAX_RANGE } from './repository.js';

export const AddNumbersSchema = Type.Object(
  {
    number: E164,
    count: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: MAX_RANGE,
        description: `how many consecutive numbers (1..${MAX_RANGE})`,
      }),
    ),
  },
  { additionalProperties: false },
);
export type AddNumbersInput = Static<typeof AddNumbersSchema>;

export const AssignNumberSchema = Type.Object(
  {
    number: Type.Optional(Type.String({ description: 'if given, must be the number in the path' })),
    user: Type.Optional(nullableLike(UserId)),
    acdGroup: Type.Optional(Type.Union([IdSchema, Type.Null()])),
    move: Type.Optional(
      Type.Boolean({
        description:
          'true: take the number from the user or group that has it now (otherwise that is a 409 naming them)',
      }),
    ),
  },
  { additionalProperties: false },
);
export type AssignNumberInput = Static<typeof AssignNumberSchema>;

export const NumberSchema = Type.Object({
  number: Type.String(),
  user: Type.Union([Type.String({ description: 'user@domain' }), Type.Null()]),
  acdGroup: Type.Union([Type.Integer({ description: 'ACD/attendant group id' }), Type.Null()]),
  createdAt: Type.String({ format: 'date-time' }),
});

export const NumbersAddedSchema = Type.Object({
  count: Type.Integer(),
  numbers: Type.Array(Type.String()),
});
