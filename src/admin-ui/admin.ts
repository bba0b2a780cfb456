import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AppError } from '../errors.js';
import { actorOf } from '../http/auth.js';
import { RequestLimiter } from '../http/rate-limit.js';
import { verifyAdminLogin } from '../areas/admins/service.js';
import { ADMIN_SCOPES } from '../areas/common/schemas.js';
import { OrganizationRepository } from '../areas/organizations/repository.js';
import { createOrganization, requireOrganization } from '../areas/organizations/service.js';
import { TicketRepository } from '../areas/tickets/repository.js';
import {
  createSystemTicket,
  DEFAULT_TICKET_DAYS,
  revokeTicket,
  viewTicket,
} from '../areas/tickets/service.js';
import { checked, formatTime, html, seg, type Html } from './html.js';
import { csrfField, loginPage, page, secretField, type Flash, type Shell } from './layout.js';
import { orgAdminRoutes } from './orgadmin.js';
import { endSession, startSession } from './session.js';
import {
  attempt,
  doneFlash,
  field,
  formBody,
  getPage,
  postForm,
  redirect,
  sendHtml,
  sessionOf,
  ticked,
  type WebDeps,
} from './web.js';

const ADMIN_SCOPE_TEXT: Record<string, string> = {
  ADMIN: 'Everything',
  ADMIN_ORGANIZATIONS: 'Organizations',
  ADMIN_USERS: 'Users',
  ADMIN_NUMBERS: 'Numbers',
  ADMIN_DEVICES: 'Devices',
  ADMIN_GROUPS: 'User groups and queues',
  ADMIN_TICKETS: 'Tickets',
  ADMIN_CDR: 'Call records',
  ADMIN_QUEUE_STATISTICS: 'Queue statistics',
  ADMIN_WEBHOOKS: 'Webhooks',
  ADMIN_AUDIT: 'Audit log',
};

/** A `next` target after login: only a path inside the area (no open redirect). */
export function safeNext(next: unknown, area: '/admin' | '/portal'): string {
  if (typeof next !== 'string') return area;
  return next === area ||
    (next.startsWith(`${area}/`) && !next.startsWith(`${area}//`) && !next.includes('\\'))
    ? next
    : area;
}

/** The administrator web interface, registered under `/admin`. */
export async function adminArea(app: FastifyInstance, deps: WebDeps): Promise<void> {
  const loginsByAddress = new RequestLimiter(deps.config.passwordTryLimit * 6, 60_000);

  const shell = (request: FastifyRequest, title: string, active: string, flash?: Flash): Shell => {
    const s = sessionOf(request.principal);
    return {
      area: 'admin',
      title,
      principalName: s.name,
      csrf: s.csrf,
      flash,
      nav: [
        { href: '/admin/organizations', label: 'Organizations', active: active === 'orgs' },
        { href: '/admin/tickets', label: 'System tickets', active: active === 'tickets' },
      ],
    };
  };

  // --- Login ------------------------------------------------------------------------------
  getPage(app, '/login', 'public', async (request) => {
    const next = (request.query as Record<string, unknown>).next;
    return loginPage('admin', { next: safeNext(next, '/admin') });
  });

  postForm(app, '/login', 'public', async (request, reply) => {
    const body = formBody(request);
    const username = field(body, 'username').trim();
    const next = safeNext(body.next, '/admin');
    const wait = Math.max(
      app.authLimits.passwordTries.hit(`admin:${username.toLowerCase()}`),
      loginsByAddress.hit(`admin-login:${request.ip}`),
    );
    if (wait > 0) {
      reply.header('retry-after', String(wait));
      sendHtml(
        reply,
        loginPage('admin', { error: `Too many login attempts. Try again in ${wait} s.`, username, next }),
        429,
      );
      return;
    }
    const admin = await verifyAdminLogin(deps.database, username, field(body, 'password'));
    if (!admin) {
      app.authLimits.failures.fail(request.ip);
      request.log.info({ logToken: request.id }, 'administrator login refused');
      sendHtml(reply, loginPage('admin', { error: 'Wrong user name or password.', username, next }), 401);
      return;
    }
    await startSession(deps.database, request, reply, 'admin', { adminId: admin.id });
    request.log.info({ logToken: request.id, admin: admin.username }, 'administrator logged in');
    redirect(reply, next);
  });

  postForm(app, '/logout', 'admin', async (request, reply) => {
    await endSession(deps.database, request, reply, 'admin');
    redirect(reply, '/admin/login');
  });

  getPage(app, '/', 'admin', async (_request, reply) => redirect(reply, '/admin/organizations'));

  // --- Organizations ----------------------------------------------------------------------
  const orgsPage = async (request: FastifyRequest, flash?: Flash, form: Record<string, string> = {}) => {
    const { csrf } = sessionOf(request.principal);
    const after = Number((request.query as Record<string, string | undefined>).after ?? '');
    const repo = new OrganizationRepository(deps.database.db);
    const orgs = await repo.list({ limit: 200, ...(Number.isInteger(after) && after > 0 ? { after } : {}) });
    const counts = await Promise.all(orgs.items.map((o) => repo.countUsers(o.id)));
    return page(
      shell(request, 'Organizations', 'orgs', flash ?? doneFlash(request)),
      html`<h1>Organizations</h1>
        <div class="card">
          ${
            orgs.items.length === 0
              ? html`<p class="muted">No organizations yet. Create the first one below.</p>`
              : html`<table>
                  <thead>
                    <tr>
                      <th>Domain</th>
                      <th>Name</th>
                      <th>Users</th>
                      <th>Created</th>
                      <th></th>
                    </tr>
                  </thead>
                  <tbody>
                    ${orgs.items.map(
                      (o, i) =>
                        html`<tr>
                          <td><a href="/admin/organizations/${seg(o.domain)}">${o.domain}</a></td>
                          <td>${o.name}</td>
                          <td>${counts[i]}</td>
                          <td>${formatTime(o.createdAt)}</td>
                          <td class="actions"><a href="/admin/organizations/${seg(o.domain)}">Manage</a></td>
                        </tr>`,
                    )}
                  </tbody>
                </table>`
          }
          ${orgs.next !== null ? html`<p class="pager"><a href="/admin/organizations?after=${orgs.next}">Next page →</a></p>` : ''}
        </div>
        <div class="card">
          <h2>New organization</h2>
          <form method="post" action="/admin/organizations">
            ${csrfField(csrf)} <label for="domain">Domain</label
            ><input
              type="text"
              id="domain"
              name="domain"
              required
              placeholder="example.com"
              value="${form.domain ?? ''}"
            />
            <label for="name">Name</label
            ><input
              type="text"
              id="name"
              name="name"
              required
              placeholder="Example Ltd"
              value="${form.name ?? ''}"
            />
            <div class="actions-row"><button type="submit">Create organization</button></div>
          </form>
        </div>`,
    );
  };

  getPage(app, '/organizations', 'admin', async (request) => orgsPage(request));

  postForm(app, '/organizations', 'admin', async (request, reply) => {
    const body = formBody(request);
    const input = { domain: field(body, 'domain').trim(), name: field(body, 'name').trim() };
    return attempt(
      reply,
      async () => {
        const org = await createOrganization(deps.database, actorOf(request.principal), input);
        redirect(reply, `/admin/organizations/${seg(org.domain)}?done=org-created`);
      },
      (flash) => orgsPage(request, flash, input),
    );
  });

  orgAdminRoutes(app, deps, {
    who: 'admin',
    route: '/organizations/:domain',
    link: (org) => `/admin/organizations/${seg(org.domain)}`,
    organization: (request) =>
      requireOrganization(deps.database, (request.params as { domain: string }).domain),
    shell: (request, title, flash) => shell(request, title, 'orgs', flash),
    crumbs: () => html`<a href="/admin/organizations">Organizations</a> /`,
  });

  // --- System tickets ---------------------------------------------------------------------
  const ticketsPage = async (
    request: FastifyRequest,
    opts: { flash?: Flash; created?: { token: string; secret: string; name: string; expires: number } } = {},
    form: { name?: string; scopes?: string[]; domains?: string[]; days?: string } = {},
  ) => {
    const { csrf } = sessionOf(request.principal);
    const orgRepo = new OrganizationRepository(deps.database.db);
    const orgs = (await orgRepo.list({ limit: 1000 })).items;
    const domainOf = new Map<number, string>(orgs.map((o) => [o.id, o.domain]));
    const tickets = (await new TicketRepository(deps.database.db).listByOrg(null, { limit: 1000 })).items;
    const views = tickets
      .map((t) => ({
        t,
        v: viewTicket(t, 'system', t.organizations?.map((id) => domainOf.get(id) ?? `#${id}`) ?? null),
      }))
      .reverse();
    const created = opts.created;
    return page(
      shell(request, 'System tickets', 'tickets', opts.flash ?? doneFlash(request)),
      html`<h1>System tickets</h1>
        ${
          created
            ? html`<div class="card secret" id="created-ticket">
                <h2>System ticket “${created.name}” created</h2>
                <p>
                  <strong>Copy the token and the secret now: they are shown only this once.</strong> Sign
                  admin API requests with them (SNT-HMACv1). Valid until ${formatTime(created.expires)}.
                </p>
                ${secretField('ticket-token', 'Token', created.token)}
                ${secretField('ticket-secret', 'Secret', created.secret)}
              </div>`
            : ''
        }
        <div class="card">
          <h2>Tickets</h2>
          ${
            views.length === 0
              ? html`<p class="muted">No system tickets yet.</p>`
              : html`<table>
                  <thead>
                    <tr>
                      <th>Id</th>
                      <th>Name</th>
                      <th>Scopes</th>
                      <th>Organizations</th>
                      <th>Created</th>
                      <th>Expires</th>
                      <th>Last used</th>
                      <th>Status</th>
                      <th></th>
                    </tr>
                  </thead>
                  <tbody>
                    ${views.map(
                      ({ t, v }) =>
                        html`<tr>
                          <td>${t.id}</td>
                          <td>
                            ${t.name}
                            <div class="muted">by ${t.createdBy}</div>
                          </td>
                          <td>${t.scopes.map((s) => html`<span class="pill">${s}</span> `)}</td>
                          <td>
                            ${v.organizations === null ? html`<span class="muted">all</span>` : v.organizations.map((d) => html`<span class="pill">${d}</span> `)}
                          </td>
                          <td>${formatTime(t.createdAt)}</td>
                          <td>${formatTime(t.expiresAt)}</td>
                          <td>${formatTime(t.lastUsedAt)}</td>
                          <td><span class="pill ${v.status}">${v.status}</span></td>
                          <td class="actions">
                            ${
                              v.status === 'revoked'
                                ? ''
                                : html`<form method="post" action="/admin/tickets/${t.id}/revoke">
                                    ${csrfField(csrf)}<button
                                      type="submit"
                                      class="danger"
                                      aria-label="Revoke ticket ${t.id}"
                                    >
                                      Revoke
                                    </button>
                                  </form>`
                            }
                          </td>
                        </tr>`,
                    )}
                  </tbody>
                </table>`
          }
        </div>
        <div class="card">
          <h2>New system ticket</h2>
          <form method="post" action="/admin/tickets">
            ${csrfField(csrf)} <label for="name">Name</label
            ><input
              type="text"
              id="name"
              name="name"
              placeholder="provisioning script"
              value="${form.name ?? ''}"
            />
            <fieldset>
              <legend>Scopes</legend>
              <div class="checks">
                ${ADMIN_SCOPES.map(
                  (s) =>
                    html`<label
                      ><input
                        type="checkbox"
                        name="scope.${s}"
                        value="on"
                        ${checked((form.scopes ?? []).includes(s))}
                      />
                      ${ADMIN_SCOPE_TEXT[s] ?? s} <code>${s}</code></label
                    >`,
                )}
              </div>
            </fieldset>
            <fieldset>
              <legend>Limited to organizations (none ticked: all)</legend>
              ${
                orgs.length === 0
                  ? html`<p class="muted">No organizations yet.</p>`
                  : html`<div class="checks">
                      ${orgs.map(
                        (o) =>
                          html`<label
                            ><input
                              type="checkbox"
                              name="org.${o.domain}"
                              value="on"
                              ${checked((form.domains ?? []).includes(o.domain))}
                            />
                            ${o.domain}</label
                          >`,
                      )}
                    </div>`
              }
            </fieldset>
            <label for="days">Valid for (days, up to ${deps.config.ticketMaxDays})</label>
            <input
              type="number"
              id="days"
              name="days"
              min="1"
              max="${deps.config.ticketMaxDays}"
              value="${form.days ?? String(DEFAULT_TICKET_DAYS)}"
            />
            <div class="actions-row"><button type="submit">Create system ticket</button></div>
          </form>
        </div>`,
    );
  };

  getPage(app, '/tickets', 'admin', async (request) => ticketsPage(request));

  postForm(app, '/tickets', 'admin', async (request, reply) => {
    const body = formBody(request);
    const form = {
      name: field(body, 'name').trim(),
      scopes: ticked(body, 'scope'),
      domains: ticked(body, 'org'),
      days: field(body, 'days').trim(),
    };
    let result: Html | undefined;
    await attempt(
      reply,
      async () => {
        if (form.days !== '' && !/^\d{1,6}$/.test(form.days)) {
          throw new AppError(400, 'days: must be a whole number of days');
        }
        const created = await createSystemTicket(deps.database, deps.config, actorOf(request.principal), {
          name: form.name,
          scopes: form.scopes,
          domains: form.domains,
          ...(form.days !== '' ? { days: Number(form.days) } : {}),
        });
        result = await ticketsPage(request, {
          created: {
            token: created.token,
            secret: created.secret,
            name: created.ticket.name,
            expires: created.ticket.expiresAt,
          },
        });
      },
      (flash) => ticketsPage(request, { flash }, form),
    );
    // On a refusal `attempt` has already answered with the form and the message.
    return result;
  });

  postForm(app, '/tickets/:id/revoke', 'admin', async (request, reply) => {
    const id = (request.params as { id: string }).id;
    if (!/^\d{1,15}$/.test(id)) throw new AppError(404, `no ticket ${id}`);
    await revokeTicket(deps.database, actorOf(request.principal), { organizationId: null }, Number(id));
    redirect(reply, '/admin/tickets?done=revoked');
  });
}
