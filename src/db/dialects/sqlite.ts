import {
  OperationNodeTransformer,
  sql,
  type KyselyPlugin,
  type PluginTransformQueryArgs,
  type PluginTransformResultArgs,
  type PrimitiveValueListNode,
  type QueryResult,
  type RootOperationNode,
  type UnknownRow,
  type ValueNode,
} from 'kysely';
import { errorCode, errorField, type DialectHelpers } from './types.js';

function toSqliteValue(v: unknown): unknown {
  return typeof v === 'boolean' ? (v ? 1 : 0) : v;
}

class BooleanToInteger extends OperationNodeTransformer {
  protected override transformValue(node: ValueNode): ValueNode {
    const value = toSqliteValue(node.value);
    return value === node.value ? node : { ...node, value };
  }
  protected override transformPrimitiveValueList(node: PrimitiveValueListNode): PrimitiveValueListNode {
    if (!node.values.some((v) => typeof v === 'boolean')) return node;
    return { ...node, values: node.values.map(toSqliteValue) };
  }
}

/**
 * better-sqlite3 cannot bind JavaScript booleans: this plugin turns every boolean parameter
 * into 1/0, so repositories write real booleans on both dialects.
 */
export class SqliteBooleanPlugin implements KyselyPlugin {
  readonly #transformer = new BooleanToInteger();
  transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
    return this.#transformer.transformNode(args.node);
  }
  async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    return args.result;
  }
}

export const sqliteHelpers: DialectHelpers = {
  name: 'sqlite',
  autoIdColumn(table, name) {
    // INTEGER PRIMARY KEY is SQLite's 64-bit rowid; AUTOINCREMENT never reuses a deleted id.
    return table.addColumn(name, 'integer', (c) => c.primaryKey().autoIncrement());
  },
  booleanColumn(table, name, defaultValue) {
    return table.addColumn(name, 'integer', (c) =>
      c
        .notNull()
        .defaultTo(defaultValue ? 1 : 0)
        .check(sql`${sql.ref(name)} in (0, 1)`),
    );
  },
  jsonType: 'text',
  bigintType: 'bigint',
  uniqueViolation(err) {
    const code = errorCode(err);
    if (code !== 'SQLITE_CONSTRAINT_UNIQUE' && code !== 'SQLITE_CONSTRAINT_PRIMARYKEY') return null;
    // "UNIQUE constraint failed: users.organization_id, users.user_id"
    const message = errorField(err, 'message') ?? '';
    const list = message.split(':')[1] ?? '';
    const columns = list
      .split(',')
      .map((s) => s.trim().split('.').pop() ?? '')
      .filter((s) => s.length > 0);
    return { columns };
  },
  isForeignKeyViolation(err) {
    return errorCode(err) === 'SQLITE_CONSTRAINT_FOREIGNKEY';
  },
  ilike(column, pattern) {
    // SQLite's LIKE is case-insensitive for ASCII letters.
    return sql`${sql.ref(column)} like ${pattern} escape '\\'`;
  },
  async migrationSchema() {
    return undefined;
  },
};
