// mpirun.ts: running ranks under `mpirun` for the multi-rank tests (test/dist/): whether they can run here,
// and one run of several Node ranks with its output, exit status and duration.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { backendInfo } from '../../lib/core/backend';

/** Why multi-rank tests cannot run here (no MPI in the build, no mpirun), or false. */
export function mpiSkipReason(): string | false {
  const mpi = backendInfo().mpi;
  if (!mpi.built) return `this build has no MPI (${mpi.reason})`;
  if (spawnSync('mpirun', ['--version'], { encoding: 'utf8' }).status !== 0) return 'mpirun is not installed (apt-get install openmpi-bin)';
  return false;
}

export interface MpiRun {
  code: number | null;
  out: string;
  err: string;
  ms: number;
}

const running = new Set<ChildProcess>();

/** Kills every mpirun still running (for t.teardown: a failed test must not leave ranks behind). */
export function killAllRanks(): void {
  for (const c of running) c.kill('SIGKILL');
}

export interface MpiRunOptions {
  /** Added to the environment; PAJAMA_ADDON and these names are passed on to the ranks (-x). */
  env?: NodeJS.ProcessEnv;
  /** The whole run is killed after this long. Defaults to 120 s. */
  limitMs?: number;
  /** Sees the mpirun child process while it runs. */
  during?: (child: ChildProcess) => void;
  cwd?: string;
}

/**
 * One mpirun of `ranks.length` Node processes, rank r running `node ...ranks[r]` (one -np 1 context each, so
 * ranks may differ). As root it adds --allow-run-as-root; --oversubscribe always (2-core machines).
 */
export function runRanks(ranks: string[][], options: MpiRunOptions = {}): Promise<MpiRun> {
  const env: NodeJS.ProcessEnv = { ...process.env, OMP_NUM_THREADS: '1', ...options.env };
  const root = process.getuid?.() === 0 ? ['--allow-run-as-root'] : [];
  const forward = ['PAJAMA_ADDON', ...Object.keys(options.env ?? {})].filter((k) => env[k] !== undefined).flatMap((k) => ['-x', k]);
  const contexts = ranks.flatMap((argv, i) => [...(i > 0 ? [':'] : []), '-np', '1', process.execPath, ...argv]);
  const start = Date.now();
  return new Promise((resolve) => {
    const child = spawn('mpirun', [...root, '--oversubscribe', ...forward, ...contexts], {
      cwd: options.cwd,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    running.add(child);
    let out = '';
    let err = '';
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.limitMs ?? 120_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      running.delete(child);
      resolve({ code, out, err, ms: Date.now() - start });
    });
    options.during?.(child);
  });
}
