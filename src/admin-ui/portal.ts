import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AppError, ForbiddenError } from '../errors.js';
import { actorOf, type AuthUser } from '../http/auth.js';
import { RequestLimiter } from '../http/rate-limit.js';
import { verifyLoginPassword } from '../security/passwords.js';
import { ExternalApiRepository } from '../areas/externalapi/repository.js';
import { OrganizationRepository, type Organization } from '../areas/organizations/repository.js';
import { TicketRepository } from '../areas/tickets/repository.js';
import { createUserTicket, DEFAULT_TICKET_DAYS, revokeTicket, viewTicket } from '../areas/tickets/service.js';
import { UserRepository, type User } from '../areas/users/repository.js';
import { formatTime, html, type Html } from './html.js';
import {
  apiCheckboxes,
  apiPills,
  csrfField,
  loginPage,
  page,
  secretField,
  type Flash,
  type Shell,
} from './layout.js';
import { orgAdminRoutes } from './orgadmin.js';
import { endSession, startSession } from './session.js';
import { safeNext } from './admin.js';
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

function sessionUser(request: FastifyRequest): AuthUser {
  const p = request.principal;
  if (p.kind !== 'user-session')
    throw new AppError(401, 'log in first', { headers: { 'x-login-required': 'user' } });
  return p.user;
}

/** The user portal, registered under `/portal`. */
export async function portalArea(app: FastifyInstance, deps: WebDeps): Promise<void> {
  const loginsByAddress = new RequestLimiter(deps.config.passwordTryLimit * 6, 60_000);
  const orgs = new OrganizationRepository(deps.database.db);
  const users = new UserRepository(deps.database.db);

  const shell = (request: FastifyRequest, title: string, active: string, flash?: Flash): Shell => {
    const s = sessionOf(request.principal);
    const user = sessionUser(request);
    return {
      area: 'user',
      title,
      principalName: s.name,
      csrf: s.csrf,
      flash,
      nav: [
        { href: '/portal', label: 'Home', active: active === 'home' },
        { href: '/portal/tickets', label: 'Tickets', active: active === 'tickets' },
        ...(user.role === 'SUPERUSER'
          ? [{ href: '/portal/admin', label: 'Admin view', active: active === 'admin' }]
          : []),
      ],
    };
  };

  const current = async (request: FastifyRequest): Promise<{ org: Organization; user: User }> => {
    const u = sessionUser(request);
    const org = await orgs.getById(u.organizationId);
    const user = org && (await users.getById(org.id, u.id));
    if (!org || !user) throw new AppError(401, 'log in first', { headers: { 'x-login-required': 'user' } });
    return { org, user };
  };

  // --- Login ------------------------------------------------------------------------------
  getPage(app, '/login', 'public', async (request) => {
    const next = (request.query as Record<string, unknown>).next;
    return loginPage('user', { next: safeNext(next, '/portal') });
  });

  postForm(app, '/login', 'public', async (request, reply) => {
    const body = formBody(request);
    const username = field(body, 'username').trim();
    const next = safeNext(body.next, '/portal');
    const at = username.lastIndexOf('@');
    const userId = at > 0 ? username.slice(0, at) : username;
    const domain = at > 0 ? username.slice(at + 1).toLowerCase() : '';
    const wait = Math.max(
      app.authLimits.passwordTries.hit(`${userId}@${domain}`),
      loginsByAddress.hit(`portal-login:${request.ip}`),
    );
    if (wait > 0) {
      reply.header('retry-after', String(wait));
      sendHtml(
        reply,
        loginPage('user', { error: `Too many login attempts. Try again in ${wait} s.`, username, next }),
        429,
      );
      return;
    }
    const org = domain !== '' ? await orgs.getByDomain(domain) : undefined;
    const user = org && userId !== '' ? await users.get(org.id, userId) : undefined;
    const hash = org && user ? await users.getPasswordHash(org.id, user.userId) : undefined;
    const ok = await verifyLoginPassword(field(body, 'password'), hash);
    if (!ok || !hash || !org || !user) {
      app.authLimits.failures.fail(request.ip);
      request.log.info({ logToken: request.id }, 'portal login refused');
      const error =
        at > 0
          ? 'Wrong user or password.'
          : 'Log in with your full user id: user@domain, e.g. aki.huolman@example.com.';
      sendHtml(reply, loginPage('user', { error, username, next }), 401);
      return;
    }
    await startSession(deps.database, request, reply, 'user', { organizationId: org.id, userId: user.id });
    request.log.info({ logToken: request.id, user: `${user.userId}@${org.domain}` }, 'portal user logged in');
    redirect(reply, next);
  });

  postForm(app, '/logout', 'user', async (request, reply) => {
    await endSession(deps.database, request, reply, 'user');
    redirect(reply, '/portal/login');
  });

  // --- Home -------------------------------------------------------------------------------
  getPage(app, '/', 'user', async (request) => {
    const { org, user } = await current(request);
    const effective = await new ExternalApiRepository(deps.database.db).effective(org.id, user.id);
    const active = (await new TicketRepository(deps.database.db).listByUser(org.id, user.id)).filter(
      (t) => t.expiresAt > Date.now(),
    ).length;
    const superuser = user.role === 'SUPERUSER';
    return page(
      shell(request, 'Home', 'home', doneFlash(request)),
      html`<h1>Welcome, ${`${user.firstName} ${user.lastName}`.trim() || user.userId}</h1>
        <div class="grid2">
          <div class="card">
            <h2>Tickets</h2>
            <p>
              Tickets let applications use the OneCloud APIs on your behalf. You have ${active} active
              ${active === 1 ? 'ticket' : 'tickets'}.
            </p>
            <p><a class="button" href="/portal/tickets">Manage tickets</a></p>
          </div>
          <div class="card">
            <h2>APIs allowed to you</h2>
            <p>${apiPills(effective.apis)}</p>
            <p class="muted">
              Your organization's administrator decides which APIs you may use (External API authorization).
            </p>
          </div>
          ${
            superuser
              ? html`<div class="card">
                  <h2>Admin view</h2>
                  <p>
                    You are a superuser of <strong>${org.name}</strong> (${org.domain}): manage its users,
                    user groups and External API authorization.
                  </p>
                  <p><a class="button" href="/portal/admin">Open the admin view</a></p>
                </div>`
              : ''
          }
        </div>`,
    );
  });

  // --- Tickets ----------------------------------------------------------------------------
  const ticketsPage = async (
    request: FastifyRequest,
    opts: { flash?: Flash; created?: { token: string; name: string; expires: number; apis: string[] } } = {},
    form: { name?: string; apis?: string[]; days?: string } = {},
  ) => {
    const { org, user } = await current(request);
    const { csrf } = sessionOf(request.principal);
    const effective = await new ExternalApiRepository(deps.database.db).effective(org.id, user.id);
    const tickets = (await new TicketRepository(deps.database.db).listByUser(org.id, user.id)).reverse();
    const created = opts.created;
    const owner = `${user.userId}@${org.domain}`;
    return page(
      shell(request, 'Tickets', 'tickets', opts.flash ?? doneFlash(request)),
      html`<h1>Tickets</h1>
        ${
          created
            ? html`<div class="card secret" id="created-ticket">
                <h2>Ticket “${created.name}” created</h2>
                <p>
                  <strong>Copy the token now: it is shown only this once.</strong> Send it as
                  <code>Authorization: Bearer {token}</code>.
                </p>
                ${secretField('ticket-token', 'Token', created.token)}
                <p>
                  Expires: <strong id="ticket-expires">${formatTime(created.expires)}</strong> · APIs:
                  ${apiPills(created.apis)}
                </p>
              </div>`
            : ''
        }
        ${
          user.role === 'SUPERUSER'
            ? html`<div class="flash error">
                You are a superuser: tickets of a superuser cannot use the user APIs (for example Contact
                search). Use a ticket of an ordinary user for those.
              </div>`
            : ''
        }
        <div class="card">
          <h2>My tickets</h2>
          ${
            tickets.length === 0
              ? html`<p class="muted">You have no tickets.</p>`
              : html`<table>
                  <thead>
                    <tr>
                      <th>Name</th>
                      <th>APIs</th>
                      <th>Created</th>
                      <th>Expires</th>
                      <th>Last used</th>
                      <th>Status</th>
                      <th></th>
                    </tr>
                  </thead>
                  <tbody>
                    ${tickets.map((t) => {
                      const v = viewTicket(t, owner);
                      return html`<tr>
                        <td>${t.name}</td>
                        <td>${apiPills(t.scopes)}</td>
                        <td>${formatTime(t.createdAt)}</td>
                        <td>${formatTime(t.expiresAt)}</td>
                        <td>
                          ${t.lastUsedAt === null ? html`<span class="muted">never</span>` : formatTime(t.lastUsedAt)}
                        </td>
                        <td><span class="pill ${v.status}">${v.status}</span></td>
                        <td class="actions">
                          <form method="post" action="/portal/tickets/${t.id}/revoke">
                            ${csrfField(csrf)}<button
                              type="submit"
                              class="danger"
                              aria-label="Revoke ${t.name}"
                            >
                              Revoke
                            </button>
                          </form>
                        </td>
                      </tr>`;
                    })}
                  </tbody>
                </table>`
          }
        </div>
        <div class="card">
          <h2>New ticket</h2>
          ${
            effective.apis.length === 0
              ? html`<p class="muted">
                  No API is allowed to you yet, so you cannot create tickets. Ask your organization's
                  administrator.
                </p>`
              : html`<form method="post" action="/portal/tickets">
                  ${csrfField(csrf)} <label for="name">Name</label
                  ><input
                    type="text"
                    id="name"
                    name="name"
                    placeholder="my CRM integration"
                    value="${form.name ?? ''}"
                  />
                  <fieldset>
                    <legend>APIs</legend>
                    ${apiCheckboxes(form.apis ?? [], effective.apis)}
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
                  <div class="actions-row"><button type="submit">Create ticket</button></div>
                </form>`
          }
        </div>`,
    );
  };

  getPage(app, '/tickets', 'user', async (request) => ticketsPage(request));

  postForm(app, '/tickets', 'user', async (request, reply) => {
    const { org, user } = await current(request);
    const body = formBody(request);
    const form = {
      name: field(body, 'name').trim(),
      apis: ticked(body, 'api'),
      days: field(body, 'days').trim(),
    };
    let result: Html | undefined;
    await attempt(
      reply,
      async () => {
        // One budget per user with the ticket API (429 with Retry-After).
        app.authLimits.ticketCreation({ organizationId: org.id, id: user.id });
        if (form.days !== '' && !/^\d{1,6}$/.test(form.days)) {
          throw new AppError(400, 'days: must be a whole number of days');
        }
        const created = await createUserTicket(deps.database, deps.config, actorOf(request.principal), {
          organization: org,
          user,
          name: form.name,
          apis: form.apis,
          platform: 'portal',
          ...(form.days !== '' ? { days: Number(form.days) } : {}),
        });
        result = await ticketsPage(request, {
          created: {
            token: created.token,
            name: created.ticket.name,
            expires: created.ticket.expiresAt,
            apis: created.ticket.scopes,
          },
        });
      },
      (flash) => ticketsPage(request, { flash }, form),
    );
    // On a refusal `attempt` has already answered with the form and the message.
    return result;
  });

  postForm(app, '/tickets/:id/revoke', 'user', async (request, reply) => {
    const { org, user } = await current(request);
    const id = (request.params as { id: string }).id;
    if (!/^\d{1,15}$/.test(id)) throw new AppError(404, `no ticket ${id}`);
    await revokeTicket(
      deps.database,
      actorOf(request.principal),
      { organizationId: org.id, userId: user.id },
      Number(id),
    );
    redirect(reply, '/portal/tickets?done=revoked');
  });

  // --- Admin view of superusers -----------------------------------------------------------
  orgAdminRoutes(app, deps, {
    who: 'user',
    route: '/admin',
    link: () => '/portal/admin',
    organization: async (request) => {
      const u = sessionUser(request);
      if (u.role !== 'SUPERUSER') {
        throw new ForbiddenError('the admin view is for superusers (organization administrators) only');
      }
      const org = await orgs.getById(u.organizationId);
      if (!org) throw new AppError(401, 'log in first', { headers: { 'x-login-required': 'user' } });
      return org;
    },
    shell: (request, title, flash) => shell(request, title, 'admin', flash),
    crumbs: (org) => html`<a href="/portal">Home</a> / Admin view of ${org.domain}`,
  });
}
