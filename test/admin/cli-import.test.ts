import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { sql } from 'kysely';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { forEachDialect, uniqueDomain } from '../db/helpers.js';
import { createOrganization } from '../../src/areas/organizations/service.js';
import { createUserGroup } from '../../src/areas/usergroups/service.js';
import { UserRepository } from '../../src/areas/users/repository.js';
import { parseCsv } from '../../src/cli/import.js';

/** The real CLI, as an operator runs it. */
const cli = ['bin/onecloud.js'];

test('CSV parsing: quotes, doubled quotes, CRLF, embedded newlines, BOM, blank lines', () => {
  const text = '\ufeffuserId,title\r\na,"Head, ""Sales"""\r\n\r\nb,"two\nlines"\nc,';
  assert.deepEqual(parseCsv(text), [
    { line: 1, cells: ['userId', 'title'] },
    { line: 2, cells: ['a', 'Head, "Sales"'] },
    { line: 4, cells: ['b', 'two\nlines'] },
    { line: 6, cells: ['c', ''] },
  ]);
});

forEachDialect('onecloud import users', (ctx) => {
  let dir: string;
  let domain: string;
  let orgId: number;
  let groupId: number;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'onecloud-import-'));
    domain = uniqueDomain('imp');
    const org = await createOrganization(ctx.handle, 'test', { domain, name: 'Import' });
    orgId = org.id;
    groupId = (await createUserGroup(ctx.handle, 'test', org, { name: 'Imported' })).id;
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const run = (file: string) =>
    spawnSync(process.execPath, [...cli, 'import', 'users', '--domain', domain, '--file', file], {
      env: {
        ...process.env,
        ONECLOUD_DATABASE_URL: ctx.url,
        ONECLOUD_DATA_DIR: dir,
        ONECLOUD_LOG_LEVEL: 'silent',
      },
      encoding: 'utf8',
      timeout: 120_000,
    });

  /** A trigger that makes inserting this user id fail (null: removes it). */
  async function failInsertsOf(userId: string | null): Promise<void> {
    const db = ctx.handle.db;
    if (ctx.dialect === 'sqlite') {
      await sql`drop trigger if exists fail_import`.execute(db);
      if (userId !== null)
        await sql`create trigger fail_import before insert on users when new.user_id = ${sql.lit(userId)}
          begin select raise(abort, 'forced failure'); end`.execute(db);
      return;
    }
    await sql`drop trigger if exists fail_import on users`.execute(db);
    if (userId === null) return;
    await sql`create or replace function fail_import() returns trigger language plpgsql as $$
      begin
        if new.user_id = ${sql.lit(userId)} then raise exception 'forced failure'; end if;
        return new;
      end $$`.execute(db);
    await sql`create trigger fail_import before insert on users for each row execute function fail_import()`.execute(
      db,
    );
  }

  test('a file with a bad row imports nothing and names the line; a failure in a later batch imports nothing; a good file imports with progress', async () => {
    const header = 'userId,First Name,last_name,email,extension,role,groups';
    const rows = Array.from(
      { length: 2500 },
      (_, i) => `imp${i},Imp,"User, ${i}",imp${i}@example.com,${5000 + i},USER,${i % 2 === 0 ? groupId : ''}`,
    );
    const bad = [...rows];
    bad[1200] = 'imp1200,Imp,User,not-an-email,,USER,';
    writeFileSync(join(dir, 'bad.csv'), [header, ...bad].join('\n'));
    const failed = run(join(dir, 'bad.csv'));
    assert.equal(failed.status, 1, failed.stdout + failed.stderr);
    assert.match(failed.stderr, /line 1202\.email: must be a valid email/);
    assert.equal(await new UserRepository(ctx.handle.db).count(orgId), 0, 'nothing imported');

    writeFileSync(join(dir, 'users.csv'), [header, ...rows].join('\r\n') + '\r\n');

    // A row that passes every check but fails in the database, in the second batch: one
    // transaction, so nothing is imported, and the failing batch's lines are named.
    await failInsertsOf('imp1500');
    const broken = run(join(dir, 'users.csv'));
    await failInsertsOf(null);
    assert.equal(broken.status, 1, broken.stdout + broken.stderr);
    assert.match(broken.stderr, /inserted 1000\/2500 users/);
    assert.match(
      broken.stderr,
      /the batch of lines 1002-2001 failed: .*forced failure.*; nothing was imported/,
    );
    assert.equal(await new UserRepository(ctx.handle.db).count(orgId), 0, 'the first batch is not kept');

    const ok = run(join(dir, 'users.csv'));
    assert.equal(ok.status, 0, ok.stdout + ok.stderr);
    assert.match(ok.stderr, /inserted 1000\/2500 users/);
    assert.match(ok.stderr, /inserted 2500\/2500 users/);
    assert.match(ok.stdout, new RegExp(`imported 2500 users into ${domain.replace(/\./g, '\\.')}`));
    const repo = new UserRepository(ctx.handle.db);
    assert.equal(await repo.count(orgId), 2500);
    const u = (await repo.get(orgId, 'imp7'))!;
    assert.equal(u.lastName, 'User, 7');
    assert.equal(u.extension, '5007');
    assert.deepEqual(
      (await repo.groupsOf(orgId, (await repo.get(orgId, 'imp8'))!.id)).map((g) => g.name),
      ['Imported'],
    );

    const again = run(join(dir, 'users.csv'));
    assert.equal(again.status, 1);
    assert.match(again.stderr, /line 2\.userId: user "imp0" already exists/);
  });
});
