import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';
import {
  CompiledQuery,
  Kysely,
  PostgresDialect,
  SqliteDialect,
  SqliteDriver,
  sql,
  type DatabaseConnection,
  type Driver,
  type SqliteDatabase,
} from 'kysely';
import pg from 'pg';
import {
  helpersByName,
  SqliteBooleanPlugin,
  type DialectHelpers,
  type DialectName,
} from './dialects/index.js';
import type { DB } from './schema.js';

export interface DatabaseHandle {
  db: Kysely<DB>;
  dialect: DialectName;
  helpers: DialectHelpers;
  /**
   * SQLite on a file: its absolute path, for a second connection in another thread (the call-event
   * writer's). Undefined for PostgreSQL and for an in-memory database.
   */
  sqliteFile?: string;
  close(): Promise<void>;
}

export interface DatabaseOptions {
  /** PostgreSQL: maximum pool size (default 10, or `?pool=N` in the URL). */
  poolSize?: number;
  /** PostgreSQL: schema to use as search_path (also `?schema=name` in the URL). */
  schema?: string;
}

/** A database URL in a form fit for messages: the password is masked. */
export function redactUrl(url: string): string {
  return url.replace(/^(\w+:\/\/[^:/@]*:)[^@]*@/, '$1***@');
}

/**
 * Opens the database named by `url`:
 * - `sqlite:<path>` (relative to the working directory; the parent directory is created),
 *   `sqlite::memory:` for a private in-memory database;
 * - `postgres://user:password@host:port/database` (or `postgresql://`), with optional query
 *   parameters `schema=<name>` (search_path) and `pool=<size>`.
 */
export async function createDatabase(url: string, options: DatabaseOptions = {}): Promise<DatabaseHandle> {
  if (url.startsWith('sqlite:')) return openSqlite(url.slice('sqlite:'.length));
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) return openPostgres(url, options);
  throw new Error(
    `unsupported database URL "${redactUrl(url)}": use sqlite:<path> (e.g. sqlite:./data/onecloud.db), ` +
      `sqlite::memory:, or postgres://user:password@host:5432/database`,
  );
}

/**
 * Kysely's SQLite driver prepares every statement on every execution; compiling the SQL is a
 * large share of a small query's cost. Prepared statements are kept by SQL text (LRU, bounded);
 * a statement still busy iterating is never handed out twice.
 */
export function withStatementCache(sqlite: Database.Database, max = 500): SqliteDatabase {
  const cache = new Map<string, Database.Statement>();
  return {
    close: () => sqlite.close(),
    prepare(text: string) {
      let stmt = cache.get(text);
      if (stmt && !stmt.busy) {
        cache.delete(text);
        cache.set(text, stmt);
        return stmt;
      }
      stmt = sqlite.prepare(text);
      cache.set(text, stmt);
      if (cache.size > max) cache.delete(cache.keys().next().value!);
      return stmt;
    },
  };
}

/**
 * Transactions take SQLite's write lock when they begin (`BEGIN IMMEDIATE`). With a second
 * connection writing (the call-event writer's thread), a deferred transaction that read first
 * and wrote second could find its snapshot outdated and fail at once (SQLITE_BUSY, which no busy
 * timeout retries); an immediate one waits for the lock (busy_timeout) and then sees the latest.
 */
class ImmediateSqliteDriver extends SqliteDriver {
  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('begin immediate'));
  }
}

class ImmediateSqliteDialect extends SqliteDialect {
  constructor(private readonly database: SqliteDatabase) {
    super({ database });
  }

  override createDriver(): Driver {
    return new ImmediateSqliteDriver({ database: this.database });
  }
}

async function openSqlite(rawPath: string): Promise<DatabaseHandle> {
  const path = rawPath.startsWith('//') ? rawPath.slice(2) : rawPath;
  if (path === '')
    throw new Error('database URL "sqlite:" names no file: use sqlite:<path> or sqlite::memory:');
  const memory = path === ':memory:';
  let sqlite: Database.Database;
  try {
    if (!memory) mkdirSync(dirname(resolve(path)), { recursive: true });
    sqlite = new Database(memory ? ':memory:' : path);
    sqlite.pragma('journal_mode = WAL');
    sqlite.pragma('busy_timeout = 5000');
    sqlite.pragma('foreign_keys = ON');
    sqlite.pragma('synchronous = NORMAL');
  } catch (err) {
    throw new Error(
      `cannot open SQLite database "${path}": ${(err as Error).message}. ` +
        `Check that the path in ONECLOUD_DATABASE_URL is writable.`,
      { cause: err },
    );
  }
  const db = new Kysely<DB>({
    dialect: new ImmediateSqliteDialect(withStatementCache(sqlite)),
    plugins: [new SqliteBooleanPlugin()],
  });
  return {
    db,
    dialect: 'sqlite',
    helpers: helpersByName('sqlite'),
    ...(memory ? {} : { sqliteFile: resolve(path) }),
    close: () => db.destroy(),
  };
}

const parseNumber = (v: string): number => Number(v);
const INT8_OID = 20;
const NUMERIC_OID = 1700;

/** Type parsers for this pool only: int8 (counts, bigint columns) and numeric become numbers. */
const pgTypes = {
  getTypeParser(oid: number, format?: 'text' | 'binary'): (value: string) => unknown {
    if (oid === INT8_OID || oid === NUMERIC_OID) return parseNumber;
    return (pg.types.getTypeParser as (oid: number, format?: string) => (value: string) => unknown)(
      oid,
      format,
    );
  },
};

async function openPostgres(url: string, options: DatabaseOptions): Promise<DatabaseHandle> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error(
      `invalid PostgreSQL URL "${redactUrl(url)}": expected postgres://user:password@host:5432/database`,
    );
  }
  const schema = options.schema ?? parsed.searchParams.get('schema') ?? undefined;
  const poolParam = parsed.searchParams.get('pool');
  const poolSize = options.poolSize ?? (poolParam ? Number(poolParam) : 10);
  if (!Number.isInteger(poolSize) || poolSize < 1) {
    throw new Error(`invalid pool size "${poolParam}" in the database URL: use a positive integer`);
  }
  if (schema !== undefined && !/^[A-Za-z_][A-Za-z0-9_]*$/.test(schema)) {
    throw new Error(`invalid schema name "${schema}": use letters, digits and _`);
  }
  parsed.searchParams.delete('schema');
  parsed.searchParams.delete('pool');
  const pool = new pg.Pool({
    connectionString: parsed.toString(),
    max: poolSize,
    idleTimeoutMillis: 30_000,
    connectionTimeoutMillis: 10_000,
    types: pgTypes,
    ...(schema ? { options: `-c search_path=${schema}` } : {}),
  });
  // An idle client losing its connection must not crash the process; the pool replaces it.
  pool.on('error', () => undefined);
  const db = new Kysely<DB>({ dialect: new PostgresDialect({ pool }) });
  try {
    await sql`select 1`.execute(db);
  } catch (err) {
    await db.destroy().catch(() => undefined);
    throw new Error(postgresHint(err, parsed), { cause: err });
  }
  return {
    db,
    dialect: 'postgres',
    helpers: helpersByName('postgres'),
    close: () => db.destroy(),
  };
}

function postgresHint(err: unknown, url: URL): string {
  const where = `${url.hostname}:${url.port || '5432'}${url.pathname}`;
  const e = err as { code?: unknown; message?: unknown };
  const message = typeof e.message === 'string' ? e.message : String(err);
  const code = typeof e.code === 'string' ? e.code : '';
  let fix = 'check ONECLOUD_DATABASE_URL';
  if (code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'ETIMEDOUT' || code === 'EHOSTUNREACH')
    fix = 'is PostgreSQL running and listening there? Check the host and port in ONECLOUD_DATABASE_URL';
  else if (code === '28P01' || code === '28000')
    fix = 'check the user name and password in ONECLOUD_DATABASE_URL';
  else if (code === '3D000') fix = 'create the database (createdb) or fix its name in ONECLOUD_DATABASE_URL';
  return `cannot connect to PostgreSQL at ${where}: ${message} (${fix})`;
}
