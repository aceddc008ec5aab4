// fs-errors.ts: file-system failures that say what was being done, on which path, and what the system's
// code means: "creating directory /runs/a: EROFS: the file system is read-only" instead of Node's bare
// "ENOENT: no such file or directory, mkdir '/runs/a'".
//
// - FileSystemError wraps a Node system error (one with `code` and `syscall`) with an action and a path;
//   its `code` stays the system's (ENOSPC, EROFS, ...) so callers can still test it.
// - withFsContext / withFsContextAsync run a function and wrap the system errors it throws.
// - describeSystemError turns a system error caught without context into a sentence, the action read from
//   its syscall (the CLI's last resort: nothing reaches a user as a bare errno).
// - writableFileProblem / writableDirectoryProblem say, before any work, why a path cannot be written
//   (a directory where a file goes, a file where a directory goes, a read-only file system, ...).
//
// Two diagnoses go beyond the errno: Node's recursive mkdir reports ENOENT when the nearest existing
// ancestor is on a read-only file system (or not writable), and ENOTDIR does not say which component of the
// path is a file. Both are looked up on the file system when the message is made.
import * as fs from 'node:fs';
import * as path from 'node:path';

/** What each system code means, in words. */
const MEANINGS: Record<string, string> = {
  ENOENT: 'no such file or directory',
  EEXIST: 'it already exists',
  EISDIR: 'it is a directory',
  ENOTDIR: 'a component of the path is a file, not a directory',
  ENOSPC: 'no space left on the device',
  EDQUOT: 'the disk quota is exceeded',
  EFBIG: 'the file is too large for the file system',
  EROFS: 'the file system is read-only',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  ENOTEMPTY: 'the directory is not empty',
  EMFILE: 'too many open files in this process',
  ENFILE: 'too many open files in the system',
  ENAMETOOLONG: 'the name is too long',
  ELOOP: 'too many levels of symbolic links',
  EBUSY: 'the file or device is busy',
  EXDEV: 'source and destination are on different file systems',
  EIO: 'input/output error (a failing disk or network file system)',
  EINVAL: 'invalid argument',
  ETXTBSY: 'the file is busy',
};

/** Actions named from a syscall, for errors that arrive without one. */
const SYSCALL_ACTIONS: Record<string, string> = {
  open: 'opening',
  read: 'reading',
  write: 'writing',
  mkdir: 'creating directory',
  rmdir: 'removing directory',
  unlink: 'removing',
  rm: 'removing',
  scandir: 'listing directory',
  opendir: 'listing directory',
  stat: 'looking up',
  lstat: 'looking up',
  fstat: 'looking up',
  access: 'checking',
  realpath: 'resolving',
  readlink: 'reading link',
  fsync: 'flushing',
  fdatasync: 'flushing',
  ftruncate: 'truncating',
  close: 'closing',
  utime: 'setting the time of',
  chmod: 'changing the mode of',
};

/** Whether `e` is a Node system error (an errno code and the syscall that failed). */
export function isSystemError(e: unknown): e is NodeJS.ErrnoException {
  const err = e as NodeJS.ErrnoException;
  return (
    err instanceof Error &&
    !(err instanceof FileSystemError) &&
    typeof err.code === 'string' &&
    /^E[A-Z0-9]+$/.test(err.code) &&
    typeof err.syscall === 'string'
  );
}

/**
 * A file-system failure with what was being done and where: "writing checkpoint to /runs/a/step-000010:
 * ENOSPC: no space left on the device". `code` is the system's (ENOSPC, EROFS, EISDIR, ...).
 */
export class FileSystemError extends Error {
  readonly code: string;
  constructor(
    readonly action: string,
    readonly path: string,
    override readonly cause: NodeJS.ErrnoException,
  ) {
    super(`${action} ${path}: ${cause.code ? `${cause.code}: ` : ''}${explainSystemError(cause, path)}`);
    this.name = 'FileSystemError';
    this.code = cause.code ?? 'ERR_PAJAMA_FS';
  }
}

/** `e` as a FileSystemError naming `action` and `where` when it is a system error; anything else unchanged. */
export function toFileSystemError(e: unknown, action: string, where: string): unknown {
  return isSystemError(e) ? new FileSystemError(action, where, e) : e;
}

/** Runs `fn`, turning a system error into a FileSystemError that says what was being done where. */
export function withFsContext<T>(action: string, where: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw toFileSystemError(e, action, where);
  }
}

/** withFsContext for async work. */
export async function withFsContextAsync<T>(action: string, where: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw toFileSystemError(e, action, where);
  }
}

/**
 * What a system error means, in words, for `file` (defaults to the error's own path): the code's meaning,
 * plus what the file system says about the path where the code alone misleads (see the file header).
 */
export function explainSystemError(e: NodeJS.ErrnoException, file: string | undefined = e.path): string {
  const code = e.code ?? '';
  const base = MEANINGS[code] ?? e.message.replace(/^[A-Z0-9]+: /, '').replace(/, \w+ '[^']*'( -> '[^']*')?$/, '');
  if (!file) return base;
  const abs = path.resolve(file);
  if (code === 'ENOENT') {
    const parent = path.dirname(abs);
    const existing = nearestExistingAncestor(parent);
    if (existing === null) return base;
    if (!isDirectory(existing)) return `${base} (${existing} is a file, not a directory)`;
    if (e.syscall === 'mkdir' || existing !== parent) {
      const denied = writeDenied(existing);
      if (denied === 'EROFS') return `${base} (it cannot be created: ${existing} is on a read-only file system)`;
      if (denied) return `${base} (it cannot be created: ${existing} is not writable, ${denied})`;
      if (existing !== parent) return `${base} (the directory ${parent} does not exist)`;
    }
    return base;
  }
  if (code === 'ENOTDIR') {
    const blocker = fileInPath(abs);
    return blocker ? `${blocker} is a file, not a directory` : base;
  }
  if (code === 'EEXIST' && e.syscall === 'mkdir' && fs.existsSync(abs) && !isDirectory(abs)) {
    return `${base} (as a file, not a directory)`;
  }
  return base;
}

/**
 * A sentence for a system error caught without context: the action from its syscall, its path (and the
 * destination of a rename or copy), the code and its meaning. "creating directory /x/y: ENOENT: no such file
 * or directory (it cannot be created: /x is on a read-only file system)".
 */
export function describeSystemError(e: NodeJS.ErrnoException): string {
  const code = e.code ?? 'ERROR';
  const syscall = e.syscall ?? '';
  const src = e.path;
  const dest = (e as { dest?: string }).dest;
  if (src && dest && (syscall === 'rename' || syscall === 'copyfile' || syscall === 'link' || syscall === 'symlink')) {
    const verb = syscall === 'rename' ? 'renaming' : syscall === 'copyfile' ? 'copying' : 'linking';
    // Which end is at fault: a directory, a missing folder or a read-only target is the destination's.
    const destFault = code === 'EISDIR' || code === 'ENOTEMPTY' || code === 'EEXIST' || (code === 'ENOENT' && fs.existsSync(src));
    const meaning = destFault && code === 'EISDIR' ? `${dest} is a directory` : explainSystemError(e, destFault ? dest : src);
    return `${verb} ${src} to ${dest}: ${code}: ${meaning}`;
  }
  const action = SYSCALL_ACTIONS[syscall] ?? (syscall ? `${syscall} on` : 'accessing');
  if (!src) return `${action} a file: ${code}: ${explainSystemError(e)}`;
  return `${action} ${src}: ${code}: ${explainSystemError(e, src)}`;
}

/**
 * Why a file cannot be written at `file` (created, or replaced by renaming a temporary file next to it,
 * missing directories created on the way), or null when nothing is in the way. Looks, does not write.
 */
export function writableFileProblem(file: string): string | null {
  const abs = path.resolve(file);
  const st = statOrNull(abs);
  if (st?.isDirectory()) return 'it is a directory, not a file';
  return creatableProblem(abs);
}

/** Why a directory cannot be written at `dir` (created with its parents, or written into), or null. */
export function writableDirectoryProblem(dir: string): string | null {
  const abs = path.resolve(dir);
  const st = statOrNull(abs);
  if (st) {
    if (!st.isDirectory()) return 'it is a file, not a directory';
    const denied = writeDenied(abs);
    if (denied === 'EROFS') return 'it is on a read-only file system';
    if (denied) return `it is not writable (${denied})`;
    return null;
  }
  return creatableProblem(abs);
}

/** Why `abs` (which need not exist) cannot be created, with its missing parent directories. */
function creatableProblem(abs: string): string | null {
  const parent = path.dirname(abs);
  const existing = nearestExistingAncestor(parent);
  if (existing === null) return null;
  if (!isDirectory(existing)) return `${existing} is a file, not a directory`;
  const denied = writeDenied(existing);
  if (denied === 'EROFS') return `${existing} is on a read-only file system`;
  if (denied) return `${existing} is not writable (${denied})`;
  return null;
}

function statOrNull(p: string): fs.Stats | null {
  try {
    return fs.statSync(p);
  } catch {
    return null;
  }
}

function isDirectory(p: string): boolean {
  return statOrNull(p)?.isDirectory() ?? false;
}

/** `p` or its closest ancestor that exists (following links), or null if none can be looked up. */
function nearestExistingAncestor(p: string): string | null {
  for (let q = p; ; q = path.dirname(q)) {
    try {
      fs.statSync(q);
      return q;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // ENOTDIR: a component above q is a file; keep climbing to find it.
      if (code !== 'ENOENT' && code !== 'ENOTDIR') return q;
    }
    if (path.dirname(q) === q) return null;
  }
}

/** The first component of `abs`, above `abs` itself, that exists and is not a directory. */
function fileInPath(abs: string): string | null {
  const parts: string[] = [];
  for (let q = path.dirname(abs); path.dirname(q) !== q; q = path.dirname(q)) parts.unshift(q);
  for (const q of parts) {
    const st = statOrNull(q);
    if (!st) return null;
    if (!st.isDirectory()) return q;
  }
  return null;
}

/** The code that refuses writing into the directory `dir` (EROFS, EACCES, ...), or null. */
function writeDenied(dir: string): string | null {
  try {
    fs.accessSync(dir, fs.constants.W_OK);
    return null;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code ?? 'EACCES';
  }
}
