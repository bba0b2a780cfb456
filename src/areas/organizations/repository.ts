import type { Kysely, Selectable } from 'kysely';
import { pageLimit, toPage, mapConflict, type Page, type PageRequest } from '../../db/common.js';
import { fromJson, toJson } from '../../db/dialects/index.js';
import type { DB, OrganizationsTable } from '../../db/schema.js';
import { NotFoundError } from '../../errors.js';

/** A short-number rule: a dialled number starting with `prefix` gets it replaced by `replace`. */
export interface NumberPlanRule {
  prefix: string;
  replace: string;
}

/**
 * The organization's SIP trunk: calls to numbers that are no user, extension or function number
 * of the organization go there, and INVITEs from its address and port to the organization's
 * numbers come in from it.
 */
export interface SipTrunk {
  /** IP address or host name the trunk is reached at. */
  host: string;
  port: number;
  transport: 'udp' | 'tcp';
  /** Host part of the Request-URI and To of calls sent to it (default: `host`). */
  domain?: string;
  /** Number presented as the caller on calls out through it (default: the caller's own). */
  callerNumber?: string;
}

export interface Organization {
  id: number;
  domain: string;
  name: string;
  numberPlan: NumberPlanRule[];
  sipTrunk: SipTrunk | null;
  createdAt: number;
  updatedAt: number;
}

export interface NewOrganization {
  domain: string;
  name: string;
  numberPlan?: NumberPlanRule[];
  sipTrunk?: SipTrunk | null;
}

export interface OrganizationPatch {
  name?: string;
  numberPlan?: NumberPlanRule[];
  /** null removes the trunk. */
  sipTrunk?: SipTrunk | null;
}

function toOrganization(r: Selectable<OrganizationsTable>): Organization {
  return {
    id: r.id,
    domain: r.domain,
    name: r.name,
    numberPlan: fromJson<NumberPlanRule[]>(r.number_plan, []),
    sipTrunk: fromJson<SipTrunk | null>(r.sip_trunk, null),
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

/** Organizations are the tenants: this repository is the one that is not scoped by one. */
export class OrganizationRepository {
  constructor(private readonly db: Kysely<DB>) {}

  async create(input: NewOrganization, now = Date.now()): Promise<Organization> {
    const domain = input.domain.trim().toLowerCase();
    const row = await mapConflict(
      this.db,
      () =>
        this.db
          .insertInto('organizations')
          .values({
            domain,
            name: input.name,
            number_plan: toJson(input.numberPlan ?? []),
            sip_trunk: input.sipTrunk ? toJson(input.sipTrunk) : null,
            created_at: now,
            updated_at: now,
          })
          .returningAll()
          .executeTakeFirstOrThrow(),
      () => `organization "${domain}" already exists`,
    );
    return toOrganization(row);
  }

  async getById(id: number): Promise<Organization | undefined> {
    const r = await this.db.selectFrom('organizations').selectAll().where('id', '=', id).executeTakeFirst();
    return r && toOrganization(r);
  }

  /** Domains are matched case-insensitively (stored in lower case). */
  async getByDomain(domain: string): Promise<Organization | undefined> {
    const r = await this.db
      .selectFrom('organizations')
      .selectAll()
      .where('domain', '=', domain.trim().toLowerCase())
      .executeTakeFirst();
    return r && toOrganization(r);
  }

  async requireByDomain(domain: string): Promise<Organization> {
    const org = await this.getByDomain(domain);
    if (!org) throw new NotFoundError(`organization "${domain}" not found`);
    return org;
  }

  /** Ordered by id; `after` is the last id of the previous page. */
  async list(page: PageRequest = {}): Promise<Page<Organization>> {
    const limit = pageLimit(page.limit);
    let q = this.db
      .selectFrom('organizations')
      .selectAll()
      .orderBy('id')
      .limit(limit + 1);
    if (page.after != null) q = q.where('id', '>', page.after);
    return toPage(await q.execute(), limit, toOrganization, (r) => r.id);
  }

  async update(id: number, patch: OrganizationPatch, now = Date.now()): Promise<Organization> {
    const r = await this.db
      .updateTable('organizations')
      .set({
        updated_at: now,
        ...(patch.name !== undefined ? { name: patch.name } : {}),
        ...(patch.numberPlan !== undefined ? { number_plan: toJson(patch.numberPlan) } : {}),
        ...(patch.sipTrunk !== undefined
          ? { sip_trunk: patch.sipTrunk ? toJson(patch.sipTrunk) : null }
          : {}),
      })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirst();
    if (!r) throw new NotFoundError(`organization ${id} not found`);
    return toOrganization(r);
  }

  /** Every organization that has a SIP trunk (the SIP core matches incoming trunk traffic on them). */
  async listWithSipTrunk(): Promise<Organization[]> {
    const rows = await this.db
      .selectFrom('organizations')
      .selectAll()
      .where('sip_trunk', 'is not', null)
      .orderBy('id')
      .execute();
    return rows.map(toOrganization);
  }

  /** Deletes the organization and, by cascade, everything in it. False if there was none. */
  async delete(id: number): Promise<boolean> {
    const r = await this.db.deleteFrom('organizations').where('id', '=', id).executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  }

  /** How many rows of each dependant kind the organization has (what a forced delete removes). */
  async countDependants(id: number): Promise<{
    users: number;
    devices: number;
    userGroups: number;
    acdGroups: number;
    numbers: number;
    tickets: number;
  }> {
    const count = async (
      table: 'users' | 'devices' | 'user_groups' | 'acd_groups' | 'numbers' | 'tickets',
    ) => {
      const r = await this.db
        .selectFrom(table)
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('organization_id', '=', id)
        .executeTakeFirstOrThrow();
      return Number(r.n);
    };
    return {
      users: await count('users'),
      devices: await count('devices'),
      userGroups: await count('user_groups'),
      acdGroups: await count('acd_groups'),
      numbers: await count('numbers'),
      tickets: await count('tickets'),
    };
  }

  async countUsers(id: number): Promise<number> {
    const r = await this.db
      .selectFrom('users')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('organization_id', '=', id)
      .executeTakeFirstOrThrow();
    return Number(r.n);
  }
}
