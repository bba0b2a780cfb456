import { Type, type Static } from 'typebox';
import { Name, UserId } from '../common/schemas.js';

export const Role = Type.String({
  pattern: '^[A-Z][A-Z0-9_]{1,49}$',
  description: 'an upper-case role name such as ACD_SUPERVISOR',
});
const Roles = Type.Array(Role, { maxItems: 50 });
const Members = Type.Array(UserId, { maxItems: 10_000, description: 'user ids of the organization' });

export const NewUserGroupSchema = Type.Object(
  { name: Name, roles: Type.Optional(Roles), members: Type.Optional(Members) },
  { additionalProperties: false },
);
export type NewUserGroupInput = Static<typeof NewUserGroupSchema>;

export const UpdateUserGroupSchema = Type.Object(
  {
    id: Type.Optional(Type.Integer({ description: 'if given, must be the group’s own id' })),
    name: Type.Optional(Name),
    roles: Type.Optional(Roles),
    members: Type.Optional(Members),
  },
  { additionalProperties: false },
);
export type UpdateUserGroupInput = Static<typeof UpdateUserGroupSchema>;

export const RolesSchema = Type.Object({ roles: Roles }, { additionalProperties: false });
export const MembersSchema = Type.Object({ members: Members }, { additionalProperties: false });

export const UserGroupSchema = Type.Object({
  id: Type.Integer(),
  name: Type.String(),
  roles: Type.Array(Type.String()),
  memberCount: Type.Integer(),
  createdAt: Type.String({ format: 'date-time' }),
  updatedAt: Type.String({ format: 'date-time' }),
});

export const GroupMemberSchema = Type.Object({
  id: Type.String({ description: 'user@domain' }),
  userId: Type.String(),
  firstName: Type.String(),
  lastName: Type.String(),
});

export const UserGroupDeletedSchema = Type.Object({
  deleted: Type.Integer(),
  removed: Type.Object({ memberships: Type.Integer(), externalApiGrants: Type.Array(Type.String()) }),
});
