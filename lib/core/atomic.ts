// atomic.ts: the file-system moves that make checkpoint I/O crash-safe. A file or directory is written under
// a temporary name (`<final>.tmp-<pid>-<random>`), flushed to disk, then renamed into place; the rename is
// atomic on POSIX file systems, so a reader sees either the old state or the complete new one, never a
// half-written file under its final name. The parent directory is flushed after a rename so the new name
// itself survives a power loss.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';

/** The marker every temporary name carries; anything containing it is an unfinished write. */
export const TMP_MARKER = '.tmp-';

/** A fresh temporary name next to `finalPath`. */
export function tmpPathFor(finalPath: string): string {
  return `${finalPath}${TMP_MARKER}${process.pid}-${randomBytes(4).toString('hex')}`;
}

/** Whether a process with this id is running (on this machine): whether a temporary file or lock left by it is stale. */
export function processAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (e) {
    // EPERM: it exists but belongs to another user.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  return !isZombie(pid);
}

/**
 * Whether `pid` has exited and waits to be reaped (Linux /proc state Z): kill(pid, 0) still answers for it,
 * but it holds nothing. A rank whose launcher died (mpirun after a killed peer) can stay one for a while.
 */
function isZombie(pid: number): boolean {
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return false; // no /proc (not Linux), or it has just gone: kill() said it exists
  }
  // "pid (comm) S ...": the state follows the last ')' (comm may itself hold parentheses)
  return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z';
}

/** Flushes a directory's entries (new names, renames, deletions). A no-op where the platform refuses. */
export function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch (e) {
    // Windows cannot open or flush a directory; some file systems refuse fsync on one. Nothing to do there.
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EISDIR' && code !== 'EPERM' && code !== 'EINVAL' && code !== 'EBADF') throw e;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** Writes all of `bytes` at the file's current position (writeSync may write less than asked). */
export function writeAll(fd: number, bytes: Uint8Array): void {
  const maxPiece = 1 << 30; // stay well under the 2 GiB a single write call accepts
  for (let off = 0; off < bytes.byteLength; ) {
    const len = Math.min(maxPiece, bytes.byteLength - off);
    off += fs.writeSync(fd, bytes, off, len);
  }
}

/**
 * Creates `finalPath` by calling `write(fd)` on a temporary file, then fsync and rename. On any error the
 * temporary file is removed and whatever was at `finalPath` before is left untouched.
 */
export function writeFileAtomic(finalPath: string, write: (fd: number) => void): void {
  const tmp = tmpPathFor(finalPath);
  const fd = fs.openSync(tmp, 'wx');
  let ok = false;
  try {
    write(fd);
    fs.fsyncSync(fd);
    ok = true;
  } finally {
    fs.closeSync(fd);
    if (!ok) fs.rmSync(tmp, { force: true });
  }
  try {
    fs.renameSync(tmp, finalPath);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fsyncDir(path.dirname(finalPath));
}

/** writeFileAtomic for a small text file. */
export function writeTextAtomic(finalPath: string, text: string): void {
  writeFileAtomic(finalPath, (fd) => writeAll(fd, Buffer.from(text, 'utf8')));
}
