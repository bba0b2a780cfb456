/**
 * The quick path of overload control (src/sip/quick-reject.ts): what it reads out of a datagram
 * without parsing it, what it leaves to the full parser, and the 503 it builds (checked by parsing
 * it in full). The server under a real flood, whose 503s come from this path, is in
 * overload.test.ts.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { QUICK_TAG_PREFIX, quickResponse, quickScan, type QuickRequest } from '../../src/sip/quick-reject.js';
import {
  getHeader,
  getHeaders,
  getTo,
  parseMessage,
  tagOf,
  type SipResponse,
} from '../../src/sip/message.js';
import type { Endpoint } from '../../src/sip/transport.js';
import { int, pick, prng, TORTURE_DIR } from './helpers.js';

const source: Endpoint = { transport: 'udp', address: '192.0.2.7', port: 40000 };

function invite(lines: string[] = [], method = 'INVITE'): Buffer {
  return Buffer.from(
    [
      `${method} sip:bob@example.com SIP/2.0`,
      'Via: SIP/2.0/UDP 192.0.2.7:5062;branch=z9hG4bKq1;rport',
      'Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKq0, SIP/2.0/TCP 10.0.0.2;branch=z9hG4bKqz',
      'Max-Forwards: 70',
      'From: "Alice" <sip:alice@example.com>;tag=a1',
      'To: <sip:bob@example.com>',
      'Call-ID: q-1@192.0.2.7',
      `CSeq: 12 ${method}`,
      ...lines,
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n'),
    'latin1',
  );
}

/** `invite()` with the header line starting with `name:` replaced by `line` (or removed). */
function withLine(name: string, line: string | undefined, method = 'INVITE'): Buffer {
  const text = invite([], method).toString('latin1').split('\r\n');
  const i = text.findIndex((l) => l.startsWith(`${name}:`));
  assert.ok(i > 0, name);
  if (line === undefined) text.splice(i, 1);
  else text[i] = line;
  return Buffer.from(text.join('\r\n'), 'latin1');
}

describe('quick refusal: what the scan reads', () => {
  test('a new INVITE and a REGISTER without credentials: their lines as they came', () => {
    const r = quickScan(invite()) as QuickRequest;
    assert.deepEqual(r, {
      method: 'INVITE',
      vias: [
        'SIP/2.0/UDP 192.0.2.7:5062;branch=z9hG4bKq1;rport',
        'SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKq0, SIP/2.0/TCP 10.0.0.2;branch=z9hG4bKqz',
      ],
      from: '"Alice" <sip:alice@example.com>;tag=a1',
      to: '<sip:bob@example.com>',
      callId: 'q-1@192.0.2.7',
      cseq: '12 INVITE',
    });
    assert.equal((quickScan(invite([], 'REGISTER')) as QuickRequest).method, 'REGISTER');
    // Header names that are also names of object properties are just other headers.
    const odd = quickScan(invite(['constructor: x', '__proto__: y', 'toString: z'])) as QuickRequest;
    assert.equal(odd.callId, 'q-1@192.0.2.7');
  });

  test('compact forms and any case of header names', () => {
    const text = invite()
      .toString('latin1')
      .replace('Via: SIP/2.0/UDP 192', 'v: SIP/2.0/UDP 192')
      .replace('From:', 'f:')
      .replace('To:', 'TO :')
      .replace('Call-ID:', 'i:')
      .replace('CSeq:', 'cseq:');
    const r = quickScan(Buffer.from(text, 'latin1')) as QuickRequest;
    assert.equal(r.vias.length, 2);
    assert.equal(r.to, '<sip:bob@example.com>');
    assert.equal(r.callId, 'q-1@192.0.2.7');
  });

  test('everything it cannot be sure of goes to the full parser (undefined)', () => {
    const cases: [string, Buffer][] = [
      ['credentials (answers a challenge: never refused)', invite(['Proxy-Authorization: Digest x'])],
      ['Authorization', invite(['authorization: Digest x'])],
      ['a To tag (inside a dialog)', withLine('To', 'To: <sip:bob@example.com>;tag=b2')],
      ['a To tag with spaces and case', withLine('To', 'To: <sip:bob@example.com> ; TAG = b2')],
      ['a folded line', invite(['Subject: hi', ' there'])],
      ['two From lines', invite(['From: <sip:eve@example.com>;tag=e'])],
      ['no Call-ID', withLine('Call-ID', undefined)],
      [
        'no Via',
        Buffer.from(
          invite()
            .toString('latin1')
            .replace(/Via:[^\r]*\r\n/g, ''),
          'latin1',
        ),
      ],
      ['an empty CSeq', withLine('CSeq', 'CSeq:')],
      ['a CSeq of another method', withLine('CSeq', 'CSeq: 12 OPTIONS')],
      ['a CSeq number too long', withLine('CSeq', 'CSeq: 123456789012 INVITE')],
      ['another method', invite([], 'OPTIONS')],
      ['a BYE', invite([], 'BYE')],
      ['a response', Buffer.from('SIP/2.0 200 OK\r\nVia: x\r\n\r\n')],
      ['no end of headers', invite().subarray(0, 120)],
      [
        'a request line without SIP/2.0',
        Buffer.from(invite().toString('latin1').replace('SIP/2.0\r\n', 'SIP/3.0\r\n')),
      ],
      [
        'lowercase method',
        Buffer.from(
          invite()
            .toString('latin1')
            .replace(/^INVITE/, 'invite'),
        ),
      ],
      ['an empty datagram', Buffer.alloc(0)],
      ['only the method', Buffer.from('INVITE ')],
      ['a header section past 8 KB', invite([`X-Big: ${'x'.repeat(9000)}`])],
    ];
    for (const [what, data] of cases) assert.equal(quickScan(data), undefined, what);
  });

  test('the ACK to one of its own 503s, and no other ACK', () => {
    const ours = withLine('To', `To: <sip:bob@example.com>;tag=${QUICK_TAG_PREFIX}abc`, 'ACK');
    assert.equal(quickScan(ours), 'ack');
    const theirs = withLine('To', 'To: <sip:bob@example.com>;tag=0a1b2c', 'ACK');
    assert.equal(quickScan(theirs), undefined);
    // A URI parameter that looks like our tag is not a To tag.
    const inUri = withLine('To', `To: <sip:bob@example.com;tag=${QUICK_TAG_PREFIX}x>`, 'ACK');
    assert.equal(quickScan(inUri), undefined);
  });

  test('RFC 4475 messages and random damage: never throws; what it reads, the full parser reads alike', () => {
    const inputs: Buffer[] = readdirSync(TORTURE_DIR)
      .filter((f) => f.endsWith('.dat'))
      .map((f) => readFileSync(join(TORTURE_DIR, f)));
    const rand = prng(4475);
    const base = invite();
    for (let i = 0; i < 3000; i++) {
      const b = Buffer.from(base);
      for (let k = int(rand, 1, 4); k > 0; k--)
        b[int(rand, 0, b.length - 1)] = pick(rand, [
          0,
          9,
          10,
          13,
          32,
          44,
          58,
          59,
          60,
          62,
          255,
          int(rand, 0, 255),
        ]);
      inputs.push(b);
    }
    let read = 0;
    for (const data of inputs) {
      const scan = quickScan(data);
      if (scan === undefined || scan === 'ack') continue;
      read++;
      let full;
      try {
        full = parseMessage(data);
      } catch {
        continue; // the scan read what the parser refuses: then the 503 goes to a malformed request
      }
      assert.equal(full.type, 'request');
      if (full.type !== 'request') continue;
      assert.equal(full.method, scan.method);
      // The scan keeps bytes (latin1); the parser decodes UTF-8: the same bytes either way.
      assert.equal(getHeader(full, 'Call-ID'), Buffer.from(scan.callId, 'latin1').toString('utf8'));
      assert.equal(tagOf(getTo(full)), undefined);
    }
    assert.ok(read > 100, `only ${read} read`);
  });
});

describe('quick refusal: the 503', () => {
  const build = (data: Buffer, from: Endpoint = source): { res: SipResponse; dest: Endpoint } => {
    const built = quickResponse(quickScan(data) as QuickRequest, from, 503, 'Service Unavailable', [
      { name: 'Retry-After', value: '2' },
    ]);
    assert.ok(built);
    const res = parseMessage(built.data);
    assert.ok(res.type === 'response');
    return { res, dest: built.dest };
  };

  test('a response the full parser takes: the request lines copied, the top Via stamped, our To tag', () => {
    const { res, dest } = build(invite());
    assert.equal(res.status, 503);
    assert.equal(res.reason, 'Service Unavailable');
    assert.deepEqual(getHeaders(res, 'Via'), [
      'SIP/2.0/UDP 192.0.2.7:5062;branch=z9hG4bKq1;received=192.0.2.7;rport=40000',
      'SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKq0',
      'SIP/2.0/TCP 10.0.0.2;branch=z9hG4bKqz',
    ]);
    assert.equal(getHeader(res, 'From'), '"Alice" <sip:alice@example.com>;tag=a1');
    assert.match(
      getHeader(res, 'To')!,
      new RegExp(`^<sip:bob@example\\.com>;tag=${QUICK_TAG_PREFIX}[0-9a-f]{16}$`),
    );
    assert.equal(getHeader(res, 'Call-ID'), 'q-1@192.0.2.7');
    assert.equal(getHeader(res, 'CSeq'), '12 INVITE');
    assert.equal(getHeader(res, 'Retry-After'), '2');
    assert.equal(getHeader(res, 'Content-Length'), '0');
    // rport asked for: back to the source address and port.
    assert.deepEqual(dest, { transport: 'udp', address: '192.0.2.7', port: 40000 });
    // The ACK a phone sends for it is recognised.
    const ack = withLine('To', `To: ${getHeader(res, 'To')!}`, 'ACK');
    assert.equal(quickScan(ack), 'ack');
  });

  test('without rport: to the Via port at the address it came from (received)', () => {
    const data = withLine('Via', 'Via: SIP/2.0/UDP phone.example.com:5070;branch=z9hG4bKn');
    const { res, dest } = build(data);
    assert.equal(
      getHeaders(res, 'Via')[0],
      'SIP/2.0/UDP phone.example.com:5070;branch=z9hG4bKn;received=192.0.2.7',
    );
    assert.deepEqual(dest, { transport: 'udp', address: '192.0.2.7', port: 5070 });
    // A Via that already names the source is copied unchanged.
    const same = build(withLine('Via', 'Via: SIP/2.0/UDP 192.0.2.7:5071;branch=z9hG4bKs'));
    assert.equal(getHeaders(same.res, 'Via')[0], 'SIP/2.0/UDP 192.0.2.7:5071;branch=z9hG4bKs');
    assert.deepEqual(same.dest, { transport: 'udp', address: '192.0.2.7', port: 5071 });
  });

  test('a top Via that does not parse: no response (the full parser drops the message)', () => {
    const scan = quickScan(withLine('Via', 'Via: SIP/2.0/UDP [::1;branch=z9hG4bKx')) as QuickRequest;
    assert.ok(scan);
    assert.equal(quickResponse(scan, source, 503, 'Service Unavailable'), undefined);
  });
});
