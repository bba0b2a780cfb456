import type { DatabaseHandle } from '../../db/database.js';
import { recordChange } from '../../db/changes.js';
import { NotFoundError } from '../../errors.js';
import { assertValid } from '../../http/validation.js';
import type { Actor } from '../common/actor.js';
import { NewOrganizationSchema, type NewOrganizationInput } from './schemas.js';
import { OrganizationRepository, type NumberPlanRule, type Organization } from './repository.js';

export async function createOrganization(
  database: DatabaseHandle,
  actor: Actor,
  input: unknown,
  prefix = 'body',
): Promise<Organization> {
  const data = assertValid<NewOrganizationInput>(NewOrganizationSchema, input, prefix);
  return database.db.transaction().execute(async (trx) => {
    const org = await new OrganizationRepository(trx).create({
      domain: data.domain.toLowerCase(),
      name: data.name,
      numberPlan: data.numberPlan ?? [],
    });
    await recordChange(trx, {
      organizationId: org.id,
      actor,
      action: 'organization.created',
      entity: 'organization',
      entityId: org.domain,
      data: { domain: org.domain, name: org.name },
      event: { type: 'organization.created', data: { domain: org.domain, name: org.name } },
    });
    return org;
  });
}

/** The organization of a domain, or 404 naming it. Domains are matched without case. */
export async function requireOrganization(database: DatabaseHandle, domain: string): Promise<Organization> {
  const org = await new OrganizationRepository(database.db).getByDomain(domain.toLowerCase());
  if (!org) throw new NotFoundError(`no organization with domain "${domain}"`);
  return org;
}

/**
 * Expands a dialled short number with the organization's number plan: the longest matching
 * prefix is replaced (`0890510` with rule `0 → +468` → `+46890510`). Numbers already in E.164
 * form, or with no matching rule, are returned unchanged.
 */
export function expandNumber(plan: NumberPlanRule[], dialled: string): string {
  const digits = dialled.replace(/[\s()-]/g, '');
  if (digits.startsWith('+')) return digits;
  let best: NumberPlanRule | undefined;
  for (const rule of plan) {
    if (digits.startsWith(rule.prefix) && (!best || rule.prefix.length > best.prefix.length)) best = rule;
  }
  return best ? best.replace + digits.slice(best.prefix.length) : digits;
}
