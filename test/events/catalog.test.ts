/**
 * The event catalog is the list of every event type: each type the code names is in it (or is an
 * audit-only action), and the README documents each with the catalog's own words.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { AUDIT_ONLY_ACTIONS, EVENT_TYPES, eventTable, isEventType } from '../../src/events/catalog.js';

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : [];
  });
}

/** String literals that look like event types: a known family, a dot, a name. */
const FAMILIES =
  'organization|user|device|number|usergroup|acd|externalapi|ticket|webhook|call|admin|stream|demo';
const LITERAL = new RegExp(`'((?:${FAMILIES})\\.[a-z_]+(?:\\.[a-z_]+)?)'`, 'g');
/** Prefixes the code compares types with (not types themselves). */
const PREFIXES = new Set(['acd.agent', 'acd.group']);

test('every event type the code names is in the catalog', () => {
  const unknown = new Map<string, string>();
  for (const file of sources('src')) {
    for (const m of readFileSync(file, 'utf8').matchAll(LITERAL)) {
      const type = m[1]!;
      if (isEventType(type) || PREFIXES.has(type)) continue;
      if ((AUDIT_ONLY_ACTIONS as readonly string[]).includes(type)) continue;
      unknown.set(type, file);
    }
  }
  assert.deepEqual(Object.fromEntries(unknown), {}, 'add these to src/events/catalog.ts');
});

test('the catalog is in the README, row by row', () => {
  const readme = readFileSync('README.md', 'utf8');
  const missing = eventTable()
    .split('\n')
    .filter((row) => !readme.includes(row));
  assert.deepEqual(missing, [], 'paste the table `npx tsx scripts/event-table.ts` prints into README.md');
  assert.ok(Object.keys(EVENT_TYPES).length >= 40);
});
