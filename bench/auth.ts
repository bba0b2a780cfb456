/**
 * Authentication's cost: the device shortlist with a Bearer ticket (one indexed lookup: the
 * ticket, its user and the External API grant in one query; an HMAC, no slow hash) against the
 * same handler without authentication and against a bare Fastify route, in one run.
 * Run: npx tsx bench/auth.ts [seconds]
 */
import Fastify from 'fastify';
import { createWriteStream } from 'node:fs';
import { startTestApp } from '../test/helpers/app.js';
import { addSoftphone, seedOrg, userToken } from '../test/helpers/fixtures.js';
import { createLogger } from '../src/http/logging.js';
import { buildApp } from '../src/app.js';
import { DeviceRepository } from '../src/areas/devices/repository.js';
import { compare, ratio, row } from './load.js';
import { Type } from 'typebox';
import { DomainUserParams } from '../src/http/schemas.js';
import { DeviceShortSchema } from '../src/areas/devices/schemas.js';

const seconds = Number(process.argv[2] ?? 4);

const base = await startTestApp();
await base.app.close();
const o = await seedOrg(base.database, base.config, [{ userId: 'alice' }]);
await addSoftphone(base.database, o, 'alice', 'Desk softphone');
await addSoftphone(base.database, o, 'alice', 'Laptop softphone');
const token = await userToken(base.database, base.config, o, 'alice', ['USER_INFO']);
const alice = o.users.alice!;

const shortlist = async () => {
  const devices = await new DeviceRepository(base.database.db).listByUser(o.org.id, alice.id);
  return devices.map((d) => ({
    deviceId: d.deviceId,
    deviceType: d.kind,
    deviceName: d.name,
    deviceIcon: d.icon,
  }));
};

const full = await buildApp({
  config: base.config,
  database: base.database,
  logger: createLogger('info', createWriteStream('/dev/null')),
  extraApi: async (api) => {
    // The same route options as the real shortlist (params and response schemas), minus access.
    api.get(
      '/api/bench/shortlist/:domain/:user',
      {
        schema: { params: DomainUserParams, response: { 200: Type.Array(DeviceShortSchema) } },
        config: { access: { kind: 'public' } },
      },
      shortlist,
    );
  },
});
const fullUrl = await full.listen({ host: '127.0.0.1', port: 0 });
const bare = Fastify({ logger: false });
bare.get(
  '/api/bench/shortlist/:domain/:user',
  { schema: { params: DomainUserParams, response: { 200: Type.Array(DeviceShortSchema) } } },
  shortlist,
);
const bareUrl = await bare.listen({ host: '127.0.0.1', port: 0 });

const authed = `${fullUrl}/api/device/info/v1/shortlist/${o.domain}/alice`;
const headers = { authorization: `Bearer ${token}` };
const check = await fetch(authed, { headers });
if (check.status !== 200) throw new Error(`shortlist answered ${check.status}: ${await check.text()}`);

const rounds = 3;
console.log(
  `Authentication: ${rounds} interleaved rounds of ${seconds} s per contender, 10 connections, SQLite, loopback, load from a separate process (medians)`,
);
const [a, n, b] = await compare(
  [
    { name: 'authed', url: authed, headers },
    { name: 'open', url: `${fullUrl}/api/bench/shortlist/${o.domain}/alice` },
    { name: 'bare', url: `${bareUrl}/api/bench/shortlist/${o.domain}/alice` },
  ],
  { rounds, seconds },
);
console.log(row('shortlist, Bearer ticket (full stack)', a!.median));
console.log(row('same handler, no authentication (full stack)', n!.median));
console.log(row('same handler, bare Fastify (baseline)', b!.median));
console.log(`ratio authenticated/unauthenticated: ${ratio(a!, n!)}`);
console.log(`ratio authenticated/bare:            ${ratio(a!, b!)}`);
await full.close();
await bare.close();
await base.database.close();
