import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { AppError, ValidationError } from '../errors.js';
import { requireOrganization } from '../areas/organizations/service.js';
import { checkBulkRows, importUserRows } from '../areas/users/service.js';
import { withContext } from './context.js';

/** One CSV record with the file line it starts on. */
export interface CsvRecord {
  line: number;
  cells: string[];
}

/** RFC 4180 CSV: `,` separated, `"` quoted (`""` inside quotes), CRLF or LF; a BOM is ignored. */
export function parseCsv(text: string): CsvRecord[] {
  const out: CsvRecord[] = [];
  let cells: string[] = [];
  let cell = '';
  let quoted = false;
  let line = 1;
  let recordLine = 1;
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  const endRecord = () => {
    cells.push(cell);
    if (!(cells.length === 1 && cells[0]!.trim() === '')) out.push({ line: recordLine, cells });
    cells = [];
    cell = '';
  };
  for (; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (c === '"') quoted = false;
      else {
        if (c === '\n') line++;
        cell += c;
      }
    } else if (c === '"' && cell === '') quoted = true;
    else if (c === ',') {
      cells.push(cell);
      cell = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      endRecord();
      line++;
      recordLine = line;
    } else cell += c;
  }
  if (quoted)
    throw new ValidationError([{ field: `line ${recordLine}`, message: 'has a quote that is never closed' }]);
  if (cell !== '' || cells.length > 0) endRecord();
  return out;
}

/** CSV header names (case and `_`/`-`/space insensitive) → user fields. */
const COLUMNS: Record<string, string> = {
  userid: 'userId',
  user: 'userId',
  id: 'userId',
  firstname: 'firstName',
  lastname: 'lastName',
  email: 'email',
  password: 'password',
  role: 'role',
  language: 'language',
  title: 'title',
  department: 'department',
  extension: 'extension',
  groups: 'groups',
};

/** Turns CSV records (first = header) into user objects for the bulk checks; empty cells are left out. */
export function csvToUsers(records: CsvRecord[]): { users: Record<string, unknown>[]; lines: number[] } {
  const [header, ...rows] = records;
  if (!header)
    throw new ValidationError([
      {
        field: 'line 1',
        message: 'the file is empty; the first line names the columns (userId,firstName,...)',
      },
    ]);
  const fields = header.cells.map((h, i) => {
    const f =
      COLUMNS[
        h
          .trim()
          .toLowerCase()
          .replace(/[\s_-]/g, '')
      ];
    if (!f) {
      throw new ValidationError([
        {
          field: `line 1, column ${i + 1}`,
          message: `"${h}" is not a known column; use ${[...new Set(Object.values(COLUMNS))].join(', ')}`,
        },
      ]);
    }
    return f;
  });
  if (!fields.includes('userId'))
    throw new ValidationError([{ field: 'line 1', message: 'needs a userId column' }]);
  const users = rows.map((r) => {
    const u: Record<string, unknown> = {};
    fields.forEach((f, i) => {
      const v = (r.cells[i] ?? '').trim();
      if (v === '') return;
      u[f] =
        f === 'groups'
          ? v.split(/[;|]/).map((g) => (/^\d+$/.test(g.trim()) ? Number(g.trim()) : g.trim()))
          : v;
    });
    if (r.cells.length > fields.length) u[`column${fields.length + 1}`] = r.cells[fields.length];
    return u;
  });
  return { users, lines: rows.map((r) => r.line) };
}

/** `onecloud import users --domain D --file users.csv` */
export function registerImport(program: Command): void {
  const cmd = program.command('import').description('move data in from files');
  cmd
    .command('users')
    .description(
      'create the users of a CSV file (header: userId,firstName,lastName,email,extension,role,password,groups,...). ' +
        'All or nothing: every row is checked before anything is written (every problem is printed with its line), ' +
        'then all users are created in one transaction, 1,000 at a time with a progress line; if anything fails, ' +
        'nothing is imported and the failing lines are named.',
    )
    .requiredOption('--domain <domain>', 'the organization')
    .requiredOption('--file <path>', 'the CSV file')
    .option('--dry-run', 'check the file only; create nothing')
    .action(async (opts: { domain: string; file: string; dryRun?: boolean }) => {
      await withContext(async ({ database, config }) => {
        const org = await requireOrganization(database, opts.domain);
        const text = readFileSync(opts.file, 'utf8');
        const { users, lines } = csvToUsers(parseCsv(text));
        if (users.length === 0) throw new AppError(400, `${opts.file} has a header but no users`);
        let rows;
        try {
          // Every problem of the file is printed (the HTTP answer lists 50).
          rows = await checkBulkRows(database, org, users, (i) => `line ${lines[i] ?? i + 2}`, {
            whole: opts.file,
            maxListed: Number.POSITIVE_INFINITY,
          });
        } catch (err) {
          if (err instanceof AppError && err.details?.problems) {
            for (const p of err.details.problems) process.stderr.write(`${p.field}: ${p.message}\n`);
            throw new AppError(err.statusCode, err.message.replace(/ was created$/, ' was imported'));
          }
          throw err;
        }
        if (opts.dryRun) {
          process.stdout.write(`${rows.length} users in ${opts.file} can be imported into ${org.domain}\n`);
          return;
        }
        const started = Date.now();
        const tty = process.stderr.isTTY === true;
        const lineOf = (i: number) => lines[i] ?? i + 2;
        await importUserRows(database, 'cli', org, rows, {
          legacyPasswordTokens: config.legacyPasswordTokens,
          rowsOf: (first, last) => `lines ${lineOf(first)}-${lineOf(last)}`,
          onProgress: ({ phase, done, total }) => {
            const rate = Math.round(done / Math.max(0.001, (Date.now() - started) / 1000));
            const line =
              phase === 'hashing'
                ? `hashed ${done}/${total} passwords (${rate}/s)`
                : `inserted ${done}/${total} users into ${org.domain} (${rate}/s; committed when all are in)`;
            process.stderr.write(tty ? `\r${line}` : `${line}\n`);
          },
        }).finally(() => {
          if (tty) process.stderr.write('\n');
        });
        const seconds = ((Date.now() - started) / 1000).toFixed(1);
        process.stdout.write(`imported ${rows.length} users into ${org.domain} in ${seconds} s\n`);
      });
    });
}
