import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import type { AppDeps } from '../../app.js';
import { NotFoundError } from '../../errors.js';
import { actorOf } from '../../http/auth.js';
import { encodeCursor, PageQuery, pageOf } from '../../http/pagination.js';
import { errorResponses } from '../../http/schemas.js';
import { adminAccess, adminLocation, DomainParams, iso, orgOf, pageRequest } from '../common/admin.js';
import type { Organization } from '../organizations/repository.js';
import { NumberRepository, type PhoneNumber } from './repository.js';
import { AddNumbersSchema, AssignNumberSchema, NumberSchema, NumbersAddedSchema } from './schemas.js';
import { addNumbers, assignNumber, removeNumber } from './service.js';

const NumberParams = Type.Object({
  domain: Type.String({ maxLength: 253 }),
  number: Type.String({ maxLength: 32, description: 'E.164; send + as %2B' }),
});

/** Admin API: the numbers of an organization and who has them (ADMIN_NUMBERS). */
export async function numberAdminRoutes(app: FastifyInstance, { deps }: { deps: AppDeps }): Promise<void> {
  const access = adminAccess('ADMIN_NUMBERS');
  const tags = ['Admin: numbers'];
  const db = deps.database.db;

  const view = (org: Organization, n: PhoneNumber & { userName: string | null }) => ({
    number: n.number,
    user: n.userName === null ? null : `${n.userName}@${org.domain}`,
    acdGroup: n.acdGroupId,
    createdAt: iso(n.createdAt),
  });
  const one = async (org: Organization, number: string) => {
    const page = await new NumberRepository(db).listWithOwners(org.id, {}, number);
    const n = page.items[0];
    if (!n) throw new NotFoundError(`no number ${number} in ${org.domain}`);
    return view(org, n);
  };
  const numberOf = (request: { params: unknown }) => (request.params as { number: string }).number;

  app.get(
    '/api/admin/numbers/:domain',
    {
      schema: {
        summary: 'List the numbers of an organization (by number)',
        tags,
        params: DomainParams,
        querystring: PageQuery,
        response: { 200: pageOf(NumberSchema), ...errorResponses },
      },
      config: { access, xmlRoot: 'numbers' },
    },
    async (request) => {
      const org = orgOf(request);
      const page = await new NumberRepository(db).listWithOwners(
        org.id,
        pageRequest<string>(request.query, 'string'),
      );
      return { items: page.items.map((n) => view(org, n)), next: encodeCursor(page.next) };
    },
  );

  app.post(
    '/api/admin/numbers/:domain',
    {
      schema: {
        summary: 'Add a number or a range of consecutive numbers',
        description:
          'All or nothing: a number belongs to one organization at most, so if any number of the range is taken ' +
          '(here or elsewhere) nothing is added and 409 names it.',
        tags,
        params: DomainParams,
        body: AddNumbersSchema,
        response: { 201: NumbersAddedSchema, ...errorResponses },
      },
      config: { access, xmlRoot: 'numbers', xmlItem: 'number' },
    },
    async (request, reply) => {
      const org = orgOf(request);
      const numbers = await addNumbers(deps.database, actorOf(request.principal), org, request.body);
      reply.code(201).header('location', adminLocation('numbers', org.domain, numbers[0]!));
      return { count: numbers.length, numbers };
    },
  );

  app.get(
    '/api/admin/numbers/:domain/:number',
    {
      schema: {
        summary: 'One number and its owner',
        tags,
        params: NumberParams,
        response: { 200: NumberSchema, ...errorResponses },
      },
      config: { access, xmlRoot: 'number' },
    },
    async (request) => one(orgOf(request), numberOf(request)),
  );

  app.put(
    '/api/admin/numbers/:domain/:number',
    {
      schema: {
        summary: 'Assign a number to a user or an ACD/attendant group, or release it',
        description:
          '`{"user": "aki"}`, `{"acdGroup": 12}`, or `{"user": null}` / `{}` to release (it stays in the organization). ' +
          'A number another user or group has is 409 naming the number and its owner; add `"move": true` to take it ' +
          'from them. An ACD/attendant group has one function number: giving it this one releases its previous one ' +
          '(the same rules as `number` of PUT /api/admin/acd-attendant-group/{domain}/{group}).',
        tags,
        params: NumberParams,
        body: AssignNumberSchema,
        response: { 200: NumberSchema, ...errorResponses },
      },
      config: { access, xmlRoot: 'number' },
    },
    async (request) => {
      const org = orgOf(request);
      const n = await assignNumber(
        deps.database,
        actorOf(request.principal),
        org,
        numberOf(request),
        request.body,
      );
      return one(org, n.number);
    },
  );

  app.delete(
    '/api/admin/numbers/:domain/:number',
    {
      schema: {
        summary: 'Remove a number from the organization',
        tags,
        params: NumberParams,
        response: { 200: Type.Object({ deleted: Type.String() }), ...errorResponses },
      },
      config: { access, xmlRoot: 'deleted' },
    },
    async (request) => {
      const n = await removeNumber(
        deps.database,
        actorOf(request.principal),
        orgOf(request),
        numberOf(request),
      );
      return { deleted: n.number };
    },
  );
}
