import { PostgresAdapter, type Kysely } from 'kysely';
import { postgresHelpers } from './postgres.js';
import { sqliteHelpers } from './sqlite.js';
import type { DialectHelpers, DialectName } from './types.js';

export type { DialectHelpers, DialectName, UniqueViolation } from './types.js';
export { SqliteBooleanPlugin } from './sqlite.js';

export function helpersByName(name: DialectName): DialectHelpers {
  return name === 'postgres' ? postgresHelpers : sqliteHelpers;
}

/**
 * The helpers of the dialect a Kysely instance (or a transaction of it) talks to. Repositories are
 * built from a `Kysely<DB>` alone, so they find their helpers here rather than taking them as an
 * argument. This is the one place that looks at the dialect.
 */
export function helpersFor<T>(db: Kysely<T>): DialectHelpers {
  return db.getExecutor().adapter instanceof PostgresAdapter ? postgresHelpers : sqliteHelpers;
}

/** Reads a boolean column: PostgreSQL returns booleans, SQLite returns 0/1. */
export function toBool(value: boolean | number | null | undefined): boolean {
  return value === true || value === 1;
}

/** Serializes a value for a JSON (text) column. */
export function toJson(value: unknown): string {
  return JSON.stringify(value ?? null);
}

/** Parses a JSON (text) column; a driver that already parsed it (jsonb) is accepted too. */
export function fromJson<T>(value: string | null | undefined, fallback: T): T {
  if (value === null || value === undefined) return fallback;
  if (typeof value !== 'string') return value;
  try {
    return JSON.parse(value) as T;
  } catch {
    return fallback;
  }
}

/** Escapes `%`, `_` and `\` so user text matches literally inside a LIKE pattern (escape `\`). */
export function escapeLike(text: string): string {
  return text.replace(/[\\%_]/g, (c) => `\\${c}`);
}
