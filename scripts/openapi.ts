/**
 * Writes the OpenAPI document generated from the route schemas to openapi.json (committed; a
 * test fails when it drifts from the code). Run: npm run openapi
 */
import { writeFileSync } from 'node:fs';
import { buildOpenApiDocument } from '../test/helpers/openapi.js';

const doc = await buildOpenApiDocument();
writeFileSync('openapi.json', doc);
console.log(`openapi.json written (${doc.length} bytes)`);
