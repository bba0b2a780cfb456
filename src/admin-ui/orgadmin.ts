import type { FastifyInstance, FastifyRequest } from 'fastify';
import { NotFoundError } from '../errors.js';
import { actorOf } from '../http/auth.js';
import { USER_API_NAMES } from '../areas/common/schemas.js';
import { ExternalApiRepository, type GrantLevel } from '../areas/externalapi/repository.js';
import { setExternalApiGrants } from '../areas/externalapi/service.js';
import type { Organization } from '../areas/organizations/repository.js';
import { UserGroupRepository, type UserGroup } from '../areas/usergroups/repository.js';
import { UserRepository, type User } from '../areas/users/repository.js';
import { createUser, requireUser, updateUser } from '../areas/users/service.js';
import { createUserGroup, setGroupMembers } from '../areas/usergroups/service.js';
import { ROLES } from '../areas/users/schemas.js';
import { checked, html, seg, selected, type Html } from './html.js';
import { apiCheckboxes, apiPills, csrfField, page, type Flash, type Shell } from './layout.js';
import type { Who } from './session.js';
import {
  attempt,
  doneFlash,
  field,
  formBody,
  getPage,
  postForm,
  redirect,
  sessionOf,
  ticked,
  type WebDeps,
} from './web.js';

/**
 * The administration of one organization: users, user groups, External API authorization at
 * the three levels. Mounted twice: for system administrators under
 * `/admin/organizations/{domain}` and for an organization's superusers under `/portal/admin`.
 */
export interface OrgAdminMount {
  who: Who;
  /** The route path of the root, relative to the area plugin (`/organizations/:domain`, `/admin`). */
  route: string;
  /** The absolute link to the root for an organization. */
  link: (org: Organization) => string;
  /** The organization of the request, access-checked (404/403 otherwise). */
  organization: (request: FastifyRequest) => Promise<Organization>;
  /** The page shell (navigation) for a request. */
  shell: (request: FastifyRequest, title: string, flash: Flash | undefined) => Shell;
  /** Breadcrumbs above the heading. */
  crumbs: (org: Organization) => Html;
}

const MAX_LIST = 1000;
const ROLE_LABEL: Record<string, string> = {
  USER: 'End user',
  SUPERUSER: 'Superuser (organization administrator)',
};

function tabs(base: string, active: 'users' | 'groups' | 'external-api'): Html {
  const tab = (key: typeof active, href: string, label: string) =>
    html`<a href="${href}" ${key === active ? html` class="active" aria-current="page"` : ''}>${label}</a>`;
  return html`<nav class="tabs">
    ${tab('users', base, 'Users')}${tab('groups', `${base}/groups`, 'User groups')}${tab(
      'external-api',
      `${base}/external-api`,
      'External API authorization',
    )}
  </nav>`;
}

function heading(mount: OrgAdminMount, org: Organization, title?: string): Html {
  return html`<div class="crumbs">${mount.crumbs(org)}</div>
    <h1>${title ?? org.name} <span class="muted">${title ? '' : org.domain}</span></h1>`;
}

function roleSelect(name: string, current: string): Html {
  return html`<select name="${name}" id="${name}">
    ${ROLES.map((r) => html`<option value="${r}" ${selected(r === current)}>${ROLE_LABEL[r] ?? r}</option>`)}
  </select>`;
}

function rolePill(role: string): Html {
  return role === 'SUPERUSER'
    ? html`<span class="pill super">superuser</span>`
    : html`<span class="pill">user</span>`;
}

function fullName(u: { firstName: string; lastName: string }): string {
  return `${u.firstName} ${u.lastName}`.trim();
}

async function groupsWithMembers(
  deps: WebDeps,
  org: Organization,
): Promise<{ group: UserGroup; members: { id: number; userId: string }[] }[]> {
  const repo = new UserGroupRepository(deps.database.db);
  const groups = (await repo.list(org.id, { limit: MAX_LIST })).items;
  const out = [];
  for (const group of groups) out.push({ group, members: await repo.listMembers(org.id, group.id) });
  return out;
}

export function orgAdminRoutes(app: FastifyInstance, deps: WebDeps, mount: OrgAdminMount): void {
  const { who, route } = mount;
  const apis = new ExternalApiRepository(deps.database.db);

  // --- Users ------------------------------------------------------------------------------
  const usersPage = async (request: FastifyRequest, flash?: Flash, form: Record<string, string> = {}) => {
    const org = await mount.organization(request);
    const base = mount.link(org);
    const { csrf } = sessionOf(request.principal);
    const after = Number((request.query as Record<string, string | undefined>).after ?? '');
    const users = await new UserRepository(deps.database.db).list(org.id, {
      limit: 200,
      ...(Number.isInteger(after) && after > 0 ? { after } : {}),
    });
    const groups = await groupsWithMembers(deps, org);
    const groupsOfUser = (id: number) => groups.filter((g) => g.members.some((m) => m.id === id));
    return page(
      mount.shell(request, `Users of ${org.domain}`, flash ?? doneFlash(request)),
      html`${heading(mount, org)}${tabs(base, 'users')}
        <div class="card">
          <h2>Users</h2>
          ${
            users.items.length === 0
              ? html`<p class="muted">No users yet.</p>`
              : html`<table>
                  <thead>
                    <tr>
                      <th>User</th>
                      <th>Name</th>
                      <th>Email</th>
                      <th>Role</th>
                      <th>Groups</th>
                      <th></th>
                    </tr>
                  </thead>
                  <tbody>
                    ${users.items.map(
                      (u) =>
                        html`<tr>
                          <td><a href="${base}/users/${seg(u.userId)}">${u.userId}</a></td>
                          <td>${fullName(u)}</td>
                          <td>${u.email ?? ''}</td>
                          <td>${rolePill(u.role)}</td>
                          <td>
                            ${groupsOfUser(u.id).map((g) => html`<span class="pill">${g.group.name}</span> `)}
                          </td>
                          <td class="actions"><a href="${base}/users/${seg(u.userId)}">Edit</a></td>
                        </tr>`,
                    )}
                  </tbody>
                </table>`
          }
          ${users.next !== null ? html`<p class="pager"><a href="${base}?after=${users.next}">Next page →</a></p>` : ''}
        </div>
        <div class="card">
          <h2>New user</h2>
          <form method="post" action="${base}/users">
            ${csrfField(csrf)}
            <div class="grid2">
              <div>
                <label for="userId">User id</label
                ><input
                  type="text"
                  id="userId"
                  name="userId"
                  required
                  value="${form.userId ?? ''}"
                  placeholder="aki.huolman"
                />
                <label for="firstName">First name</label
                ><input type="text" id="firstName" name="firstName" value="${form.firstName ?? ''}" />
                <label for="lastName">Last name</label
                ><input type="text" id="lastName" name="lastName" value="${form.lastName ?? ''}" />
              </div>
              <div>
                <label for="email">Email</label
                ><input type="text" id="email" name="email" value="${form.email ?? ''}" />
                <label for="password">Password (at least 8 characters; empty: cannot log in)</label
                ><input type="password" id="password" name="password" autocomplete="new-password" />
                <label for="role">Role</label>${roleSelect('role', form.role ?? 'USER')}
              </div>
            </div>
            <div class="actions-row"><button type="submit">Create user</button></div>
          </form>
        </div>`,
    );
  };

  getPage(app, route, who, async (request) => usersPage(request));

  postForm(app, `${route}/users`, who, async (request, reply) => {
    const org = await mount.organization(request);
    const body = formBody(request);
    const input: Record<string, string> = { userId: field(body, 'userId').trim(), role: field(body, 'role') };
    for (const k of ['firstName', 'lastName', 'email', 'password']) {
      const v = k === 'password' ? field(body, k) : field(body, k).trim();
      if (v !== '') input[k] = v;
    }
    return attempt(
      reply,
      async () => {
        await createUser(deps.database, actorOf(request.principal), org.domain, input, 'body', {
          legacyPasswordTokens: deps.config.legacyPasswordTokens,
        });
        redirect(reply, `${mount.link(org)}/users/${seg(input.userId!)}?done=user-created`);
      },
      (flash) => usersPage(request, flash, { ...input, password: '' }),
    );
  });

  // --- One user ---------------------------------------------------------------------------
  const userOf = async (request: FastifyRequest, org: Organization): Promise<User> =>
    requireUser(deps.database, org, (request.params as { user: string }).user);

  const userPage = async (request: FastifyRequest, flash?: Flash) => {
    const org = await mount.organization(request);
    const user = await userOf(request, org);
    const base = mount.link(org);
    const userBase = `${base}/users/${seg(user.userId)}`;
    const { csrf } = sessionOf(request.principal);
    const groups = (await new UserGroupRepository(deps.database.db).list(org.id, { limit: MAX_LIST })).items;
    const mine = (await new UserRepository(deps.database.db).groupsOf(org.id, user.id)).map((g) => g.id);
    const own = await apis.listGrants(org.id, 'USER', user.id);
    const effective = await apis.effective(org.id, user.id);
    const sourceText = (api: string) =>
      (effective.sources[api] ?? [])
        .map((s) =>
          s.level === 'ORGANIZATION'
            ? 'organization'
            : s.level === 'USER'
              ? 'this user'
              : `group ${groups.find((g) => g.id === s.targetId)?.name ?? s.targetId}`,
        )
        .join(', ');
    return page(
      mount.shell(request, `${user.userId}@${org.domain}`, flash ?? doneFlash(request)),
      html`${heading(mount, org, `${user.userId}@${org.domain}`)}${tabs(base, 'users')}
        <div class="grid2">
          <div class="card">
            <h2>Profile</h2>
            <table>
              <tbody>
                <tr>
                  <th>Name</th>
                  <td>${fullName(user) || '—'}</td>
                </tr>
                <tr>
                  <th>Email</th>
                  <td>${user.email ?? '—'}</td>
                </tr>
                <tr>
                  <th>Password</th>
                  <td>${user.hasPassword ? 'set' : 'not set (cannot log in)'}</td>
                </tr>
                <tr>
                  <th>Role</th>
                  <td>${rolePill(user.role)}</td>
                </tr>
              </tbody>
            </table>
            <form method="post" action="${userBase}/role">
              ${csrfField(csrf)} <label for="role">Role</label>${roleSelect('role', user.role)}
              <div class="actions-row"><button type="submit">Save role</button></div>
            </form>
          </div>
          <div class="card">
            <h2>User groups</h2>
            ${
              groups.length === 0
                ? html`<p class="muted">
                    This organization has no user groups yet. <a href="${base}/groups">Create one</a>.
                  </p>`
                : html`<form method="post" action="${userBase}/groups">
                    ${csrfField(csrf)}
                    <fieldset>
                      <legend>Member of</legend>
                      <div class="checks">
                        ${groups.map(
                          (g) =>
                            html`<label
                              ><input
                                type="checkbox"
                                name="group.${g.id}"
                                value="on"
                                ${checked(mine.includes(g.id))}
                              />
                              ${g.name}</label
                            >`,
                        )}
                      </div>
                    </fieldset>
                    <div class="actions-row"><button type="submit">Save membership</button></div>
                  </form>`
            }
          </div>
        </div>
        <div class="card">
          <h2>External API authorization for this user</h2>
          <p class="muted">
            APIs ticked here are allowed to this user in addition to what the organization and the user's
            groups allow.
          </p>
          <form method="post" action="${userBase}/external-api">
            ${csrfField(csrf)} ${apiCheckboxes(own)}
            <div class="actions-row"><button type="submit">Save user-level authorization</button></div>
          </form>
          <h2 class="spaced">Allowed now (all levels)</h2>
          ${
            effective.apis.length === 0
              ? html`<p class="muted">
                  No API is allowed to this user: its tickets cannot reach any user API.
                </p>`
              : html`<table>
                  <thead>
                    <tr>
                      <th>API</th>
                      <th>Allowed by</th>
                    </tr>
                  </thead>
                  <tbody>
                    ${effective.apis.map(
                      (a) =>
                        html`<tr>
                          <td>${USER_API_NAMES[a as keyof typeof USER_API_NAMES] ?? a} <code>${a}</code></td>
                          <td>${sourceText(a)}</td>
                        </tr>`,
                    )}
                  </tbody>
                </table>`
          }
        </div>`,
    );
  };

  getPage(app, `${route}/users/:user`, who, async (request) => userPage(request));

  postForm(app, `${route}/users/:user/role`, who, async (request, reply) => {
    const org = await mount.organization(request);
    const user = await userOf(request, org);
    return attempt(
      reply,
      async () => {
        await updateUser(deps.database, actorOf(request.principal), org, user.userId, {
          role: field(formBody(request), 'role'),
        });
        redirect(reply, `${mount.link(org)}/users/${seg(user.userId)}?done=role-saved`);
      },
      (flash) => userPage(request, flash),
    );
  });

  postForm(app, `${route}/users/:user/groups`, who, async (request, reply) => {
    const org = await mount.organization(request);
    const user = await userOf(request, org);
    const ids = ticked(formBody(request), 'group').map(Number).filter(Number.isInteger);
    return attempt(
      reply,
      async () => {
        await updateUser(deps.database, actorOf(request.principal), org, user.userId, { groups: ids });
        redirect(reply, `${mount.link(org)}/users/${seg(user.userId)}?done=groups-saved`);
      },
      (flash) => userPage(request, flash),
    );
  });

  postForm(app, `${route}/users/:user/external-api`, who, async (request, reply) => {
    const org = await mount.organization(request);
    const user = await userOf(request, org);
    return attempt(
      reply,
      async () => {
        await saveGrants(request, org, 'USER', user.id);
        redirect(reply, `${mount.link(org)}/users/${seg(user.userId)}?done=apis-saved`);
      },
      (flash) => userPage(request, flash),
    );
  });

  const saveGrants = (request: FastifyRequest, org: Organization, level: GrantLevel, targetId: number) =>
    setExternalApiGrants(
      deps.database,
      actorOf(request.principal),
      org,
      level,
      targetId,
      ticked(formBody(request), 'api'),
      'apis',
    );

  // --- User groups ------------------------------------------------------------------------
  const groupsPage = async (request: FastifyRequest, flash?: Flash, name = '') => {
    const org = await mount.organization(request);
    const base = mount.link(org);
    const { csrf } = sessionOf(request.principal);
    const groups = await groupsWithMembers(deps, org);
    const grants = await apis.listAll(org.id);
    const groupApis = (id: number) =>
      grants.filter((g) => g.level === 'USER_GROUP' && g.targetId === id).map((g) => g.api);
    return page(
      mount.shell(request, `User groups of ${org.domain}`, flash ?? doneFlash(request)),
      html`${heading(mount, org)}${tabs(base, 'groups')}
        <div class="card">
          <h2>User groups</h2>
          ${
            groups.length === 0
              ? html`<p class="muted">No user groups yet.</p>`
              : html`<table>
                  <thead>
                    <tr>
                      <th>Group</th>
                      <th>Members</th>
                      <th>Roles</th>
                      <th>External APIs allowed</th>
                      <th></th>
                    </tr>
                  </thead>
                  <tbody>
                    ${groups.map(
                      ({ group, members }) =>
                        html`<tr>
                          <td><a href="${base}/groups/${group.id}">${group.name}</a></td>
                          <td>
                            ${members.length === 0 ? html`<span class="muted">none</span>` : members.map((m) => html`<span class="pill">${m.userId}</span> `)}
                          </td>
                          <td>${group.roles.map((r) => html`<span class="pill">${r}</span> `)}</td>
                          <td>${apiPills(groupApis(group.id))}</td>
                          <td class="actions"><a href="${base}/groups/${group.id}">Edit</a></td>
                        </tr>`,
                    )}
                  </tbody>
                </table>`
          }
        </div>
        <div class="card">
          <h2>New user group</h2>
          <form method="post" action="${base}/groups">
            ${csrfField(csrf)} <label for="name">Name</label
            ><input
              type="text"
              id="name"
              name="name"
              required
              value="${name}"
              placeholder="Customer service"
            />
            <div class="actions-row"><button type="submit">Create group</button></div>
          </form>
        </div>`,
    );
  };

  getPage(app, `${route}/groups`, who, async (request) => groupsPage(request));

  postForm(app, `${route}/groups`, who, async (request, reply) => {
    const org = await mount.organization(request);
    const name = field(formBody(request), 'name');
    return attempt(
      reply,
      async () => {
        const group = await createUserGroup(deps.database, actorOf(request.principal), org, {
          name: name.trim(),
        });
        redirect(reply, `${mount.link(org)}/groups/${group.id}?done=group-created`);
      },
      (flash) => groupsPage(request, flash, name),
    );
  });

  const groupOf = async (request: FastifyRequest, org: Organization): Promise<UserGroup> => {
    const id = (request.params as { group: string }).group;
    const group = /^\d{1,15}$/.test(id)
      ? await new UserGroupRepository(deps.database.db).get(org.id, Number(id))
      : undefined;
    if (!group) throw new NotFoundError(`no user group ${id} in ${org.domain}`);
    return group;
  };

  const groupPage = async (request: FastifyRequest, flash?: Flash) => {
    const org = await mount.organization(request);
    const group = await groupOf(request, org);
    const base = mount.link(org);
    const groupBase = `${base}/groups/${group.id}`;
    const { csrf } = sessionOf(request.principal);
    const users = (await new UserRepository(deps.database.db).list(org.id, { limit: MAX_LIST })).items;
    const members = (await new UserGroupRepository(deps.database.db).listMembers(org.id, group.id)).map(
      (m) => m.id,
    );
    const own = await apis.listGrants(org.id, 'USER_GROUP', group.id);
    return page(
      mount.shell(request, `Group ${group.name}`, flash ?? doneFlash(request)),
      html`${heading(mount, org, `User group: ${group.name}`)}${tabs(base, 'groups')}
        <div class="grid2">
          <div class="card">
            <h2>Members</h2>
            ${
              users.length === 0
                ? html`<p class="muted">This organization has no users yet.</p>`
                : html`<form method="post" action="${groupBase}/members">
                    ${csrfField(csrf)}
                    <div class="checks">
                      ${users.map(
                        (u) =>
                          html`<label
                            ><input
                              type="checkbox"
                              name="member.${u.userId}"
                              value="on"
                              ${checked(members.includes(u.id))}
                            />
                            ${u.userId}${
                              fullName(u) ? html` <span class="muted">(${fullName(u)})</span>` : ''
                            }</label
                          >`,
                      )}
                    </div>
                    <div class="actions-row"><button type="submit">Save members</button></div>
                  </form>`
            }
          </div>
          <div class="card">
            <h2>External API authorization for this group</h2>
            <p class="muted">Members of the group may use the APIs ticked here.</p>
            <form method="post" action="${groupBase}/external-api">
              ${csrfField(csrf)} ${apiCheckboxes(own)}
              <div class="actions-row"><button type="submit">Save group-level authorization</button></div>
            </form>
          </div>
        </div>`,
    );
  };

  getPage(app, `${route}/groups/:group`, who, async (request) => groupPage(request));

  postForm(app, `${route}/groups/:group/members`, who, async (request, reply) => {
    const org = await mount.organization(request);
    const group = await groupOf(request, org);
    const members = ticked(formBody(request), 'member');
    return attempt(
      reply,
      async () => {
        await setGroupMembers(deps.database, actorOf(request.principal), org, group.id, { members });
        redirect(reply, `${mount.link(org)}/groups/${group.id}?done=members-saved`);
      },
      (flash) => groupPage(request, flash),
    );
  });

  postForm(app, `${route}/groups/:group/external-api`, who, async (request, reply) => {
    const org = await mount.organization(request);
    const group = await groupOf(request, org);
    return attempt(
      reply,
      async () => {
        await saveGrants(request, org, 'USER_GROUP', group.id);
        redirect(reply, `${mount.link(org)}/groups/${group.id}?done=apis-saved`);
      },
      (flash) => groupPage(request, flash),
    );
  });

  // --- Organization-level External API authorization ---------------------------------------
  const externalPage = async (request: FastifyRequest, flash?: Flash) => {
    const org = await mount.organization(request);
    const base = mount.link(org);
    const { csrf } = sessionOf(request.principal);
    const grants = await apis.listAll(org.id);
    const orgApis = grants.filter((g) => g.level === 'ORGANIZATION').map((g) => g.api);
    const groups = (await new UserGroupRepository(deps.database.db).list(org.id, { limit: MAX_LIST })).items;
    const users = new UserRepository(deps.database.db);
    const rows: { label: Html; apis: string[] }[] = [];
    for (const g of groups) {
      const list = grants.filter((x) => x.level === 'USER_GROUP' && x.targetId === g.id).map((x) => x.api);
      if (list.length > 0)
        rows.push({ label: html`group <a href="${base}/groups/${g.id}">${g.name}</a>`, apis: list });
    }
    const userIds = [...new Set(grants.filter((x) => x.level === 'USER').map((x) => x.targetId))];
    for (const id of userIds) {
      const u = await users.getById(org.id, id);
      if (!u) continue;
      const list = grants.filter((x) => x.level === 'USER' && x.targetId === id).map((x) => x.api);
      rows.push({ label: html`user <a href="${base}/users/${seg(u.userId)}">${u.userId}</a>`, apis: list });
    }
    return page(
      mount.shell(request, `External API authorization of ${org.domain}`, flash ?? doneFlash(request)),
      html`${heading(mount, org)}${tabs(base, 'external-api')}
        <div class="card">
          <h2>Allowed to everyone in ${org.domain}</h2>
          <p class="muted">
            A user may use an API when the organization, one of the user's groups, or the user itself allows
            it. Tickets only reach the APIs allowed at the time of each request: removing an API here disables
            existing tickets at once.
          </p>
          <form method="post" action="${base}/external-api">
            ${csrfField(csrf)} ${apiCheckboxes(orgApis)}
            <div class="actions-row">
              <button type="submit">Save organization-level authorization</button>
            </div>
          </form>
        </div>
        <div class="card">
          <h2>Allowed to groups and single users</h2>
          ${
            rows.length === 0
              ? html`<p class="muted">
                  Nothing beyond the organization level. Open a <a href="${base}/groups">group</a> or a
                  <a href="${base}">user</a> to allow more.
                </p>`
              : html`<table>
                  <thead>
                    <tr>
                      <th>Who</th>
                      <th>APIs</th>
                    </tr>
                  </thead>
                  <tbody>
                    ${rows.map(
                      (r) =>
                        html`<tr>
                          <td>${r.label}</td>
                          <td>${apiPills(r.apis)}</td>
                        </tr>`,
                    )}
                  </tbody>
                </table>`
          }
        </div>`,
    );
  };

  getPage(app, `${route}/external-api`, who, async (request) => externalPage(request));

  postForm(app, `${route}/external-api`, who, async (request, reply) => {
    const org = await mount.organization(request);
    return attempt(
      reply,
      async () => {
        await saveGrants(request, org, 'ORGANIZATION', 0);
        redirect(reply, `${mount.link(org)}/external-api?done=apis-saved`);
      },
      (flash) => externalPage(request, flash),
    );
  });
}
