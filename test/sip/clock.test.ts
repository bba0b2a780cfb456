import { test } from 'node:test';
import assert from 'node:assert/strict';
import { realClock } from '../../src/sip/clock.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('real clock: a timer fires once after its delay; a cancelled one never does', async () => {
  const fired: string[] = [];
  const started = Date.now();
  let at = 0;
  realClock.setTimer(20, () => {
    fired.push('a');
    at = Date.now() - started;
  });
  const b = realClock.setTimer(20, () => fired.push('b'));
  b.cancel();
  await sleep(80);
  assert.deepEqual(fired, ['a']);
  assert.ok(at >= 19, `fired after ${at} ms`);
});

test('real clock: a timer cancelled once due but before its turn does not run', async () => {
  const fired: string[] = [];
  const t = realClock.setTimer(10, () => fired.push('t'));
  // Same delay, armed after: Node runs it right after the SIP timer came due, in the same timers
  // phase, before the SIP timer's turn after the poll phase.
  setTimeout(() => {
    fired.push('cancel');
    t.cancel();
  }, 10);
  await sleep(60);
  assert.deepEqual(fired, ['cancel']);
  t.cancel(); // twice is harmless
});
