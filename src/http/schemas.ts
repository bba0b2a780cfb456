import { Type } from 'typebox';

/** The body of every error response (spec §3 validation result, plus status and log token). */
export const ErrorBodySchema = Type.Object(
  {
    validationResult: Type.String({ description: 'What went wrong, in one line' }),
    status: Type.Integer(),
    logToken: Type.String({ description: 'Also in the Warning: 703 header and on the server log line' }),
    oldestSeq: Type.Optional(
      Type.Integer({ description: '409 of the event channel: the oldest seq still retained' }),
    ),
    errors: Type.Optional(
      Type.Array(Type.Object({ field: Type.String(), message: Type.String() }), {
        description: '400 only: every problem, field by field',
      }),
    ),
  },
  { $id: undefined },
);

/** Error responses for a route's schema (documentation and serialization). */
export const errorResponses = {
  '4xx': ErrorBodySchema,
  '5xx': ErrorBodySchema,
};

export const DomainUserParams = Type.Object({
  domain: Type.String({ maxLength: 253 }),
  user: Type.String({ maxLength: 64 }),
});
