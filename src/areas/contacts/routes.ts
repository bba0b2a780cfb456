import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import type { AppDeps } from '../../app.js';
import { ForbiddenError } from '../../errors.js';
import { DomainUserParams, errorResponses } from '../../http/schemas.js';
import { listDirectory } from './service.js';

export const ContactSchema = Type.Object({
  id: Type.String({ description: 'user@domain' }),
  firstName: Type.String(),
  lastName: Type.String(),
  email: Type.Union([Type.String(), Type.Null()]),
  title: Type.Union([Type.String(), Type.Null()]),
  department: Type.Union([Type.String(), Type.Null()]),
  extension: Type.Union([Type.String(), Type.Null()]),
  phoneNumbers: Type.Array(Type.String()),
  availability: Type.String(),
});

/** The organization directory: its users as contacts [real shape `{"contact":[...]}`]. */
export async function contactRoutes(app: FastifyInstance, { deps }: { deps: AppDeps }): Promise<void> {
  app.get(
    '/api/contacts/list/:domain/:user',
    {
      schema: {
        summary: "My organization's directory",
        tags: ['CONTACT'],
        params: DomainUserParams,
        response: { 200: Type.Object({ contact: Type.Array(ContactSchema) }), ...errorResponses },
      },
      config: { access: { kind: 'user', scope: 'CONTACT' }, xmlRoot: 'contacts' },
    },
    async (request) => {
      const p = request.principal;
      if (p.kind !== 'user-ticket') throw new ForbiddenError();
      return { contact: await listDirectory(deps.database, p.user.organizationId, p.user.domain) };
    },
  );
}
