import { Type } from 'typebox';

/** Shapes shared by several areas. */
export const Domain = Type.String({
  pattern: '^(?=.{1,253}$)([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z]{2,63}$',
  description: 'a domain name such as example.com',
});
export const UserId = Type.String({
  pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$',
  description: "up to 64 letters, digits, '.', '_' or '-', starting with a letter or digit, e.g. aki.huolman",
});
export const E164 = Type.String({
  pattern: '^\\+[1-9][0-9]{5,14}$',
  description: 'an E.164 number: + and 6 to 15 digits, e.g. +46701234567',
});
/**
 * Every integer id the API takes (tickets, user groups, ACD/attendant groups, ...): 1 up to
 * 2^53 - 1, the largest whole number JavaScript holds exactly (both databases hold more). A larger
 * one is a 400, never a database error.
 */
export const IdSchema = Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER });

export const Password = Type.String({ minLength: 8, maxLength: 200, description: 'At least 8 characters' });
export const Name = Type.String({ minLength: 1, maxLength: 200 });
export const OptionalText = (max = 200) =>
  Type.Optional(Type.Union([Type.String({ maxLength: max }), Type.Null()]));

export const USER_APIS = [
  'CONTACT',
  'CALL_SETUP',
  'USER_INFO',
  'QUEUE_STATISTICS',
  'EVENT_CHANNEL',
  'SMS',
  'DISTRIBUTION_GROUP',
  'REPORTS',
  'COMMUNICATION_LOG',
  'PERSONAL_CONTACTS',
  'CALL_CONTROL',
  'CALL_RECORDING',
  'LINE_STATE',
  'VOICEMAIL',
] as const;
export type UserApi = (typeof USER_APIS)[number];

/** Display names of the user APIs [real]. */
export const USER_API_NAMES: Record<UserApi, string> = {
  CONTACT: 'Contact search',
  CALL_SETUP: 'Call setup',
  USER_INFO: 'User info',
  QUEUE_STATISTICS: 'Queue statistics',
  EVENT_CHANNEL: 'Event channel',
  SMS: 'SMS sending',
  DISTRIBUTION_GROUP: 'ACD/attendant queues',
  REPORTS: 'Reports',
  COMMUNICATION_LOG: 'Communication Log',
  PERSONAL_CONTACTS: 'Personal contacts',
  CALL_CONTROL: 'Call control',
  CALL_RECORDING: 'Call recording',
  LINE_STATE: 'Line state',
  VOICEMAIL: 'Voicemail settings',
};

export const ADMIN_SCOPES = [
  'ADMIN',
  'ADMIN_ORGANIZATIONS',
  'ADMIN_USERS',
  'ADMIN_NUMBERS',
  'ADMIN_DEVICES',
  'ADMIN_GROUPS',
  'ADMIN_TICKETS',
  'ADMIN_CDR',
  'ADMIN_QUEUE_STATISTICS',
  'ADMIN_WEBHOOKS',
  'ADMIN_AUDIT',
] as const;
export type AdminScope = (typeof ADMIN_SCOPES)[number];

export const UserApiSchema = Type.Enum([...USER_APIS], { description: 'A user API id (ticket scope)' });
export const AdminScopeSchema = Type.Enum([...ADMIN_SCOPES], { description: 'An admin API scope' });
