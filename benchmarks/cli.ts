// cli.ts: the command line every benchmark shares. Arguments are `--flag` or `--option value`, checked
// against the benchmark's own lists (anything else is a one-line usage error, exit status 2); the table goes
// to stdout, or to stderr under --json, which prints the JSON report on stdout instead; --out FILE also
// writes the report there.
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface BenchCli {
  /** The arguments after the script. */
  args: string[];
  flag(name: string): boolean;
  opt(name: string): string | undefined;
  /** An integer option >= min, or `fallback` when it is absent. */
  intOpt(name: string, fallback: number, min: number): number;
  /** A line of the table. */
  log(line: string): void;
  /** The JSON report: on stdout under --json, and into --out FILE. */
  writeReport(report: unknown): void;
  /** A bad command line: a one-line message and exit status 2, no stack trace. */
  usageError(message: string): never;
}

/** Parses process.argv for the benchmark `name`, which takes `flags` and `options` (--json and --out always). */
export function benchCli(name: string, known: { flags: string[]; options: string[] }): BenchCli {
  const args = process.argv.slice(2);
  const flags = [...new Set(['--json', ...known.flags])];
  const options = [...new Set(['--out', ...known.options])];
  const usageError = (message: string): never => {
    process.stderr.write(`${name}: ${message}\n`);
    process.exit(2);
  };
  for (let i = 0; i < args.length; i++) {
    if (options.includes(args[i])) {
      if (i + 1 >= args.length) usageError(`${args[i]} needs a value`);
      i++;
    } else if (!flags.includes(args[i])) {
      usageError(`unknown argument '${args[i]}' (flags: ${flags.join(' ')}; options: ${options.join(' ')})`);
    }
  }
  const flag = (f: string) => args.includes(f);
  const opt = (f: string) => {
    const i = args.indexOf(f);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const json = flag('--json');
  return {
    args,
    flag,
    opt,
    intOpt(f, fallback, min) {
      const s = opt(f);
      if (s === undefined) return fallback;
      const n = Number(s);
      if (!Number.isInteger(n) || n < min) usageError(`${f} must be an integer >= ${min}, got '${s}'`);
      return n;
    },
    log: json ? (s) => void process.stderr.write(s + '\n') : (s) => console.log(s),
    writeReport(report) {
      const text = JSON.stringify(report, null, 2) + '\n';
      if (json) process.stdout.write(text);
      const out = opt('--out');
      if (out) {
        fs.mkdirSync(path.dirname(out), { recursive: true });
        fs.writeFileSync(out, text);
      }
    },
    usageError,
  };
}
