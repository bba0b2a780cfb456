import type { StoredEvent } from './repository.js';

/**
 * Who reads the event channel:
 * - a user ticket (EVENT_CHANNEL): the user's internal id, the ACD groups it is an agent of, the
 *   ACD groups it supervises (ACD_SUPERVISOR role) and the users whose line state it watches;
 * - a system ticket: its organizations (`null` = every organization).
 */
export type Viewer =
  | {
      kind: 'user';
      organizationId: number;
      /** Internal id (users.id). */
      userId: number;
      /** ACD groups the user is an agent of. */
      groupIds: readonly number[];
      /** ACD groups the user supervises. */
      supervisedGroupIds: readonly number[];
      /** Users whose line state the user watches (internal ids). */
      watchedUserIds: readonly number[];
    }
  | { kind: 'system'; organizations: readonly number[] | null };

/** The part of an event row visibility looks at. */
export type VisibilityFields = Pick<StoredEvent, 'organizationId' | 'userId' | 'groupId' | 'type'>;

/**
 * Event types that make up a user's line state: what a watcher of that user sees. Call states,
 * availability and device registration (prefix match when the entry ends with `.`).
 */
export const LINE_STATE_TYPES: readonly string[] = [
  'call.',
  'linestate.',
  'availability.',
  'device.registered',
  'device.unregistered',
];

export function isLineStateType(type: string): boolean {
  return LINE_STATE_TYPES.some((t) => (t.endsWith('.') ? type.startsWith(t) : type === t));
}

/**
 * The visibility rule of issue 6 item 2, a pure function of the event row and the viewer.
 *
 * User viewer, only within its own organization:
 * - events about itself (`userId` = the viewer): its own changes, devices, calls, tickets;
 * - events of an ACD group it supervises (`groupId` in supervisedGroupIds), whoever they concern;
 * - events of an ACD group it is an agent of that concern no particular user (`userId` null:
 *   queue statistics, group changes) — another agent's own events stay private;
 * - line-state events (`isLineStateType`) of the users it watches;
 * - nothing else: organization-wide events without a user or group are for system tickets.
 * System viewer: every event of its organizations (events without organization only when it
 * covers every organization).
 */
export function isVisible(event: VisibilityFields, viewer: Viewer): boolean {
  if (viewer.kind === 'system') {
    if (viewer.organizations === null) return true;
    return event.organizationId !== null && viewer.organizations.includes(event.organizationId);
  }
  if (event.organizationId !== viewer.organizationId) return false;
  if (event.userId !== null && event.userId === viewer.userId) return true;
  if (event.groupId !== null) {
    if (viewer.supervisedGroupIds.includes(event.groupId)) return true;
    if (event.userId === null && viewer.groupIds.includes(event.groupId)) return true;
  }
  if (event.userId !== null && viewer.watchedUserIds.includes(event.userId) && isLineStateType(event.type))
    return true;
  return false;
}

/** Matches `type` against a types filter: exact names, or prefixes ending with `.` or `.*`. */
export function matchesTypes(type: string, types: readonly string[] | undefined): boolean {
  if (!types || types.length === 0) return true;
  return types.some((t) => {
    if (t.endsWith('.*')) return type.startsWith(t.slice(0, -1));
    if (t.endsWith('.')) return type.startsWith(t);
    return type === t;
  });
}

/** A hub filter for one viewer and an optional `types=` list. */
export function eventFilter(viewer: Viewer, types?: readonly string[]): (event: StoredEvent) => boolean {
  return (event) => matchesTypes(event.type, types) && isVisible(event, viewer);
}

/** The organization a subscription can be narrowed to (null: several or all). */
export function viewerOrganization(viewer: Viewer): number | null {
  if (viewer.kind === 'user') return viewer.organizationId;
  return viewer.organizations !== null && viewer.organizations.length === 1 ? viewer.organizations[0]! : null;
}

/** Builds the viewer of a user ticket (watched users: none until line-state watching exists). */
export async function resolveUserViewer(
  events: {
    viewerGroups(o: number, u: number): Promise<{ groupIds: number[]; supervisedGroupIds: number[] }>;
  },
  organizationId: number,
  userId: number,
  watchedUserIds: readonly number[] = [],
): Promise<Viewer> {
  const g = await events.viewerGroups(organizationId, userId);
  return {
    kind: 'user',
    organizationId,
    userId,
    groupIds: g.groupIds,
    supervisedGroupIds: g.supervisedGroupIds,
    watchedUserIds,
  };
}

/** What a user viewer's visibility was resolved from, to tell which later changes alter it. */
export interface AccessBasis {
  /** Internal id (users.id). */
  userId: number;
  /** The user id in its domain (`alice`) and `alice@domain`, as change events name members. */
  login: string;
  address: string;
  /** Member of a user group with the ACD_SUPERVISOR role. */
  supervisor: boolean;
  groupIds: readonly number[];
  supervisedGroupIds: readonly number[];
}

const SUPERVISOR_ROLE = 'ACD_SUPERVISOR';

function record(data: unknown): Record<string, unknown> {
  return typeof data === 'object' && data !== null ? (data as Record<string, unknown>) : {};
}

/**
 * Whether `event` may change what the user of `basis` sees (the ACD groups it is an agent of or
 * supervises), so that an open stream resolved before it must end (`access-changed`) and be
 * resumed with the new visibility. Conservative where the event cannot tell: user group events
 * carry the group's new roles or members but not its old ones, so any user group change ends a
 * supervisor's streams, and one that names the user or grants ACD_SUPERVISOR ends the user's.
 *
 * - `acd.agent.added` / `acd.agent.removed` about the user;
 * - `acd.group.created` (a supervisor supervises every group), `acd.group.deleted` of a group it sees;
 * - `usergroup.*` as above (a rename alone changes nothing).
 */
export function changesAccess(
  event: Pick<StoredEvent, 'type' | 'userId' | 'groupId' | 'data'>,
  basis: AccessBasis,
): boolean {
  switch (event.type) {
    case 'acd.agent.added':
    case 'acd.agent.removed':
      return event.userId === basis.userId;
    case 'acd.group.created':
      return basis.supervisor;
    case 'acd.group.deleted':
      return (
        event.groupId !== null &&
        (basis.groupIds.includes(event.groupId) || basis.supervisedGroupIds.includes(event.groupId))
      );
    default:
      break;
  }
  if (!event.type.startsWith('usergroup.')) return false;
  const data = record(event.data);
  const fields = Array.isArray(data.fields) ? (data.fields as unknown[]) : null;
  if (event.type === 'usergroup.updated' && fields !== null && fields.every((f) => f === 'name'))
    return false;
  if (basis.supervisor) return true;
  const roles = Array.isArray(data.roles) ? (data.roles as unknown[]) : [];
  if (roles.includes(SUPERVISOR_ROLE)) return true;
  const named = [
    ...(Array.isArray(data.members) ? (data.members as unknown[]) : []),
    ...(data.user !== undefined ? [data.user] : []),
  ];
  return named.some((m) => m === basis.login || m === basis.address);
}
