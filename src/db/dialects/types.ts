import type { CreateTableBuilder, Kysely, RawBuilder, SqlBool } from 'kysely';

export type DialectName = 'sqlite' | 'postgres';

/** What a unique violation tells about itself: the columns of the violated key, when known. */
export interface UniqueViolation {
  columns: string[];
  /**
   * The conflicting values, one per column, when the driver tells them (PostgreSQL's detail does;
   * SQLite's message does not: look the value up, the transaction is still usable there).
   */
  values?: string[];
}

/**
 * One helper per dialect concern (the Directus pattern). Migrations and repositories call these;
 * nothing outside src/db/dialects branches on the dialect.
 */
export interface DialectHelpers {
  readonly name: DialectName;
  /** Adds an auto-increment 64-bit integer primary key column. */
  autoIdColumn<TB extends string, C extends string, CN extends string>(
    table: CreateTableBuilder<TB, C>,
    name: CN,
  ): CreateTableBuilder<TB, C | CN>;
  /** Adds a NOT NULL boolean column with a default (SQLite: integer 0/1 with a check). */
  booleanColumn<TB extends string, C extends string, CN extends string>(
    table: CreateTableBuilder<TB, C>,
    name: CN,
    defaultValue: boolean,
  ): CreateTableBuilder<TB, C | CN>;
  /** Column type for JSON documents (stored as text on both dialects; read with fromJson). */
  readonly jsonType: 'text';
  /** Column type for 64-bit integers (epoch milliseconds, foreign keys to auto ids). */
  readonly bigintType: 'bigint';
  /** The unique violation carried by a driver error, or null if the error is something else. */
  uniqueViolation(err: unknown): UniqueViolation | null;
  /** True when the driver error is a foreign key violation. */
  isForeignKeyViolation(err: unknown): boolean;
  /** Case-insensitive `column LIKE pattern` (pattern already escaped with escapeLike, `\` escapes). */
  ilike(column: string, pattern: string): RawBuilder<SqlBool>;
  /** The schema the migrator should keep its own tables in (PostgreSQL: current_schema()). */
  migrationSchema<T>(db: Kysely<T>): Promise<string | undefined>;
}

export function errorCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const code = err.code;
    return typeof code === 'string' ? code : undefined;
  }
  return undefined;
}

export function errorField(err: unknown, field: string): string | undefined {
  if (typeof err === 'object' && err !== null && field in err) {
    const v = (err as Record<string, unknown>)[field];
    return typeof v === 'string' ? v : undefined;
  }
  return undefined;
}
