/**
 * Provisioning throughput of the admin API (issue 4): users created per second through
 * `POST /api/admin/users/{domain}/bulk` (1,000 a request) and through single
 * `POST /api/admin/users/{domain}`, over real HTTP with SNT-HMACv1-signed requests, on SQLite
 * (a file) and on PostgreSQL when ONECLOUD_TEST_DATABASE_URL is set. Target: 10,000 users in
 * under 10 s on SQLite.
 *
 * Passwords are the cost of a user (scrypt N=2^14, ~16 MiB, tens of ms on one core), so bulk
 * rows are measured without passwords (the operator sets or generates them later, or users get
 * them through a reset), and a separate, smaller run with a password on every row shows that
 * cost: hashed before the transaction with at most UV_THREADPOOL_SIZE (default 4) in flight.
 *
 * Run: npx tsx bench/provision.ts [users=10000] [single=1000] [withPasswords=500]
 */
import { startTestApp } from '../test/helpers/app.js';
import { openTestDatabase, PG_URL, type TestDatabase } from '../test/db/helpers.js';
import { createSystemTicket } from '../src/areas/tickets/service.js';
import { sntAuthorization } from '../src/security/tokens.js';
import type { DialectName } from '../src/db/dialects/index.js';

const TOTAL = Number(process.argv[2] ?? 10_000);
const SINGLE = Number(process.argv[3] ?? 1_000);
const WITH_PASSWORDS = Number(process.argv[4] ?? 500);
const BATCH = 1_000;

async function run(dialect: DialectName): Promise<void> {
  const tdb: TestDatabase = await openTestDatabase(dialect);
  const t = await startTestApp({ database: tdb.handle, config: { logLevel: 'silent' } });
  const base = await t.app.listen({ host: '127.0.0.1', port: 0 });
  const { token, secret } = await createSystemTicket(tdb.handle, t.config, 'bench', { scopes: ['ADMIN'] });
  const call = async (method: string, path: string, body: unknown) => {
    const payload = JSON.stringify(body);
    const res = await fetch(base + path, {
      method,
      headers: {
        authorization: sntAuthorization({ token, secret, method, pathAndQuery: path, body: payload }),
        'content-type': 'application/json',
        accept: 'application/json',
      },
      body: payload,
    });
    const text = await res.text();
    if (res.status !== 201) throw new Error(`${method} ${path}: ${res.status} ${text.slice(0, 300)}`);
  };
  const org = async (domain: string) => call('POST', '/api/admin/organizations', { domain, name: domain });
  const user = (prefix: string, i: number, password?: string) => ({
    userId: `${prefix}${i}`,
    firstName: 'Bench',
    lastName: `User ${i}`,
    email: `${prefix}${i}@example.com`,
    extension: String(100000 + i),
    ...(password ? { password } : {}),
  });

  // Bulk: TOTAL users, 1,000 a request, no passwords.
  await org('bulk.bench.example');
  let started = performance.now();
  for (let i = 0; i < TOTAL; i += BATCH) {
    const users = Array.from({ length: Math.min(BATCH, TOTAL - i) }, (_, k) => user('b', i + k));
    await call('POST', '/api/admin/users/bulk.bench.example/bulk', { users });
  }
  const bulkSeconds = (performance.now() - started) / 1000;
  const bulkRate = TOTAL / bulkSeconds;

  // Bulk with a password on every row.
  await org('pw.bench.example');
  started = performance.now();
  for (let i = 0; i < WITH_PASSWORDS; i += BATCH) {
    const users = Array.from({ length: Math.min(BATCH, WITH_PASSWORDS - i) }, (_, k) =>
      user('p', i + k, `password number ${i + k}`),
    );
    await call('POST', '/api/admin/users/pw.bench.example/bulk', { users });
  }
  const pwRate = WITH_PASSWORDS / ((performance.now() - started) / 1000);

  // Single creates, one request at a time (what a naive provisioning script does).
  await org('single.bench.example');
  started = performance.now();
  for (let i = 0; i < SINGLE; i++) await call('POST', '/api/admin/users/single.bench.example', user('s', i));
  const singleRate = SINGLE / ((performance.now() - started) / 1000);

  const target =
    dialect === 'sqlite'
      ? bulkSeconds < 10 && TOTAL >= 10_000
        ? ' (target < 10 s: met)'
        : ' (target < 10 s: NOT met)'
      : '';
  console.log(`\n${dialect}`);
  console.log(
    `  bulk, no passwords:   ${TOTAL} users in ${bulkSeconds.toFixed(2)} s = ${bulkRate.toFixed(0)} users/s${target}`,
  );
  console.log(`  bulk, with passwords: ${pwRate.toFixed(0)} users/s (${WITH_PASSWORDS} users; scrypt bound)`);
  console.log(`  single creates:       ${singleRate.toFixed(0)} users/s (${SINGLE} sequential requests)`);
  console.log(`  ratio bulk/single:    ${(bulkRate / singleRate).toFixed(1)}x`);
  await t.close();
  await tdb.cleanup();
}

console.log(
  `Provisioning benchmark: ${TOTAL} bulk users, ${SINGLE} single creates, ${WITH_PASSWORDS} bulk users with passwords`,
);
await run('sqlite');
if (PG_URL) await run('postgres');
else console.log('\npostgres: skipped (set ONECLOUD_TEST_DATABASE_URL)');
