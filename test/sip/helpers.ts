/** Shared helpers for the SIP tests: a seeded PRNG and the torture-test directory. */
import { resolve } from 'node:path';

/** RFC 4475 messages, resolved from the repository root (tests run with cwd = repo root). */
export const TORTURE_DIR = resolve('..', 'shared', 'testdata', 'sip', 'rfc4475');

/** mulberry32: a small deterministic PRNG so generated tests are reproducible. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function pick<T>(rand: () => number, items: readonly T[]): T {
  return items[Math.floor(rand() * items.length)] as T;
}

export function int(rand: () => number, min: number, max: number): number {
  return min + Math.floor(rand() * (max - min + 1));
}

export function randomString(rand: () => number, alphabet: string, min: number, max: number): string {
  const chars = [...alphabet];
  let out = '';
  const n = int(rand, min, max);
  for (let i = 0; i < n; i++) out += pick(rand, chars);
  return out;
}
