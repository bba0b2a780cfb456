import { Type } from 'typebox';
import { ValidationError } from '../errors.js';

/** `limit` (1..500, default 100) and an opaque `cursor` from the previous page's `next`. */
export const PageQuery = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 100 })),
  cursor: Type.Optional(Type.String({ maxLength: 200 })),
});

export function pageOf<T extends ReturnType<typeof Type.Object>>(item: T) {
  return Type.Object({
    items: Type.Array(item),
    next: Type.Union([Type.String(), Type.Null()], {
      description: 'Pass as `cursor` for the next page; null at the end',
    }),
  });
}

/** Cursors are opaque to clients: base64url of the keyset position. */
export function encodeCursor(after: string | number | null): string | null {
  return after === null ? null : Buffer.from(JSON.stringify({ a: after })).toString('base64url');
}

export function decodeCursor<C extends string | number>(
  cursor: string | undefined,
  kind: 'number' | 'string',
): C | undefined {
  if (cursor === undefined || cursor === '') return undefined;
  try {
    const parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as { a?: unknown };
    const a = parsed.a;
    // A number is a keyset id: a safe whole number (1.5 or 1e20 is no cursor of ours).
    if (kind === 'number' && typeof a === 'number' && Number.isSafeInteger(a)) return a as C;
    if (kind === 'string' && typeof a === 'string') return a as C;
  } catch {
    // fall through
  }
  throw new ValidationError([
    { field: 'query.cursor', message: 'is not a cursor this server gave out; start again without it' },
  ]);
}
