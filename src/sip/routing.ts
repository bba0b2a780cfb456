/**
 * Where a dialled string goes (issue 5 item 6), through the organization's number plan:
 * a user id or extension → that user; an E.164 number owned by a user → that user; a function
 * number → the logged-in agents of its ACD group (none → 480); anything else → the organization's
 * SIP trunk when one is configured, else 404.
 */
import type { DatabaseHandle } from '../db/database.js';
import { CallRepository, type RoutableUser } from '../areas/calls/repository.js';
import { NumberRepository } from '../areas/numbers/repository.js';
import type { Organization } from '../areas/organizations/repository.js';
import { expandNumber } from '../areas/organizations/service.js';
import type { Endpoint } from './transport.js';

/** A SIP trunk: calls that match no user or function number go there. */
export interface TrunkConfig {
  /** Where INVITEs are sent. */
  endpoint: Endpoint;
  /** Host part of the Request-URI (default the endpoint address). */
  domain?: string;
  /** Number presented to the trunk instead of the caller's own (default the caller's number). */
  callerNumber?: string;
}

export type Destination =
  | { kind: 'user'; user: RoutableUser; dialled: string }
  | { kind: 'group'; groupId: number; number: string; agents: RoutableUser[] }
  | { kind: 'trunk'; trunk: TrunkConfig; number: string }
  | { kind: 'unavailable'; reason: string }
  | { kind: 'not-found' };

export type TrunkLookup = (org: Organization) => TrunkConfig | undefined;

const MAX_DIALLED = 64;

export class Router {
  constructor(
    private readonly database: DatabaseHandle,
    private readonly trunkFor: TrunkLookup = () => undefined,
  ) {}

  async resolve(org: Organization, dialledRaw: string): Promise<Destination> {
    const dialled = dialledRaw.trim();
    if (dialled === '' || dialled.length > MAX_DIALLED) return { kind: 'not-found' };
    const calls = new CallRepository(this.database.db);
    const byId = await calls.userByUserId(org.id, dialled);
    if (byId) return { kind: 'user', user: byId, dialled };
    const byExtension = await calls.userByExtension(org.id, dialled);
    if (byExtension) return { kind: 'user', user: byExtension, dialled };
    if (!/^\+?[0-9*#()\s-]+$/.test(dialled)) return { kind: 'not-found' };
    const number = expandNumber(org.numberPlan, dialled);
    const owner = await new NumberRepository(this.database.db).findOwner(number);
    if (owner && owner.organizationId === org.id) {
      if (owner.userId !== null) {
        const user = await calls.userById(org.id, owner.userId);
        if (user) return { kind: 'user', user, dialled: number };
      }
      if (owner.acdGroupId !== null) {
        const ids = await calls.loggedInAgents(org.id, owner.acdGroupId);
        if (ids.length === 0) return { kind: 'unavailable', reason: 'No Agent Logged In' };
        const agents: RoutableUser[] = [];
        for (const id of ids) {
          const u = await calls.userById(org.id, id);
          if (u) agents.push(u);
        }
        return { kind: 'group', groupId: owner.acdGroupId, number, agents };
      }
    }
    const trunk = this.trunkFor(org);
    if (trunk) return { kind: 'trunk', trunk, number };
    return { kind: 'not-found' };
  }

  /** A user of the organization by internal id (originate, move). */
  userById(org: Organization, id: number): Promise<RoutableUser | undefined> {
    return new CallRepository(this.database.db).userById(org.id, id);
  }
}

/** The number a user is presented with: first E.164 number, else extension, else user id. */
export function numberOf(user: RoutableUser): string {
  return user.number ?? user.extension ?? user.userId;
}
