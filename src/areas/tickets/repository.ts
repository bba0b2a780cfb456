import { CompiledQuery, sql, type Kysely, type Selectable } from 'kysely';
import { pageLimit, toPage, type Page, type PageRequest } from '../../db/common.js';
import { fromJson, toJson } from '../../db/dialects/index.js';
import type { DB, Role, TicketKind, TicketsTable } from '../../db/schema.js';

export type { TicketKind } from '../../db/schema.js';

export interface Ticket {
  /** The `<ticketId>` of the token. */
  id: number;
  kind: TicketKind;
  organizationId: number | null;
  /** Internal id of the owning user (user tickets). */
  userId: number | null;
  name: string;
  scopes: string[];
  /** System tickets: organization ids it is limited to; null = all. */
  organizations: number[] | null;
  /** Hex HMAC-SHA256 of the token's secret part. */
  secretHash: string;
  /** System tickets: the signing secret, encrypted with the server key. */
  signingSecretEnc: string | null;
  platform: string | null;
  createdBy: string;
  createdAt: number;
  expiresAt: number;
  revokedAt: number | null;
  lastUsedAt: number | null;
}

export interface NewTicket {
  kind: TicketKind;
  organizationId?: number | null;
  userId?: number | null;
  name: string;
  scopes: string[];
  organizations?: number[] | null;
  secretHash: string;
  signingSecretEnc?: string | null;
  platform?: string | null;
  createdBy: string;
  createdAt?: number;
  expiresAt: number;
}

/** A ticket with what authentication needs about its user, from one indexed lookup. */
export interface TicketForAuth {
  ticket: Ticket;
  user: { userId: string; role: Role; domain: string } | null;
}

/** last_used_at is written at most once per this interval. */
export const LAST_USED_RESOLUTION_MS = 60_000;

function toTicket(r: Selectable<TicketsTable>): Ticket {
  return {
    id: r.id,
    kind: r.kind,
    organizationId: r.organization_id,
    userId: r.user_id,
    name: r.name,
    scopes: fromJson<string[]>(r.scopes, []),
    organizations: fromJson<number[] | null>(r.organizations, null),
    secretHash: r.secret_hash,
    signingSecretEnc: r.signing_secret_enc,
    platform: r.platform,
    createdBy: r.created_by,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    revokedAt: r.revoked_at,
    lastUsedAt: r.last_used_at,
  };
}

export class TicketRepository {
  constructor(private readonly db: Kysely<DB>) {}

  async insert(input: NewTicket): Promise<Ticket> {
    const r = await this.db
      .insertInto('tickets')
      .values({
        kind: input.kind,
        organization_id: input.organizationId ?? null,
        user_id: input.userId ?? null,
        name: input.name,
        scopes: toJson(input.scopes),
        organizations: input.organizations == null ? null : toJson(input.organizations),
        secret_hash: input.secretHash,
        signing_secret_enc: input.signingSecretEnc ?? null,
        platform: input.platform ?? null,
        created_by: input.createdBy,
        created_at: input.createdAt ?? Date.now(),
        expires_at: input.expiresAt,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    return toTicket(r);
  }

  /** Unscoped by design: authentication only knows the ticket id from the token. */
  async getById(id: number): Promise<Ticket | undefined> {
    const r = await this.db.selectFrom('tickets').selectAll().where('id', '=', id).executeTakeFirst();
    return r && toTicket(r);
  }

  /** The ticket and its user's id, role and domain in one query (by primary key). */
  async getForAuth(id: number): Promise<TicketForAuth | undefined> {
    const r = await this.db
      .selectFrom('tickets as t')
      .leftJoin('users as u', 'u.id', 't.user_id')
      .leftJoin('organizations as o', 'o.id', 't.organization_id')
      .selectAll('t')
      .select(['u.user_id as u_user_id', 'u.role as u_role', 'o.domain as o_domain'])
      .where('t.id', '=', id)
      .executeTakeFirst();
    if (!r) return undefined;
    const user =
      r.u_user_id !== null && r.u_role !== null && r.o_domain !== null
        ? { userId: r.u_user_id, role: r.u_role, domain: r.o_domain }
        : null;
    return { ticket: toTicket(r), user };
  }

  /** A ticket of the organization (null: a system ticket). */
  async getInOrg(organizationId: number | null, id: number): Promise<Ticket | undefined> {
    let q = this.db.selectFrom('tickets').selectAll().where('id', '=', id);
    q =
      organizationId === null
        ? q.where('organization_id', 'is', null)
        : q.where('organization_id', '=', organizationId);
    const r = await q.executeTakeFirst();
    return r && toTicket(r);
  }

  async listByUser(
    organizationId: number,
    userId: number,
    opts: { includeRevoked?: boolean } = {},
  ): Promise<Ticket[]> {
    let q = this.db
      .selectFrom('tickets')
      .selectAll()
      .where('organization_id', '=', organizationId)
      .where('user_id', '=', userId)
      .orderBy('id');
    if (!opts.includeRevoked) q = q.where('revoked_at', 'is', null);
    return (await q.execute()).map(toTicket);
  }

  /** Tickets of an organization (null: system tickets), by id. */
  async listByOrg(organizationId: number | null, page: PageRequest = {}): Promise<Page<Ticket>> {
    const limit = pageLimit(page.limit);
    let q = this.db
      .selectFrom('tickets')
      .selectAll()
      .orderBy('id')
      .limit(limit + 1);
    q =
      organizationId === null
        ? q.where('organization_id', 'is', null)
        : q.where('organization_id', '=', organizationId);
    if (page.after != null) q = q.where('id', '>', page.after);
    return toPage(await q.execute(), limit, toTicket, (r) => r.id);
  }

  /** User tickets of an organization, optionally of one user (internal id), by id. */
  async listUserTickets(
    organizationId: number,
    filter: { userId?: number },
    page: PageRequest = {},
  ): Promise<Page<Ticket>> {
    const limit = pageLimit(page.limit);
    let q = this.db
      .selectFrom('tickets')
      .selectAll()
      .where('organization_id', '=', organizationId)
      .where('kind', '=', 'USER')
      .orderBy('id')
      .limit(limit + 1);
    if (filter.userId !== undefined) q = q.where('user_id', '=', filter.userId);
    if (page.after != null) q = q.where('id', '>', page.after);
    return toPage(await q.execute(), limit, toTicket, (r) => r.id);
  }

  /** Revokes a ticket of the organization (null: a system ticket). False if none or already revoked. */
  async revoke(organizationId: number | null, id: number, now = Date.now()): Promise<boolean> {
    let q = this.db
      .updateTable('tickets')
      .set({ revoked_at: now })
      .where('id', '=', id)
      .where('revoked_at', 'is', null);
    q =
      organizationId === null
        ? q.where('organization_id', 'is', null)
        : q.where('organization_id', '=', organizationId);
    const r = await q.executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  /** Revokes every live ticket of a user; returns how many. */
  async revokeAllOfUser(organizationId: number, userId: number, now = Date.now()): Promise<number> {
    const r = await this.db
      .updateTable('tickets')
      .set({ revoked_at: now })
      .where('organization_id', '=', organizationId)
      .where('user_id', '=', userId)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    return Number(r.numUpdatedRows);
  }

  /** Records use, at most once a minute: one UPDATE that writes only when the stored value is older. */
  async touchLastUsed(id: number, now = Date.now()): Promise<boolean> {
    const r = await this.db
      .updateTable('tickets')
      .set({ last_used_at: now })
      .where('id', '=', id)
      .where((eb) =>
        eb.or([eb('last_used_at', 'is', null), eb('last_used_at', '<=', now - LAST_USED_RESOLUTION_MS)]),
      )
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }
}

const API_SLOT = '\u0000api';
const ID_SLOT = -987654321;

type AuthRow = Selectable<TicketsTable> & {
  u_id: number | null;
  u_user_id: string | null;
  u_role: Role | null;
  o_domain: string | null;
  granted: number;
};
type AuthQuery = CompiledQuery<AuthRow>;
const authQueries = new WeakMap<Kysely<DB>, AuthQuery>();

function compileAuthQuery(db: Kysely<DB>): AuthQuery {
  return db
    .selectFrom('tickets as t')
    .leftJoin('users as u', 'u.id', 't.user_id')
    .leftJoin('organizations as o', 'o.id', 't.organization_id')
    .selectAll('t')
    .select(['u.id as u_id', 'u.user_id as u_user_id', 'u.role as u_role', 'o.domain as o_domain'])
    .select(
      sql<number>`case when exists (
        select 1 from external_api_grants g
        where g.organization_id = t.organization_id and g.api = ${API_SLOT} and (
          g.level = 'ORGANIZATION'
          or (g.level = 'USER' and g.target_id = t.user_id)
          or (g.level = 'USER_GROUP' and g.target_id in (
            select m.group_id from user_group_members m
            where m.organization_id = t.organization_id and m.user_id = t.user_id))
        )) then 1 else 0 end`.as('granted'),
    )
    .where('t.id', '=', ID_SLOT)
    .compile();
}

/** What authenticating a user-API request needs, from one query by primary key. */
export interface UserTicketAuth {
  ticket: Ticket;
  user: { id: number; userId: string; role: Role; organizationId: number; domain: string } | null;
  /** Whether External API authorization allows the asked API for this user right now. */
  granted: boolean;
}

export class TicketAuthRepository {
  constructor(private readonly db: Kysely<DB>) {}

  /**
   * The ticket, its user and organization, and whether any grant level (organization, one of the
   * user's groups, the user) allows `api` now: one round trip, every part by index. The grant
   * rule is the one of `combineGrants` (src/areas/externalapi/repository.ts): a union of levels.
   */
  async forUserApi(id: number, api: string): Promise<UserTicketAuth | undefined> {
    // Built and compiled once per repository's database; each call only binds the two values.
    const compiled = authQueries.get(this.db) ?? compileAuthQuery(this.db);
    authQueries.set(this.db, compiled);
    const params = compiled.parameters.map((p) => (p === API_SLOT ? api : p === ID_SLOT ? id : p));
    const result = await this.db.executeQuery<AuthRow>(CompiledQuery.raw(compiled.sql, params));
    const r = result.rows[0];
    if (!r) return undefined;
    const user =
      r.u_id !== null &&
      r.u_user_id !== null &&
      r.u_role !== null &&
      r.o_domain !== null &&
      r.organization_id !== null
        ? {
            id: r.u_id,
            userId: r.u_user_id,
            role: r.u_role,
            organizationId: r.organization_id,
            domain: r.o_domain,
          }
        : null;
    return { ticket: toTicket(r), user, granted: Number(r.granted) === 1 };
  }

  /**
   * Records an SNT-HMACv1 nonce as used until `expiresAt`; false when it was seen before (a
   * replay). Shared by every process through the database.
   */
  async useNonce(ticketId: number, nonce: string, expiresAt: number): Promise<boolean> {
    const r = await this.db
      .insertInto('used_nonces')
      .values({ ticket_id: ticketId, nonce, expires_at: expiresAt })
      .onConflict((oc) => oc.columns(['ticket_id', 'nonce']).doNothing())
      .executeTakeFirst();
    return Number(r.numInsertedOrUpdatedRows ?? 0) > 0;
  }

  async pruneNonces(now = Date.now()): Promise<number> {
    const r = await this.db.deleteFrom('used_nonces').where('expires_at', '<', now).executeTakeFirst();
    return Number(r.numDeletedRows);
  }
}
