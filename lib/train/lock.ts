// lock.ts: one writer per run directory. A trainer holds <runDir>/.lock while it runs; a second trainer on
// the same directory fails at once with an error naming the holder (pid, host, start time, command)
// instead of interleaving metrics.jsonl and racing the first one's checkpoint renames.
//
// The lock file is written complete under a temporary name and then hard-linked to `.lock`: link() fails
// with EEXIST when the name is taken, so exactly one process wins, and a reader never sees a half-written
// lock. A lock left by a process that died (kill -9, power loss) is stale: when its host is this host and
// its pid is not alive, it is taken over with a warning. A lock from another host cannot be checked from
// here; the error says so and how to remove it. The lock is released by release(), and on process exit
// (a normal exit, an uncaught error, or process.exit from a signal handler) if still held.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { TMP_MARKER, processAlive } from '../core/atomic';

export const LOCK_FILE = '.lock';

/** What a lock file holds. */
export interface LockInfo {
  pid: number;
  hostname: string;
  /** ISO time the holder took the lock. */
  startedAt: string;
  /** The holder's command line. */
  command: string;
  /** Random per acquisition, so a release never removes another process's lock. */
  token: string;
}

/** The run directory is locked by a live process (or one on another host). */
export class RunLockedError extends Error {
  readonly code = 'ERR_PAJAMA_RUN_LOCKED';
  constructor(
    readonly lockFile: string,
    readonly holder: LockInfo | null,
    message: string,
  ) {
    super(message);
    this.name = 'RunLockedError';
  }
}

function describe(h: LockInfo): string {
  return `pid ${h.pid} on ${h.hostname}, started ${h.startedAt} (${h.command})`;
}

function readLock(file: string): LockInfo | null | 'gone' {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 'gone';
    throw e;
  }
  try {
    const v = JSON.parse(text) as LockInfo;
    if (Number.isSafeInteger(v.pid) && v.pid > 0 && typeof v.hostname === 'string') return v;
  } catch {
    // fall through: not a lock this module wrote
  }
  return null;
}

export class RunLock {
  readonly file: string;
  readonly info: LockInfo;
  #held = true;
  #onExit: () => void;

  private constructor(file: string, info: LockInfo) {
    this.file = file;
    this.info = info;
    this.#onExit = () => this.release();
    process.on('exit', this.#onExit);
  }

  /**
   * Takes <runDir>/.lock (the directory must exist). Throws RunLockedError naming the holder when a live
   * process on this host, or any process on another host, holds it; takes over a stale lock with a warning.
   */
  static acquire(runDir: string, command = process.argv.slice(1).join(' ')): RunLock {
    const file = path.join(runDir, LOCK_FILE);
    const info: LockInfo = {
      pid: process.pid,
      hostname: os.hostname(),
      startedAt: new Date().toISOString(),
      command: command || process.argv0,
      token: randomBytes(8).toString('hex'),
    };
    const tmp = `${file}${TMP_MARKER}${process.pid}-${info.token}`;
    fs.writeFileSync(tmp, `${JSON.stringify(info)}\n`, { flag: 'wx' });
    try {
      for (let attempt = 0; attempt < 5; attempt++) {
        try {
          fs.linkSync(tmp, file);
          return new RunLock(file, info);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        }
        const holder = readLock(file);
        if (holder === 'gone') continue; // released between our link and our read: try again
        if (holder === null) {
          throw new RunLockedError(
            file,
            null,
            `the run directory ${runDir} is locked: ${file} exists but is not a pajama lock file; delete it if no trainer uses this directory`,
          );
        }
        if (holder.hostname !== info.hostname) {
          throw new RunLockedError(
            file,
            holder,
            `the run directory ${runDir} is in use by ${describe(holder)}; that host cannot be checked from ${info.hostname}: ` +
              `delete ${file} if that process is gone`,
          );
        }
        if (processAlive(holder.pid)) {
          const who = holder.pid === process.pid ? `this process (pid ${holder.pid}), by another trainer, since ${holder.startedAt}` : describe(holder);
          throw new RunLockedError(file, holder, `the run directory ${runDir} is in use by ${who}; one trainer writes a run directory at a time`);
        }
        // Stale: move it aside under a unique name (only one contender's rename succeeds), then retry the link.
        const aside = `${file}${TMP_MARKER}stale-${info.token}`;
        try {
          fs.renameSync(file, aside);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
          throw e;
        }
        const moved = readLock(aside);
        if (moved !== 'gone' && moved !== null && moved.token !== holder.token) {
          // Another contender replaced the stale lock between our read and our rename: that one is live.
          // Put it back (link fails if a third process took the name meanwhile, which then holds the lock).
          try {
            fs.linkSync(aside, file);
          } catch {
            // the name is taken again; either way the lock is not ours
          }
          fs.rmSync(aside, { force: true });
          throw new RunLockedError(file, moved, `the run directory ${runDir} is in use by ${describe(moved)}; one trainer writes a run directory at a time`);
        }
        fs.rmSync(aside, { force: true });
        process.emitWarning(`pajama train: took over the stale lock ${file} of ${describe(holder)}, which is no longer running`, {
          code: 'PAJAMA_STALE_LOCK',
        });
      }
      throw new RunLockedError(file, null, `could not take the lock ${file}: it kept changing hands`);
    } finally {
      fs.rmSync(tmp, { force: true });
    }
  }

  get held(): boolean {
    return this.#held;
  }

  /** Removes the lock file if it is still this acquisition's. Idempotent. */
  release(): void {
    if (!this.#held) return;
    this.#held = false;
    process.removeListener('exit', this.#onExit);
    const now = readLock(this.file);
    if (now !== 'gone' && now !== null && now.token === this.info.token) fs.rmSync(this.file, { force: true });
  }
}
