import type { Command } from 'commander';
import { createSystemAdmin, listSystemAdmins, setSystemAdminPassword } from '../areas/admins/service.js';
import { output, withContext } from './context.js';

/**
 * `onecloud admin ...`: the system administrators of the web interface at /admin. The first one,
 * `admin`, is created by the first start; these commands add others and reset a forgotten
 * password (which also logs that administrator out everywhere).
 */
export function registerAdminCommands(program: Command): void {
  const admin = program.command('admin').description('system administrators (the /admin web interface)');

  admin
    .command('create')
    .description('add a system administrator; prints a generated password once unless --password is given')
    .requiredOption('--name <name>', 'login name, e.g. ops.jane')
    .option('--password <password>', 'at least 8 characters (default: generated)')
    .option('--json', 'print the result as JSON')
    .action(async (opts: { name: string; password?: string; json?: boolean }) => {
      await withContext(async ({ database }) => {
        const r = await createSystemAdmin(database, 'cli', opts.name, opts.password);
        output(
          !!opts.json,
          {
            name: r.admin.username,
            created: new Date(r.admin.createdAt).toISOString(),
            ...(r.generatedPassword ? { password: r.generatedPassword } : {}),
          },
          () => [
            `created system administrator ${r.admin.username}`,
            ...(r.generatedPassword ? [`  password (shown once): ${r.generatedPassword}`] : []),
          ],
        );
      });
    });

  admin
    .command('password')
    .description(
      'set or reset a system administrator’s password (generated and printed once unless --password); ends its web sessions',
    )
    .requiredOption('--name <name>', 'login name, e.g. admin')
    .option('--password <password>', 'at least 8 characters (default: generated)')
    .option('--json', 'print the result as JSON')
    .action(async (opts: { name: string; password?: string; json?: boolean }) => {
      await withContext(async ({ database }) => {
        const r = await setSystemAdminPassword(database, 'cli', opts.name, opts.password);
        output(
          !!opts.json,
          {
            name: r.admin.username,
            sessionsEnded: r.sessionsEnded,
            ...(r.generatedPassword ? { password: r.generatedPassword } : {}),
          },
          () => [
            `password of ${r.admin.username} changed; ${r.sessionsEnded} web session(s) ended`,
            ...(r.generatedPassword ? [`  new password (shown once): ${r.generatedPassword}`] : []),
          ],
        );
      });
    });

  admin
    .command('list')
    .description('list the system administrators')
    .option('--json', 'print the result as JSON')
    .action(async (opts: { json?: boolean }) => {
      await withContext(async ({ database }) => {
        const admins = (await listSystemAdmins(database)).map((a) => ({
          name: a.username,
          created: new Date(a.createdAt).toISOString(),
        }));
        output(!!opts.json, admins, () => admins.map((a) => `${a.name.padEnd(24)} created ${a.created}`));
      });
    });
}
