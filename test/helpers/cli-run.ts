// cli-run.ts: runs the pajama CLI in-process (main(argv)) with console output captured, for tests that check
// exit codes and messages without starting a process.
import { main } from '../../lib/cli/main';

export interface CliResult {
  code: number;
  out: string;
  err: string;
}

export async function runCli(argv: string[]): Promise<CliResult> {
  const out: string[] = [];
  const err: string[] = [];
  const log = console.log;
  const error = console.error;
  console.log = (...a: unknown[]) => void out.push(a.join(' '));
  console.error = (...a: unknown[]) => void err.push(a.join(' '));
  try {
    const code = await main(argv);
    return { code, out: out.join('\n'), err: err.join('\n') };
  } finally {
    console.log = log;
    console.error = error;
  }
}
