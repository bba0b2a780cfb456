import type { Kysely } from 'kysely';
import { ConflictError } from '../errors.js';
import { helpersFor } from './dialects/index.js';

/** One page of a keyset-paginated list: `next` is the cursor to pass as `after`, null at the end. */
export interface Page<T, C = number> {
  items: T[];
  next: C | null;
}

export interface PageRequest<C = number> {
  /** 1..1000, default 100. */
  limit?: number;
  /** Return rows strictly after this key (the `next` of the previous page). */
  after?: C | null;
}

export const MAX_PAGE = 1000;

export function pageLimit(limit: number | undefined): number {
  if (limit === undefined || !Number.isFinite(limit)) return 100;
  return Math.min(MAX_PAGE, Math.max(1, Math.floor(limit)));
}

/** Builds a page from `limit + 1` fetched rows. */
export function toPage<R, T, C>(rows: R[], limit: number, map: (r: R) => T, key: (r: R) => C): Page<T, C> {
  const more = rows.length > limit;
  const kept = more ? rows.slice(0, limit) : rows;
  const last = kept[kept.length - 1];
  return { items: kept.map(map), next: more && last !== undefined ? key(last) : null };
}

/**
 * Runs `fn`; a unique violation becomes a ConflictError whose message `describe` builds from the
 * violated columns (return undefined to use a generic message). Other errors pass through.
 */
export async function mapConflict<T, D>(
  db: Kysely<D>,
  fn: () => Promise<T>,
  describe: (columns: string[]) => string | undefined,
): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    const violation = helpersFor(db).uniqueViolation(err);
    if (violation) throw new ConflictError(describe(violation.columns) ?? 'already exists');
    throw err;
  }
}

/**
 * `mapConflict` for statements that write many rows: the ConflictError names the value that
 * conflicts. `describe` gets the violated key's last column (e.g. `user_id`) and its value:
 * PostgreSQL's violation carries the value; when the driver does not tell it (SQLite), `find`
 * looks it up in the same transaction (a failed SQLite statement leaves the transaction usable).
 */
export async function mapBatchConflict<T, D>(
  db: Kysely<D>,
  fn: () => Promise<T>,
  describe: (column: string, value: string | undefined) => string,
  find: (column: string) => Promise<string | undefined>,
): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    const violation = helpersFor(db).uniqueViolation(err);
    if (!violation) throw err;
    const last = violation.columns.length - 1;
    const column = violation.columns[last] ?? '';
    let value = violation.values?.[last];
    if (value === undefined) value = await find(column).catch(() => undefined);
    throw new ConflictError(describe(column, value));
  }
}
