/**
 * Every event type the platform writes to the event log, what it is about (which decides who sees
 * it, see visibility.ts) and what its `data` carries. The README's event table and the event
 * channel's OpenAPI description are made from this list, and a test checks that every event type
 * the code names is in it.
 */

/**
 * `user`: about one user (its own changes, devices, tickets, calls): that user sees it, and its
 * line-state watchers the call and registration ones. `group`: about an ACD/attendant group: its
 * supervisors see it, its agents when it concerns no single user. `organization`: organization
 * wide, for system tickets (and webhooks). Every type reaches system tickets of its organization.
 */
export type EventAbout = 'user' | 'group' | 'organization';

export interface EventTypeInfo {
  about: EventAbout;
  description: string;
  /** The fields of `data`. */
  data: string;
}

const CALL_DATA =
  '`call_id`, `branch_id` (this user side), `direction` (`INCOMING`/`OUTGOING`), `local_user_id`, `local_number`, `device_type`, `device_id`, `remote_number`, `held`, `termination_reason` (null until the end), `timestamps` {`started`, `answered`, `ended`, `event`} (epoch ms)';

export const EVENT_TYPES = {
  'organization.created': {
    about: 'organization',
    description: 'an organization was created',
    data: '`domain`, `name`',
  },
  'organization.updated': {
    about: 'organization',
    description: 'its name, number plan or SIP trunk changed',
    data: 'the fields given',
  },
  'organization.deleted': {
    about: 'organization',
    description: 'deleted (with `?force=true`: with everything in it)',
    data: '`domain`, `force`, `removed` counts',
  },
  'user.created': {
    about: 'user',
    description: 'a user was created (alone, in bulk or by import)',
    data: '`id` (user@domain), `userId`, `role`, `groups`',
  },
  'user.updated': {
    about: 'user',
    description: 'a user’s fields, role or groups changed',
    data: '`id`, `userId`, `fields` (names of what changed)',
  },
  'user.password_changed': {
    about: 'user',
    description: 'its password was set or reset',
    data: '`id`',
  },
  'user.deleted': {
    about: 'user',
    description: 'deleted, with its devices, tickets and numbers',
    data: '`id`, `devices`, `ticketsRevoked`, `numbersReleased`, `groupMemberships`, `agentMemberships`',
  },
  'device.created': {
    about: 'user',
    description: 'a device (SIP account or mobile) was added',
    data: '`deviceId`, `deviceType`, `user`',
  },
  'device.updated': {
    about: 'user',
    description: 'its name, icon or number changed',
    data: '`deviceId`, `user`, `fields`',
  },
  'device.password_rotated': {
    about: 'user',
    description: 'its SIP password was replaced',
    data: '`deviceId`, `user`, `sipUsername`',
  },
  'device.deleted': {
    about: 'user',
    description: 'removed (its registrations with it)',
    data: '`deviceId`, `deviceType`, `user`',
  },
  'device.registered': {
    about: 'user',
    description: 'a SIP device registered (its first contact, or a change of contacts)',
    data: '`deviceId`, `aor`, `contacts`, `userAgent`',
  },
  'device.unregistered': {
    about: 'user',
    description: 'its last registration ended',
    data: '`deviceId`, `aor`, `reason` (`unregister`, `expired`)',
  },
  'ticket.created': {
    about: 'user',
    description: 'a user ticket was made (never its token)',
    data: '`ticketId`, `name`, `allowedApis`, `owner` (user@domain)',
  },
  'ticket.revoked': {
    about: 'user',
    description: 'a user ticket was revoked; also the last frame of a stream whose ticket it was',
    data: '`ticketId`, `name` (and `reason` when its user was deleted)',
  },
  'ticket.expired': {
    about: 'user',
    description: 'last frame of a stream whose ticket expired (not stored in the log)',
    data: '`ticketId`, `reason`',
  },
  'stream.closed': {
    about: 'user',
    description:
      'last frame of a stream the server ends (not stored): resume with `Last-Event-ID`, nothing is lost',
    data: '`reason`: `access-changed`, `slow-consumer`, `gap`, `hub-stopped`',
  },
  'usergroup.created': {
    about: 'organization',
    description: 'a user group was created',
    data: '`groupId`, `name`, `roles`, `members`',
  },
  'usergroup.updated': {
    about: 'organization',
    description: 'its name, roles or members changed (PUT)',
    data: '`groupId`, `name`, `fields`',
  },
  'usergroup.roles_changed': {
    about: 'organization',
    description: 'its roles were replaced',
    data: '`groupId`, `name`, `roles`',
  },
  'usergroup.members_changed': {
    about: 'organization',
    description: 'its members were replaced',
    data: '`groupId`, `name`, `members`',
  },
  'usergroup.member_added': {
    about: 'organization',
    description: 'one member added',
    data: '`groupId`, `name`, `user`',
  },
  'usergroup.member_removed': {
    about: 'organization',
    description: 'one member removed',
    data: '`groupId`, `name`, `user`',
  },
  'usergroup.deleted': {
    about: 'organization',
    description: 'deleted (its External API grants withdrawn)',
    data: '`groupId`, `name`, `memberships`, `externalApiGrants`',
  },
  'externalapi.changed': {
    about: 'organization',
    description: 'External API authorization changed at one level',
    data: '`level`, `targetId`, `apis`',
  },
  'number.added': {
    about: 'organization',
    description: 'a number or a range was added to the organization',
    data: '`first`, `last`, `count`',
  },
  'number.assigned': {
    about: 'user',
    description: 'a number was given to a user or an ACD group (seen by that owner too)',
    data: '`number`, `owner`, `movedFrom` (when taken from another owner), `released` (the group’s previous number)',
  },
  'number.released': {
    about: 'user',
    description: 'a number no longer belongs to anyone (seen by its previous owner too)',
    data: '`number`, `owner` (null)',
  },
  'number.removed': {
    about: 'user',
    description: 'a number was removed from the organization',
    data: '`number`, `wasAssignedTo`',
  },
  'acd.group.created': {
    about: 'group',
    description: 'an ACD/attendant group was created',
    data: '`groupId`, `name`, `type`, `number`',
  },
  'acd.group.updated': {
    about: 'group',
    description: 'its settings changed',
    data: '`groupId`, `fields`',
  },
  'acd.group.deleted': {
    about: 'group',
    description: 'deleted, with its agents',
    data: '`groupId`, `name`, `agents`, `numbersReleased`',
  },
  'acd.agent.added': {
    about: 'group',
    description: 'a user became an agent of the group (that user sees it too)',
    data: '`groupId`, `agent` (user@domain), `skillLevel`',
  },
  'acd.agent.updated': {
    about: 'group',
    description: 'an agent’s skill level changed',
    data: '`groupId`, `agent`, `skillLevel`',
  },
  'acd.agent.removed': {
    about: 'group',
    description: 'a user is no longer an agent of the group',
    data: '`groupId`, `agent`',
  },
  'webhook.created': {
    about: 'organization',
    description: 'the CRM webhook was configured',
    data: '`url`, `eventTypes`, `enabled`, `secretChanged`',
  },
  'webhook.updated': {
    about: 'organization',
    description: 'its configuration changed',
    data: '`url`, `eventTypes`, `enabled`, `secretChanged`',
  },
  'webhook.deleted': { about: 'organization', description: 'removed', data: '`url`' },
  'webhook.disabled': {
    about: 'organization',
    description: 'disabled after consecutive failed deliveries',
    data: '`webhookId`, `url`, `failures`, `reason`',
  },
  'webhook.enabled': {
    about: 'organization',
    description: 're-enabled (held deliveries are sent, oldest first)',
    data: '`url`, `previousReason`',
  },
  'webhook.queue_full': {
    about: 'organization',
    description: 'a disabled webhook holds its limit of deliveries: later call events are not queued',
    data: '`webhookId`, `url`, `held`, `firstDroppedSeq`, `reason`',
  },
  'call.early': {
    about: 'user',
    description: 'a call of the user is ringing (incoming) or being set up (outgoing)',
    data: CALL_DATA,
  },
  'call.confirmed': { about: 'user', description: 'answered', data: CALL_DATA },
  'call.terminated': {
    about: 'user',
    description: 'ended, with its termination reason; the call record is written with it',
    data: CALL_DATA,
  },
  'call.held': {
    about: 'user',
    description: 'put on hold (by a command or from the phone)',
    data: CALL_DATA,
  },
  'call.resumed': { about: 'user', description: 'taken off hold', data: CALL_DATA },
  'call.moved': {
    about: 'user',
    description: 'moved to another of the user’s devices',
    data: `${CALL_DATA}, \`previous_device_id\``,
  },
  'call.transferred': {
    about: 'user',
    description: 'transferred (blind) to another destination',
    data: `${CALL_DATA}, \`transfer_target\``,
  },
} as const satisfies Record<string, EventTypeInfo>;

export type EventType = keyof typeof EVENT_TYPES;

/** Audit actions that write no event (they concern no organization). */
export const AUDIT_ONLY_ACTIONS = ['admin.created', 'admin.password_changed', 'demo.seeded'] as const;

export function isEventType(type: string): type is EventType {
  return Object.hasOwn(EVENT_TYPES, type);
}

/** The catalog as a Markdown table (README, OpenAPI description). */
export function eventTable(): string {
  const rows = Object.entries(EVENT_TYPES).map(
    ([type, info]: [string, EventTypeInfo]) =>
      `| \`${type}\` | ${info.about} | ${info.description} | ${info.data} |`,
  );
  return ['| type | about | when | `data` |', '|---|---|---|---|', ...rows].join('\n');
}
