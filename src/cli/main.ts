import { Command, Option } from 'commander';
import { ConfigError, loadConfig } from '../config.js';
import { AppError, ValidationError } from '../errors.js';
import { migrateToLatest } from '../db/migrate.js';
import { createDatabase } from '../db/database.js';
import { startServer } from '../server.js';
import { createOrganization } from '../areas/organizations/service.js';
import { createUser } from '../areas/users/service.js';
import { createDevice } from '../areas/devices/service.js';
import { output, withContext } from './context.js';
import { registerDemo } from './demo.js';
import { registerTicketCommands } from './tickets.js';
import { registerImport } from './import.js';
import { registerAdminCommands } from './admins.js';
import { API_VERSION } from '../http/openapi.js';

const program = new Command();
program
  .name('onecloud')
  .description('An open implementation of the OneCloud platform API: server and administration')
  .version(API_VERSION)
  .showHelpAfterError('(run with --help for usage)');

program
  .command('serve')
  .description('start the server (HTTP API; migrates the database first)')
  .action(async () => {
    const config = loadConfig();
    const server = await startServer(config);
    const stop = async (signal: string) => {
      console.log(`OneCloud: ${signal} received, closing`);
      await server.close();
      process.exit(0);
    };
    process.once('SIGINT', () => void stop('SIGINT'));
    process.once('SIGTERM', () => void stop('SIGTERM'));
  });

program
  .command('migrate')
  .description('bring the database schema up to date')
  .option('--json', 'print the result as JSON')
  .action(async (opts: { json?: boolean }) => {
    const config = loadConfig();
    const database = await createDatabase(config.databaseUrl);
    try {
      const lines: string[] = [];
      const report = await migrateToLatest(database, (l) => lines.push(l));
      output(!!opts.json, report, () => lines);
    } finally {
      await database.close();
    }
  });

const org = program.command('org').description('organizations');
org
  .command('create')
  .description('create an organization')
  .requiredOption('--domain <domain>', 'its domain, e.g. example.com')
  .requiredOption('--name <name>', 'its name')
  .option('--number-plan <rules>', 'short-number rules, e.g. "0=+468,9=+46"')
  .option('--json', 'print the result as JSON')
  .action(async (opts: { domain: string; name: string; numberPlan?: string; json?: boolean }) => {
    await withContext(async ({ database }) => {
      const numberPlan = opts.numberPlan ? parseNumberPlan(opts.numberPlan) : undefined;
      const created = await createOrganization(
        database,
        'cli',
        { domain: opts.domain, name: opts.name, ...(numberPlan ? { numberPlan } : {}) },
        '-',
      );
      output(
        !!opts.json,
        { domain: created.domain, name: created.name, numberPlan: created.numberPlan },
        () => [`created organization ${created.domain} (${created.name})`],
      );
    });
  });

const user = program.command('user').description('users');
user
  .command('create')
  .description('create a user in an organization')
  .requiredOption('--domain <domain>', 'the organization')
  .requiredOption('--user <userId>', 'the user id, e.g. aki.huolman')
  .option('--password <password>', 'password for the portal and for creating tickets (8+ characters)')
  .option('--superuser', 'make the user an organization administrator')
  .option('--first-name <name>')
  .option('--last-name <name>')
  .option('--email <email>')
  .option('--extension <digits>', 'short number')
  .option('--json', 'print the result as JSON')
  .action(
    async (opts: {
      domain: string;
      user: string;
      password?: string;
      superuser?: boolean;
      firstName?: string;
      lastName?: string;
      email?: string;
      extension?: string;
      json?: boolean;
    }) => {
      await withContext(async ({ database, config }) => {
        const { organization, user: created } = await createUser(
          database,
          'cli',
          opts.domain,
          {
            userId: opts.user,
            role: opts.superuser ? 'SUPERUSER' : 'USER',
            ...(opts.password !== undefined ? { password: opts.password } : {}),
            ...(opts.firstName !== undefined ? { firstName: opts.firstName } : {}),
            ...(opts.lastName !== undefined ? { lastName: opts.lastName } : {}),
            ...(opts.email !== undefined ? { email: opts.email } : {}),
            ...(opts.extension !== undefined ? { extension: opts.extension } : {}),
          },
          '-',
          { legacyPasswordTokens: config.legacyPasswordTokens },
        );
        const id = `${created.userId}@${organization.domain}`;
        output(
          !!opts.json,
          { id, userId: created.userId, domain: organization.domain, role: created.role },
          () => [`created ${created.role === 'SUPERUSER' ? 'superuser' : 'user'} ${id}`],
        );
      });
    },
  );

const device = program.command('device').description('devices');
device
  .command('create')
  .description('create a device for a user (desk phones and softphones get SIP credentials, shown once)')
  .requiredOption('--domain <domain>', 'the organization')
  .requiredOption('--user <userId>', 'the owner')
  .addOption(
    new Option('--type <type>', 'kind of device')
      .choices(['SOFTPHONE', 'DESKPHONE', 'MOBILE'])
      .makeOptionMandatory(),
  )
  .option('--name <name>', 'a name shown to the user')
  .option('--number <e164>', 'E.164 number (required for MOBILE)')
  .option('--json', 'print the result as JSON')
  .action(
    async (opts: {
      domain: string;
      user: string;
      type: string;
      name?: string;
      number?: string;
      json?: boolean;
    }) => {
      await withContext(async ({ database }) => {
        const { device: created, sip } = await createDevice(
          database,
          'cli',
          opts.domain,
          opts.user,
          {
            deviceType: opts.type,
            ...(opts.name !== undefined ? { deviceName: opts.name } : {}),
            ...(opts.number !== undefined ? { number: opts.number } : {}),
          },
          '-',
        );
        const result = {
          deviceId: created.deviceId,
          deviceType: created.kind,
          deviceName: created.name,
          ...(sip ? { sip } : {}),
        };
        output(!!opts.json, result, () => [
          `created ${created.kind} ${created.deviceId} (${created.name})`,
          ...(sip
            ? [
                `  SIP username: ${sip.username}`,
                `  SIP password: ${sip.password}   (shown once)`,
                `  SIP domain:   ${sip.domain}`,
              ]
            : []),
        ]);
      });
    },
  );

registerAdminCommands(program);
registerTicketCommands(program);
registerDemo(program);
registerImport(program);

function parseNumberPlan(text: string): { prefix: string; replace: string }[] {
  return text.split(',').map((rule) => {
    const [prefix, replace] = rule.split('=');
    if (prefix === undefined || replace === undefined) {
      throw new ValidationError([
        {
          field: '--number-plan',
          message: `rule ${JSON.stringify(rule)} must be PREFIX=REPLACEMENT, e.g. 0=+468`,
        },
      ]);
    }
    return { prefix: prefix.trim(), replace: replace.trim() };
  });
}

/** Names a problem's field as the option a person typed. */
function cliField(field: string): string {
  if (!field.startsWith('-.')) return field;
  const name = field.slice(2);
  const option = OPTION_NAMES[name] ?? name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
  return `--${option}`;
}
const OPTION_NAMES: Record<string, string> = {
  userId: 'user',
  deviceType: 'type',
  deviceName: 'name',
  role: 'superuser',
};

/** Errors end the command with exit code 1 and a message that says what to fix. */
function fail(err: unknown): never {
  if (err instanceof ValidationError) {
    console.error(`error: ${err.problems.map((p) => `${cliField(p.field)} ${p.message}`).join('; ')}`);
  } else if (err instanceof AppError || err instanceof ConfigError) {
    console.error(`error: ${err.message}`);
  } else {
    console.error(`error: ${err instanceof Error ? err.message : String(err)}`);
  }
  process.exit(1);
}

program.parseAsync(process.argv).catch(fail);
