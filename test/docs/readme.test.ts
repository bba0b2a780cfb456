/**
 * The README's admin API examples are run, in order, against the real app over HTTP, each
 * request signed with SNT-HMACv1 exactly as `onecloud api` signs it: if a path, a field or a
 * status changes, the README must change with it.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { forEachDialect } from '../db/helpers.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { systemTicket } from '../helpers/fixtures.js';
import { sntAuthorization } from '../../src/security/tokens.js';

export interface ExampleStep {
  line: number;
  text: string;
  kind: 'call' | 'capture';
  method?: string;
  path?: string;
  data?: string;
  name?: string;
  field?: string;
}

/** The steps of the README block between `<!-- name:begin -->` and `<!-- name:end -->`. */
export function readmeSteps(name: string, readme = readFileSync('README.md', 'utf8')): ExampleStep[] {
  const begin = readme.indexOf(`<!-- ${name}:begin -->`);
  const end = readme.indexOf(`<!-- ${name}:end -->`);
  assert.ok(begin >= 0 && end > begin, `README.md has no ${name} block`);
  const firstLine = readme.slice(0, begin).split('\n').length;
  const steps: ExampleStep[] = [];
  readme
    .slice(begin, end)
    .split('\n')
    .forEach((raw, i) => {
      const text = raw.trim();
      const line = firstLine + i;
      const call =
        /^npx onecloud api (GET|POST|PUT|DELETE|PATCH) ('([^']+)'|(\S+))(?: --data '([^']*)')?$/.exec(text);
      if (call) {
        steps.push({
          line,
          text,
          kind: 'call',
          method: call[1]!,
          path: call[3] ?? call[4]!,
          ...(call[5] !== undefined ? { data: call[5] } : {}),
        });
        return;
      }
      const capture = /^([A-Z]+)=\S+\s+# the (\w+) from that answer$/.exec(text);
      if (capture) {
        steps.push({ line, text, kind: 'capture', name: capture[1]!, field: capture[2]! });
        return;
      }
      assert.ok(
        text === '' || text.startsWith('#') || text.startsWith('```') || text.startsWith('<!--'),
        `README.md:${line}: not an example the test understands: ${text}`,
      );
    });
  return steps;
}

forEachDialect('README admin API examples', (ctx) => {
  let t: TestApp;
  let base: string;
  before(async () => {
    t = await startTestApp({ database: ctx.handle, url: ctx.url });
    base = await t.app.listen({ host: '127.0.0.1', port: 0 });
  });
  after(async () => t.close());

  test('every onecloud api example answers 2xx, in order, signed with a system ticket', async () => {
    const steps = readmeSteps('admin-examples');
    assert.ok(steps.filter((s) => s.kind === 'call').length >= 30, 'the examples cover every resource group');
    const ticket = await systemTicket(ctx.handle, t.config, ['ADMIN']);
    const vars: Record<string, string> = {};
    let last: unknown = null;
    for (const step of steps) {
      if (step.kind === 'capture') {
        const value = (last as Record<string, unknown> | null)?.[step.field!];
        assert.ok(
          typeof value === 'string' || typeof value === 'number',
          `README.md:${step.line}: the previous answer has no ${step.field}`,
        );
        vars[step.name!] = String(value);
        continue;
      }
      const path = step.path!.replace(/\$([A-Z]+)/g, (_, v: string) => {
        assert.ok(v in vars, `README.md:${step.line}: $${v} is not set above`);
        return vars[v]!;
      });
      const body = step.data ?? '';
      const res = await fetch(base + path, {
        method: step.method!,
        headers: {
          authorization: sntAuthorization({ ...ticket, method: step.method!, pathAndQuery: path, body }),
          accept: 'application/json',
          ...(body !== '' ? { 'content-type': 'application/json' } : {}),
        },
        ...(body !== '' ? { body } : {}),
      });
      const text = await res.text();
      assert.ok(res.ok, `README.md:${step.line}: ${step.text}\n→ ${res.status} ${text}`);
      last = text === '' ? null : JSON.parse(text);
    }
  });
});

test('every environment variable the configuration reads is documented in the README', () => {
  const config = readFileSync('src/config.ts', 'utf8');
  const readme = readFileSync('README.md', 'utf8');
  const names = [...new Set([...config.matchAll(/\b(ONECLOUD_[A-Z0-9_]*[A-Z0-9])\b/g)].map((m) => m[1]!))];
  assert.ok(names.length >= 20, `found ${names.length} variables`);
  const documented = (name: string) =>
    readme.includes(`\`${name}\``) ||
    // `ONECLOUD_SIP_T1_MS` / `_T2_MS` style rows name the variants by their suffix
    readme.includes(`\`_${name.split('_').slice(-2).join('_')}\``);
  const missing = names.filter((n) => !documented(n));
  assert.deepEqual(missing, [], 'add these to the README configuration table');
});
