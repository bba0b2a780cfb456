/**
 * Where a dialled string goes (issue 5 item 6), through the organization's number plan:
 * a user id or extension → that user; an E.164 number owned by a user → that user; a function
 * number → the logged-in agents of its ACD group (none → 480); anything else → the organization's
 * SIP trunk when one is configured, else 404.
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { DatabaseHandle } from '../db/database.js';
import { CallRepository, type RoutableUser } from '../areas/calls/repository.js';
import { OrganizationRepository, type Organization } from '../areas/organizations/repository.js';
import { expandNumber } from '../areas/organizations/service.js';
import type { Endpoint, SipLogger } from './transport.js';
import { SipDirectory } from './directory.js';

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

/** The organization's own SIP trunk setting (admin API), as the router uses it. */
export const organizationTrunk: TrunkLookup = (org) => {
  const t = org.sipTrunk;
  if (!t) return undefined;
  return {
    endpoint: { transport: t.transport, address: t.host, port: t.port },
    ...(t.domain !== undefined ? { domain: t.domain } : {}),
    ...(t.callerNumber !== undefined ? { callerNumber: t.callerNumber } : {}),
  };
};

const MAX_DIALLED = 64;
const DNS_TIMEOUT_MS = 2000;

export class Router {
  constructor(
    private readonly database: DatabaseHandle,
    private readonly trunkFor: TrunkLookup = organizationTrunk,
    private readonly directory: SipDirectory = new SipDirectory(database),
  ) {}

  /**
   * Where `dialledRaw` goes. Lookups come from the directory, which keeps only what exists: a
   * user or number created a moment ago is found at once, before the trunk or a 404.
   */
  async resolve(org: Organization, dialledRaw: string): Promise<Destination> {
    const dialled = dialledRaw.trim();
    if (dialled === '' || dialled.length > MAX_DIALLED) return { kind: 'not-found' };
    const dir = this.directory;
    const byId = await dir.user(org.id, 'userId', dialled);
    if (byId) return { kind: 'user', user: byId, dialled };
    const byExtension = await dir.user(org.id, 'extension', dialled);
    if (byExtension) return { kind: 'user', user: byExtension, dialled };
    if (!/^\+?[0-9*#()\s-]+$/.test(dialled)) return { kind: 'not-found' };
    const number = expandNumber(org.numberPlan, dialled);
    const owner = await dir.numberOwner(number);
    if (owner && owner.organizationId === org.id) {
      if (owner.userId !== null) {
        const user = await dir.user(org.id, 'id', owner.userId);
        if (user) return { kind: 'user', user, dialled: number };
      }
      if (owner.acdGroupId !== null) {
        // Agents log in and out all day: read every time.
        const ids = await new CallRepository(this.database.db).loggedInAgents(org.id, owner.acdGroupId);
        if (ids.length === 0) return { kind: 'unavailable', reason: 'No Agent Logged In' };
        const agents: RoutableUser[] = [];
        for (const id of ids) {
          const u = await dir.user(org.id, 'id', id);
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
    return this.directory.user(org.id, 'id', id);
  }
}

/** The number a user is presented with: first E.164 number, else extension, else user id. */
export function numberOf(user: RoutableUser): string {
  return user.number ?? user.extension ?? user.userId;
}

/**
 * Which organizations' trunks an INVITE comes from, by its source: over UDP the trunk's address
 * and port; over TCP its address (a TCP peer connects from a port of its own). Host names are
 * resolved. Loaded from the organizations' settings, again when older than `ttlMs` (a changed
 * trunk takes effect within that), once at a time.
 */
export class TrunkDirectory {
  private byEndpoint = new Map<string, Organization[]>();
  private loadedAt = Number.NEGATIVE_INFINITY;
  private loading: Promise<void> | undefined;

  constructor(
    private readonly database: DatabaseHandle,
    private readonly now: () => number,
    private readonly logger: SipLogger,
    private readonly ttlMs = 5_000,
  ) {}

  private static key(transport: string, address: string, port: number | undefined): string {
    return `${transport}|${address.toLowerCase()}|${port ?? ''}`;
  }

  /**
   * The organizations whose trunk is at `source` (several may share one carrier). Once loaded,
   * an INVITE never waits for a reload: an outdated map is served while the next one loads.
   */
  async organizationsAt(source: Endpoint): Promise<Organization[]> {
    if (this.now() - this.loadedAt >= this.ttlMs) {
      const reload = this.refresh();
      if (this.loadedAt === Number.NEGATIVE_INFINITY) await reload;
    }
    return (
      this.byEndpoint.get(
        TrunkDirectory.key(
          source.transport,
          source.address,
          source.transport === 'udp' ? source.port : undefined,
        ),
      ) ?? []
    );
  }

  /** Loads the trunks now (also after an organization's trunk changed, for tests). */
  refresh(): Promise<void> {
    this.loading ??= this.load()
      .catch((err: unknown) => {
        // The previous map stays; the next try is one TTL away (an INVITE does not retry it).
        this.logger.error({ err }, 'SIP: loading the SIP trunks failed');
        if (this.loadedAt !== Number.NEGATIVE_INFINITY) this.loadedAt = this.now();
      })
      .finally(() => {
        this.loading = undefined;
      });
    return this.loading;
  }

  private async load(): Promise<void> {
    const orgs = await new OrganizationRepository(this.database.db).listWithSipTrunk();
    // Names resolve in parallel, each bounded in time: one slow DNS server holds up nobody else.
    const resolved = await Promise.all(
      orgs.map(async (org) => {
        const t = org.sipTrunk;
        if (!t) return { org, addresses: [] as string[] };
        const bare = t.host.replace(/^\[(.*)\]$/, '$1');
        if (isIP(bare) !== 0) return { org, addresses: [bare] };
        try {
          const found = await Promise.race([
            lookup(bare, { all: true }),
            new Promise<never>((_, reject) =>
              setTimeout(() => reject(new Error('no answer in 2 s')), DNS_TIMEOUT_MS).unref(),
            ),
          ]);
          return { org, addresses: found.map((a) => a.address) };
        } catch (err) {
          this.logger.warn({ err, host: t.host, domain: org.domain }, 'SIP: trunk host does not resolve');
          return { org, addresses: [] as string[] };
        }
      }),
    );
    const map = new Map<string, Organization[]>();
    for (const { org, addresses } of resolved) {
      const t = org.sipTrunk;
      if (!t) continue;
      for (const address of addresses) {
        const key = TrunkDirectory.key(t.transport, address, t.transport === 'udp' ? t.port : undefined);
        map.set(key, [...(map.get(key) ?? []), org]);
      }
    }
    this.byEndpoint = map;
    this.loadedAt = this.now();
  }
}
