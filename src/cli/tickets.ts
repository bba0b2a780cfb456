import type { Command } from 'commander';
import { requireOrganization } from '../areas/organizations/service.js';
import { requireUser } from '../areas/users/service.js';
import {
  createSystemTicket,
  createUserTicket,
  revokeTicket,
  viewTicket,
  type TicketView,
} from '../areas/tickets/service.js';
import { TicketRepository } from '../areas/tickets/repository.js';
import type { Organization } from '../areas/organizations/repository.js';
import { UserRepository } from '../areas/users/repository.js';
import { ValidationError } from '../errors.js';
import { sntAuthorization } from '../security/tokens.js';
import { output, withContext } from './context.js';

const collect = (v: string, prev: string[] = []) => [...prev, v];

export function registerTicketCommands(program: Command): void {
  const ticket = program.command('ticket').description('API tickets');

  ticket
    .command('create')
    .description('create a user ticket (token) or, with --system, a system ticket (token and secret)')
    .option('--domain <domain>', 'organization of the user')
    .option('--user <userId>', 'the user the ticket acts for')
    .option('--system', 'a system ticket for the admin API')
    .option(
      '--api <id>',
      'an API the ticket may use (repeat for several); system tickets: ADMIN, ADMIN_USERS, ...',
      collect,
    )
    .option('--org <domain>', 'system tickets: limit to this organization (repeatable)', collect)
    .option('--name <name>', 'a name to recognise the ticket by')
    .option('--days <n>', 'days until it expires (default 365)', (v) => Number(v))
    .option('--json', 'print the result as JSON')
    .action(
      async (opts: {
        domain?: string;
        user?: string;
        system?: boolean;
        api?: string[];
        org?: string[];
        name?: string;
        days?: number;
        json?: boolean;
      }) => {
        await withContext(async ({ database, config }) => {
          const apis = opts.api ?? [];
          if (opts.system) {
            const created = await createSystemTicket(database, config, 'cli', {
              scopes: apis,
              ...(opts.name !== undefined ? { name: opts.name } : {}),
              ...(opts.org ? { domains: opts.org } : {}),
              ...(opts.days !== undefined ? { days: opts.days } : {}),
            });
            output(
              !!opts.json,
              {
                id: created.ticket.id,
                name: created.ticket.name,
                scopes: created.ticket.scopes,
                expires: new Date(created.ticket.expiresAt).toISOString(),
                token: created.token,
                secret: created.secret,
              },
              () => [
                `created system ticket ${created.ticket.id} (${created.ticket.name}), scopes ${created.ticket.scopes.join(', ')}`,
                `  token:  ${created.token}`,
                `  secret: ${created.secret}`,
                '  Both are shown once. Use them with: ONECLOUD_TOKEN=... ONECLOUD_SECRET=... onecloud api GET /api/admin/organizations',
              ],
            );
            return;
          }
          if (!opts.domain || !opts.user) {
            throw new ValidationError([
              {
                field: '--domain/--user',
                message: 'a user ticket needs --domain and --user (or use --system)',
              },
            ]);
          }
          const organization = await requireOrganization(database, opts.domain);
          const user = await requireUser(database, organization, opts.user);
          const created = await createUserTicket(database, config, 'cli', {
            organization,
            user,
            apis,
            platform: 'cli',
            ...(opts.name !== undefined ? { name: opts.name } : {}),
            ...(opts.days !== undefined ? { days: opts.days } : {}),
          });
          output(!!opts.json, { id: created.ticket.id, ...created.answer }, () => [
            `created ticket ${created.ticket.id} (${created.answer.name}) for ${user.userId}@${organization.domain}`,
            `  APIs:    ${created.answer.allowedApis.join(', ')}`,
            `  expires: ${created.answer.expires}`,
            `  token:   ${created.token}   (shown once)`,
          ]);
        });
      },
    );

  ticket
    .command('list')
    .description("list an organization's user tickets, or system tickets with --system (never tokens)")
    .option('--domain <domain>')
    .option('--system')
    .option('--json', 'print the result as JSON')
    .action(async (opts: { domain?: string; system?: boolean; json?: boolean }) => {
      await withContext(async ({ database }) => {
        const repo = new TicketRepository(database.db);
        let org: Organization | undefined;
        if (!opts.system) {
          if (!opts.domain)
            throw new ValidationError([{ field: '--domain', message: 'is required (or use --system)' }]);
          org = await requireOrganization(database, opts.domain);
        }
        // A user ticket's owner is its user, user@domain (as the APIs show it).
        const owners = new Map<number, string>();
        const ownerOf = async (userId: number | null): Promise<string> => {
          if (userId === null || !org) return 'system';
          let name = owners.get(userId);
          if (name === undefined) {
            const u = await new UserRepository(database.db).getById(org.id, userId);
            name = u ? `${u.userId}@${org.domain}` : '?';
            owners.set(userId, name);
          }
          return name;
        };
        const views: TicketView[] = [];
        let after: number | undefined;
        for (;;) {
          const page = await repo.listByOrg(org?.id ?? null, {
            limit: 500,
            ...(after !== undefined ? { after } : {}),
          });
          for (const t of page.items) views.push(viewTicket(t, await ownerOf(t.userId)));
          if (page.next == null) break;
          after = page.next;
        }
        output(!!opts.json, views, () =>
          views.length === 0
            ? ['no tickets']
            : views.map(
                (v) =>
                  `${String(v.id).padStart(6)}  ${v.status.padEnd(8)} ${v.expires.slice(0, 10)}  ${v.owner}  ${v.name}  [${v.allowedApis.join(',')}]`,
              ),
        );
      });
    });

  ticket
    .command('revoke')
    .description('revoke a ticket (takes effect on the next request)')
    .requiredOption('--id <ticketId>', 'the ticket id (the part of the token before the dot)', (v) =>
      Number(v),
    )
    .option('--domain <domain>', 'the organization of a user ticket (omit for a system ticket)')
    .option('--json', 'print the result as JSON')
    .action(async (opts: { id: number; domain?: string; json?: boolean }) => {
      await withContext(async ({ database }) => {
        const orgId = opts.domain ? (await requireOrganization(database, opts.domain)).id : null;
        const t = await revokeTicket(database, 'cli', { organizationId: orgId }, opts.id);
        output(!!opts.json, { id: t.id, revoked: new Date(t.revokedAt!).toISOString() }, () => [
          `revoked ticket ${t.id} (${t.name})`,
        ]);
      });
    });

  program
    .command('api')
    .description(
      'call the admin API with a system ticket from ONECLOUD_TOKEN and ONECLOUD_SECRET (signs SNT-HMACv1)',
    )
    .argument('[method]', 'HTTP method, or the path when the method is omitted (GET)')
    .argument('[path]', 'path and query, e.g. /api/admin/organizations')
    .option('--data <json>', 'request body (JSON)')
    .option('--url <base>', 'server base URL (default ONECLOUD_URL or http://127.0.0.1:8080)')
    .action(async (a: string | undefined, b: string | undefined, opts: { data?: string; url?: string }) => {
      const [method, path] = b === undefined ? ['GET', a] : [a!.toUpperCase(), b];
      if (!path || !path.startsWith('/'))
        throw new ValidationError([
          { field: 'path', message: 'give a path starting with /, e.g. /api/admin/organizations' },
        ]);
      const token = process.env.ONECLOUD_TOKEN;
      const secret = process.env.ONECLOUD_SECRET;
      if (!token || !secret) {
        throw new ValidationError([
          {
            field: 'ONECLOUD_TOKEN/ONECLOUD_SECRET',
            message: 'set both to a system ticket (onecloud ticket create --system --api ADMIN)',
          },
        ]);
      }
      if (opts.data !== undefined) {
        try {
          JSON.parse(opts.data);
        } catch (err) {
          throw new ValidationError([{ field: '--data', message: `is not JSON: ${(err as Error).message}` }]);
        }
      }
      const base = (opts.url ?? process.env.ONECLOUD_URL ?? 'http://127.0.0.1:8080').replace(/\/$/, '');
      const body = opts.data ?? '';
      const authorization = sntAuthorization({ token, secret, method, pathAndQuery: path, body });
      const res = await fetch(base + path, {
        method,
        headers: {
          authorization,
          accept: 'application/json',
          ...(body !== '' ? { 'content-type': 'application/json' } : {}),
        },
        ...(body !== '' ? { body } : {}),
      });
      const text = await res.text();
      process.stdout.write(text.endsWith('\n') || text === '' ? text : text + '\n');
      if (!res.ok) {
        console.error(
          `HTTP ${res.status}${res.headers.get('warning') ? ` (${res.headers.get('warning')})` : ''}`,
        );
        process.exitCode = 1;
      }
    });
}
