/**
 * The subscriber side of bench/events.ts, in its own process: opens one Server-Sent Events
 * stream per (url, token) it is sent over IPC, says `ready` once every stream is open, records
 * the latency of each event of the benchmark's type (now − data.sentAt, same wall clock), and
 * reports when every stream has every event or the deadline after `published` passes.
 */
import net from 'node:net';
import type { ClientReport, ClientRequest } from './events-stats.js';

const now = (): number => performance.timeOrigin + performance.now();
const send = (m: unknown): void => {
  process.send?.(m);
};

process.on('message', (m: ClientRequest | { kind: 'published'; elapsedS: number }) => {
  if ('streams' in m) start(m);
  else if (m.kind === 'published') published();
});

let finish: (() => void) | undefined;
let deadlineMs = 20_000;
function published(): void {
  setTimeout(() => finish?.(), deadlineMs).unref();
}

function start(req: ClientRequest): void {
  deadlineMs = req.deadlineMs;
  const latencies: number[] = [];
  const errors: string[] = [];
  let duplicates = 0;
  let outOfOrder = 0;
  let open = 0;
  let complete = 0;
  const sockets: net.Socket[] = [];
  let reported = false;
  finish = () => {
    if (reported) return;
    reported = true;
    for (const r of sockets) r.destroy();
    const report: ClientReport = { kind: 'report', latencies, duplicates, outOfOrder, errors };
    send(report);
    setTimeout(() => process.exit(0), 200).unref();
  };
  const marker = `event: ${req.type}\n`;

  for (const s of req.streams) {
    let lastN = -1;
    let received = 0;
    let buffer = '';
    let headers = true;
    const url = new URL(s.url);
    // A raw socket and a minimal parser: the reader's own cost is part of what is measured, so
    // it is kept small (no HTTP client machinery per chunk).
    const socket = net.connect(Number(url.port), url.hostname, () => {
      socket.write(
        `GET ${url.pathname} HTTP/1.1\r\nHost: ${url.host}\r\nAccept: text/event-stream\r\n` +
          `Authorization: Bearer ${s.token}\r\n\r\n`,
      );
    });
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      if (headers) {
        const end = buffer.indexOf('\r\n\r\n');
        if (end < 0) return;
        const status = buffer.slice(0, buffer.indexOf('\r\n'));
        if (!/^HTTP\/1\.1 200 /.test(status)) {
          errors.push(`${s.url}: ${status}`);
          socket.destroy();
          return;
        }
        headers = false;
        buffer = buffer.slice(end + 4);
        open += 1;
        if (open === req.streams.length) send({ kind: 'ready' });
      }
      let cut: number;
      while ((cut = buffer.indexOf('\n\n')) >= 0) {
        // (chunked framing, when used, leaves its size lines between frames: they are skipped)
        const block = buffer.slice(0, cut + 1);
        buffer = buffer.slice(cut + 2);
        if (!block.includes(marker)) continue;
        const data = block.slice(block.indexOf('data: ') + 6, block.lastIndexOf('\n'));
        const e = JSON.parse(data) as { data: { sentAt: number; n: number } };
        latencies.push(now() - e.data.sentAt);
        if (e.data.n === lastN) duplicates += 1;
        else if (e.data.n < lastN) outOfOrder += 1;
        lastN = e.data.n;
        received += 1;
        if (received === req.expected) {
          complete += 1;
          if (complete === req.streams.length) finish?.();
        }
      }
    });
    socket.on('end', () => {
      if (!reported && received < req.expected) errors.push(`${s.url}: stream ended early`);
    });
    socket.on('error', (err) => {
      if (!reported) errors.push(`${s.url}: ${err.message}`);
    });
    sockets.push(socket);
  }
}
