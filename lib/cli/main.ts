#!/usr/bin/env node
// main.ts: the `pajama` command line: train, tokenize, generate, bench, info, demo. Every command validates
// its options (unknown option, wrong type, missing value, unexpected arguments) and reports errors as one
// line, "pajama <command>: <message>" (the prefix added here, once). Exit codes: 0 done, 2 usage errors (bad
// options or arguments, ERR_PAJAMA_INVALID_ARG), 1 failures; an error may carry its own status in a numeric
// `exitCode` (128 + the signal number for a run stopped by a signal), and a command may resolve to one.
// A file-system error that reaches here without context is described from its syscall and path.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { backendInfo } from '../core/backend';
import { describeSystemError, isSystemError } from '../core/fs-errors';
import { errorExitCode, parseArgs, usage } from './args';

export { errorExitCode } from './args';
import { commands } from './commands';

// Defined in args.ts so that commands.ts need not import this file (which imports it).
export type { Command } from './args';

/** The one-line message for an error a command threw, prefixed once with "pajama <command>: ". */
export function errorLine(command: string, e: unknown): string {
  const prefix = `pajama ${command}: `;
  let message = isSystemError(e) ? describeSystemError(e) : e instanceof Error ? e.message : String(e);
  while (message.startsWith(prefix)) message = message.slice(prefix.length);
  return prefix + message;
}

function help(): string {
  const lines = ['pajama: pretrain MPT-style language models from Node.js', '', 'commands:'];
  for (const [name, c] of Object.entries(commands)) lines.push(`  ${name.padEnd(10)} ${c.summary}`);
  lines.push('', 'pajama <command> --help for its options');
  return lines.join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(help());
    return name ? 0 : 2;
  }
  if (name === '--version') {
    const pkg = JSON.parse(fs.readFileSync(path.resolve(__dirname, '../../../package.json'), 'utf8')) as { version: string };
    console.log(pkg.version);
    return 0;
  }
  const cmd = commands[name];
  if (!cmd) {
    console.error(`pajama: unknown command '${name}'\n\n${help()}`);
    return 2;
  }
  if (rest.includes('--help')) {
    console.log(usage(name, cmd.summary, cmd.options));
    return 0;
  }
  let parsed;
  try {
    parsed = parseArgs(rest, cmd.options, name);
    if (!cmd.positionals && parsed.positionals.length > 0) {
      throw new Error(`unexpected argument '${parsed.positionals[0]}' (this command takes only options; see pajama ${name} --help)`);
    }
  } catch (e) {
    console.error(errorLine(name, e));
    return 2;
  }
  try {
    const code = await cmd.run(parsed.options, parsed.positionals);
    return typeof code === 'number' ? code : 0;
  } catch (e) {
    console.error(errorLine(name, e));
    if (process.env.PAJAMA_DEBUG) console.error((e as Error)?.stack);
    return errorExitCode(e);
  }
}

export { backendInfo };

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e) => {
      console.error(e);
      process.exitCode = 1;
    },
  );
}
