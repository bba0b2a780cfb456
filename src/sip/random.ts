import { randomFillSync } from 'node:crypto';

/**
 * Random bytes for branches, tags, Call-IDs and nonces, drawn from a pool refilled by the CSPRNG 4 KiB at
 * a time (one `randomBytes` call per id cost more than the rest of building a request).
 */
const pool = Buffer.allocUnsafe(4096);
let poolUsed = pool.length;
/** `bytes` (at most 4096) random octets: a view into the pool, so copy or encode them at once. */
export function randomSlice(bytes: number): Buffer {
  if (poolUsed + bytes > pool.length) {
    randomFillSync(pool);
    poolUsed = 0;
  }
  const slice = pool.subarray(poolUsed, poolUsed + bytes);
  poolUsed += bytes;
  return slice;
}
