import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  addHeader,
  createResponse,
  formatNameAddr,
  formatUri,
  formatVia,
  generateBranch,
  generateCallId,
  generateTag,
  getContacts,
  getCSeq,
  getFrom,
  getHeader,
  getHeaders,
  getMaxForwards,
  getTo,
  getTopVia,
  getVias,
  isSipUri,
  parseMessage,
  parseNameAddr,
  parseUri,
  parseVia,
  removeHeader,
  serialize,
  setHeader,
  SipParseError,
  StreamFramer,
  type NameAddr,
  type SipHeader,
  type SipMessage,
  type SipRequest,
  type SipResponse,
  type SipUri,
  type Uri,
} from '../../src/sip/message.js';
import type { View } from '../../src/sip/view.js';
import { int, pick, prng, randomString, TORTURE_DIR } from './helpers.js';

const load = (name: string): Buffer => readFileSync(join(TORTURE_DIR, name));

function req(m: SipMessage): SipRequest {
  assert.equal(m.type, 'request');
  return m;
}

function res(m: SipMessage): SipResponse {
  assert.equal(m.type, 'response');
  return m;
}

function sip(uri: View<Uri>): View<SipUri> {
  assert.ok(isSipUri(uri), `expected a SIP URI, got ${formatUri(uri)}`);
  return uri;
}

/** What the parser does with each RFC 4475 message (see the README in TORTURE_DIR). */
const EXPECTED: Record<string, 'valid' | 'liberal' | number> = {
  'wsinv.dat': 'valid',
  'intmeth.dat': 'valid',
  'esc01.dat': 'valid',
  'escnull.dat': 'valid',
  'esc02.dat': 'valid',
  'lwsdisp.dat': 'valid',
  'longreq.dat': 'valid',
  'dblreq.dat': 'valid',
  'semiuri.dat': 'valid',
  'transports.dat': 'valid',
  'mpart01.dat': 'valid',
  'unreason.dat': 'valid',
  'noreason.dat': 'valid',
  'badinv01.dat': 400,
  'clerr.dat': 400,
  'ncl.dat': 400,
  'scalar02.dat': 400,
  'scalarlg.dat': 400,
  'quotbal.dat': 400,
  'ltgtruri.dat': 400,
  'lwsruri.dat': 400,
  'lwsstart.dat': 400,
  'trws.dat': 400,
  'escruri.dat': 400,
  // RFC 4475 §3.1.2.12: an element "may" reject a bad Date only if it uses Date; we do not.
  'baddate.dat': 'liberal',
  'regbadct.dat': 400,
  'badaspec.dat': 400,
  'baddn.dat': 400,
  'badvers.dat': 505,
  'mismatch01.dat': 400,
  'mismatch02.dat': 400,
  'bigcode.dat': 400,
  'badbranch.dat': 400,
  'insuf.dat': 400,
  'unkscm.dat': 'valid',
  'novelsc.dat': 'valid',
  'unksm2.dat': 'valid',
  'bext01.dat': 'valid',
  'invut.dat': 'valid',
  'regaut01.dat': 'valid',
  'multi01.dat': 400,
  'mcl01.dat': 400,
  'bcast.dat': 'valid',
  'zeromf.dat': 'valid',
  'cparam01.dat': 'valid',
  'cparam02.dat': 'valid',
  'regescrt.dat': 'valid',
  'sdp01.dat': 'valid',
  'inv2543.dat': 'valid',
};

const torture = readdirSync(TORTURE_DIR)
  .filter((f) => f.endsWith('.dat'))
  .sort();

/** Structure of a message for comparisons, without Content-Length (serialize always writes it). */
function shape(m: SipMessage): unknown {
  const headers = m.headers.filter((h) => h.name !== 'Content-Length');
  const start =
    m.type === 'request' ? { method: m.method, uri: m.uri } : { status: m.status, reason: m.reason };
  return { type: m.type, ...start, headers, body: m.body.toString('hex') };
}

describe('RFC 4475 torture messages', () => {
  test('the directory holds the 49 messages the README lists', () => {
    assert.equal(torture.length, 49);
    assert.deepEqual(torture, Object.keys(EXPECTED).sort());
  });

  for (const file of torture) {
    const expected = EXPECTED[file];
    test(`${file}: ${typeof expected === 'number' ? `rejected with ${expected}` : 'parsed'}`, () => {
      const data = load(file);
      if (typeof expected === 'number') {
        assert.throws(
          () => parseMessage(data),
          (err: unknown) => err instanceof SipParseError && err.status === expected,
        );
      } else {
        const m = parseMessage(data);
        // Round trip: serialize(parse(x)) parses to the same structure, and serializing again is stable.
        const again = parseMessage(serialize(m));
        assert.deepEqual(shape(again), shape(m));
        assert.deepEqual(serialize(again), serialize(m));
      }
    });
  }

  test('baddn.dat is rejected also with the final CRLF the RFC intended', () => {
    const data = Buffer.concat([load('baddn.dat'), Buffer.from('\r\n')]);
    assert.throws(
      () => parseMessage(data),
      (e: unknown) => e instanceof SipParseError && e.status === 400,
    );
  });

  test('wsinv.dat: folding, LWS around separators, escaped quotes, leading zeros', () => {
    const m = req(parseMessage(load('wsinv.dat')));
    assert.equal(m.method, 'INVITE');
    assert.equal(formatUri(m.uri), 'sip:vivekg@chair-dnrc.example.com;unknownparam');
    assert.equal(getTo(m).params.get('tag'), '1918181833n');
    const from = getFrom(m);
    assert.equal(from.displayName, 'J Rosenberg \\"');
    assert.equal(from.params.get('tag'), '98asjd8');
    assert.equal(getMaxForwards(m), 68);
    assert.deepEqual(getCSeq(m), { seq: 9, method: 'INVITE' });
    const vias = getVias(m);
    assert.deepEqual(
      vias.map((v) => [v.transport, v.host, v.branch]),
      [
        ['UDP', '192.0.2.2', '390skdjuw'],
        ['TCP', 'spindle.example.com', 'z9hG4bK9ikj8'],
        ['UDP', '192.168.255.111', 'z9hG4bK30239'],
      ],
    );
    assert.equal(getHeader(m, 'Subject'), '');
    assert.equal(getHeader(m, 's'), '');
    assert.equal(getHeader(m, 'newfangledheader'), 'newfangled value continued newfangled value');
    assert.equal(getHeader(m, 'UnknownHeaderWithUnusualValue'), ';;,,;;,;');
    assert.equal(getHeader(m, 'Route'), '<sip:services.example.com;lr;unknownwith=value;unknown-no-value>');
    const contacts = getContacts(m);
    assert.ok(contacts !== '*');
    assert.equal(contacts.length, 1);
    const c = contacts[0] as NameAddr;
    assert.equal(c.displayName, 'Quoted string ""');
    assert.deepEqual(
      [...c.params],
      [
        ['newparam', 'newvalue'],
        ['secondparam', null],
        ['q', '0.33'],
      ],
    );
    assert.equal(m.body.length, 150);
  });

  test('intmeth.dat: unusual token characters, quoted-pairs with BEL/NUL/DEL, UTF-8', () => {
    const m = req(parseMessage(load('intmeth.dat')));
    assert.equal(m.method, "!interesting-Method0123456789_*+`.%indeed'~");
    const uri = sip(m.uri);
    assert.equal(uri.user, "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*");
    assert.equal(uri.password, "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)");
    assert.equal(uri.host, 'example.com');
    assert.equal(getTo(m).displayName, 'BEL:\x07 NUL:\x00 DEL:\x7f');
    const from = getFrom(m);
    assert.equal(from.displayName, "token1~` token2'+_ token3*%!.-");
    assert.equal(from.params.get('tag'), "_token~1'+`*%!-.");
    assert.equal(from.params.get("fromparam''~+*_!.-%"), '"работающий"');
    assert.equal(getHeader(m, 'Call-ID'), 'intmeth.word%ZK-!.*_+\'@word`~)(><:\\/"][?}{');
    assert.equal(getTopVia(m).branch, "z9hG4bK-.!%66*_+`'~");
    assert.equal(getHeader(m, "extensionHeader-!.%*+_`'~"), '﻿大停電');
  });

  test('esc01.dat and escnull.dat: %-escapes decoded once, never truncated', () => {
    const m = req(parseMessage(load('esc01.dat')));
    assert.equal(sip(m.uri).user, 'sips:user@example.com');
    assert.equal(sip(getTo(m).uri).user, 'user');
    assert.equal(sip(getFrom(m).uri).user, 'I have spaces');
    const contacts = getContacts(m);
    assert.ok(contacts !== '*');
    const curi = sip((contacts[0] as NameAddr).uri);
    assert.equal(curi.user, 'caller');
    assert.deepEqual(
      [...curi.params],
      [
        ['lr', null],
        ['name', 'value%41'],
      ],
    );
    const n = parseMessage(load('escnull.dat'));
    assert.equal(sip(getTo(n).uri).user, 'null-\0-null');
    const nc = getContacts(n);
    assert.ok(nc !== '*');
    assert.deepEqual(
      nc.map((c) => sip(c.uri).user),
      ['\0', '\0\0'],
    );
  });

  test('esc02.dat: % that is not an escape; C%6Fntact is another header', () => {
    const m = req(parseMessage(load('esc02.dat')));
    assert.equal(m.method, 'RE%47IST%45R');
    assert.equal(getFrom(m).displayName, '%Z%45');
    assert.equal(getTopVia(m).branch, 'z9hG4bK209%fzsnel234');
    assert.equal(getHeaders(m, 'Contact').length, 2);
    assert.equal(getHeaders(m, 'C%6Fntact').length, 1);
  });

  test('lwsdisp, longreq, dblreq, semiuri, transports', () => {
    assert.equal(getFrom(parseMessage(load('lwsdisp.dat'))).displayName, 'caller');

    const long = parseMessage(load('longreq.dat'));
    assert.equal(getVias(long).length, 34);
    assert.ok((getHeader(long, 'Call-ID') ?? '').length > 100);

    const dbl = req(parseMessage(load('dblreq.dat')));
    assert.equal(dbl.method, 'REGISTER');
    assert.equal(dbl.body.length, 0);

    const semi = req(parseMessage(load('semiuri.dat')));
    assert.equal(sip(semi.uri).user, 'user;par=u@example.net');
    assert.equal(sip(semi.uri).host, 'example.com');
    assert.deepEqual(getHeaders(semi, 'Accept'), [
      'application/sdp',
      'application/pkcs7-mime',
      'multipart/mixed',
      'multipart/signed',
      'message/sip',
      'message/sipfrag',
    ]);

    const tr = parseMessage(load('transports.dat'));
    assert.deepEqual(
      getVias(tr).map((v) => v.transport),
      ['UDP', 'SCTP', 'TLS', 'UNKNOWN', 'TCP'],
    );
  });

  test('mpart01.dat: a binary body is framed by Content-Length only', () => {
    const m = parseMessage(load('mpart01.dat'));
    assert.equal(m.body.length, Number(getHeader(m, 'Content-Length')));
    assert.ok(m.body.includes(0));
    assert.equal(getHeader(m, 'Date'), 'Sat, 15 Oct 2005 04:44:56 GMT');
  });

  test('unreason.dat and noreason.dat: unusual and empty reason phrases', () => {
    const u = res(parseMessage(load('unreason.dat')));
    assert.equal(u.status, 200);
    assert.match(u.reason, /^= 2\*\*3 \* 5\*\*2 но сто девяносто девять/);
    const n = res(parseMessage(load('noreason.dat')));
    assert.equal(n.status, 100);
    assert.equal(n.reason, '');
  });

  test('unknown URI schemes parse as opaque absolute URIs', () => {
    const a = req(parseMessage(load('unkscm.dat')));
    assert.deepEqual(a.uri, { scheme: 'nobodyknowsthisscheme', opaque: 'totallyopaquecontent' });
    const b = req(parseMessage(load('novelsc.dat')));
    assert.deepEqual(b.uri, { scheme: 'soap.beep', opaque: '//192.0.2.103:3002' });
    const c = parseMessage(load('unksm2.dat'));
    assert.equal(getTo(c).uri.scheme, 'isbn');
    assert.equal(getFrom(c).uri.scheme, 'http');
    const contacts = getContacts(c);
    assert.ok(contacts !== '*');
    assert.deepEqual(contacts[0]?.uri, { scheme: 'name', opaque: 'John_Smith' });
  });

  test('regaut01, cparam01/02, regescrt, inv2543, zeromf, bcast', () => {
    assert.equal(
      getHeader(parseMessage(load('regaut01.dat')), 'Authorization'),
      'NoOneKnowsThisScheme opaque-data=here',
    );

    const c1 = getContacts(parseMessage(load('cparam01.dat')));
    assert.ok(c1 !== '*');
    assert.equal(sip(c1[0]!.uri).params.size, 0);
    assert.ok(c1[0]!.params.has('unknownparam'));

    const c2 = getContacts(parseMessage(load('cparam02.dat')));
    assert.ok(c2 !== '*');
    assert.ok(sip(c2[0]!.uri).params.has('unknownparam'));
    assert.equal(c2[0]!.params.size, 0);

    const r = getContacts(parseMessage(load('regescrt.dat')));
    assert.ok(r !== '*');
    assert.equal(sip(r[0]!.uri).headers.get('Route'), '<sip:sip.example.com>');

    const old = parseMessage(load('inv2543.dat'));
    assert.equal(getTopVia(old).branch, undefined);
    assert.equal(getFrom(old).params.get('tag'), undefined);
    assert.equal(getHeader(old, 'Content-Length'), undefined);
    assert.ok(old.body.toString().startsWith('v=0'));

    assert.equal(getMaxForwards(parseMessage(load('zeromf.dat'))), 0);
    assert.equal(getVias(parseMessage(load('bcast.dat')))[1]?.host, '255.255.255.255');
  });
});

describe('header syntax', () => {
  const base = [
    'Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc',
    'To: <sip:bob@example.com>',
    'From: <sip:alice@example.com>;tag=1',
    'Call-ID: x1',
    'CSeq: 1 OPTIONS',
  ];
  const msg = (extra: string[], startLine = 'OPTIONS sip:bob@example.com SIP/2.0'): Buffer =>
    Buffer.from([startLine, ...base, ...extra, '', ''].join('\r\n'));

  test('every compact form expands to its full name', () => {
    const compact: Record<string, string> = {
      i: 'Call-ID',
      m: 'Contact',
      f: 'From',
      t: 'To',
      v: 'Via',
      l: 'Content-Length',
      c: 'Content-Type',
      k: 'Supported',
      s: 'Subject',
      e: 'Content-Encoding',
      o: 'Event',
      r: 'Refer-To',
      x: 'Session-Expires',
      u: 'Allow-Events',
      b: 'Referred-By',
    };
    const lines = [
      'OPTIONS sip:bob@example.com SIP/2.0',
      'v: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx',
      't: <sip:bob@example.com>',
      'F: <sip:alice@example.com>;tag=1',
      'i: abc',
      'CSeq: 1 OPTIONS',
      'm: <sip:alice@192.0.2.1>',
      'c: text/plain',
      'k: timer',
      's: hello',
      'e: gzip',
      'o: refer',
      'r: <sip:carol@example.com>',
      'x: 1800',
      'u: dialog',
      'b: <sip:dave@example.com>',
      'l: 2',
      '',
      'hi',
    ];
    const m = parseMessage(Buffer.from(lines.join('\r\n')));
    for (const [short, full] of Object.entries(compact)) {
      assert.ok(
        m.headers.some((h) => h.name === full),
        `${short} → ${full}`,
      );
      assert.equal(getHeader(m, short), getHeader(m, full.toUpperCase()));
    }
    assert.equal(m.body.toString(), 'hi');
  });

  test('folded values are joined with one space; LWS before the colon is allowed', () => {
    const m = parseMessage(msg(['Subject  :  first', '\t second', '   third', 'X-Empty:']));
    assert.equal(getHeader(m, 'subject'), 'first second third');
    assert.equal(getHeader(m, 'x-empty'), '');
  });

  test('list headers split on commas outside quotes and brackets; others do not', () => {
    const m = parseMessage(
      msg([
        'Contact: "A, b" <sip:a,1@x;p=1>, <sip:b@y>;q=0.5',
        'Route: <sip:p1;lr>,<sip:p2;lr>',
        'Record-Route: <sip:p3;lr>',
        'Date: Sat, 13 Nov 2010 23:29:00 GMT',
        'Authorization: Digest username="a,b", realm="r"',
      ]),
    );
    const contacts = getContacts(m);
    assert.ok(contacts !== '*');
    assert.equal(contacts.length, 2);
    assert.equal(contacts[0]?.displayName, 'A, b');
    assert.equal(getHeaders(m, 'Route').length, 2);
    assert.equal(getHeader(m, 'Date'), 'Sat, 13 Nov 2010 23:29:00 GMT');
    assert.equal(getHeaders(m, 'Authorization').length, 1);
  });

  test('Contact * and Via received/rport/IPv6', () => {
    const register = msg(['Contact: *', 'Expires: 0'], 'REGISTER sip:example.com SIP/2.0');
    const m = parseMessage(Buffer.from(register.toString().replace('1 OPTIONS', '1 REGISTER')));
    assert.equal(getContacts(m), '*');
    const via = parseVia(
      'SIP / 2.0 / tcp [2001:db8::9] : 5070 ;rport=1234;received=192.0.2.9;branch=z9hG4bKq;maddr=x',
    );
    assert.deepEqual(via, {
      transport: 'TCP',
      host: '[2001:db8::9]',
      port: 5070,
      branch: 'z9hG4bKq',
      received: '192.0.2.9',
      rport: 1234,
      params: new Map([['maddr', 'x']]),
    });
    assert.deepEqual(parseVia(formatVia(via)), via);
    assert.equal(parseVia('SIP/2.0/UDP h;rport').rport, true);
  });

  test('malformed header sections are rejected with 400', () => {
    for (const extra of [
      ['no colon here'],
      ['Bad Name: x'],
      ['Max-Forwards: 256'],
      ['Max-Forwards: -1'],
      ['Contact: <sip:a@b>;;'],
      ['Contact: <sip:a@b>,,<sip:c@d>'],
      ['Contact: *', 'Contact: <sip:a@b>'],
      ['Route: "unterminated <sip:a@b>'],
      ['Content-Length: 1', 'Content-Length: 1'],
      ['Content-Length: abc'],
    ]) {
      assert.throws(
        () => parseMessage(msg(extra)),
        (e: unknown) => e instanceof SipParseError && e.status === 400,
        extra.join(' | '),
      );
    }
    assert.throws(() => parseMessage(Buffer.from(' X: y\r\n\r\n')), SipParseError);
    assert.throws(
      () => parseMessage(Buffer.from('OPTIONS sip:a@b SIP/2.0\r\n continued: x\r\n\r\n')),
      SipParseError,
    );
    assert.throws(() => parseMessage(Buffer.from('')), SipParseError);
    assert.throws(() => parseMessage(Buffer.from('\r\n\r\n')), SipParseError);
  });

  test('long runs of blanks parse in linear time (no regex backtracking)', () => {
    const pad = ' '.repeat(8000);
    const started = performance.now();
    for (let i = 0; i < 20; i++) {
      for (const extra of [`X: a${pad}b`, `X${pad}x: a`, `Allow: a${pad}b`, `Contact: <sip:a@b>${pad};x`]) {
        try {
          parseMessage(msg([extra]));
        } catch (e) {
          assert.ok(e instanceof SipParseError);
        }
      }
    }
    // The quadratic version needed about 9 s for this; the linear one a few milliseconds.
    assert.ok(performance.now() - started < 1500);
  });

  test('CRLFs before the start line are ignored (§7.5)', () => {
    const m = parseMessage(Buffer.concat([Buffer.from('\r\n\r\n'), msg([])]));
    assert.equal(m.type, 'request');
  });
});

describe('URIs', () => {
  test('parts, IPv6, escapes and their round trip', () => {
    const u = sip(
      parseUri('sips:al%20ice:p%40ss@[2001:db8::1]:5071;transport=tcp;lr?Subject=hi%20there&X=1'),
    );
    assert.equal(u.scheme, 'sips');
    assert.equal(u.user, 'al ice');
    assert.equal(u.password, 'p@ss');
    assert.equal(u.host, '[2001:db8::1]');
    assert.equal(u.port, 5071);
    assert.deepEqual(
      [...u.params],
      [
        ['transport', 'tcp'],
        ['lr', null],
      ],
    );
    assert.deepEqual(
      [...u.headers],
      [
        ['Subject', 'hi there'],
        ['X', '1'],
      ],
    );
    assert.deepEqual(parseUri(formatUri(u)), u);
    assert.equal(formatUri(parseUri('SIP:bob@Example.COM')), 'sip:bob@Example.COM');
  });

  test('bad URIs are rejected', () => {
    for (const text of [
      'sip:',
      'sip:@host',
      'sip:user@',
      'sip:a@b:99999',
      'sip:a@b:x',
      'sip:a%zz@b',
      'sip:a@b;;lr',
      'sip:a@b;x=1;x=2',
      'sip:a b@c',
      'sip:a@[::1',
      '1nvalid:x',
      'tel:',
      'nocolon',
    ]) {
      assert.throws(() => parseUri(text), SipParseError, text);
    }
  });

  test('name-addr and addr-spec parameters go to the right place', () => {
    const a = parseNameAddr('sip:a@b;tag=1');
    assert.equal(sip(a.uri).params.size, 0);
    assert.equal(a.params.get('tag'), '1');
    const b = parseNameAddr('  "Al \\"x\\"" <sip:a@b;tag=1> ; tag = 2');
    assert.equal(b.displayName, 'Al "x"');
    assert.equal(sip(b.uri).params.get('tag'), '1');
    assert.equal(b.params.get('tag'), '2');
    assert.deepEqual(parseNameAddr(formatNameAddr(b)), b);
    assert.throws(() => parseNameAddr('Bell, Alexander <sip:a@b>'), SipParseError);
    assert.throws(() => parseNameAddr('<sip:a@b'), SipParseError);
    assert.throws(() => parseNameAddr('<sip:a@b> junk'), SipParseError);
  });
});

describe('building and editing messages', () => {
  const invite = (): SipRequest =>
    req(
      parseMessage(
        Buffer.from(
          [
            'INVITE sip:bob@example.com SIP/2.0',
            'Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKa, SIP/2.0/UDP 192.0.2.2;branch=z9hG4bKb',
            'To: Bob <sip:bob@example.com>',
            'From: <sip:alice@example.com>;tag=aa',
            'Call-ID: c1',
            'CSeq: 7 INVITE',
            'Timestamp: 54',
            'Max-Forwards: 70',
            '',
            '',
          ].join('\r\n'),
        ),
      ),
    );

  test('createResponse copies Via/From/To/Call-ID/CSeq and adds a To tag except on 100', () => {
    const r = invite();
    const ok = createResponse(r, 200, { toTag: 'tt', body: Buffer.from('x') });
    assert.equal(ok.reason, 'OK');
    assert.deepEqual(getHeaders(ok, 'Via'), getHeaders(r, 'Via'));
    assert.equal(getTo(ok).params.get('tag'), 'tt');
    assert.equal(getTo(ok).displayName, 'Bob');
    assert.equal(getHeader(ok, 'Call-ID'), 'c1');
    assert.equal(getHeader(ok, 'CSeq'), '7 INVITE');
    assert.equal(getHeader(ok, 'Timestamp'), undefined);
    const trying = createResponse(r, 100);
    assert.equal(getTo(trying).params.get('tag'), undefined);
    assert.equal(getHeader(trying, 'Timestamp'), '54');
    const generated = createResponse(r, 486);
    assert.match(getTo(generated).params.get('tag') ?? '', /^[0-9a-f]{16}$/);
    assert.equal(generated.reason, 'Busy Here');
    const reparsed = res(parseMessage(serialize(ok)));
    assert.equal(reparsed.status, 200);
    assert.equal(reparsed.body.toString(), 'x');
  });

  test('setHeader / addHeader / removeHeader; injection is refused', () => {
    const r = invite();
    addHeader(r, 'v', 'SIP/2.0/TCP 192.0.2.3;branch=z9hG4bKnew', true);
    assert.equal(getTopVia(r).branch, 'z9hG4bKnew');
    setHeader(r, 'max-forwards', '69');
    assert.equal(getMaxForwards(r), 69);
    setHeader(r, 'X-Multi', ['a', 'b']);
    assert.deepEqual(getHeaders(r, 'x-multi'), ['a', 'b']);
    removeHeader(r, 'X-MULTI');
    assert.equal(getHeader(r, 'X-Multi'), undefined);
    assert.throws(() => setHeader(r, 'Subject', 'a\r\nVia: evil'), TypeError);
    assert.throws(() => addHeader(r, 'Bad Name', 'x'), TypeError);
    const h: SipHeader = { name: 'Subject', value: 'x\r\ny: z' };
    r.headers.push(h);
    assert.throws(() => serialize(r), TypeError);
  });

  test('generated branches, tags and Call-IDs are unique and well formed', () => {
    const branches = new Set(Array.from({ length: 1000 }, generateBranch));
    assert.equal(branches.size, 1000);
    for (const b of branches) assert.match(b, /^z9hG4bK[A-Za-z0-9_-]{22}$/);
    assert.notEqual(generateTag(), generateTag());
    assert.match(generateCallId('h.example'), /^[A-Za-z0-9_-]{24}@h\.example$/);
  });
});

describe('parsed header views', () => {
  const msg = (): SipMessage =>
    parseMessage(
      Buffer.from(
        [
          'INVITE sip:bob@example.com SIP/2.0',
          'Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKa',
          'To: Bob <sip:bob@example.com>',
          'From: <sip:alice@example.com>;tag=aa',
          'Call-ID: c1',
          'CSeq: 7 INVITE',
          '',
          '',
        ].join('\r\n'),
      ),
    );

  test('each view is parsed once per value and again when the value changes', () => {
    const m = msg();
    assert.equal(getFrom(m), getFrom(m), 'the same parsed From twice');
    assert.equal(getCSeq(m), getCSeq(m));
    assert.equal(getTopVia(m), getVias(m)[0], 'the top Via is the one validation parsed');
    const from = m.headers.find((h) => h.name === 'From')!;
    from.value = '<sip:carol@example.com>;tag=cc';
    assert.equal(formatNameAddr(getFrom(m)), '<sip:carol@example.com>;tag=cc');
    setHeader(m, 'CSeq', '8 INVITE');
    assert.equal(getCSeq(m).seq, 8);
  });

  test('the cache is invisible: headers copy, serialize and print as name and value', () => {
    const m = msg();
    getFrom(m);
    getTo(m);
    const from = m.headers.find((h) => h.name === 'From')!;
    assert.deepEqual({ ...from }, { name: 'From', value: '<sip:alice@example.com>;tag=aa' });
    assert.deepEqual(JSON.parse(JSON.stringify(m.headers[1])), {
      name: 'To',
      value: 'Bob <sip:bob@example.com>',
    });
    assert.equal(serialize(m).toString().split('\r\n')[3], 'From: <sip:alice@example.com>;tag=aa');
  });

  test('views are shared, so their types are read-only all the way down; a change is made on a copy', () => {
    const m = msg();
    // The lines below must not compile: the moment a view's type lets one of them through,
    // `npm run typecheck` (in CI) fails on the unused expect-error directive above it.
    /* eslint-disable @typescript-eslint/no-unsafe-call -- calls to methods a view has not */
    const mutations = (): void => {
      // @ts-expect-error a view's maps are ReadonlyMaps
      getTo(m).params.set('tag', 'x');
      // @ts-expect-error a view's fields are read-only
      getTopVia(m).received = '192.0.2.9';
      // @ts-expect-error nested values too (the URI inside a name-addr)
      sip(getFrom(m).uri).params.delete('lr');
      // @ts-expect-error the Request-URI is shared with requests built from this one
      sip(req(m).uri).user = 'mallory';
    };
    /* eslint-enable @typescript-eslint/no-unsafe-call */
    void mutations;
    // What code does instead: copy, then change the copy. The message keeps its To.
    const tagged = { ...getTo(m), params: new Map(getTo(m).params).set('tag', 'b1') };
    assert.equal(formatNameAddr(tagged), '"Bob" <sip:bob@example.com>;tag=b1');
    assert.equal(getTo(m).params.has('tag'), false);
    // A response adds its To tag the same way, without touching the request's view.
    const r = createResponse(req(m), 180, { toTag: 't9' });
    assert.equal(getHeader(r, 'To'), '"Bob" <sip:bob@example.com>;tag=t9');
    assert.equal(formatNameAddr(getTo(m)), '"Bob" <sip:bob@example.com>');
  });
});

describe('generated round trips (seeded)', () => {
  const TOKEN = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~";
  const ANY = TOKEN + ' "\\<>@:;,?/=[]{}()\t\x01\x7féü日本😀';

  function randomNameAddr(rand: () => number): NameAddr {
    const uri: SipUri = {
      scheme: pick(rand, ['sip', 'sips'] as const),
      user: randomString(rand, ANY, 1, 12),
      host: pick(rand, ['example.com', '192.0.2.7', '[2001:db8::7]', 'a-b.c_d.example']),
      params: new Map(),
      headers: new Map(),
    };
    if (rand() < 0.5) uri.port = int(rand, 1, 65535);
    if (rand() < 0.3) uri.password = randomString(rand, ANY, 0, 6);
    for (let i = int(rand, 0, 3); i > 0; i--) {
      uri.params.set(
        `p${i}${randomString(rand, 'abc', 0, 3)}`,
        rand() < 0.3 ? null : randomString(rand, ANY, 1, 8),
      );
    }
    if (rand() < 0.3) uri.headers.set('Subject', randomString(rand, ANY, 0, 8));
    const addr: NameAddr = { uri, params: new Map() };
    if (rand() < 0.7) addr.displayName = randomString(rand, ANY, 0, 16);
    addr.params.set('tag', randomString(rand, TOKEN, 1, 20));
    if (rand() < 0.5) addr.params.set('x', `"${randomString(rand, TOKEN + ' ,;', 0, 8)}"`);
    return addr;
  }

  test('random messages survive serialize → parse unchanged', () => {
    const rand = prng(4475);
    for (let i = 0; i < 300; i++) {
      const from = randomNameAddr(rand);
      const to = randomNameAddr(rand);
      const contact = randomNameAddr(rand);
      const method = randomString(rand, TOKEN, 1, 10);
      const body = Buffer.from(Array.from({ length: int(rand, 0, 300) }, () => int(rand, 0, 255)));
      const headers: SipHeader[] = [
        {
          name: 'Via',
          value: formatVia({
            transport: pick(rand, ['UDP', 'TCP', 'TLS']),
            host: 'h.example',
            port: int(rand, 1, 65535),
            branch: generateBranch(),
            rport: rand() < 0.5 ? true : int(rand, 1, 65535),
            params: new Map(),
          }),
        },
        { name: 'From', value: formatNameAddr(from) },
        { name: 'To', value: formatNameAddr(to) },
        { name: 'Call-ID', value: randomString(rand, TOKEN + '@:<>"/[]?{}', 1, 30) },
        { name: 'CSeq', value: `${int(rand, 0, 0xffffffff)} ${method}` },
        { name: 'Contact', value: formatNameAddr(contact) },
        { name: `X-${randomString(rand, TOKEN, 1, 8)}`, value: randomString(rand, ANY, 0, 40).trim() },
      ];
      const uri = { ...from.uri, headers: new Map<string, string>() };
      const m: SipRequest = { type: 'request', method, uri, headers, body };
      const parsed = req(parseMessage(serialize(m)));
      assert.equal(parsed.method, method);
      assert.deepEqual(parsed.uri, uri);
      // (Parsed headers are WireHeaders: compared by what they carry, a name and a value.)
      assert.deepEqual(
        parsed.headers.slice(0, -1).map(({ name, value }) => ({ name, value })),
        headers,
      );
      assert.deepEqual(getFrom(parsed), from);
      assert.deepEqual(getTo(parsed), to);
      const contacts = getContacts(parsed);
      assert.ok(contacts !== '*');
      assert.deepEqual(contacts[0], contact);
      assert.deepEqual(parsed.body, body);
    }
  });

  test('mutated torture messages never throw anything but SipParseError', () => {
    const rand = prng(3261);
    const seeds = torture.map(load);
    const junk = [0, 9, 10, 13, 32, 34, 44, 58, 59, 60, 62, 64, 92, 255];
    let rejected = 0;
    for (let i = 0; i < 3000; i++) {
      const data = Buffer.from(pick(rand, seeds));
      for (let k = int(rand, 1, 6); k > 0; k--) {
        const at = int(rand, 0, data.length - 1);
        data[at] = rand() < 0.6 ? pick(rand, junk) : int(rand, 0, 255);
      }
      const cut = rand() < 0.2 ? data.subarray(0, int(rand, 0, data.length)) : data;
      try {
        const m = parseMessage(cut);
        parseMessage(serialize(m));
      } catch (err) {
        if (!(err instanceof SipParseError)) throw err;
        rejected++;
      }
    }
    assert.ok(rejected > 0);
  });
});

describe('stream framing', () => {
  const valid = torture.filter((f) => EXPECTED[f] === 'valid').map((f) => serialize(parseMessage(load(f))));

  test('messages come out whole whatever the chunk boundaries, with keep-alives between', () => {
    const rand = prng(18);
    const parts: Buffer[] = [];
    let pings = 0;
    for (const m of valid) {
      parts.push(m);
      const r = rand();
      if (r < 0.3) parts.push(Buffer.from('\r\n'));
      else if (r < 0.5) {
        parts.push(Buffer.from('\r\n\r\n'));
        pings++;
      }
    }
    const stream = Buffer.concat(parts);
    for (let round = 0; round < 20; round++) {
      const framer = new StreamFramer();
      const got: Buffer[] = [];
      let gotPings = 0;
      for (let pos = 0; pos < stream.length;) {
        const size = round === 0 ? 1 : int(rand, 1, 400);
        for (const frame of framer.push(stream.subarray(pos, pos + size))) {
          if (frame.type === 'ping') gotPings++;
          else got.push(frame.data);
        }
        pos += size;
      }
      assert.equal(got.length, valid.length);
      got.forEach((g, i) => assert.deepEqual(g, valid[i]));
      assert.equal(gotPings, pings);
      assert.equal(framer.buffered, 0);
    }
  });

  test('a message without Content-Length on a stream has no body', () => {
    const framer = new StreamFramer();
    const frames = framer.push(Buffer.from('OPTIONS sip:a@b SIP/2.0\r\nX: 1\r\n\r\nOPTIONS'));
    assert.equal(frames.length, 1);
    assert.equal(framer.buffered, 7);
  });

  test('framing errors: bad Content-Length, oversized header section or body; then it stays failed', () => {
    const bad = (chunk: string, status: number, limits = {}): void => {
      const framer = new StreamFramer(limits);
      assert.throws(
        () => framer.push(Buffer.from(chunk)),
        (e: unknown) => e instanceof SipParseError && e.status === status,
        chunk.slice(0, 40),
      );
      assert.throws(() => framer.push(Buffer.from('\r\n')), SipParseError);
    };
    bad('INVITE sip:a@b SIP/2.0\r\nContent-Length: -999\r\n\r\n', 400);
    bad('INVITE sip:a@b SIP/2.0\r\nl: 1\r\nContent-Length: 2\r\n\r\n', 400);
    bad('INVITE sip:a@b SIP/2.0\r\nContent-Length: 70000\r\n\r\n', 413);
    bad('INVITE sip:a@b SIP/2.0\r\nContent-Length: 100\r\n\r\n', 513, { maxMessageSize: 100 });
    bad('INVITE sip:a@b SIP/2.0\r\nX: ' + 'a'.repeat(200), 513, { maxMessageSize: 100 });
    bad('\r\rINVITE', 400);
  });

  test('clerr.dat on a stream waits for the rest of its body', () => {
    const framer = new StreamFramer();
    assert.deepEqual(framer.push(load('clerr.dat')), []);
    assert.ok(framer.buffered > 0);
  });
});

describe('limits', () => {
  const lines = (n: number): string[] => Array.from({ length: n }, (_, i) => `X-H${i}: v`);
  const build = (extra: string[], body = ''): Buffer =>
    Buffer.from(
      [
        'MESSAGE sip:a@b SIP/2.0',
        'Via: SIP/2.0/UDP h;branch=z9hG4bKx',
        'To: <sip:a@b>',
        'From: <sip:c@d>;tag=1',
        'Call-ID: z',
        'CSeq: 1 MESSAGE',
        ...extra,
        `Content-Length: ${Buffer.byteLength(body)}`,
        '',
        body,
      ].join('\r\n'),
    );
  const status = (f: () => unknown): number => {
    try {
      f();
    } catch (e) {
      if (e instanceof SipParseError) return e.status;
      throw e;
    }
    return 0;
  };

  test('defaults accept ordinary messages and reject oversized ones', () => {
    assert.equal(
      status(() => parseMessage(build(lines(100), 'x'.repeat(1000)))),
      0,
    );
    assert.equal(
      status(() => parseMessage(build(lines(300)))),
      513,
    );
    assert.equal(
      status(() => parseMessage(build(['X: ' + 'a'.repeat(9000)]))),
      513,
    );
    assert.equal(
      status(() => parseMessage(build([], 'x'.repeat(61000)))),
      413,
    );
    assert.equal(
      status(() => parseMessage(Buffer.concat([build([]), Buffer.alloc(70000)]))),
      513,
    );
  });

  test('limits are configurable', () => {
    const limits = { maxMessageSize: 400, maxHeaders: 8, maxHeaderLineLength: 40, maxBodySize: 10 };
    assert.equal(
      status(() => parseMessage(build([]), { limits })),
      0,
    );
    assert.equal(
      status(() => parseMessage(build(lines(3)), { limits })),
      513,
    );
    assert.equal(
      status(() => parseMessage(build(['X: ' + 'a'.repeat(40)]), { limits })),
      513,
    );
    assert.equal(
      status(() => parseMessage(build([], 'x'.repeat(11)), { limits })),
      413,
    );
    assert.equal(
      status(() => parseMessage(build([], 'x'.repeat(300)), { limits })),
      513,
    );
    // List elements count too: 9 Via values on one line.
    assert.equal(
      status(() => parseMessage(build([`Via: ${Array(9).fill('SIP/2.0/UDP h').join(',')}`]), { limits })),
      513,
    );
  });
});
