import type { DatabaseHandle } from '../../db/database.js';
import { recordChange } from '../../db/changes.js';
import { ConflictError, NotFoundError, ValidationError } from '../../errors.js';
import { assertValid } from '../../http/validation.js';
import type { Actor } from '../common/actor.js';
import {
  NewOrganizationSchema,
  UpdateOrganizationSchema,
  type NewOrganizationInput,
  type UpdateOrganizationInput,
} from './schemas.js';
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
      sipTrunk: data.sipTrunk ?? null,
    });
    await recordChange(trx, {
      organizationId: org.id,
      actor,
      action: 'organization.created',
      entity: 'organization',
      entityId: org.domain,
      data: { domain: org.domain, name: org.name, sipTrunk: org.sipTrunk },
      event: { type: 'organization.created', data: { domain: org.domain, name: org.name } },
    });
    return org;
  });
}

/** PUT: changes the name, the number plan and/or the SIP trunk (null removes it; the domain cannot change). */
export async function updateOrganization(
  database: DatabaseHandle,
  actor: Actor,
  organization: Organization,
  input: unknown,
  prefix = 'body',
): Promise<Organization> {
  const data = assertValid<UpdateOrganizationInput>(UpdateOrganizationSchema, input ?? {}, prefix);
  if (data.domain !== undefined && data.domain.toLowerCase() !== organization.domain) {
    throw new ValidationError([
      {
        field: `${prefix}.domain`,
        message: `cannot be changed (is ${organization.domain}); create a new organization and move the users`,
      },
    ]);
  }
  return database.db.transaction().execute(async (trx) => {
    const org = await new OrganizationRepository(trx).update(organization.id, {
      ...(data.name !== undefined ? { name: data.name } : {}),
      ...(data.numberPlan !== undefined ? { numberPlan: data.numberPlan } : {}),
      ...(data.sipTrunk !== undefined ? { sipTrunk: data.sipTrunk } : {}),
    });
    const changed = {
      domain: org.domain,
      name: org.name,
      numberPlan: org.numberPlan,
      sipTrunk: org.sipTrunk,
    };
    await recordChange(trx, {
      organizationId: org.id,
      actor,
      action: 'organization.updated',
      entity: 'organization',
      entityId: org.domain,
      data: changed,
      event: { type: 'organization.updated', data: changed },
    });
    return org;
  });
}

export interface OrganizationDeleted {
  domain: string;
  removed: Awaited<ReturnType<OrganizationRepository['countDependants']>>;
}

/**
 * Deletes an organization. Refused (409) while it has users unless `force`: then everything in
 * it goes by cascade (users, devices, groups, numbers, tickets, grants); the audit and event
 * rows stay as history and the audit row counts what was removed.
 */
export async function deleteOrganization(
  database: DatabaseHandle,
  actor: Actor,
  organization: Organization,
  force: boolean,
): Promise<OrganizationDeleted> {
  return database.db.transaction().execute(async (trx) => {
    const repo = new OrganizationRepository(trx);
    const removed = await repo.countDependants(organization.id);
    if (removed.users > 0 && !force) {
      throw new ConflictError(
        `organization ${organization.domain} still has ${removed.users} user${removed.users === 1 ? '' : 's'}; delete them first or send ?force=true to delete everything in it`,
      );
    }
    if (!(await repo.delete(organization.id))) {
      throw new NotFoundError(`no organization with domain "${organization.domain}"`);
    }
    const data = { domain: organization.domain, force, removed };
    await recordChange(trx, {
      organizationId: organization.id,
      actor,
      action: 'organization.deleted',
      entity: 'organization',
      entityId: organization.domain,
      data,
      event: { type: 'organization.deleted', data },
    });
    return { domain: organization.domain, removed };
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
