import { sql } from 'kysely';
import { errorCode, errorField, type DialectHelpers } from './types.js';

export const postgresHelpers: DialectHelpers = {
  name: 'postgres',
  autoIdColumn(table, name) {
    return table.addColumn(name, 'bigint', (c) => c.primaryKey().generatedByDefaultAsIdentity());
  },
  booleanColumn(table, name, defaultValue) {
    return table.addColumn(name, 'boolean', (c) => c.notNull().defaultTo(defaultValue));
  },
  jsonType: 'text',
  bigintType: 'bigint',
  uniqueViolation(err) {
    if (errorCode(err) !== '23505') return null;
    // detail: "Key (organization_id, user_id)=(1, bob) already exists."
    const detail = errorField(err, 'detail') ?? '';
    const m = /^Key \(([^)]*)\)=\((.*)\) already exists\.?$/s.exec(detail);
    const columns = m?.[1] ? m[1].split(',').map((s) => s.trim().replace(/^"|"$/g, '')) : [];
    if (!m?.[2] || columns.length === 0) return { columns };
    // Values are joined with ", "; only the last column may be text with ", " in it here.
    const parts = m[2].split(', ');
    const values = [...parts.slice(0, columns.length - 1), parts.slice(columns.length - 1).join(', ')];
    return { columns, values };
  },
  isForeignKeyViolation(err) {
    return errorCode(err) === '23503';
  },
  ilike(column, pattern) {
    return sql`${sql.ref(column)} ilike ${pattern} escape '\\'`;
  },
  async migrationSchema(db) {
    const r = await sql<{ schema: string }>`select current_schema() as schema`.execute(db);
    return r.rows[0]?.schema;
  },
};
