import { Type, type Static } from 'typebox';
import { Domain, Name } from '../common/schemas.js';

export const NumberPlanRuleSchema = Type.Object(
  {
    prefix: Type.String({
      pattern: '^[0-9*#]{1,15}$',
      description: 'the dialled prefix: 1 to 15 digits, * or #, e.g. 0',
    }),
    replace: Type.String({
      pattern: '^\\+?[0-9]{0,15}$',
      description: 'what replaces the prefix: an optional + and up to 15 digits, e.g. +468',
    }),
  },
  { additionalProperties: false },
);

export const NewOrganizationSchema = Type.Object(
  {
    domain: Domain,
    name: Name,
    numberPlan: Type.Optional(Type.Array(NumberPlanRuleSchema, { maxItems: 100 })),
  },
  { additionalProperties: false },
);
export type NewOrganizationInput = Static<typeof NewOrganizationSchema>;

export const OrganizationSchema = Type.Object({
  domain: Type.String(),
  name: Type.String(),
  numberPlan: Type.Array(NumberPlanRuleSchema),
  createdAt: Type.String({ format: 'date-time' }),
  updatedAt: Type.String({ format: 'date-time' }),
});

/** PUT body: the fields that may change (the domain is the organization's identity). */
export const UpdateOrganizationSchema = Type.Object(
  {
    domain: Type.Optional(Type.String({ description: 'if given, must be the organization’s own domain' })),
    name: Type.Optional(Name),
    numberPlan: Type.Optional(Type.Array(NumberPlanRuleSchema, { maxItems: 100 })),
  },
  { additionalProperties: false },
);
export type UpdateOrganizationInput = Static<typeof UpdateOrganizationSchema>;

export const OrganizationDeletedSchema = Type.Object({
  deleted: Type.String({ description: 'the domain' }),
  removed: Type.Object({
    users: Type.Integer(),
    devices: Type.Integer(),
    userGroups: Type.Integer(),
    acdGroups: Type.Integer(),
    numbers: Type.Integer(),
    tickets: Type.Integer(),
  }),
});
