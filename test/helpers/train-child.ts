// train-child.ts: `pajama train` in a child process (the compiled CLI), with helpers to wait for output,
// send signals and collect the exit status, for the reliability tests.
import { spawn, type ChildProcess } from 'node:child_process';
import { CLI, REPO } from './tiny-run';

export interface TrainChild {
  child: ChildProcess;
  out: () => string;
  err: () => string;
  /** Resolves when stdout+stderr match `re` (rejects after timeoutMs, or when the child exits first). */
  waitFor: (re: RegExp, timeoutMs?: number) => Promise<RegExpExecArray>;
  /** How the child ended: its exit status, or the signal that killed it. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** `exited`, but the child is killed (SIGKILL) if it has not ended within `ms`; timedOut says so. */
  exitedWithin: (ms: number) => Promise<{ code: number | null; signal: NodeJS.Signals | null; timedOut: boolean }>;
}

const running = new Set<ChildProcess>();

/** Kills every child still running (for t.teardown: a failed test must not leave trainers behind). */
export function killAllChildren(): void {
  for (const c of running) c.kill('SIGKILL');
}

export function spawnTrain(configFile: string, extraArgs: string[] = [], env: NodeJS.ProcessEnv = {}): TrainChild {
  const child = spawn(process.execPath, [CLI, 'train', '--config', configFile, ...extraArgs], {
    cwd: REPO,
    env: { ...process.env, OMP_NUM_THREADS: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  const waiters: { re: RegExp; resolve: (m: RegExpExecArray) => void }[] = [];
  const check = () => {
    for (const w of [...waiters]) {
      const m = w.re.exec(out + err);
      if (m) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(m);
      }
    }
  };
  child.stdout!.on('data', (d) => {
    out += d;
    check();
  });
  child.stderr!.on('data', (d) => {
    err += d;
    check();
  });
  running.add(child);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('close', (code, signal) => {
      running.delete(child);
      resolve({ code, signal });
    }),
  );
  return {
    exitedWithin: (ms) => {
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        child.kill('SIGKILL');
      }, ms);
      return exited.then((r) => {
        clearTimeout(timer);
        return { ...r, timedOut };
      });
    },
    child,
    out: () => out,
    err: () => err,
    exited,
    waitFor: (re, timeoutMs = 60_000) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`timed out waiting for ${re}; output:\n${out}\n${err}`)), timeoutMs);
        const w = {
          re,
          resolve: (m: RegExpExecArray) => {
            clearTimeout(timer);
            resolve(m);
          },
        };
        waiters.push(w);
        check();
        void exited.then(() => {
          setImmediate(() => {
            if (waiters.includes(w)) {
              clearTimeout(timer);
              reject(new Error(`the child exited before ${re}; output:\n${out}\n${err}`));
            }
          });
        });
      }),
  };
}
