// args.ts: a small, strict argument parser for the pajama CLI: `--flag`, `--key value`, `--key=value`,
// repeatable keys, positionals. Unknown options are errors naming the option and listing the known ones.
import { invalidArg } from '../core/errors';

export interface OptionSpec {
  /** 'flag' takes no value; 'string' and 'number' take one; 'list' may repeat. */
  kind: 'flag' | 'string' | 'number' | 'list';
  describe: string;
}

export interface ParsedArgs {
  options: Record<string, string | number | boolean | string[]>;
  positionals: string[];
}

export function parseArgs(argv: string[], spec: Record<string, OptionSpec>, command: string): ParsedArgs {
  const options: ParsedArgs['options'] = {};
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) {
      positionals.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = a.slice(2, eq > 0 ? eq : undefined);
    const s = spec[name];
    if (!s) throw invalidArg(`pajama ${command}: unknown option --${name} (options: ${Object.keys(spec).map((k) => `--${k}`).join(', ')})`);
    if (s.kind === 'flag') {
      if (eq > 0) throw invalidArg(`pajama ${command}: --${name} takes no value`);
      options[name] = true;
      continue;
    }
    let value: string;
    if (eq > 0) value = a.slice(eq + 1);
    else {
      if (i + 1 >= argv.length) throw invalidArg(`pajama ${command}: --${name} needs a value`);
      value = argv[++i];
    }
    if (s.kind === 'number') {
      const n = Number(value);
      if (value.trim() === '' || !Number.isFinite(n)) throw invalidArg(`pajama ${command}: --${name} must be a number, got '${value}'`);
      options[name] = n;
    } else if (s.kind === 'list') {
      ((options[name] ??= []) as string[]).push(value);
    } else {
      options[name] = value;
    }
  }
  return { options, positionals };
}

export function usage(command: string, summary: string, spec: Record<string, OptionSpec>): string {
  const lines = [`pajama ${command} ${summary}`, ''];
  const names = Object.entries(spec).map(([k, s]) => `  --${k}${s.kind === 'flag' ? '' : s.kind === 'number' ? ' N' : ' VALUE'}`);
  const width = Math.max(28, ...names.map((n) => n.length + 2)); // the descriptions line up after the longest name
  Object.values(spec).forEach((s, i) => lines.push(names[i].padEnd(width) + s.describe));
  return lines.join('\n');
}

/** A `pajama` subcommand: its options, positionals and what it does (main.ts dispatches, commands.ts defines). */
export interface Command {
  summary: string;
  options: Record<string, OptionSpec>;
  /** What the positional arguments are, e.g. 'INPUT...'; a command without it takes none. */
  positionals?: string;
  /** Resolves to nothing (exit code 0) or to the exit code. */
  run(options: Record<string, string | number | boolean | string[]>, positionals: string[]): Promise<void | number>;
}

/** The exit code for an error a command threw: its own integer `exitCode`, 2 for usage errors, else 1. */
export function errorExitCode(e: unknown): number {
  // An error may carry its own status (a run stopped by SIGTERM exits 143, as schedulers expect).
  const exitCode = (e as { exitCode?: unknown } | null)?.exitCode;
  if (typeof exitCode === 'number' && Number.isInteger(exitCode)) return exitCode;
  return (e as { code?: unknown } | null)?.code === 'ERR_PAJAMA_INVALID_ARG' ? 2 : 1;
}
