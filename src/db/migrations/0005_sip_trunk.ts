import type { Kysely } from 'kysely';
import { helpersFor } from '../dialects/index.js';

/**
 * The SIP trunk of an organization (issue 5 routing): `organizations.sip_trunk`, JSON
 * `{host, port, transport, domain?, callerNumber?}` or NULL when the organization has none. Calls to
 * numbers that are no user, extension or function number go there; INVITEs from its address and
 * port to the organization's numbers come in from it.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  const h = helpersFor(db);
  await db.schema.alterTable('organizations').addColumn('sip_trunk', h.jsonType).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('organizations').dropColumn('sip_trunk').execute();
}
