/**
 * A change that loses a race after its checks (a concurrent change took a user id, an
 * extension or a number between the check and the insert) is a 409 naming the value, and
 * writes nothing. The race is forced: the conflicting row is committed between the bulk check
 * and the insert, or the repository's insert is called without its check.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { forEachDialect, uniqueDomain } from '../db/helpers.js';
import { ConflictError } from '../../src/errors.js';
import { createOrganization } from '../../src/areas/organizations/service.js';
import type { Organization } from '../../src/areas/organizations/repository.js';
import { checkBulkRows, createUser, insertBulkRows } from '../../src/areas/users/service.js';
import { UserRepository } from '../../src/areas/users/repository.js';
import { NumberRepository } from '../../src/areas/numbers/repository.js';

forEachDialect('conflicts found inside the transaction name the value', (ctx) => {
  let org: Organization;
  before(async () => {
    org = await createOrganization(ctx.handle, 'test', { domain: uniqueDomain('race'), name: 'Race' });
  });

  const audited = async (entityId: string) =>
    (await ctx.handle.db.selectFrom('audit_log').select('id').where('entity_id', '=', entityId).execute())
      .length;

  test('bulk users: a user id or an extension taken after the check', async () => {
    const field = (i: number) => `body.users.${i}`;
    const rows = await checkBulkRows(
      ctx.handle,
      org,
      [{ userId: 'r1' }, { userId: 'r2' }, { userId: 'r3', extension: '4321' }],
      field,
    );
    await createUser(ctx.handle, 'test', org.domain, { userId: 'r2' });
    await assert.rejects(insertBulkRows(ctx.handle, 'test', org, rows), (err: unknown) => {
      assert.ok(err instanceof ConflictError, String(err));
      assert.match(err.message, /user "r2" already exists/);
      return true;
    });
    const repo = new UserRepository(ctx.handle.db);
    assert.equal(await repo.get(org.id, 'r1'), undefined, 'nothing of the batch was written');
    assert.equal(await audited(`r1@${org.domain}`), 0, 'and no audit row');

    const again = await checkBulkRows(
      ctx.handle,
      org,
      [{ userId: 'r4' }, { userId: 'r5', extension: '4321' }],
      field,
    );
    await createUser(ctx.handle, 'test', org.domain, { userId: 'other', extension: '4321' });
    await assert.rejects(insertBulkRows(ctx.handle, 'test', org, again), /extension "4321" is already used/);
    assert.equal(await repo.get(org.id, 'r4'), undefined);
  });

  test('the repository’s multi-row insert names the duplicate, also one inside the batch', async () => {
    const repo = new UserRepository(ctx.handle.db);
    await repo.create(org.id, { userId: 'dup.base', extension: '7001' });
    await assert.rejects(
      ctx.handle.db
        .transaction()
        .execute((trx) =>
          new UserRepository(trx).createMany(org.id, [{ userId: 'fresh.a' }, { userId: 'dup.base' }]),
        ),
      /user "dup\.base" already exists/,
    );
    await assert.rejects(
      ctx.handle.db.transaction().execute((trx) =>
        new UserRepository(trx).createMany(org.id, [
          { userId: 'twice', extension: '7100' },
          { userId: 'twice', extension: '7101' },
        ]),
      ),
      /user "twice" already exists/,
    );
    await assert.rejects(
      ctx.handle.db
        .transaction()
        .execute((trx) =>
          new UserRepository(trx).createMany(org.id, [{ userId: 'ext.a', extension: '7001' }]),
        ),
      /extension "7001" is already used/,
    );
    assert.equal(await repo.get(org.id, 'fresh.a'), undefined);
  });

  test('numbers: a number of the range taken after the check', async () => {
    const numbers = new NumberRepository(ctx.handle.db);
    await numbers.add(org.id, '+46855500007');
    const range = ['+46855500005', '+46855500006', '+46855500007', '+46855500008'];
    await assert.rejects(
      ctx.handle.db.transaction().execute((trx) => new NumberRepository(trx).insertMany(org.id, range)),
      (err: unknown) => {
        assert.ok(err instanceof ConflictError, String(err));
        assert.equal(err.message, 'number +46855500007 is already taken');
        return true;
      },
    );
    assert.equal(await numbers.get(org.id, '+46855500005'), undefined, 'nothing of the range was added');
  });
});
