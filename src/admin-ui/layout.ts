import { AppError, ValidationError } from '../errors.js';
import { USER_API_NAMES, USER_APIS } from '../areas/common/schemas.js';
import { checked, html, raw, type Html } from './html.js';
import { AREA_PATH, type Who } from './session.js';

export interface NavItem {
  href: string;
  label: string;
  active?: boolean;
}

export interface Flash {
  kind: 'ok' | 'error';
  text: string;
  /** Further lines (validation problems). */
  details?: string[];
}

export interface Shell {
  area: Who;
  title: string;
  /** Who is logged in (shown with the logout button); absent on login pages. */
  principalName?: string;
  csrf?: string;
  nav?: NavItem[];
  flash?: Flash | undefined;
}

const AREA_TITLE: Record<Who, string> = { admin: 'OneCloud administration', user: 'OneCloud portal' };

/** The page shell: header with navigation and logout, the flash message, the content. */
export function page(shell: Shell, body: Html): Html {
  const base = AREA_PATH[shell.area];
  return html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>${shell.title} · ${AREA_TITLE[shell.area]}</title>
        <link rel="stylesheet" href="${base}/static/style.css" />
        <script src="${base}/static/copy.js" defer></script>
      </head>
      <body>
        <header class="top">
          <div class="bar">
            <a class="brand" href="${base}">${AREA_TITLE[shell.area]}</a>
            <nav>
              ${(shell.nav ?? []).map(
                (n) =>
                  html`<a href="${n.href}" ${raw(n.active ? ' class="active" aria-current="page"' : '')}
                    >${n.label}</a
                  >`,
              )}
            </nav>
            ${
              shell.principalName !== undefined && shell.csrf !== undefined
                ? html`<div class="who">
                    <span>${shell.principalName}</span>
                    <form method="post" action="${base}/logout">
                      ${csrfField(shell.csrf)}<button type="submit">Log out</button>
                    </form>
                  </div>`
                : ''
            }
          </div>
        </header>
        <main>${shell.flash ? flashBox(shell.flash) : ''} ${body}</main>
      </body>
    </html> `;
}

export function flashBox(flash: Flash): Html {
  return html`<div class="flash ${flash.kind}" role="${flash.kind === 'error' ? 'alert' : 'status'}">
    ${flash.text}${
      flash.details && flash.details.length > 0
        ? html`<ul>
            ${flash.details.map((d) => html`<li>${d}</li>`)}
          </ul>`
        : ''
    }
  </div>`;
}

export function csrfField(token: string): Html {
  return html`<input type="hidden" name="_csrf" value="${token}" />`;
}

/** A flash for an error a form action ran into. */
export function errorFlash(err: AppError): Flash {
  if (err instanceof ValidationError && err.problems.length > 1) {
    return {
      kind: 'error',
      text: 'Please correct these problems:',
      details: err.problems.map((p) => `${p.field.replace(/^body\./, '')}: ${p.message}`),
    };
  }
  return { kind: 'error', text: err.message.replace(/^body\./, '') };
}

/** Checkboxes for user APIs, named `api.<ID>`; `only` limits which are offered. */
export function apiCheckboxes(selectedApis: readonly string[], only: readonly string[] = USER_APIS): Html {
  return html`<div class="checks">
    ${USER_APIS.filter((a) => only.includes(a)).map(
      (a) =>
        html`<label
          ><input type="checkbox" name="api.${a}" value="on" ${checked(selectedApis.includes(a))} />
          ${USER_API_NAMES[a]} <code>${a}</code></label
        >`,
    )}
  </div>`;
}

export function apiPills(apis: readonly string[]): Html {
  if (apis.length === 0) return html`<span class="muted">none</span>`;
  return html`${apis.map((a) => html`<span class="pill" title="${USER_API_NAMES[a as keyof typeof USER_API_NAMES] ?? a}">${a}</span> `)}`;
}

/** A one-time secret with a copy button (shown only when the script runs). */
export function secretField(id: string, label: string, value: string): Html {
  return html`<label for="${id}">${label}</label>
    <div class="value">
      <input type="text" id="${id}" readonly value="${value}" spellcheck="false" autocomplete="off" />
      <button type="button" class="secondary" data-copy="${id}" hidden>Copy</button>
    </div>`;
}

export function loginPage(area: Who, opts: { error?: string; username?: string; next?: string }): Html {
  const base = AREA_PATH[area];
  const admin = area === 'admin';
  return page(
    { area, title: 'Log in', ...(opts.error ? { flash: { kind: 'error', text: opts.error } } : {}) },
    html`<div class="login card">
      <h1>${admin ? 'System administrator' : 'Log in to the portal'}</h1>
      <form method="post" action="${base}/login">
        ${opts.next ? html`<input type="hidden" name="next" value="${opts.next}" />` : ''}
        <label for="username">${admin ? 'User name' : 'User (user@domain)'}</label>
        <input
          type="text"
          id="username"
          name="username"
          required
          autocomplete="username"
          autofocus
          value="${opts.username ?? ''}"
          ${raw(admin ? '' : ' placeholder="aki.huolman@example.com"')}
        />
        <label for="password">Password</label>
        <input type="password" id="password" name="password" required autocomplete="current-password" />
        <div class="actions-row"><button type="submit">Log in</button></div>
      </form>
    </div>`,
  );
}

/** An HTML error page (the error handler of the web interface). */
export function errorPage(area: Who, status: number, message: string, logToken: string): Html {
  const base = AREA_PATH[area];
  return page(
    { area, title: `Error ${status}` },
    html`<div class="card">
      <h1>${status === 404 ? 'Not found' : status === 403 ? 'Not allowed' : 'Something went wrong'}</h1>
      <p>${message}</p>
      <p class="muted">Status ${status}; log token <code>${logToken}</code>.</p>
      <p><a href="${base}">Back to the start page</a></p>
    </div>`,
  );
}

export function isAppError(err: unknown): err is AppError {
  return err instanceof AppError;
}
