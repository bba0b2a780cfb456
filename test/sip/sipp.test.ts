/**
 * Interop with a real SIP peer: Debian's sipp drives the transport and transaction layers (with a
 * tiny UAS standing in for the TU) over UDP and TCP on loopback. Skipped when sipp is not installed.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createResponse, type SipRequest } from '../../src/sip/message.js';
import { SipTransportLayer } from '../../src/sip/transport.js';
import { TransactionLayer } from '../../src/sip/transaction.js';

const hasSipp = spawnSync('sipp', ['-v'], { stdio: 'ignore' }).error === undefined;

async function withUas(fn: (port: number, seen: string[]) => Promise<void>): Promise<void> {
  const transport = await SipTransportLayer.start({ host: '127.0.0.1', port: 0 });
  const seen: string[] = [];
  const layer = new TransactionLayer({
    transport,
    onRequest(req: SipRequest, tx) {
      seen.push(req.method);
      if (!tx) return; // ACK for a 2xx
      const status = req.method === 'INVITE' || req.method === 'BYE' || req.method === 'OPTIONS' ? 200 : 501;
      if (req.method === 'INVITE') tx.respond(createResponse(req, 180, { toTag: 'uas' }));
      tx.respond(createResponse(req, status, { toTag: 'uas' }));
    },
  });
  transport.onMessage((m, source) => layer.receive(m, source));
  try {
    await fn(transport.port, seen);
  } finally {
    layer.close();
    await transport.close();
  }
}

/** Runs sipp to completion in a scratch directory (it writes logs to its cwd); resolves its exit code. */
function sipp(args: string[]): Promise<{ code: number | null; output: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'sipp-'));
  return new Promise((resolvePromise) => {
    const child = spawn('sipp', [...args, '-nostdin', '-m', '1', '-timeout', '15s', '-timeout_error'], {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('close', (code) => {
      rmSync(dir, { recursive: true, force: true });
      resolvePromise({ code, output: output.slice(-2000) });
    });
  });
}

describe('sipp interop', { skip: hasSipp ? false : 'sipp is not installed' }, () => {
  for (const [flag, kind] of [
    ['u1', 'UDP'],
    ['t1', 'TCP'],
  ] as const) {
    test(`OPTIONS → 200 over ${kind}`, async () => {
      await withUas(async (port, seen) => {
        const scenario = resolve('test/sip/scenarios/options-uac.xml');
        const r = await sipp([
          `127.0.0.1:${port}`,
          '-sf',
          scenario,
          '-t',
          flag,
          '-i',
          '127.0.0.1',
          '-p',
          '0',
        ]);
        assert.equal(r.code, 0, r.output);
        assert.deepEqual(seen, ['OPTIONS']);
      });
    });

    test(`built-in uac call (INVITE/180/200/ACK/BYE) over ${kind}`, async () => {
      await withUas(async (port, seen) => {
        const r = await sipp([
          `127.0.0.1:${port}`,
          '-sn',
          'uac',
          '-t',
          flag,
          '-i',
          '127.0.0.1',
          '-p',
          '0',
          '-d',
          '0',
        ]);
        assert.equal(r.code, 0, r.output);
        assert.deepEqual(seen, ['INVITE', 'ACK', 'BYE']);
      });
    });
  }
});
