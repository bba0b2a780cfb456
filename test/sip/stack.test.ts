/** The transport and transaction layers together over real loopback sockets (no sipp needed). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  createResponse,
  formatNameAddr,
  formatVia,
  generateBranch,
  generateCallId,
  generateTag,
  parseUri,
  type SipRequest,
  type SipResponse,
} from '../../src/sip/message.js';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { realClock } from '../../src/sip/clock.js';
import { localAddress } from '../../src/sip/dialog.js';
import { SipTransportLayer, type TransportKind } from '../../src/sip/transport.js';
import { TransactionLayer } from '../../src/sip/transaction.js';
import { UserAgentCore } from '../../src/sip/ua.js';

async function node(onRequest: ConstructorParameters<typeof TransactionLayer>[0]['onRequest']) {
  const transport = await SipTransportLayer.start({ host: '127.0.0.1', port: 0 });
  const layer = new TransactionLayer({ transport, onRequest, trying100DelayMs: false });
  transport.onMessage((m, s) => layer.receive(m, s));
  return { transport, layer };
}

for (const kind of ['udp', 'tcp'] as const satisfies readonly TransportKind[]) {
  test(`OPTIONS through both layers over ${kind}`, async () => {
    const server = await node((req, tx) => tx?.respond(createResponse(req, 200, { reason: 'Fine' })));
    const client = await node(() => {});
    try {
      const target = `sip:server@127.0.0.1:${server.transport.port}`;
      const req: SipRequest = {
        type: 'request',
        method: 'OPTIONS',
        uri: parseUri(target),
        headers: [
          { name: 'Via', value: formatVia(client.transport.via(kind, generateBranch())) },
          { name: 'Max-Forwards', value: '70' },
          { name: 'To', value: `<${target}>` },
          {
            name: 'From',
            value: formatNameAddr({
              uri: parseUri('sip:client@127.0.0.1'),
              params: new Map([['tag', generateTag()]]),
            }),
          },
          { name: 'Call-ID', value: generateCallId() },
          { name: 'CSeq', value: '1 OPTIONS' },
        ],
        body: Buffer.alloc(0),
      };
      const response = await new Promise<SipResponse>((resolve, reject) => {
        client.layer.sendRequest(
          req,
          { transport: kind, address: '127.0.0.1', port: server.transport.port },
          { onResponse: resolve, onTimeout: () => reject(new Error('timeout')), onTransportError: reject },
        );
      });
      assert.equal(response.status, 200);
      assert.equal(response.reason, 'Fine');
    } finally {
      client.layer.close();
      server.layer.close();
      await client.transport.close();
      await server.transport.close();
    }
  });
}

test('a settled request lets go of its response while its transaction absorbs retransmissions', async () => {
  // The transaction lives on (timer K, 5 s over UDP) and holds the UA's callbacks: they must not
  // reach the final response (a parsed message with all its views) through the settled promise.
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const server = await node((req, tx) => tx?.respond(createResponse(req, 200)));
  const client = await node(() => {});
  const ua = new UserAgentCore(client.transport, client.layer, localAddress(client.transport), realClock, {
    debug() {},
    warn() {},
    error() {},
  });
  try {
    const target = `sip:server@127.0.0.1:${server.transport.port}`;
    const dest = { transport: 'udp' as const, address: '127.0.0.1', port: server.transport.port };
    const send = async (): Promise<WeakRef<SipResponse>> => {
      const req: SipRequest = {
        type: 'request',
        method: 'OPTIONS',
        uri: parseUri(target),
        headers: [
          { name: 'Via', value: formatVia(client.transport.via('udp', generateBranch())) },
          { name: 'Max-Forwards', value: '70' },
          { name: 'To', value: `<${target}>` },
          { name: 'From', value: `<sip:client@127.0.0.1>;tag=${generateTag()}` },
          { name: 'Call-ID', value: generateCallId() },
          { name: 'CSeq', value: '1 OPTIONS' },
        ],
        body: Buffer.alloc(0),
      };
      const res = await ua.request(req, dest).final;
      assert.equal(res.status, 200);
      return new WeakRef(res);
    };
    const response = await send();
    await new Promise((r) => setImmediate(r));
    gc();
    await new Promise((r) => setImmediate(r));
    assert.equal(client.layer.size.clients, 1, 'the transaction is still there (timer K)');
    assert.equal(response.deref(), undefined, 'the response was collected');
  } finally {
    ua.close();
    client.layer.close();
    server.layer.close();
    await client.transport.close();
    await server.transport.close();
  }
});
