import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  createResponse,
  formatUri,
  generateBranch,
  getCSeq,
  getHeader,
  getHeaders,
  getTo,
  parseMessage,
  type SipMessage,
  type SipRequest,
  type SipResponse,
} from '../../src/sip/message.js';
import type { Endpoint } from '../../src/sip/transport.js';
import {
  TransactionLayer,
  type ClientTransaction,
  type ServerTransaction,
  type TransactionTransport,
} from '../../src/sip/transaction.js';
import { FakeClock } from './fake-clock.js';

const UDP: Endpoint = { transport: 'udp', address: '192.0.2.10', port: 5060 };
const TCP: Endpoint = { transport: 'tcp', address: '192.0.2.10', port: 5060, connectionId: 1 };

interface Sent {
  at: number;
  message: SipMessage;
  dest: Endpoint;
}

class FakeTransport implements TransactionTransport {
  sent: Sent[] = [];
  fail = false;
  constructor(private readonly clock: FakeClock) {}
  send(message: SipMessage, dest: Endpoint): Promise<void> {
    if (this.fail) return Promise.reject(new Error('unreachable'));
    this.sent.push({ at: this.clock.now(), message, dest });
    return Promise.resolve();
  }
  sendResponse(response: SipResponse, dest: Endpoint): Promise<void> {
    return this.send(response, dest);
  }
  /** Times at which messages matching `pred` were sent. */
  times(pred: (m: SipMessage) => boolean): number[] {
    return this.sent.filter((s) => pred(s.message)).map((s) => s.at);
  }
}

function request(
  method: string,
  branch = generateBranch(),
  extra: string[] = [],
  transport = 'UDP',
): SipRequest {
  const text = [
    `${method} sip:bob@example.com SIP/2.0`,
    `Via: SIP/2.0/${transport} 192.0.2.1:5060;branch=${branch}`,
    'Via: SIP/2.0/UDP 192.0.2.250;branch=z9hG4bKlower',
    'Max-Forwards: 70',
    'Route: <sip:proxy.example.com;lr>',
    'To: <sip:bob@example.com>',
    'From: <sip:alice@example.com>;tag=from1',
    'Call-ID: tx-test',
    `CSeq: 5 ${method}`,
    ...extra,
    '',
    '',
  ].join('\r\n');
  return parseMessage(Buffer.from(text)) as SipRequest;
}

function setup(opts: { trying100DelayMs?: number | false } = {}) {
  const clock = new FakeClock();
  const transport = new FakeTransport(clock);
  const requests: { req: SipRequest; tx: ServerTransaction | undefined }[] = [];
  const strays: SipResponse[] = [];
  const layer = new TransactionLayer({
    transport,
    clock,
    onRequest: (req, tx) => requests.push({ req, tx }),
    onStrayResponse: (res) => strays.push(res),
    ...opts,
  });
  return { clock, transport, layer, requests, strays };
}

function clientUser() {
  const log = { responses: [] as number[], timeouts: 0, errors: 0, terminated: 0 };
  return {
    log,
    user: {
      onResponse: (r: SipResponse) => log.responses.push(r.status),
      onTimeout: () => log.timeouts++,
      onTransportError: () => log.errors++,
      onTerminated: () => log.terminated++,
    },
  };
}

const isRequest = (method: string) => (m: SipMessage) => m.type === 'request' && m.method === method;
const isStatus = (status: number) => (m: SipMessage) => m.type === 'response' && m.status === status;
const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('INVITE client transaction (§17.1.1, RFC 6026)', () => {
  test('UDP: timer A doubles without cap until timer B reports a timeout', () => {
    const { clock, transport, layer } = setup();
    const { log, user } = clientUser();
    const tx = layer.sendRequest(request('INVITE'), UDP, user);
    assert.equal(tx.state, 'calling');
    clock.advance(40_000);
    assert.deepEqual(transport.times(isRequest('INVITE')), [0, 500, 1500, 3500, 7500, 15500, 31500]);
    assert.equal(log.timeouts, 1);
    assert.equal(tx.state, 'terminated');
    assert.deepEqual(layer.size, { clients: 0, servers: 0 });
  });

  test('TCP: no retransmissions, timer B still applies', () => {
    const { clock, transport, layer } = setup();
    const { log, user } = clientUser();
    layer.sendRequest(request('INVITE', undefined, [], 'TCP'), TCP, user);
    clock.advance(31_999);
    assert.equal(log.timeouts, 0);
    clock.advance(1);
    assert.equal(log.timeouts, 1);
    assert.equal(transport.sent.length, 1);
  });

  test('a provisional stops A and B; the final then decides', () => {
    const { clock, transport, layer } = setup();
    const { log, user } = clientUser();
    const req = request('INVITE');
    const tx = layer.sendRequest(req, UDP, user);
    clock.advance(600);
    layer.receive(createResponse(req, 180, { toTag: 't' }), UDP);
    assert.equal(tx.state, 'proceeding');
    clock.advance(100_000);
    assert.equal(transport.times(isRequest('INVITE')).length, 2);
    assert.equal(log.timeouts, 0);
    assert.deepEqual(log.responses, [180]);
    assert.deepEqual(tx.runningTimers, []);
  });

  test('non-2xx final: ACK built per §17.1.1.3, re-sent on retransmissions, timer D ends it', () => {
    const { clock, transport, layer } = setup();
    const { log, user } = clientUser();
    const req = request('INVITE');
    const tx = layer.sendRequest(req, UDP, user);
    const busy = createResponse(req, 486, { toTag: 'callee' });
    layer.receive(busy, UDP);
    assert.equal(tx.state, 'completed');
    const acks = transport.sent.filter((s) => isRequest('ACK')(s.message));
    assert.equal(acks.length, 1);
    const ack = acks[0]!.message as SipRequest;
    assert.deepEqual(ack.uri, req.uri);
    assert.deepEqual(getHeaders(ack, 'Via'), getHeaders(req, 'Via').slice(0, 1));
    assert.deepEqual(getHeaders(ack, 'Route'), getHeaders(req, 'Route'));
    assert.equal(getHeader(ack, 'From'), getHeader(req, 'From'));
    assert.equal(getTo(ack).params.get('tag'), 'callee');
    assert.equal(getHeader(ack, 'Call-ID'), 'tx-test');
    assert.deepEqual(getCSeq(ack), { seq: 5, method: 'ACK' });
    assert.equal(acks[0]!.dest, UDP);

    layer.receive(busy, UDP);
    layer.receive(busy, UDP);
    assert.equal(transport.times(isRequest('ACK')).length, 3);
    assert.deepEqual(log.responses, [486]);
    clock.advance(31_999);
    assert.equal(tx.state, 'completed');
    assert.equal(transport.times(isRequest('INVITE')).length, 1, 'no INVITE retransmission after the final');
    clock.advance(1);
    assert.equal(tx.state, 'terminated');
    assert.equal(log.terminated, 1);
    assert.equal(log.timeouts, 0);
  });

  test('non-2xx final over TCP: timer D is zero', () => {
    const { clock, layer } = setup();
    const { user } = clientUser();
    const req = request('INVITE', undefined, [], 'TCP');
    const tx = layer.sendRequest(req, TCP, user);
    layer.receive(createResponse(req, 603), TCP);
    clock.advance(0);
    assert.equal(tx.state, 'terminated');
  });

  test('2xx: Accepted passes every 2xx to the TU (no ACK by the transaction) until timer M', () => {
    const { clock, transport, layer, strays } = setup();
    const { log, user } = clientUser();
    const req = request('INVITE');
    const tx = layer.sendRequest(req, UDP, user);
    const ok = createResponse(req, 200, { toTag: 'a' });
    layer.receive(ok, UDP);
    assert.equal(tx.state, 'accepted');
    clock.advance(1000);
    layer.receive(ok, UDP);
    layer.receive(createResponse(req, 200, { toTag: 'fork-b' }), UDP);
    layer.receive(createResponse(req, 486, { toTag: 'c' }), UDP);
    assert.deepEqual(log.responses, [200, 200, 200]);
    assert.equal(transport.times(isRequest('ACK')).length, 0);
    assert.deepEqual(transport.times(isRequest('INVITE')), [0]);
    clock.advance(31_000);
    assert.equal(tx.state, 'terminated');
    layer.receive(ok, UDP);
    assert.equal(strays.length, 1);
  });
});

describe('non-INVITE client transaction (§17.1.2)', () => {
  test('UDP: timer E doubles up to T2 until timer F', () => {
    const { clock, transport, layer } = setup();
    const { log, user } = clientUser();
    layer.sendRequest(request('OPTIONS'), UDP, user);
    clock.advance(40_000);
    assert.deepEqual(
      transport.times(isRequest('OPTIONS')),
      [0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500],
    );
    assert.equal(log.timeouts, 1);
  });

  test('in Proceeding, E fires every T2', () => {
    const { clock, transport, layer } = setup();
    const { log, user } = clientUser();
    const req = request('REGISTER');
    layer.sendRequest(req, UDP, user);
    clock.advance(600); // retransmitted at 500; next E at 1500
    layer.receive(createResponse(req, 100), UDP);
    clock.advance(12_000);
    assert.deepEqual(transport.times(isRequest('REGISTER')), [0, 500, 1500, 5500, 9500]);
    assert.deepEqual(log.responses, [100]);
  });

  test('final: Completed absorbs retransmissions, timer K = T4 on UDP', () => {
    const { clock, layer } = setup();
    const { log, user } = clientUser();
    const req = request('BYE');
    const tx = layer.sendRequest(req, UDP, user);
    layer.receive(createResponse(req, 200), UDP);
    layer.receive(createResponse(req, 200), UDP);
    assert.deepEqual(log.responses, [200]);
    assert.equal(tx.state, 'completed');
    clock.advance(4999);
    assert.equal(tx.state, 'completed');
    clock.advance(1);
    assert.equal(tx.state, 'terminated');
    assert.equal(log.timeouts, 0);
  });

  test('TCP: no retransmissions and timer K is zero', () => {
    const { clock, transport, layer } = setup();
    const { user } = clientUser();
    const req = request('BYE', undefined, [], 'TCP');
    const tx = layer.sendRequest(req, TCP, user);
    clock.advance(10_000);
    assert.equal(transport.sent.length, 1);
    layer.receive(createResponse(req, 200), TCP);
    clock.advance(0);
    assert.equal(tx.state, 'terminated');
  });

  test('configurable T1/T2/T4', () => {
    const clock = new FakeClock();
    const transport = new FakeTransport(clock);
    const layer = new TransactionLayer({
      transport,
      clock,
      timers: { T1: 100, T2: 300, T4: 1000 },
      onRequest() {},
    });
    const { log, user } = clientUser();
    layer.sendRequest(request('MESSAGE'), UDP, user);
    clock.advance(10_000);
    assert.deepEqual(transport.times(isRequest('MESSAGE')).slice(0, 5), [0, 100, 300, 600, 900]);
    assert.equal(log.timeouts, 1);
    assert.equal(transport.times(isRequest('MESSAGE')).at(-1), 6300);
  });

  test('a transport error is reported and ends the transaction', async () => {
    const { transport, layer } = setup();
    const { log, user } = clientUser();
    transport.fail = true;
    const tx: ClientTransaction = layer.sendRequest(request('OPTIONS'), UDP, user);
    await tick();
    assert.equal(log.errors, 1);
    assert.equal(tx.state, 'terminated');
    assert.deepEqual(layer.size, { clients: 0, servers: 0 });
  });

  test('responses match on branch and CSeq method (§17.1.3)', () => {
    const { layer, strays } = setup();
    const invite = clientUser();
    const cancel = clientUser();
    const branch = generateBranch();
    const inv = request('INVITE', branch);
    const can = request('CANCEL', branch);
    layer.sendRequest(inv, UDP, invite.user);
    layer.sendRequest(can, UDP, cancel.user);
    layer.receive(createResponse(can, 200), UDP);
    layer.receive(createResponse(inv, 487), UDP);
    layer.receive(createResponse(request('INVITE'), 200), UDP);
    assert.deepEqual(cancel.log.responses, [200]);
    assert.deepEqual(invite.log.responses, [487]);
    assert.equal(strays.length, 1);
  });

  test('ACK and branch-less requests cannot start client transactions', () => {
    const { layer } = setup();
    const { user } = clientUser();
    assert.throws(() => layer.sendRequest(request('ACK'), UDP, user), TypeError);
    assert.throws(() => layer.sendRequest(request('OPTIONS', 'old2543branch'), UDP, user), TypeError);
  });
});

describe('INVITE server transaction (§17.2.1, RFC 6026)', () => {
  test('100 Trying after 200 ms when the TU is silent, not when it answered', () => {
    const a = setup();
    a.layer.receive(request('INVITE'), UDP);
    a.clock.advance(199);
    assert.equal(a.transport.sent.length, 0);
    a.clock.advance(1);
    assert.deepEqual(a.transport.times(isStatus(100)), [200]);

    const b = setup();
    b.layer.receive(request('INVITE'), UDP);
    b.clock.advance(50);
    b.requests[0]!.tx!.respond(createResponse(b.requests[0]!.req, 180));
    b.clock.advance(1000);
    assert.equal(b.transport.times(isStatus(100)).length, 0);

    const c = setup({ trying100DelayMs: false });
    c.layer.receive(request('INVITE'), UDP);
    c.clock.advance(1000);
    assert.equal(c.transport.sent.length, 0);
  });

  test('a retransmitted INVITE gets the last provisional again and does not reach the TU', () => {
    const { layer, transport, requests } = setup();
    const req = request('INVITE');
    layer.receive(req, UDP);
    const tx = requests[0]!.tx!;
    tx.respond(createResponse(req, 180, { toTag: 'x' }));
    layer.receive(request('INVITE', getBranch(req)), UDP);
    layer.receive(request('INVITE', getBranch(req)), UDP);
    assert.equal(requests.length, 1);
    assert.equal(transport.times(isStatus(180)).length, 3);
  });

  test('non-2xx final: timer G retransmits (capped at T2) until timer H, which reports no ACK', () => {
    const { clock, layer, transport, requests } = setup();
    const req = request('INVITE');
    layer.receive(req, UDP);
    const tx = requests[0]!.tx!;
    let timedOut = 0;
    tx.onTimeout = () => timedOut++;
    tx.respond(createResponse(req, 486));
    clock.advance(40_000);
    assert.deepEqual(
      transport.times(isStatus(486)),
      [0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500],
    );
    assert.equal(timedOut, 1);
    assert.equal(tx.state, 'terminated');
  });

  test('the ACK confirms: G and H stop, ACKs are absorbed, timer I = T4 on UDP', () => {
    const { clock, layer, transport, requests } = setup();
    const req = request('INVITE');
    layer.receive(req, UDP);
    const tx = requests[0]!.tx!;
    const busy = createResponse(req, 486, { toTag: 'srv' });
    tx.respond(busy);
    clock.advance(600);
    const ack = request('ACK', getBranch(req));
    layer.receive(ack, UDP);
    assert.equal(tx.state, 'confirmed');
    layer.receive(ack, UDP);
    layer.receive(request('INVITE', getBranch(req)), UDP); // late retransmission: absorbed
    assert.equal(requests.length, 1, 'ACKs never reach the TU');
    clock.advance(4999);
    assert.equal(tx.state, 'confirmed');
    clock.advance(1);
    assert.equal(tx.state, 'terminated');
    assert.deepEqual(transport.times(isStatus(486)), [0, 500]);
  });

  test('over TCP there is no timer G and timer I is zero', () => {
    const { clock, layer, transport, requests } = setup();
    const req = request('INVITE', undefined, [], 'TCP');
    layer.receive(req, TCP);
    const tx = requests[0]!.tx!;
    tx.respond(createResponse(req, 404));
    clock.advance(10_000);
    assert.equal(transport.times(isStatus(404)).length, 1);
    layer.receive(request('ACK', getBranch(req), [], 'TCP'), TCP);
    clock.advance(0);
    assert.equal(tx.state, 'terminated');
  });

  test('2xx: Accepted absorbs INVITE retransmissions, sends the TU 2xx retransmissions, timer L ends it', () => {
    const { clock, layer, transport, requests } = setup();
    const req = request('INVITE');
    layer.receive(req, UDP);
    const tx = requests[0]!.tx!;
    const ok = createResponse(req, 200, { toTag: 'srv' });
    tx.respond(ok);
    assert.equal(tx.state, 'accepted');
    layer.receive(request('INVITE', getBranch(req)), UDP);
    assert.equal(transport.times(isStatus(200)).length, 1, 'the transaction does not retransmit 2xx itself');
    clock.advance(500);
    tx.respond(ok); // the TU retransmits (§13.3.1.4)
    assert.equal(transport.times(isStatus(200)).length, 2);
    assert.throws(() => tx.respond(createResponse(req, 486)), /cannot send 486/);
    const ack = request('ACK', generateBranch());
    layer.receive(ack, UDP);
    assert.equal(requests.length, 2);
    assert.equal(requests[1]!.tx, undefined, 'the ACK for a 2xx goes to the TU without a transaction');
    clock.advance(31_499);
    assert.equal(tx.state, 'accepted');
    clock.advance(1);
    assert.equal(tx.state, 'terminated');
  });
});

describe('what transactions keep while they absorb retransmissions', () => {
  const names = (m: SipMessage) => m.headers.map((h) => h.name);
  const withBody = (method: string) => {
    const r = request(method, undefined, ['Contact: <sip:alice@192.0.2.1>', 'Content-Type: application/sdp']);
    r.body = Buffer.from('v=0\r\n');
    return r;
  };

  test('a server transaction keeps only the identity of its request once it answered finally', () => {
    const { layer, transport, requests } = setup();
    layer.receive(withBody('INVITE'), UDP);
    const tx = requests[0]!.tx!;
    tx.respond(createResponse(tx.request, 180, { toTag: 's' }));
    assert.equal(tx.request.body.length, 5, 'whole while it may still answer');
    const ok = createResponse(tx.request, 200, { toTag: 's' });
    tx.respond(ok);
    assert.deepEqual(names(tx.request), ['Via', 'Via', 'To', 'From', 'Call-ID', 'CSeq']);
    assert.equal(tx.request.body.length, 0);
    assert.equal(tx.response, undefined, 'a 2xx to INVITE is retransmitted by the TU, not kept');
    tx.respond(ok); // the TU's retransmission still goes out
    assert.equal(transport.times(isStatus(200)).length, 2);
  });

  test('a non-INVITE server transaction still re-sends its final response from the identity', () => {
    const { layer, transport, requests } = setup();
    const bye = withBody('BYE');
    layer.receive(bye, UDP);
    const tx = requests[0]!.tx!;
    tx.respond(createResponse(bye, 200));
    assert.equal(tx.request.body.length, 0);
    layer.receive(request('BYE', getBranch(bye)), UDP);
    assert.equal(transport.times(isStatus(200)).length, 2);
  });

  test('a client transaction keeps only the identity of its request after the final response', () => {
    const { layer } = setup();
    const { user } = clientUser();
    const invite = withBody('INVITE');
    const tx = layer.sendRequest(invite, UDP, user);
    layer.receive(createResponse(invite, 180, { toTag: 'c' }), UDP);
    assert.equal(tx.request, invite);
    layer.receive(createResponse(invite, 200, { toTag: 'c' }), UDP);
    assert.equal(tx.state, 'accepted');
    assert.deepEqual(names(tx.request), ['Via', 'Via', 'To', 'From', 'Call-ID', 'CSeq']);
    assert.equal(formatUri(tx.request.uri), 'sip:bob@example.com');
  });
});

describe('stateless answers (§8.2.7: challenges)', () => {
  test('INVITE: the 407 is sent once, the transaction is gone, a retransmission is a new request, the ACK goes to the TU', () => {
    const { clock, layer, transport, requests } = setup();
    const req = request('INVITE');
    layer.receive(req, UDP);
    const tx = requests[0]!.tx!;
    tx.respondStatelessly(createResponse(req, 407, { toTag: 'c1' }));
    assert.equal(tx.state, 'terminated');
    assert.deepEqual(layer.size, { clients: 0, servers: 0 });
    clock.advance(40_000);
    assert.deepEqual(transport.times(isStatus(407)), [0], 'no timer G retransmission');
    assert.equal(transport.times(isStatus(100)).length, 0, 'no 100 Trying after the answer');
    layer.receive(request('INVITE', getBranch(req)), UDP);
    assert.equal(requests.length, 2, 'the retransmitted INVITE reaches the TU again, to be challenged anew');
    requests[1]!.tx!.respondStatelessly(createResponse(requests[1]!.req, 407, { toTag: 'c2' }));
    layer.receive(request('ACK', getBranch(req)), UDP);
    assert.equal(requests.length, 3);
    assert.equal(requests[2]!.tx, undefined, 'the ACK matches no transaction');
    assert.deepEqual(layer.size, { clients: 0, servers: 0 });
  });

  test('REGISTER: no timer J state; only final non-2xx answers, only before a final', () => {
    const { layer, transport, requests } = setup();
    const req = request('REGISTER');
    layer.receive(req, UDP);
    const tx = requests[0]!.tx!;
    assert.throws(() => tx.respondStatelessly(createResponse(req, 200)), /cannot be sent statelessly/);
    assert.throws(() => tx.respondStatelessly(createResponse(req, 180)), /cannot be sent statelessly/);
    tx.respondStatelessly(createResponse(req, 401));
    assert.deepEqual(layer.size, { clients: 0, servers: 0 });
    assert.throws(() => tx.respondStatelessly(createResponse(req, 401)), /in state terminated/);
    assert.equal(transport.times(isStatus(401)).length, 1);
  });
});

describe('non-INVITE server transaction (§17.2.2)', () => {
  test('Trying discards retransmissions; Proceeding re-sends the provisional; Completed the final', () => {
    const { clock, layer, transport, requests } = setup();
    const branch = generateBranch();
    const req = request('REGISTER', branch);
    layer.receive(req, UDP);
    const tx = requests[0]!.tx!;
    layer.receive(request('REGISTER', branch), UDP);
    assert.equal(transport.sent.length, 0);
    tx.respond(createResponse(req, 100));
    assert.equal(tx.state, 'proceeding');
    layer.receive(request('REGISTER', branch), UDP);
    assert.equal(transport.times(isStatus(100)).length, 2);
    tx.respond(createResponse(req, 200));
    assert.equal(tx.state, 'completed');
    layer.receive(request('REGISTER', branch), UDP);
    assert.equal(transport.times(isStatus(200)).length, 2);
    assert.equal(requests.length, 1);
    assert.throws(() => tx.respond(createResponse(req, 200)));
    // Timer J = 64*T1 on UDP; afterwards the same request is new again.
    clock.advance(31_999);
    assert.equal(tx.state, 'completed');
    clock.advance(1);
    assert.equal(tx.state, 'terminated');
    layer.receive(request('REGISTER', branch), UDP);
    assert.equal(requests.length, 2);
  });

  test('TCP: timer J is zero', () => {
    const { clock, layer, requests } = setup();
    const req = request('OPTIONS', undefined, [], 'TCP');
    layer.receive(req, TCP);
    const tx = requests[0]!.tx!;
    tx.respond(createResponse(req, 200));
    clock.advance(0);
    assert.equal(tx.state, 'terminated');
    assert.deepEqual(layer.size, { clients: 0, servers: 0 });
  });
});

describe('server transaction matching (§17.2.3)', () => {
  test('branch + sent-by + method; CANCEL is its own transaction and finds its INVITE', () => {
    const { layer, requests } = setup({ trying100DelayMs: false });
    const branch = generateBranch();
    layer.receive(request('INVITE', branch), UDP);
    const other = request('INVITE', branch);
    other.headers[0] = { name: 'Via', value: `SIP/2.0/UDP 192.0.2.77:5060;branch=${branch}` };
    layer.receive(other, UDP);
    assert.equal(requests.length, 2, 'same branch from another sent-by is another transaction');
    const cancel = request('CANCEL', branch);
    layer.receive(cancel, UDP);
    assert.equal(requests.length, 3);
    assert.equal(requests[2]!.tx?.isInvite, false);
    assert.equal(layer.findInviteForCancel(cancel), requests[0]!.tx);
    assert.deepEqual(layer.size, { clients: 0, servers: 3 });
  });

  test('RFC 2543 requests (no magic cookie) match their retransmissions and their ACK', () => {
    const { layer, requests, transport } = setup({ trying100DelayMs: false });
    const req = request('INVITE', 'oldstyle1');
    layer.receive(req, UDP);
    layer.receive(request('INVITE', 'oldstyle1'), UDP);
    assert.equal(requests.length, 1);
    const tx = requests[0]!.tx!;
    tx.respond(createResponse(req, 480, { toTag: 'z' }));
    layer.receive(request('ACK', 'oldstyle1', []), UDP);
    assert.equal(tx.state, 'confirmed');
    assert.equal(requests.length, 1);
    assert.equal(transport.sent.length, 1);
  });

  test('an ACK matching nothing goes to the TU; a throwing TU does not break the layer', () => {
    const clock = new FakeClock();
    const transport = new FakeTransport(clock);
    let calls = 0;
    const layer = new TransactionLayer({
      transport,
      clock,
      onRequest: () => {
        calls++;
        throw new Error('TU bug');
      },
    });
    layer.receive(request('ACK'), UDP);
    layer.receive(request('OPTIONS'), UDP);
    assert.equal(calls, 2);
    layer.close();
    assert.deepEqual(layer.size, { clients: 0, servers: 0 });
    assert.equal(clock.pending, 0);
  });
});

function getBranch(req: SipRequest): string {
  return /branch=([^;,\s]+)/.exec(getHeader(req, 'Via') ?? '')?.[1] ?? '';
}
