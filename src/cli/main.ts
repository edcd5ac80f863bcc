/*
 * The `moat` command (bin/moat): one entry point for operators.
 *
 *   moat start                 run the gateway in the foreground (what `npm start` runs)
 *   moat quarantine ...        list, show, release, delete and purge held mail (./quarantine.ts)
 *   moat rules test|explain    run the rule test cases; explain a message (./rules.ts)
 *   moat help | --version
 *
 * It reads the same configuration as the gateway (config/moat.ini, MOAT_* variables,
 * MOAT_CONFIG_DIR), so it finds the same state folder, quarantine folder and internal server.
 * Errors are one line on stderr and a sysexits code (./exit-codes.ts).
 */

import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadConfig } from '../config/load';
import { Forwarder } from '../delivery/forwarder';
import { MaildirDelivery } from '../delivery/maildir';
import type { Delivery } from '../delivery/types';
import { quarantineDir } from '../quarantine/config';
import { QuarantineStore } from '../quarantine/store';
import { EXIT, exitCodeFor, UsageError } from './exit-codes';
import { QUARANTINE_USAGE, runQuarantine, type CliOutput } from './quarantine';
import { runRulesCommand } from './rules';

const PROJECT_ROOT = resolve(__dirname, '..', '..', '..');

export const USAGE = `usage: moat <command>

  start              run the gateway in the foreground (same as npm start)
  quarantine ...     work with held mail; \`moat quarantine help\` for details
  rules test         run the rule test cases in rules/tests (exit 1 when one fails)
  rules explain MESSAGE.eml --from ADDRESS --to ADDRESS
                     which rules match the message and why
  help, --version

Configuration comes from config/moat.ini and MOAT_* variables, as for the gateway.
`;

export async function runCli(
  argv: string[],
  io: CliOutput,
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'quarantine': return await quarantine(rest, io, env);
      case 'rules': return await runRulesCommand(rest);
      case '--version': case 'version':
        io.out(`moat ${version()}\n`);
        return EXIT.ok;
      case undefined: case 'help': case '--help': case '-h':
        io.out(`${USAGE}\n${QUARANTINE_USAGE}`);
        return command === undefined ? EXIT.usage : EXIT.ok;
      default:
        throw new UsageError(`unknown command ${JSON.stringify(command)}; see \`moat help\``);
    }
  } catch (error) {
    const code = exitCodeFor(error);
    const message = error instanceof Error ? error.message : String(error);
    io.err(`moat: ${code === EXIT.config ? 'configuration error: ' : ''}${message}\n`);
    if (code === 70 && error instanceof Error && error.stack) io.err(`${error.stack}\n`);
    return code;
  }
}

async function quarantine(args: string[], io: CliOutput, env: NodeJS.ProcessEnv) {
  const config = loadConfig({
    root: env['MOAT_ROOT'] ?? PROJECT_ROOT, configDir: env['MOAT_CONFIG_DIR'], env,
  });
  const dir = dirOption(args) ?? quarantineDir(config.stateDir, config.quarantine);
  const openDelivery = (): Delivery => (config.downstream.address
    ? new Forwarder(config.downstream)
    : new MaildirDelivery(config.stateDir));
  return runQuarantine(args, {
    store: new QuarantineStore(dir),
    openDelivery,
    defaultActor: env['SUDO_USER'] || env['USER'] || env['LOGNAME'] || 'cli',
    io,
  });
}

/** `--dir PATH` or `--dir=PATH` anywhere after the subcommand. */
function dirOption(args: string[]): string | undefined {
  for (let index = 0; index < args.length; index++) {
    const arg = args[index] ?? '';
    if (arg.startsWith('--dir=')) return resolve(arg.slice('--dir='.length));
    if (arg === '--dir') {
      const value = args[index + 1];
      if (value === undefined || value.startsWith('--')) {
        throw new UsageError('--dir needs a folder path');
      }
      return resolve(value);
    }
  }
  return undefined;
}

function version(): string {
  try {
    const manifest = JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8'));
    return String(manifest.version);
  } catch {
    return 'unknown';
  }
}

function main(): void {
  const argv = process.argv.slice(2);
  if (argv[0] === 'start') {
    // The gateway owns the process from here on (signals, exit).
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    (require('../runtime/main') as { startGateway: () => unknown }).startGateway();
    return;
  }
  const io: CliOutput = {
    out: (text) => process.stdout.write(text),
    err: (text) => process.stderr.write(text),
  };
  runCli(argv, io).then((code) => {
    process.exitCode = code;
  }, (error: unknown) => {
    process.stderr.write(`moat: ${String(error)}\n`);
    process.exitCode = 70;
  });
}

if (require.main === module) main();
