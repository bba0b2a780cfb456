/**
 * What the SIP core looks up on every call, kept in memory: devices by SIP username (digest
 * credentials), users by id, user id or extension (with their first number), and number owners.
 * A call setup would otherwise run five or six queries, and on SQLite every query waits behind
 * the call-event writer's transaction.
 *
 * The event log keeps it true: every change of these things writes an event (`user.*`,
 * `device.*`, `number.*`, `acd.*`, `organization.*`) in its transaction, and the hub hands this
 * process every event, from this process or (PostgreSQL) any other. Such an event empties the
 * cache. A lookup that was under way when the cache was emptied is not stored, so a value read
 * before a change never outlives it.
 *
 * Only what exists is cached: a name or number that is not there is read from the database each
 * time, so anything created is found at once. Between a change of something cached and its event
 * reaching the hub there are a few milliseconds; a digest that fails against cached credentials
 * is checked again against the database before it counts as a failure.
 */
import type { DatabaseHandle } from '../db/database.js';
import { CallRepository, type RoutableUser } from '../areas/calls/repository.js';
import { DeviceRepository, type DeviceCredentials } from '../areas/devices/repository.js';
import type { Device } from '../areas/devices/repository.js';
import { NumberRepository, type NumberOwner } from '../areas/numbers/repository.js';

/** What the directory needs of an event to know whether it changes a lookup. */
export interface DirectoryChange {
  type: string;
}

/** Event types that change a lookup: registrations and call states are the directory's own. */
export function changesDirectory(type: string): boolean {
  if (type === 'device.registered' || type === 'device.unregistered') return false;
  return (
    type.startsWith('user.') ||
    type.startsWith('device.') ||
    type.startsWith('number.') ||
    type.startsWith('acd.') ||
    type.startsWith('organization.')
  );
}

export type UserKey = 'id' | 'userId' | 'extension';

export interface DirectoryStats {
  hits: number;
  misses: number;
  invalidations: number;
  size: number;
}

export class SipDirectory {
  private readonly entries = new Map<string, unknown>();
  private generation = 0;
  private readonly maxEntries: number;
  readonly stats: Omit<DirectoryStats, 'size'> = { hits: 0, misses: 0, invalidations: 0 };

  constructor(
    private readonly database: DatabaseHandle,
    options: { maxEntries?: number } = {},
  ) {
    this.maxEntries = options.maxEntries ?? 100_000;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Empties the cache when one of `events` changes a lookup. */
  onEvents(events: readonly DirectoryChange[]): void {
    if (events.some((e) => changesDirectory(e.type))) this.invalidate();
  }

  invalidate(): void {
    this.generation += 1;
    this.stats.invalidations += 1;
    this.entries.clear();
  }

  /** A device and its digest credentials; `fresh` reads the database whatever is cached. */
  device(
    organizationId: number,
    sipUsername: string,
    fresh = false,
  ): Promise<{ device: Device; credentials: DeviceCredentials } | undefined> {
    return this.cached(`d:${organizationId}:${sipUsername}`, fresh, () =>
      new DeviceRepository(this.database.db).getBySipUsername(organizationId, sipUsername),
    );
  }

  user(
    organizationId: number,
    by: UserKey,
    value: string | number,
    fresh = false,
  ): Promise<RoutableUser | undefined> {
    return this.cached(`u:${organizationId}:${by}:${value}`, fresh, () => {
      const calls = new CallRepository(this.database.db);
      if (by === 'id') return calls.userById(organizationId, Number(value));
      if (by === 'userId') return calls.userByUserId(organizationId, String(value));
      return calls.userByExtension(organizationId, String(value));
    });
  }

  /** Who owns an E.164 number (any organization: the caller checks it is its own). */
  numberOwner(number: string, fresh = false): Promise<NumberOwner | undefined> {
    return this.cached(`n:${number}`, fresh, () => new NumberRepository(this.database.db).findOwner(number));
  }

  private async cached<T>(key: string, fresh: boolean, read: () => Promise<T>): Promise<T> {
    if (!fresh) {
      const hit = this.entries.get(key);
      if (hit !== undefined) {
        this.stats.hits += 1;
        return hit as T;
      }
    }
    this.stats.misses += 1;
    const generation = this.generation;
    const value = await read();
    // Only what exists is kept: a miss is always read (nobody fills the cache with names that
    // are not there, and something created a moment ago is found at once). Emptied meanwhile:
    // what was read may predate the change.
    if (value !== undefined && generation === this.generation) {
      if (this.entries.size >= this.maxEntries) this.entries.clear();
      this.entries.set(key, value);
    }
    return value;
  }
}
