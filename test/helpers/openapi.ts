import { startTestApp } from './app.js';

/** The OpenAPI document of the real app, as committed in openapi.json (stable formatting). */
export async function buildOpenApiDocument(): Promise<string> {
  const t = await startTestApp();
  try {
    return JSON.stringify(t.app.swagger(), null, 2) + '\n';
  } finally {
    await t.close();
  }
}
