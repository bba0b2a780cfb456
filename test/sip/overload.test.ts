/**
 * Overload control (src/sip/overload.ts): the admission rule on its own, then the server under a
 * real flood of INVITEs over UDP on loopback from another process. While the receive queue stays
 * behind, new calls and registrations without credentials get a stateless 503 with Retry-After;
 * requests that answer a challenge, requests inside a dialog and OPTIONS go on; once the flood
 * stops, calls are taken again.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { once } from 'node:events';
import { Registry } from 'prom-client';
import { readConfig } from '../../src/config.js';
import { registerSipMetrics } from '../../src/sip/metrics.js';
import { OverloadControl, retryAfterSeconds } from '../../src/sip/overload.js';
import {
  generateBranch,
  generateCallId,
  generateTag,
  getHeader,
  parseUri,
  type SipRequest,
  type SipResponse,
} from '../../src/sip/message.js';
import { telephony, waitFor, type Telephony } from './peers.js';
import { contact, credentials, invite, request, tcpPeer, ua, type Ua } from './node-ua.js';

describe('overload control: the admission rule', () => {
  const near = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-9, `${a} is not ${b}`);

  test('one stall sheds nothing; a queue that stays behind is refused in proportion to its excess delay', () => {
    const c = new OverloadControl({ targetDelayMs: 100 });
    const seen: boolean[] = [];
    c.onTransition((shedding) => seen.push(shedding));
    // A stall: the tick sees probe 1 still out, then probe 1 arrives late. One late measurement.
    c.measure(150, 1, false);
    c.measure(180, 1, true);
    assert.equal(c.stats.shedShare, 0);
    assert.equal(c.admit(), true);
    // Probe 2 is late too, over two ticks: the queue stays behind (three late measurements by
    // default). Share = (delay - target) / target.
    c.measure(120, 2, false);
    assert.equal(c.stats.shedShare, 0);
    c.measure(150, 2, false);
    near(c.stats.shedShare, 0.5);
    c.measure(160, 2, true);
    near(c.stats.shedShare, 0.6);
    assert.equal(c.stats.delayMs, 160);
    assert.deepEqual(seen, [true]);
    assert.equal(c.stats.episodes, 1);
  });

  test('a probe that stays out past the target: every tick counts, so shedding starts at the third', () => {
    const c = new OverloadControl({ targetDelayMs: 100 });
    c.measure(50, 1, false);
    c.measure(100, 1, false);
    c.measure(150, 1, false);
    c.measure(160, 1, false);
    assert.equal(c.stats.shedShare, 0);
    c.measure(170, 1, false);
    near(c.stats.shedShare, 0.7);
    // Its arrival is no new late measurement, but it is late: the share follows the delay.
    c.measure(180, 1, true);
    near(c.stats.shedShare, 0.8);
  });

  test('the share rises at once, is at most 1, and falls by `release` a measurement to exactly 0; a probe out for less than the target proves nothing', () => {
    const c = new OverloadControl({ targetDelayMs: 100, release: 0.25, lateBeforeShedding: 2 });
    const seen: boolean[] = [];
    c.onTransition((shedding) => seen.push(shedding));
    c.measure(300, 1, true);
    c.measure(300, 2, true);
    assert.equal(c.stats.shedShare, 1);
    // Probe 3 is out 50 ms so far: no measurement (neither late nor on time).
    c.measure(50, 3, false);
    assert.equal(c.stats.shedShare, 1);
    assert.equal(c.stats.delayMs, 300);
    // Still late but less: the share falls no faster than `release`.
    c.measure(110, 3, true);
    assert.equal(c.stats.shedShare, 0.75);
    for (let probe = 4; probe < 7; probe++) c.measure(5, probe, true);
    assert.equal(c.stats.shedShare, 0);
    assert.deepEqual(seen, [true, false]);
    // After an on-time probe the count of late measurements starts again.
    c.measure(300, 7, true);
    assert.equal(c.stats.shedShare, 0);
  });

  test('admit() refuses that share of requests (with the gain) and counts them', () => {
    let r = 0;
    const c = new OverloadControl({
      targetDelayMs: 10,
      lateBeforeShedding: 1,
      gain: 0.5,
      release: 0.5,
      random: () => r,
    });
    c.measure(30, 1, true);
    assert.equal(c.stats.shedShare, 1);
    c.measure(18, 2, true);
    assert.equal(c.stats.shedShare, 0.5);
    r = 0.49;
    assert.equal(c.admit(), false);
    r = 0.5;
    assert.equal(c.admit(), true);
    assert.equal(c.stats.shed, 1);
  });

  test('options are checked; Retry-After is 1 to 3 s', () => {
    assert.throws(() => new OverloadControl({ targetDelayMs: 0 }), /targetDelayMs/);
    assert.throws(() => new OverloadControl({ gain: 0 }), /gain/);
    assert.throws(() => new OverloadControl({ release: 1.5 }), /release/);
    assert.throws(() => new OverloadControl({ intervalMs: -1 }), /intervalMs/);
    assert.throws(() => new OverloadControl({ lateBeforeShedding: 0.5 }), /lateBeforeShedding/);
    assert.deepEqual(
      [0, 0.34, 0.67, 0.999].map((x) => retryAfterSeconds(() => x)),
      [1, 2, 3, 3],
    );
  });
});

/**
 * A process that sends the server INVITEs without credentials, `perTick` every 10 ms until
 * killed (at most `ms`). Their Via names the collector's port (no rport), so the answers go there.
 */
function flood(o: {
  serverPort: number;
  collectorPort: number;
  domain: string;
  perTick: number;
  ms: number;
}): ChildProcess {
  const script = `
const dgram = require('node:dgram');
const [port, collector, perTick, ms] = process.argv.slice(1).map(Number);
const domain = process.argv[5];
const s = dgram.createSocket('udp4');
let n = 0;
const end = Date.now() + ms;
function burst() {
  if (Date.now() > end) return s.close();
  for (let i = 0; i < perTick; i++) {
    n++;
    s.send(
      'INVITE sip:nobody@' + domain + ' SIP/2.0\\r\\n' +
      'Via: SIP/2.0/UDP 127.0.0.1:' + collector + ';branch=z9hG4bKflood' + process.pid + 'x' + n + '\\r\\n' +
      'Max-Forwards: 70\\r\\n' +
      'From: <sip:flood@' + domain + '>;tag=f' + n + '\\r\\n' +
      'To: <sip:nobody@' + domain + '>\\r\\n' +
      'Call-ID: flood-' + process.pid + '-' + n + '\\r\\n' +
      'CSeq: 1 INVITE\\r\\n' +
      'Content-Length: 0\\r\\n\\r\\n',
      port, '127.0.0.1');
  }
  setTimeout(burst, 10);
}
burst();
`;
  return spawn(
    process.execPath,
    ['-e', script, String(o.serverPort), String(o.collectorPort), String(o.perTick), String(o.ms), o.domain],
    { stdio: 'ignore' },
  );
}

describe('overload control: the server under a flood of INVITEs', () => {
  let t: Telephony;
  let phone: Ua;
  let collector: Socket;
  const answers = new Map<number, number>();
  const retryAfter = new Set<string>();
  const warnings: string[] = [];
  before(async () => {
    t = await telephony(['alice'], {
      // Always refuse while shedding (random 0), so what is and is not refused shows at once.
      overload: { targetDelayMs: 20, intervalMs: 10, random: () => 0 },
      logger: { debug() {}, error() {}, warn: (_o, msg) => warnings.push(msg) },
    });
    phone = await ua(() => t.server.port);
    collector = createSocket('udp4');
    collector.on('message', (data) => {
      const text = data.toString('latin1');
      const status = Number(/^SIP\/2\.0 (\d{3})/.exec(text)?.[1]);
      answers.set(status, (answers.get(status) ?? 0) + 1);
      const ra = /\r\nRetry-After: *([^\r]*)/i.exec(text)?.[1];
      if (status === 503 && ra !== undefined) retryAfter.add(ra);
    });
    collector.bind(0, '127.0.0.1');
    await once(collector, 'listening');
  });
  after(async () => {
    collector.close();
    await phone.close();
    await t.close();
  });
  const alice = () => t.accounts.alice!;
  const udp = () => ({ transport: 'UDP' as const, port: phone.transport.port });

  test('before the flood: nothing is shed and the queue is measured', async () => {
    await waitFor('a probe', () => t.server.stats.overload && t.server.stats.overload.delayMs > 0, 5000);
    const res = await phone.send(invite(udp(), alice(), 'nobody'));
    assert.equal(res.status, 407);
    assert.equal(t.server.stats.overload?.shed, 0);
    assert.equal(t.server.stats.overload?.shedShare, 0);
  });

  test('while the queue stays behind: 503 with Retry-After to new calls and registrations; answers to challenges, in-dialog requests and OPTIONS go on; afterwards calls are taken again', async () => {
    const flooder = flood({
      serverPort: t.server.port,
      collectorPort: collector.address().port,
      domain: alice().domain,
      perTick: 200,
      ms: 20_000,
    });
    try {
      await waitFor('shedding', () => (t.server.stats.overload?.shedShare ?? 0) > 0, 15_000);
      await waitFor('a 503 to the flood', () => answers.get(503), 10_000);
      assert.ok(answers.get(407), 'the flood was answered 407 before shedding started');
      assert.ok(
        [...retryAfter].every((v) => ['1', '2', '3'].includes(v)),
        [...retryAfter].join(),
      );
      assert.ok(retryAfter.size > 0);

      // The requests below go over TCP: the flood keeps the UDP socket's kernel buffer full, so
      // a datagram of ours would mostly be dropped before the server saw it (on a busy machine,
      // every retransmission of it too). Refusal is the same on every transport.
      const peer = await tcpPeer(t.server.port);
      try {
        const tcp = (req: SipRequest): SipRequest => ({
          ...req,
          headers: req.headers.map((h) =>
            h.name === 'Via'
              ? { name: 'Via', value: `SIP/2.0/TCP 127.0.0.1:${peer.port};branch=${generateBranch()};rport` }
              : h,
          ),
        });
        const send = async (req: SipRequest): Promise<SipResponse> => {
          const callId = getHeader(req, 'Call-ID');
          peer.write(req);
          const answer = peer.next(
            (m) => m.type === 'response' && m.status >= 200 && getHeader(m, 'Call-ID') === callId,
          ) as Promise<SipResponse>;
          let timer: NodeJS.Timeout | undefined;
          const late = new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new Error(`no answer over TCP to ${req.method}`)), 20_000);
          });
          try {
            return await Promise.race([answer, late]);
          } finally {
            clearTimeout(timer);
          }
        };
        const tcpVia = { transport: 'TCP' as const, port: peer.port };

        // New work without credentials: refused. The share refused follows the queue (after the
        // flood's 503s drained it, it falls, the queue grows again, it rises), so a request may
        // land where it is 0 and be challenged: then it is sent again, a bounded number of times.
        const refused = async (make: () => SipRequest, admitted: number): Promise<SipResponse> => {
          for (let attempt = 0; attempt < 50; attempt++) {
            const res = await send(make());
            if (res.status === 503) return res;
            assert.equal(res.status, admitted);
          }
          assert.fail('never refused');
        };
        await refused(() => invite(tcpVia, alice(), 'nobody'), 407);
        const reg = await refused(
          () => tcp(request(phone, 'REGISTER', alice(), [contact(phone, 'alice')], generateCallId(), 1)),
          401,
        );
        assert.match(getHeader(reg, 'Retry-After') ?? '', /^[123]$/);

        // Requests that are never refused, wherever they land: an INVITE that answers a challenge
        // (these credentials are made up, so the B2BUA does not take them, but it does not 503).
        const uri = `sip:nobody@${alice().domain}`;
        const stale = credentials(
          alice(),
          { realm: alice().domain, nonce: 'bm90LWEtbm9uY2U' },
          { method: 'INVITE', uri },
        );
        const withCredentials = await send(
          invite(tcpVia, alice(), 'nobody', { headers: [{ name: 'Proxy-Authorization', value: stale }] }),
        );
        assert.notEqual(withCredentials.status, 503);

        // Inside a dialog (To has a tag): not new work; no such dialog here, so 481.
        const bye: SipRequest = {
          ...tcp(request(phone, 'BYE', alice(), [], generateCallId(), 2)),
          uri: parseUri(`sip:nobody@${alice().domain}`),
        };
        bye.headers = bye.headers.map((h) =>
          h.name === 'To' ? { name: 'To', value: `${h.value};tag=${generateTag()}` } : h,
        );
        assert.equal((await send(bye)).status, 481);
        // OPTIONS (keep-alive) is answered.
        assert.equal(
          (await send(tcp(request(phone, 'OPTIONS', alice(), [], generateCallId(), 1)))).status,
          200,
        );
      } finally {
        peer.close();
      }
      const during = t.server.stats.overload!;
      assert.ok(during.shed >= 3, `shed ${during.shed}`);
      assert.ok(during.episodes >= 1);
    } finally {
      flooder.kill('SIGKILL');
    }
    await waitFor('shedding to stop', () => t.server.stats.overload?.shedShare === 0, 20_000);
    // The figures on /metrics (scraped twice: counters follow the totals, nothing counted twice).
    const registry = new Registry();
    registerSipMetrics(registry, () => t.server.stats);
    const scrape = async (name: string): Promise<number> => {
      const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(await registry.metrics());
      assert.ok(m, `${name} is not on /metrics`);
      return Number(m[1]);
    };
    const after = t.server.stats.overload!;
    for (let i = 0; i < 2; i++) {
      assert.equal(await scrape('onecloud_sip_overload_shed_total'), after.shed);
      assert.equal(await scrape('onecloud_sip_overload_episodes_total'), after.episodes);
      assert.equal(await scrape('onecloud_sip_overload_shed_ratio'), 0);
      assert.ok((await scrape('onecloud_sip_receive_queue_delay_seconds')) >= 0);
      assert.equal(await scrape('onecloud_sip_active_calls'), 0);
    }
    assert.ok(
      warnings.some((w) => w.startsWith('SIP: overloaded')),
      warnings.join('\n'),
    );
    assert.ok(
      warnings.some((w) => w.startsWith('SIP: no longer overloaded')),
      warnings.join('\n'),
    );
    const res = await phone.send(invite(udp(), alice(), 'nobody'));
    assert.equal(res.status, 407);
  });
});

describe('overload control: configuration', () => {
  test('ONECLOUD_SIP_OVERLOAD_DELAY_MS: 200 ms by default, 0 turns it off, anything else is refused with the name', () => {
    assert.equal(readConfig({}).sip.overloadDelayMs, 200);
    assert.equal(readConfig({ ONECLOUD_SIP_OVERLOAD_DELAY_MS: '0' }).sip.overloadDelayMs, 0);
    assert.equal(readConfig({ ONECLOUD_SIP_OVERLOAD_DELAY_MS: '350' }).sip.overloadDelayMs, 350);
    assert.throws(
      () => readConfig({ ONECLOUD_SIP_OVERLOAD_DELAY_MS: 'fast' }),
      /ONECLOUD_SIP_OVERLOAD_DELAY_MS/,
    );
  });

  test('overload: false measures nothing and refuses nothing', async () => {
    const t = await telephony(['alice'], { overload: false });
    try {
      assert.equal(t.server.stats.overload, undefined);
    } finally {
      await t.close();
    }
  });
});
