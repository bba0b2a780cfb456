import type { Kysely } from 'kysely';
import type { DB, GrantLevel } from '../../db/schema.js';

export type { GrantLevel } from '../../db/schema.js';

export interface Grant {
  level: GrantLevel;
  /** 0 for ORGANIZATION, the user group id for USER_GROUP, the internal user id for USER. */
  targetId: number;
  api: string;
}

/** Where an allowed API comes from (for `GET .../users/{user}/effective`). */
export interface GrantSource {
  level: GrantLevel;
  targetId: number;
}

export interface EffectiveGrants {
  /** Sorted API ids the user may use (and grant to its tickets). */
  apis: string[];
  /** For each allowed API, every level that allows it. */
  sources: Record<string, GrantSource[]>;
}

/**
 * The rule, kept in one function: a user may use an API when **any** level allows it for that
 * user — the organization level (everyone in the organization), a user group the user is a
 * member of, or the user itself. The levels are additive (a union), the way an administrator
 * reads "allow CONTACT for the Sales group". The intersection in the spec (§2) is between this
 * set and a ticket's scopes: a ticket may use `scopes ∩ effective(user)`, evaluated per request.
 */
export function combineGrants(grants: Grant[]): EffectiveGrants {
  const sources: Record<string, GrantSource[]> = {};
  for (const g of grants) (sources[g.api] ??= []).push({ level: g.level, targetId: g.targetId });
  const apis = Object.keys(sources).sort();
  const ordered: Record<string, GrantSource[]> = {};
  for (const api of apis) ordered[api] = sources[api]!;
  return { apis, sources: ordered };
}

export class ExternalApiRepository {
  constructor(private readonly db: Kysely<DB>) {}

  /** Replaces the set of APIs allowed at one level for one target. Run inside a transaction. */
  async setGrants(
    organizationId: number,
    level: GrantLevel,
    targetId: number,
    apis: string[],
  ): Promise<string[]> {
    const target = level === 'ORGANIZATION' ? 0 : targetId;
    const unique = [...new Set(apis)].sort();
    await this.db
      .deleteFrom('external_api_grants')
      .where('organization_id', '=', organizationId)
      .where('level', '=', level)
      .where('target_id', '=', target)
      .execute();
    if (unique.length > 0) {
      await this.db
        .insertInto('external_api_grants')
        .values(unique.map((api) => ({ organization_id: organizationId, level, target_id: target, api })))
        .execute();
    }
    return unique;
  }

  async listGrants(organizationId: number, level: GrantLevel, targetId: number): Promise<string[]> {
    const rows = await this.db
      .selectFrom('external_api_grants')
      .select('api')
      .where('organization_id', '=', organizationId)
      .where('level', '=', level)
      .where('target_id', '=', level === 'ORGANIZATION' ? 0 : targetId)
      .orderBy('api')
      .execute();
    return rows.map((r) => r.api);
  }

  async listAll(organizationId: number): Promise<Grant[]> {
    const rows = await this.db
      .selectFrom('external_api_grants')
      .select(['level', 'target_id', 'api'])
      .where('organization_id', '=', organizationId)
      .orderBy('level')
      .orderBy('target_id')
      .orderBy('api')
      .execute();
    return rows.map((r) => ({ level: r.level, targetId: r.target_id, api: r.api }));
  }

  /** What the user (internal id) may use now, with sources; see `combineGrants` for the rule. One query. */
  async effective(organizationId: number, userId: number): Promise<EffectiveGrants> {
    const rows = await this.db
      .selectFrom('external_api_grants as g')
      .select(['g.level', 'g.target_id', 'g.api'])
      .where('g.organization_id', '=', organizationId)
      .where((eb) =>
        eb.or([
          eb('g.level', '=', 'ORGANIZATION'),
          eb.and([eb('g.level', '=', 'USER'), eb('g.target_id', '=', userId)]),
          eb.and([
            eb('g.level', '=', 'USER_GROUP'),
            eb(
              'g.target_id',
              'in',
              eb
                .selectFrom('user_group_members as m')
                .select('m.group_id')
                .where('m.organization_id', '=', organizationId)
                .where('m.user_id', '=', userId),
            ),
          ]),
        ]),
      )
      .orderBy('g.api')
      .orderBy('g.level')
      .orderBy('g.target_id')
      .execute();
    return combineGrants(rows.map((r) => ({ level: r.level, targetId: r.target_id, api: r.api })));
  }
}
