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
  headers: Record<string, string | string[] | number | undefined>;
}

export type Ticket = { token: string; secret: string };

/** A signed admin request over the real app (JSON unless `xml`). */
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
  const res = await t.app.inject({ method: method as 'GET', url: path, headers, payload });
  let json = undefined as T;
  if (String(res.headers['content-type'] ?? '').includes('json') && res.body !== '')
    json = JSON.parse(res.body) as T;
  return { status: res.statusCode, json, body: res.body, headers: res.headers };
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
