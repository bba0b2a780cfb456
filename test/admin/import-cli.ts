// Test entry for `onecloud import users` until src/cli/main.ts registers the command: the same
// commander program shape and error handling as the real CLI, with only the import command.
import { Command } from 'commander';
import { AppError } from '../../src/errors.js';
import { registerImport } from '../../src/cli/import.js';

const program = new Command().name('onecloud');
registerImport(program);
program.parseAsync(process.argv).catch((err: unknown) => {
  console.error(`error: ${err instanceof AppError || err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
