import assert from 'node:assert/strict';
import { test } from 'node:test';
import { UserRepository } from '../../src/areas/users/repository.js';
import { OrganizationRepository } from '../../src/areas/organizations/repository.js';
import { forEachDialect, uniqueDomain } from './helpers.js';

forEachDialect('keyset pagination', (t) => {
  test('walks 1,200 users in pages without gaps or duplicates, other org excluded', async () => {
    const { db } = t.handle;
    const orgs = new OrganizationRepository(db);
    const a = await orgs.create({ domain: uniqueDomain('page'), name: 'P' });
    const b = await orgs.create({ domain: uniqueDomain('noise'), name: 'N' });
    const now = Date.now();
    const rows = (org: number, n: number, prefix: string) =>
      Array.from({ length: n }, (_, i) => ({
        organization_id: org,
        user_id: `${prefix}${String(i).padStart(4, '0')}`,
        role: 'USER' as const,
        first_name: '',
        last_name: '',
        created_at: now,
        updated_at: now,
      }));
    await db.transaction().execute(async (trx) => {
      const all = [...rows(a.id, 1200, 'u'), ...rows(b.id, 50, 'x')];
      for (let i = 0; i < all.length; i += 200)
        await trx
          .insertInto('users')
          .values(all.slice(i, i + 200))
          .execute();
    });
    const users = new UserRepository(db);
    const seen: string[] = [];
    let after: number | null = null;
    let pages = 0;
    do {
      const page = await users.list(a.id, { limit: 97, after });
      seen.push(...page.items.map((u) => u.userId));
      after = page.next;
      pages += 1;
    } while (after !== null);
    assert.equal(pages, Math.ceil(1200 / 97));
    assert.equal(seen.length, 1200);
    assert.equal(new Set(seen).size, 1200);
    assert.ok(seen.every((s) => s.startsWith('u')));
    assert.deepEqual(seen, [...seen].sort());
    // Page limits are clamped.
    assert.equal((await users.list(a.id, { limit: 5000 })).items.length, 1000);
    assert.equal((await users.list(a.id, { limit: 0 })).items.length, 1);
  });
});
