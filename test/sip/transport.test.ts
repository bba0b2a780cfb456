import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import {
  createResponse,
  getHeader,
  getTopVia,
  parseMessage,
  serialize,
  type SipMessage,
  type SipRequest,
} from '../../src/sip/message.js';
import {
  errorResponseFor,
  responseDestination,
  SipTransportLayer,
  type Endpoint,
  type SipLogger,
  type TransportKind,
} from '../../src/sip/transport.js';
import { parseVia, SipParseError } from '../../src/sip/message.js';

const HOST = '127.0.0.1';

function options(
  port: number,
  via = `SIP/2.0/UDP ${HOST}:${port};rport;branch=z9hG4bK1`,
  extra = '',
): Buffer {
  return Buffer.from(
    [
      'OPTIONS sip:server@127.0.0.1 SIP/2.0',
      `Via: ${via}`,
      'To: <sip:server@127.0.0.1>',
      'From: <sip:client@127.0.0.1>;tag=ft',
      'Call-ID: call-1',
      'CSeq: 1 OPTIONS',
      'Max-Forwards: 70',
      extra,
      'Content-Length: 0',
      '',
      '',
    ]
      .filter((l, i, a) => l !== '' || i >= a.length - 2)
      .join('\r\n'),
  );
}

/** Queues what the layer delivers so a test can await the next message. */
function inbox(layer: SipTransportLayer): () => Promise<{ message: SipMessage; source: Endpoint }> {
  const queue: { message: SipMessage; source: Endpoint }[] = [];
  const waiters: ((v: { message: SipMessage; source: Endpoint }) => void)[] = [];
  layer.onMessage((message, source) => {
    const w = waiters.shift();
    if (w) w({ message, source });
    else queue.push({ message, source });
  });
  return () => {
    const first = queue.shift();
    if (first) return Promise.resolve(first);
    return new Promise((resolve) => waiters.push(resolve));
  };
}

/** A logger that records warnings and lets a test await the next one. */
function recordingLogger(): SipLogger & { nextWarning: () => Promise<object> } {
  const waiters: ((o: object) => void)[] = [];
  return {
    debug() {},
    error() {},
    warn(obj: object) {
      waiters.shift()?.(obj);
    },
    nextWarning: () => new Promise((resolve) => waiters.push(resolve)),
  };
}

/** A raw client: a UDP socket or a TCP connection to the layer, reading whole messages back. */
interface RawClient {
  port: number;
  send(data: Buffer | string): void;
  receive(): Promise<Buffer>;
  close(): Promise<void>;
}

async function rawClient(kind: TransportKind, serverPort: number): Promise<RawClient> {
  if (kind === 'udp') {
    const socket: UdpSocket = createSocket('udp4');
    socket.bind(0, HOST);
    await once(socket, 'listening');
    return {
      port: socket.address().port,
      send: (data) => socket.send(data, serverPort, HOST),
      receive: async () => ((await once(socket, 'message')) as [Buffer])[0],
      close: () => new Promise((resolve) => socket.close(() => resolve())),
    };
  }
  const socket: Socket = connect(serverPort, HOST);
  await once(socket, 'connect');
  let buffered = Buffer.alloc(0);
  socket.on('data', (d: Buffer) => {
    buffered = Buffer.concat([buffered, d]);
    socket.emit('sip-data');
  });
  return {
    port: socket.localPort ?? 0,
    send: (data) => socket.write(data),
    receive: async () => {
      while (!buffered.includes('\r\n\r\n')) await once(socket, 'sip-data');
      const end = buffered.indexOf('\r\n\r\n') + 4;
      const length = Number(/Content-Length: (\d+)/i.exec(buffered.subarray(0, end).toString())?.[1] ?? 0);
      while (buffered.length < end + length) await once(socket, 'sip-data');
      const out = buffered.subarray(0, end + length);
      buffered = buffered.subarray(end + length);
      return out;
    },
    close: async () => {
      if (!socket.destroyed) {
        socket.destroy();
        await once(socket, 'close');
      }
    },
  };
}

for (const kind of ['udp', 'tcp'] as const) {
  describe(`shared transport behaviour: ${kind}`, () => {
    test('a request arrives parsed, with source, received and rport; the response goes back', async () => {
      const layer = await SipTransportLayer.start({ host: HOST, port: 0 });
      const next = inbox(layer);
      const client = await rawClient(kind, layer.port);
      try {
        client.send(
          options(client.port, `SIP/2.0/${kind.toUpperCase()} client.invalid:5999;rport;branch=z9hG4bKa`),
        );
        const { message, source } = await next();
        assert.equal(message.type, 'request');
        assert.equal(source.transport, kind);
        assert.equal(source.address, HOST);
        assert.equal(source.port, client.port);
        if (kind === 'tcp') assert.equal(typeof source.connectionId, 'number');
        const via = getTopVia(message);
        assert.equal(via.received, HOST);
        assert.equal(via.rport, client.port);

        await layer.sendResponse(createResponse(message, 200), source);
        const response = parseMessage(await client.receive());
        assert.equal(response.type === 'response' && response.status, 200);
        assert.equal(getTopVia(response).rport, client.port);
      } finally {
        await client.close();
        await layer.close();
      }
    });

    test('received is added only when the sent-by differs from the source address (§18.2.1)', async () => {
      const layer = await SipTransportLayer.start({ host: HOST, port: 0 });
      const next = inbox(layer);
      const client = await rawClient(kind, layer.port);
      try {
        client.send(
          options(client.port, `SIP/2.0/${kind.toUpperCase()} ${HOST}:${client.port};branch=z9hG4bKb`),
        );
        const { message } = await next();
        assert.equal(getTopVia(message).received, undefined);
        client.send(options(client.port, `SIP/2.0/${kind.toUpperCase()} 192.0.2.1;branch=z9hG4bKc`));
        assert.equal(getTopVia((await next()).message).received, HOST);
      } finally {
        await client.close();
        await layer.close();
      }
    });

    test('a throwing handler does not break the transport', async () => {
      const layer = await SipTransportLayer.start({ host: HOST, port: 0 });
      let calls = 0;
      const second = new Promise<void>((resolve) =>
        layer.onMessage(() => {
          calls++;
          if (calls === 1) throw new Error('boom');
          resolve();
        }),
      );
      const client = await rawClient(kind, layer.port);
      try {
        client.send(options(client.port));
        client.send(options(client.port));
        await second;
        assert.equal(calls, 2);
      } finally {
        await client.close();
        await layer.close();
      }
    });
  });
}

describe('UDP', () => {
  test('malformed datagrams are dropped and logged; the next one still arrives', async () => {
    const logger = recordingLogger();
    const layer = await SipTransportLayer.start({ host: HOST, port: 0, logger });
    const next = inbox(layer);
    const client = await rawClient('udp', layer.port);
    try {
      const warned = logger.nextWarning();
      client.send('INVITE <sip:x@y> SIP/2.0\r\n\r\n');
      const warning = (await warned) as { status?: number };
      assert.equal(warning.status, 400);
      client.send('\r\n\r\n'); // keep-alive: ignored silently
      client.send(options(client.port));
      assert.equal((await next()).message.type, 'request');
    } finally {
      await client.close();
      await layer.close();
    }
  });

  test('a response without a connection goes to received and rport', async () => {
    const layer = await SipTransportLayer.start({ host: HOST, port: 0, transports: ['udp'] });
    const client = await rawClient('udp', layer.port);
    try {
      const req = parseMessage(options(client.port)) as SipRequest;
      req.headers[0] = {
        name: 'Via',
        value: `SIP/2.0/UDP 192.0.2.99:5;branch=z9hG4bK1;received=${HOST};rport=${client.port}`,
      };
      await layer.sendResponse(createResponse(req, 486));
      const got = parseMessage(await client.receive());
      assert.equal(got.type === 'response' && got.status, 486);
    } finally {
      await client.close();
      await layer.close();
    }
  });
  test('the queue probe (overload control) measures on a socket bound to every interface; a look-alike from elsewhere is not one', async () => {
    const logger = recordingLogger();
    const layer = await SipTransportLayer.start({ host: '0.0.0.0', port: 0, transports: ['udp'], logger });
    const client = await rawClient('udp', layer.port);
    try {
      const seen: { delayMs: number; probe: number; final: boolean }[] = [];
      let arrived!: () => void;
      const twoBack = new Promise<void>((r) => (arrived = r));
      layer.udp!.startProbe(5, 1000, (delayMs, probe, final) => {
        seen.push({ delayMs, probe, final });
        if (seen.filter((m) => m.final).length === 2) arrived();
      });
      await twoBack;
      const back = seen.filter((m) => m.final);
      assert.deepEqual(
        back.map((m) => m.probe),
        [1, 2],
      );
      assert.ok(
        back.every((m) => m.delayMs >= 0 && m.delayMs < 1000),
        JSON.stringify(back),
      );
      // The same shape from another port: parsed as SIP, so dropped as malformed and logged.
      const warned = logger.nextWarning();
      client.send(`OneCloud-probe ${'0'.repeat(16)} 0000000001`);
      assert.equal(((await warned) as { status?: number }).status, 400);
    } finally {
      await client.close();
      await layer.close();
    }
  });

  test('the socket asks for a large receive buffer (bursts overflowed the default ~200 KB)', async (t) => {
    let max = 0;
    try {
      max = Number(readFileSync('/proc/sys/net/core/rmem_max', 'utf8').trim());
    } catch {
      // not Linux
    }
    if (!(max >= 1 << 20)) return t.skip(`net.core.rmem_max is ${max}: the kernel caps the buffer`);
    const layer = await SipTransportLayer.start({ host: HOST, port: 0, transports: ['udp'] });
    try {
      // Linux reports twice what was granted; the default (net.core.rmem_default) is ~200 KB.
      assert.ok(layer.udp!.bufferSizes().receive >= 1 << 20, JSON.stringify(layer.udp!.bufferSizes()));
    } finally {
      await layer.close();
    }
  });
});

describe('TCP', () => {
  test('a message split into single bytes is framed; a double-CRLF ping gets a pong', async () => {
    const layer = await SipTransportLayer.start({ host: HOST, port: 0, transports: ['tcp'] });
    const next = inbox(layer);
    const socket = connect(layer.port, HOST);
    await once(socket, 'connect');
    try {
      socket.write('\r\n\r\n');
      const [pong] = (await once(socket, 'data')) as [Buffer];
      assert.equal(pong.toString(), '\r\n');
      const data = options(socket.localPort ?? 0, undefined, 'Subject: bytes');
      for (const byte of data) socket.write(Buffer.from([byte]));
      const { message } = await next();
      assert.equal(getHeader(message, 'Subject'), 'bytes');
    } finally {
      socket.destroy();
      await layer.close();
    }
  });

  test('a malformed request gets a 400 on its connection, which is then closed', async () => {
    const layer = await SipTransportLayer.start({ host: HOST, port: 0, transports: ['tcp'] });
    const client = await rawClient('tcp', layer.port);
    try {
      client.send(options(client.port).toString().replace('CSeq: 1 OPTIONS', 'CSeq: 1 INVITE'));
      const response = parseMessage(await client.receive());
      assert.ok(response.type === 'response');
      assert.equal(response.status, 400);
      assert.equal(getHeader(response, 'Call-ID'), 'call-1');
      assert.equal(getHeader(response, 'CSeq'), '1 INVITE');
      assert.match(getHeader(response, 'To') ?? '', /;tag=/);
      await waitFor(() => layer.tcp?.connectionCount === 0, layer);
    } finally {
      await client.close();
      await layer.close();
    }
  });

  test('a connection exceeding its buffer limit is answered 513 and closed', async () => {
    const layer = await SipTransportLayer.start({
      host: HOST,
      port: 0,
      transports: ['tcp'],
      limits: { maxMessageSize: 1000 },
    });
    const socket = connect(layer.port, HOST);
    await once(socket, 'connect');
    const chunks: Buffer[] = [];
    socket.on('data', (d: Buffer) => chunks.push(d));
    try {
      socket.write('OPTIONS sip:a@b SIP/2.0\r\nCall-ID: big\r\nX: ' + 'a'.repeat(2000));
      await once(socket, 'close');
      const text = Buffer.concat(chunks).toString();
      assert.match(text, /^SIP\/2\.0 513 Message Too Large\r\n/);
      assert.match(text, /Call-ID: big/);
    } finally {
      socket.destroy();
      await layer.close();
    }
  });

  test('idle connections are closed', async () => {
    const layer = await SipTransportLayer.start({
      host: HOST,
      port: 0,
      transports: ['tcp'],
      idleTimeoutMs: 30,
    });
    const socket = connect(layer.port, HOST);
    try {
      await once(socket, 'connect');
      await once(socket, 'close');
      await waitFor(() => layer.tcp?.connectionCount === 0, layer);
    } finally {
      socket.destroy();
      await layer.close();
    }
  });

  test('connections are reused both ways; responses follow the request connection', async () => {
    const a = await SipTransportLayer.start({ host: HOST, port: 0, transports: ['tcp'] });
    const b = await SipTransportLayer.start({ host: HOST, port: 0, transports: ['tcp'] });
    const nextA = inbox(a);
    const nextB = inbox(b);
    try {
      const dest: Endpoint = { transport: 'tcp', address: HOST, port: b.port };
      for (let i = 1; i <= 3; i++) {
        const req = parseMessage(options(a.port, `SIP/2.0/TCP ${HOST}:${a.port};branch=z9hG4bK${i}`));
        await a.send(req, dest);
        const got = await nextB();
        await b.sendResponse(createResponse(got.message as SipRequest, 200), got.source);
        const res = await nextA();
        assert.equal(res.message.type, 'response');
        assert.equal(res.source.port, b.port);
      }
      assert.equal(a.tcp?.connectionCount, 1);
      assert.equal(b.tcp?.connectionCount, 1);
    } finally {
      await a.close();
      await b.close();
    }
  });

  test('when the request connection is gone, the response opens one to the sent-by', async () => {
    const a = await SipTransportLayer.start({ host: HOST, port: 0, transports: ['tcp'] });
    const b = await SipTransportLayer.start({ host: HOST, port: 0, transports: ['tcp'] });
    const nextB = inbox(b);
    try {
      await a.send(parseMessage(options(a.port, `SIP/2.0/TCP ${HOST}:${a.port};branch=z9hG4bKx`)), {
        transport: 'tcp',
        address: HOST,
        port: b.port,
      });
      const got = await nextB();
      await a.tcp?.close(); // drop A's connections (and listener) ...
      const a2 = await SipTransportLayer.start({ host: HOST, port: a.port, transports: ['tcp'] }); // ... listener back
      const nextA2 = inbox(a2);
      try {
        await waitFor(() => b.tcp?.connectionCount === 0, b);
        await b.sendResponse(createResponse(got.message as SipRequest, 200), got.source);
        const res = await nextA2();
        assert.equal(res.message.type, 'response');
      } finally {
        await a2.close();
      }
    } finally {
      await b.close();
    }
  });
});

describe('routing helpers', () => {
  test('responseDestination follows §18.2.2 and RFC 3581', () => {
    assert.deepEqual(
      responseDestination(parseVia('SIP/2.0/UDP h.example:5070;received=192.0.2.1;rport=4000')),
      {
        transport: 'udp',
        address: '192.0.2.1',
        port: 4000,
      },
    );
    assert.deepEqual(responseDestination(parseVia('SIP/2.0/UDP h.example;received=192.0.2.1')), {
      transport: 'udp',
      address: '192.0.2.1',
      port: 5060,
    });
    assert.deepEqual(responseDestination(parseVia('SIP/2.0/TCP [2001:db8::1]:5070;rport=4000')), {
      transport: 'tcp',
      address: '2001:db8::1',
      port: 5070,
    });
    assert.deepEqual(
      responseDestination(parseVia('SIP/2.0/UDP h.example;maddr=239.1.1.1;received=192.0.2.1')),
      {
        transport: 'udp',
        address: '239.1.1.1',
        port: 5060,
      },
    );
  });

  test('errorResponseFor answers requests only', () => {
    const err = new SipParseError(400, 'x');
    assert.equal(errorResponseFor(Buffer.from('SIP/2.0 200 OK\r\nVia: x\r\n\r\n'), err), undefined);
    const r = errorResponseFor(serialize(parseMessage(options(5060))), err)?.toString() ?? '';
    assert.match(r, /^SIP\/2\.0 400 Bad Request\r\nVia: .*\r\nTo: <sip:server@127\.0\.0\.1>;tag=\w+\r\n/);
  });
});

/** Waits (on socket events, not timers) until `cond` holds; fails the test if it never does. */
async function waitFor(cond: () => boolean, layer: SipTransportLayer): Promise<void> {
  for (let i = 0; i < 1000 && !cond(); i++) await new Promise((resolve) => setImmediate(resolve));
  assert.ok(cond(), `condition never held on port ${layer.port}`);
}
