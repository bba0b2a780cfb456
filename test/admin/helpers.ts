import type { AddressInfo } from 'node:net';
import type { TestApp } from '../helpers/app.js';
import { signed } from '../helpers/fixtures.js';

export type Rec = Record<string, unknown>;
export interface Page<T = Rec> {
  items: T[];
  next: string | null;
}
export interface ErrorAnswer {
  validationResult: string;
  status: number;
  errors?: { field: string; message: string }[];
}

export interface Answer<T = Rec> {
  status: number;
  json: T;
  body: string;
  headers: Record<string, string>;
}

export type Ticket = { token: string; secret: string };

/** The base URL of the app listening on 127.0.0.1 (an ephemeral port), started on first use. */
const listening = new WeakMap<TestApp['app'], Promise<string>>();
export function baseUrl(t: TestApp): Promise<string> {
  let url = listening.get(t.app);
  if (!url) {
    url = t.app.listen({ host: '127.0.0.1', port: 0 }).then(() => {
      const { port } = t.app.server.address() as AddressInfo;
      return `http://127.0.0.1:${port}`;
    });
    listening.set(t.app, url);
  }
  return url;
}

/**
 * A signed admin request (SNT-HMACv1) over real HTTP to the app on 127.0.0.1 (JSON unless
 * `xml`). The path is sent exactly as signed.
 */
export async function admin<T = Rec>(
  t: TestApp,
  ticket: Ticket,
  method: string,
  path: string,
  body?: unknown,
  opts: { xml?: string; accept?: string; headers?: Record<string, string>; signMethod?: string } = {},
): Promise<Answer<T>> {
  const payload = opts.xml ?? (body === undefined ? '' : JSON.stringify(body));
  const headers: Record<string, string> = {
    accept: opts.accept ?? 'application/json',
    ...signed(ticket, opts.signMethod ?? method, path, payload),
    ...(opts.xml !== undefined ? { 'content-type': 'application/xml' } : {}),
    ...(opts.headers ?? {}),
  };
  const res = await fetch(`${await baseUrl(t)}${path}`, {
    method,
    headers,
    ...(payload !== '' ? { body: payload } : {}),
  });
  const text = await res.text();
  const answerHeaders = Object.fromEntries(res.headers.entries());
  let json = undefined as T;
  if ((answerHeaders['content-type'] ?? '').includes('json') && text !== '') json = JSON.parse(text) as T;
  return { status: res.status, json, body: text, headers: answerHeaders };
}

/** Walks a paginated list; returns every item. */
export async function walk(t: TestApp, ticket: Ticket, path: string, limit: number): Promise<unknown[]> {
  const items: unknown[] = [];
  let cursor: string | null = null;
  for (let guard = 0; guard < 10_000; guard++) {
    const sep = path.includes('?') ? '&' : '?';
    const url: string = `${path}${sep}limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    const res = await admin<Page<unknown>>(t, ticket, 'GET', url);
    if (res.status !== 200) throw new Error(`${url}: ${res.status} ${res.body}`);
    items.push(...res.json.items);
    cursor = res.json.next;
    if (!cursor) return items;
  }
  throw new Error('pagination never ended');
}

/** An unsigned request over real HTTP (user APIs: Basic, Bearer). */
export async function http(
  t: TestApp,
  method: string,
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string }> {
  const res = await fetch(`${await baseUrl(t)}${path}`, {
    method,
    headers: { accept: 'application/json', ...headers },
  });
  return { status: res.status, body: await res.text() };
}
