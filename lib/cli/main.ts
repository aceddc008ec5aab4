#!/usr/bin/env node
// main.ts: the `pajama` command line: train, tokenize, generate, bench, info, demo. Every command validates
// its options (unknown option, wrong type, missing value) and reports errors as one line, exit code 2 for
// usage errors and 1 for failures.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { backendInfo } from '../core/backend';
import { parseArgs, usage, type OptionSpec } from './args';
import { commands } from './commands';

export interface Command {
  summary: string;
  options: Record<string, OptionSpec>;
  run(options: Record<string, string | number | boolean | string[]>, positionals: string[]): Promise<void>;
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
  } catch (e) {
    console.error((e as Error).message);
    return 2;
  }
  try {
    await cmd.run(parsed.options, parsed.positionals);
    return 0;
  } catch (e) {
    const err = e as Error & { code?: string };
    console.error(`pajama ${name}: ${err.message}`);
    if (process.env.PAJAMA_DEBUG) console.error(err.stack);
    return err.code === 'ERR_PAJAMA_INVALID_ARG' ? 2 : 1;
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
