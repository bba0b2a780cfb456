import { Type, type Static } from 'typebox';
import { nullableLike, nullableString } from '../common/admin.js';
import { E164, Name, UserId } from '../common/schemas.js';

export const ACD_TYPES = ['ACD', 'ACD_LIGHT', 'ATTENDANT'] as const;
export const DISTRIBUTION_TYPES = [
  'RING_ALL',
  'LINEAR',
  'ROUND_ROBIN',
  'LONGEST_IDLE',
  'SKILL_BASED',
  'RANDOM',
] as const;

const Destination = {
  pattern: '^(\\+[1-9][0-9]{5,14}|[0-9]{2,8}|[A-Za-z0-9][A-Za-z0-9._-]{0,63}(@[A-Za-z0-9.-]+)?)$',
  description: 'an E.164 number, an extension or a user id, e.g. +46850000000, 2001 or reception',
};
const SkillLevel = Type.Integer({ minimum: 1, maximum: 10, description: '1 (lowest) to 10' });

const groupFields = {
  type: Type.Optional(Type.Enum([...ACD_TYPES])),
  distributionType: Type.Optional(Type.Enum([...DISTRIBUTION_TYPES])),
  nightMode: Type.Optional(Type.Boolean()),
  number: Type.Optional(
    nullableLike(E164, 'an E.164 number of the organization, free or already this group’s'),
  ),
  queueTimeoutSeconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 86_400 })),
  overflowDestination: Type.Optional(nullableString(Destination)),
  allowUsingFunctionNumber: Type.Optional(Type.Boolean()),
};

export const NewAcdGroupSchema = Type.Object({ name: Name, ...groupFields }, { additionalProperties: false });
export type NewAcdGroupInput = Static<typeof NewAcdGroupSchema>;

export const UpdateAcdGroupSchema = Type.Object(
  {
    id: Type.Optional(Type.Integer({ description: 'if given, must be the group’s own id' })),
    name: Type.Optional(Name),
    ...groupFields,
  },
  { additionalProperties: false },
);
export type UpdateAcdGroupInput = Static<typeof UpdateAcdGroupSchema>;

export const AcdGroupSchema = Type.Object({
  id: Type.Integer(),
  name: Type.String(),
  type: Type.Enum([...ACD_TYPES]),
  distributionType: Type.String(),
  nightMode: Type.Boolean(),
  number: Type.Union([Type.String(), Type.Null()]),
  queueTimeoutSeconds: Type.Integer(),
  overflowDestination: Type.Union([Type.String(), Type.Null()]),
  allowUsingFunctionNumber: Type.Boolean(),
  agentCount: Type.Integer(),
  createdAt: Type.String({ format: 'date-time' }),
  updatedAt: Type.String({ format: 'date-time' }),
});

export const NewAgentSchema = Type.Object(
  { user: UserId, skillLevel: Type.Optional(SkillLevel) },
  { additionalProperties: false },
);
export type NewAgentInput = Static<typeof NewAgentSchema>;

export const UpdateAgentSchema = Type.Object(
  {
    user: Type.Optional(Type.String({ description: 'if given, must be the agent in the path' })),
    skillLevel: SkillLevel,
  },
  { additionalProperties: false },
);
export type UpdateAgentInput = Static<typeof UpdateAgentSchema>;

export const AgentSchema = Type.Object({
  id: Type.String({ description: 'user@domain (the agent id)' }),
  userId: Type.String(),
  firstName: Type.String(),
  lastName: Type.String(),
  skillLevel: Type.Integer(),
  loggedIn: Type.Boolean(),
});

export const AcdGroupDeletedSchema = Type.Object({
  deleted: Type.Integer(),
  removed: Type.Object({ agents: Type.Integer(), numbersReleased: Type.Array(Type.String()) }),
});
