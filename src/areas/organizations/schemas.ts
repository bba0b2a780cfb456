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

const HOST_PATTERN =
  '^(\\[[0-9A-Fa-f:.]{2,45}\\]|[0-9A-Fa-f:]{2,39}:[0-9A-Fa-f:.]{0,20}|[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*)$';

export const SipTrunkSchema = Type.Object(
  {
    host: Type.String({
      maxLength: 253,
      pattern: HOST_PATTERN,
      description:
        'where the trunk is reached: an IP address or a host name, e.g. 192.0.2.10 or sip.carrier.example',
    }),
    port: Type.Integer({ minimum: 1, maximum: 65535, description: 'the trunk’s SIP port, e.g. 5060' }),
    transport: Type.Enum(['udp', 'tcp'], { description: 'udp or tcp' }),
    domain: Type.Optional(
      Type.String({
        maxLength: 253,
        pattern: HOST_PATTERN,
        description:
          'host part of the Request-URI and To of calls sent to the trunk (default: host), e.g. carrier.example',
      }),
    ),
    callerNumber: Type.Optional(
      Type.String({
        pattern: '^\\+?[0-9]{1,15}$',
        description:
          'number presented as the caller on calls out through the trunk (default: the caller’s own): an optional + and 1 to 15 digits, e.g. +46812345678',
      }),
    ),
  },
  {
    additionalProperties: false,
    description:
      'SIP trunk: calls to numbers that are no user, extension or function number go there; INVITEs from its host and port to the organization’s numbers come in from it',
  },
);
export type SipTrunkInput = Static<typeof SipTrunkSchema>;

/** A trunk, or null (no trunk; in a PUT: remove it). */
const SipTrunkOrNull = Type.Union([SipTrunkSchema, Type.Null()]);

export const NewOrganizationSchema = Type.Object(
  {
    domain: Domain,
    name: Name,
    numberPlan: Type.Optional(Type.Array(NumberPlanRuleSchema, { maxItems: 100 })),
    sipTrunk: Type.Optional(SipTrunkOrNull),
  },
  { additionalProperties: false },
);
export type NewOrganizationInput = Static<typeof NewOrganizationSchema>;

export const OrganizationSchema = Type.Object({
  domain: Type.String(),
  name: Type.String(),
  numberPlan: Type.Array(NumberPlanRuleSchema),
  sipTrunk: SipTrunkOrNull,
  createdAt: Type.String({ format: 'date-time' }),
  updatedAt: Type.String({ format: 'date-time' }),
});

/** PUT body: the fields that may change (the domain is the organization's identity). */
export const UpdateOrganizationSchema = Type.Object(
  {
    domain: Type.Optional(Type.String({ description: 'if given, must be the organization’s own domain' })),
    name: Type.Optional(Name),
    numberPlan: Type.Optional(Type.Array(NumberPlanRuleSchema, { maxItems: 100 })),
    sipTrunk: Type.Optional(SipTrunkOrNull),
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
