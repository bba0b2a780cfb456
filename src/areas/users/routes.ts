import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import type { AppDeps } from '../../app.js';
import { DomainUserParams, errorResponses } from '../../http/schemas.js';
import { NumberRepository } from '../numbers/repository.js';
import { UserRepository } from './repository.js';
import { ForbiddenError } from '../../errors.js';

export const UserInfoSchema = Type.Object({
  id: Type.String({ description: 'user@domain' }),
  userId: Type.String(),
  domain: Type.String(),
  firstName: Type.String(),
  lastName: Type.String(),
  email: Type.Union([Type.String(), Type.Null()]),
  title: Type.Union([Type.String(), Type.Null()]),
  department: Type.Union([Type.String(), Type.Null()]),
  language: Type.Union([Type.String(), Type.Null()]),
  extension: Type.Union([Type.String(), Type.Null()]),
  phoneNumbers: Type.Array(Type.String()),
  availability: Type.String(),
  availabilityMessage: Type.Union([Type.String(), Type.Null()]),
});

/** User side: the ticket's own user. */
export async function userRoutes(app: FastifyInstance, { deps }: { deps: AppDeps }): Promise<void> {
  app.get(
    '/api/user/info/v1/:domain/:user',
    {
      schema: {
        summary: 'My profile and availability',
        tags: ['USER_INFO'],
        params: DomainUserParams,
        response: { 200: UserInfoSchema, ...errorResponses },
      },
      config: { access: { kind: 'user', scope: 'USER_INFO' }, xmlRoot: 'user' },
    },
    async (request) => {
      const p = request.principal;
      if (p.kind !== 'user-ticket') throw new ForbiddenError();
      const db = deps.database.db;
      const user = (await new UserRepository(db).getById(p.user.organizationId, p.user.id))!;
      const numbers = await new NumberRepository(db).listByUser(p.user.organizationId, p.user.id);
      return {
        id: `${user.userId}@${p.user.domain}`,
        userId: user.userId,
        domain: p.user.domain,
        firstName: user.firstName,
        lastName: user.lastName,
        email: user.email,
        title: user.title,
        department: user.department,
        language: user.language,
        extension: user.extension,
        phoneNumbers: numbers.map((n) => n.number),
        availability: user.availability,
        availabilityMessage: user.availabilityMessage,
      };
    },
  );
}
