import type { DatabaseHandle } from '../../db/database.js';
import { recordChange } from '../../db/changes.js';
import { ValidationError } from '../../errors.js';
import type { Actor } from '../common/actor.js';
import { USER_APIS } from '../common/schemas.js';
import type { Organization } from '../organizations/repository.js';
import { ExternalApiRepository, type GrantLevel } from './repository.js';

/**
 * Sets which user APIs one level allows (organization, a user group, a user). Takes effect on
 * the very next request: authentication reads the grants on every request.
 */
export async function setExternalApiGrants(
  database: DatabaseHandle,
  actor: Actor,
  organization: Organization,
  level: GrantLevel,
  targetId: number,
  apis: string[],
  field = 'body.apis',
): Promise<string[]> {
  const problems = apis
    .filter((a) => !(USER_APIS as readonly string[]).includes(a))
    .map((a) => ({
      field,
      message: `${JSON.stringify(a)} is not a user API id; use one of ${USER_APIS.join(', ')}`,
    }));
  if (problems.length > 0) throw new ValidationError(problems);
  return database.db.transaction().execute(async (trx) => {
    const set = await new ExternalApiRepository(trx).setGrants(organization.id, level, targetId, apis);
    const data = { level, targetId: level === 'ORGANIZATION' ? 0 : targetId, apis: set };
    await recordChange(trx, {
      organizationId: organization.id,
      actor,
      action: 'externalapi.changed',
      entity: 'externalapi',
      entityId: `${level}:${data.targetId}`,
      data,
      event: {
        type: 'externalapi.changed',
        ...(level === 'USER' ? { userId: targetId } : {}),
        // A user group's id stays in data: the event's groupId names an ACD group (visibility).
        data,
      },
    });
    return set;
  });
}
