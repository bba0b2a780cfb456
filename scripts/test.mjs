#!/usr/bin/env node
// Runs every test file under test/ with node:test (through tsx), in parallel processes.
// Node 20's --test takes no glob, so the files are listed here. Arguments narrow the run:
// `npm test -- test/http` runs only the files under that path.
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawn } from 'node:child_process';

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

const filters = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const extra = process.argv.slice(2).filter((a) => a.startsWith('--'));
let files = walk('test').sort();
if (filters.length > 0)
  files = files.filter((f) => filters.some((x) => f.startsWith(x) || relative('.', f).includes(x)));
if (files.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}
const concurrency = process.env.ONECLOUD_TEST_CONCURRENCY ?? '2';
const child = spawn(
  process.execPath,
  ['--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, ...extra, ...files],
  {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, ONECLOUD_LOG_LEVEL: process.env.ONECLOUD_LOG_LEVEL ?? 'silent' },
  },
);
let tail = '';
child.stdout.on('data', (d) => {
  process.stdout.write(d);
  tail = (tail + d.toString()).slice(-4000);
});
child.on('close', (code) => {
  const m = /# tests (\d+)/.exec(tail);
  if (!m || Number(m[1]) === 0) {
    console.error('test run executed no tests: failing');
    process.exit(1);
  }
  process.exit(code ?? 1);
});
