import assert from 'node:assert/strict';
import type { FastifyInstance } from 'fastify';
import type { DatabaseHandle } from '../../src/db/database.js';
import { ensureSystemAdmin } from '../../src/areas/admins/service.js';

export const ADMIN_PASSWORD = 'admin password 1';

export async function ensureAdmin(database: DatabaseHandle): Promise<void> {
  await ensureSystemAdmin(database, ADMIN_PASSWORD);
}

export interface WebResponse {
  status: number;
  body: string;
  headers: Record<string, string | string[] | number | undefined>;
  location: string | undefined;
}

/** The last `_csrf` field of a page. */
export function csrfOf(body: string): string {
  const all = [...body.matchAll(/name="_csrf" value="([^"]+)"/g)];
  const m = all[all.length - 1];
  assert.ok(m, 'page has a CSRF field');
  return m[1]!;
}

export function form(fields: Record<string, string>): string {
  return new URLSearchParams(fields).toString();
}

/** A browser-like client over inject: keeps the session cookie of its area. */
export class WebClient {
  cookie: string | undefined;
  csrf = '';
  constructor(
    readonly app: FastifyInstance,
    readonly area: '/admin' | '/portal',
  ) {}

  async get(url: string, headers: Record<string, string> = {}): Promise<WebResponse> {
    const r = await this.app.inject({
      method: 'GET',
      url,
      headers: { accept: 'text/html', ...(this.cookie ? { cookie: this.cookie } : {}), ...headers },
    });
    return this.wrap(r);
  }

  async post(
    url: string,
    fields: Record<string, string>,
    opts: { csrf?: string | null } = {},
  ): Promise<WebResponse> {
    const csrf = opts.csrf === undefined ? this.csrf : opts.csrf;
    const r = await this.app.inject({
      method: 'POST',
      url,
      headers: {
        accept: 'text/html',
        'content-type': 'application/x-www-form-urlencoded',
        ...(this.cookie ? { cookie: this.cookie } : {}),
      },
      payload: form(csrf === null ? fields : { _csrf: csrf, ...fields }),
    });
    return this.wrap(r);
  }

  /** GETs a page and remembers its CSRF token. */
  async open(url: string): Promise<WebResponse> {
    const r = await this.get(url);
    assert.equal(r.status, 200, `GET ${url}: ${r.status} ${r.body.slice(0, 300)}`);
    this.csrf = csrfOf(r.body);
    return r;
  }

  async login(username: string, password: string): Promise<WebResponse> {
    const r = await this.post(`${this.area}/login`, { username, password }, { csrf: null });
    return r;
  }

  private wrap(r: {
    statusCode: number;
    body: string;
    headers: Record<string, string | string[] | number | undefined>;
  }): WebResponse {
    const set = r.headers['set-cookie'];
    const cookies = Array.isArray(set) ? set : set ? [String(set)] : [];
    for (const c of cookies) {
      const [pair] = c.split(';');
      const value = pair!.slice(pair!.indexOf('=') + 1);
      this.cookie = value === '' ? undefined : pair;
    }
    const location = r.headers.location;
    return {
      status: r.statusCode,
      body: r.body,
      headers: r.headers,
      location: location === undefined ? undefined : String(location),
    };
  }
}
