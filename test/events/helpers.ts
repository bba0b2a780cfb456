import type { Kysely } from 'kysely';
import { OrganizationRepository, type Organization } from '../../src/areas/organizations/repository.js';
import type { DB } from '../../src/db/schema.js';
import { EventRepository, type NewEvent, type StoredEvent } from '../../src/events/repository.js';
import { uniqueDomain } from '../db/helpers.js';

export async function newOrg(db: Kysely<DB>, prefix = 'ev'): Promise<Organization> {
  return new OrganizationRepository(db).create({ domain: uniqueDomain(prefix), name: prefix });
}

/** Appends `count` events in committed transactions of up to 1,000 rows. */
export async function appendEvents(
  db: Kysely<DB>,
  count: number,
  make: (i: number) => NewEvent,
): Promise<StoredEvent[]> {
  const out: StoredEvent[] = [];
  for (let i = 0; i < count; i += 1000) {
    const batch = Array.from({ length: Math.min(1000, count - i) }, (_, j) => make(i + j));
    out.push(...(await db.transaction().execute((trx) => new EventRepository(trx).appendMany(batch))));
  }
  return out;
}

/** Resolves when `predicate` holds, checked after each call of the returned `check` (bounded). */
export function until<T>(predicate: () => T | undefined | false, what: string, timeoutMs = 10_000) {
  let resolve!: (v: T) => void;
  let reject!: (e: Error) => void;
  const done = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), timeoutMs);
  const check = () => {
    const v = predicate();
    if (v !== undefined && v !== false) {
      clearTimeout(timer);
      resolve(v);
    }
  };
  return { done, check };
}
