/**
 * The platform layer's cost: a JSON GET through the whole stack (negotiation, validation, error
 * handling, request logging, metrics) against the same handler on a bare Fastify, in one run.
 * Run: npm run bench   (or: npx tsx bench/http.ts [seconds])
 */
import Fastify from 'fastify';
import { Type } from 'typebox';
import { createWriteStream } from 'node:fs';
import { startTestApp } from '../test/helpers/app.js';
import { createLogger } from '../src/http/logging.js';
import { buildApp } from '../src/app.js';
import { compare, ratio, row } from './load.js';

const seconds = Number(process.argv[2] ?? 4);
const Reply = Type.Object({ id: Type.Integer(), name: Type.String(), tags: Type.Array(Type.String()) });
const handler = async () => ({ id: 42, name: 'bench', tags: ['a', 'b', 'c'] });

// Bare Fastify: no logger, the same handler and response schema.
const bare = Fastify({ logger: false });
bare.get('/api/bench/item', { schema: { response: { 200: Reply } } }, handler);
const bareUrl = await bare.listen({ host: '127.0.0.1', port: 0 });

// The whole platform, logging at info to /dev/null (a real file write per line).
const base = await startTestApp();
await base.app.close();
const full = await buildApp({
  config: base.config,
  database: base.database,
  logger: createLogger('info', createWriteStream('/dev/null')),
  extraApi: async (api) => {
    api.get(
      '/api/bench/item',
      { schema: { response: { 200: Reply } }, config: { access: { kind: 'public' } } },
      handler,
    );
  },
});
const fullUrl = await full.listen({ host: '127.0.0.1', port: 0 });

const rounds = 3;
console.log(
  `HTTP platform layer: ${rounds} interleaved rounds of ${seconds} s per contender, 10 connections, loopback, load from a separate process (medians)`,
);
const [b, f, x] = await compare(
  [
    { name: 'bare', url: `${bareUrl}/api/bench/item` },
    { name: 'json', url: `${fullUrl}/api/bench/item`, headers: { accept: 'application/json' } },
    { name: 'xml', url: `${fullUrl}/api/bench/item`, headers: { accept: 'application/xml' } },
  ],
  { rounds, seconds },
);
console.log(row('bare Fastify (baseline)', b!.median));
console.log(row('full stack, JSON', f!.median));
console.log(row('full stack, XML', x!.median));
console.log(`ratio full/bare (JSON): ${ratio(f!, b!)}`);
console.log(`ratio full/bare (XML):  ${ratio(x!, b!)}`);
await bare.close();
await full.close();
await base.database.close();
