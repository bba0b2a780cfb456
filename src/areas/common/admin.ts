import type { FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { NotFoundError } from '../../errors.js';
import { decodeCursor } from '../../http/pagination.js';
import type { Organization } from '../organizations/repository.js';
import { IdSchema, type AdminScope } from './schemas.js';

/** Helpers shared by the admin API's routes (spec §6). */

export const adminAccess = <S extends AdminScope>(scope: S) => ({ kind: 'admin', scope }) as const;

/** The organization of `{domain}`, resolved and access-checked by the auth layer. */
export function orgOf(request: FastifyRequest): Organization {
  const org = request.organization;
  if (!org) throw new NotFoundError('no such organization');
  return org;
}

export function iso(ms: number): string;
export function iso(ms: number | null): string | null;
export function iso(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}

/** `limit`/`cursor` of a list request, as a keyset page request. */
export function pageRequest<C extends string | number>(
  query: unknown,
  kind: 'number' | 'string',
): { limit: number; after: C | null } {
  const q = (query ?? {}) as { limit?: number; cursor?: string };
  return { limit: q.limit ?? 100, after: decodeCursor<C>(q.cursor, kind) ?? null };
}

export const DomainParams = Type.Object({ domain: Type.String({ maxLength: 253 }) });
export const IdParams = Type.Object({
  domain: Type.String({ maxLength: 253 }),
  id: IdSchema,
});

export const Nullable = <T extends ReturnType<typeof Type.String>>(t: T) => Type.Union([t, Type.Null()]);
export const NullableString = Type.Union([Type.String(), Type.Null()]);

/** `Location` of a created admin resource: path segments, each percent-encoded. */
export function adminLocation(...segments: (string | number)[]): string {
  return `/api/admin/${segments.map((s) => encodeURIComponent(String(s))).join('/')}`;
}

/**
 * A string field that may also be null, as one JSON schema (`type: ["string", "null"]`) rather
 * than a union: validation then reports the string's own problem ("must be a valid email")
 * instead of "does not match any of the allowed forms".
 */
export function nullableString(opts: {
  maxLength?: number;
  minLength?: number;
  pattern?: string;
  format?: string;
  description?: string;
}) {
  return Type.Unsafe<string | null>({ ...opts, type: ['string', 'null'] });
}

/** `nullableString` with the pattern, format and description of an existing string schema. */
export function nullableLike(schema: object, description?: string) {
  const {
    pattern,
    format,
    maxLength,
    minLength,
    description: d,
  } = schema as {
    pattern?: string;
    format?: string;
    maxLength?: number;
    minLength?: number;
    description?: string;
  };
  return nullableString({
    ...(pattern !== undefined ? { pattern } : {}),
    ...(format !== undefined ? { format } : {}),
    ...(maxLength !== undefined ? { maxLength } : {}),
    ...(minLength !== undefined ? { minLength } : {}),
    ...(description !== undefined || d !== undefined ? { description: description ?? d } : {}),
  });
}
