import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { buildOpenApiDocument } from '../helpers/openapi.js';
import { startTestApp } from '../helpers/app.js';

test('the committed openapi.json matches the code (run `npm run openapi` after changing a route)', async () => {
  const generated = await buildOpenApiDocument();
  const committed = readFileSync('openapi.json', 'utf8');
  assert.ok(generated === committed, 'openapi.json is stale: run `npm run openapi` and commit it');
});

test('the document is served, with a docs page whose assets are local', async () => {
  const t = await startTestApp();
  try {
    const doc = await t.app.inject({ url: '/api/openapi.json' });
    assert.equal(doc.statusCode, 200);
    const parsed = JSON.parse(doc.body) as { openapi: string; paths: Record<string, unknown> };
    assert.equal(parsed.openapi, '3.1.0');
    assert.ok(parsed.paths['/api/device/info/v1/shortlist/{domain}/{user}']);
    const page = await t.app.inject({ url: '/api/docs/' });
    assert.equal(page.statusCode, 200);
    assert.doesNotMatch(page.body, /https?:\/\/(?!127\.0\.0\.1|localhost)[a-z]/i, 'no CDN');
    const health = await t.app.inject({ url: '/healthz' });
    assert.deepEqual(JSON.parse(health.body), { status: 'ok', database: 'sqlite' });
    const metrics = await t.app.inject({ url: '/metrics' });
    assert.match(metrics.body, /onecloud_http_request_duration_seconds/);
  } finally {
    await t.close();
  }
});
