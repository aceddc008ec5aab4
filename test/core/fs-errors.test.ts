// fs-errors: a Node system error becomes a sentence with the action, the path and the meaning; the
// diagnoses that look at the file system (which component is a file, a read-only ancestor behind Node's
// ENOENT) name the right path.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { invalidArg } from '../../lib/core/errors';
import {
  FileSystemError,
  describeSystemError,
  explainSystemError,
  isSystemError,
  toFileSystemError,
  withFsContext,
  withFsContextAsync,
  writableDirectoryProblem,
  writableFileProblem,
} from '../../lib/core/fs-errors';
import { tryMountTmpfs } from '../helpers/tmpfs';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pajama-fserr-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
const aFile = path.join(dir, 'a-file');
fs.writeFileSync(aFile, 'x');
const aDir = path.join(dir, 'a-dir');
fs.mkdirSync(aDir);

/** The error `fn` throws (it must throw). */
function thrown(fn: () => unknown): NodeJS.ErrnoException {
  try {
    fn();
  } catch (e) {
    return e as NodeJS.ErrnoException;
  }
  throw new Error('expected a throw');
}

/** A system error as Node makes one, for codes a test cannot provoke (EROFS, ENOSPC without a small disk). */
function fake(code: string, syscall: string, p?: string): NodeJS.ErrnoException {
  const e = new Error(`${code}: something, ${syscall}${p ? ` '${p}'` : ''}`) as NodeJS.ErrnoException;
  e.code = code;
  e.syscall = syscall;
  if (p) e.path = p;
  return e;
}

t.test('isSystemError: only errors with an errno code and a syscall', async (t) => {
  t.ok(isSystemError(thrown(() => fs.readFileSync(path.join(dir, 'missing')))));
  t.notOk(isSystemError(new Error('plain')));
  t.notOk(isSystemError(invalidArg('bad')), 'ERR_PAJAMA_INVALID_ARG is not an errno');
  t.notOk(isSystemError(new FileSystemError('writing', '/x', fake('ENOSPC', 'write'))), 'already wrapped');
  t.notOk(isSystemError({ code: 'ENOENT', syscall: 'open' }), 'not an Error');
});

t.test('FileSystemError: action, path, code and meaning; the code stays the system one', async (t) => {
  const e = new FileSystemError('writing metrics to', '/runs/a/metrics.jsonl', fake('ENOSPC', 'write'));
  t.equal(e.message, 'writing metrics to /runs/a/metrics.jsonl: ENOSPC: no space left on the device');
  t.equal(e.code, 'ENOSPC');
  t.equal(e.cause.syscall, 'write');
  t.equal(e.path, '/runs/a/metrics.jsonl');
  t.equal(new FileSystemError('writing', '/ro/x', fake('EROFS', 'open', '/ro/x')).message, 'writing /ro/x: EROFS: the file system is read-only');
  t.match(new FileSystemError('writing', '/x', fake('EWEIRD', 'open', '/x')).message, /^writing \/x: EWEIRD: something$/, 'unknown codes keep the system text without the path');
});

t.test('withFsContext wraps system errors only, sync and async', async (t) => {
  const missing = path.join(dir, 'missing.json');
  const e = thrown(() => withFsContext('reading config', missing, () => fs.readFileSync(missing)));
  t.type(e, FileSystemError);
  t.equal(e.message, `reading config ${missing}: ENOENT: no such file or directory`);
  t.equal(e.code, 'ENOENT');
  const other = invalidArg('bad value');
  t.equal(thrown(() => withFsContext('x', 'y', () => { throw other; })), other, 'other errors pass through');
  t.equal(withFsContext('x', 'y', () => 42), 42);
  await t.rejects(withFsContextAsync('reading', aDir, () => fs.promises.readFile(aDir)), { name: 'FileSystemError', code: 'EISDIR', message: `reading ${aDir}: EISDIR: it is a directory` });
  t.equal(toFileSystemError(other, 'a', 'b'), other);
});

t.test('ENOTDIR names the component that is a file', async (t) => {
  const e = thrown(() => fs.mkdirSync(path.join(aFile, 'sub', 'deeper')));
  t.equal(e.code, 'ENOTDIR');
  t.equal(explainSystemError(e), `${aFile} is a file, not a directory`);
  t.equal(describeSystemError(e), `creating directory ${path.join(aFile, 'sub', 'deeper')}: ENOTDIR: ${aFile} is a file, not a directory`);
});

t.test('ENOENT says which directory is missing', async (t) => {
  const target = path.join(dir, 'no', 'such', 'place');
  const e = thrown(() => fs.mkdirSync(target));
  t.equal(describeSystemError(e), `creating directory ${target}: ENOENT: no such file or directory (the directory ${path.dirname(target)} does not exist)`);
  const read = thrown(() => fs.readFileSync(path.join(dir, 'missing.txt')));
  t.equal(describeSystemError(read), `opening ${path.join(dir, 'missing.txt')}: ENOENT: no such file or directory`, 'a missing file in an existing directory: nothing to add');
});

t.test('rename onto a directory names the destination; errors without a path still say the action', async (t) => {
  const e = thrown(() => fs.renameSync(aFile, aDir));
  t.equal(describeSystemError(e), `renaming ${aFile} to ${aDir}: EISDIR: ${aDir} is a directory`);
  t.equal(describeSystemError(fake('ENOSPC', 'write')), 'writing a file: ENOSPC: no space left on the device');
  t.equal(describeSystemError(fake('EROFS', 'open', '/ro/x')), 'opening /ro/x: EROFS: the file system is read-only');
  t.equal(describeSystemError(fake('EACCES', 'scandir', '/root/x')), 'listing directory /root/x: EACCES: permission denied');
});

t.test('writableFileProblem / writableDirectoryProblem look before any work', async (t) => {
  t.equal(writableFileProblem(path.join(dir, 'new', 'out.bin')), null, 'missing directories can be created');
  t.equal(writableFileProblem(aFile), null, 'an existing file is replaced');
  t.equal(writableFileProblem(aDir), 'it is a directory, not a file');
  t.equal(writableFileProblem(path.join(aFile, 'out.bin')), `${aFile} is a file, not a directory`);
  t.equal(writableFileProblem(path.join(aFile, 'x', 'out.bin')), `${aFile} is a file, not a directory`);
  t.equal(writableDirectoryProblem(aDir), null);
  t.equal(writableDirectoryProblem(path.join(dir, 'new', 'run')), null);
  t.equal(writableDirectoryProblem(aFile), 'it is a file, not a directory');
  t.equal(writableDirectoryProblem(path.join(aFile, 'run')), `${aFile} is a file, not a directory`);
});

t.test('a read-only file system: found before the work, and behind Node recursive mkdir ENOENT', async (t) => {
  const ro = tryMountTmpfs(path.join(dir, 'ro'), ['ro']);
  if (!ro.mounted) {
    t.plan(0, `cannot mount a read-only tmpfs here (${ro.reason}); EROFS messages are covered with made-up errors above`);
    return;
  }
  t.teardown(ro.unmount);
  t.equal(writableFileProblem(path.join(ro.dir, 'x.bin')), `${ro.dir} is on a read-only file system`);
  t.equal(writableDirectoryProblem(path.join(ro.dir, 'run', 'a')), `${ro.dir} is on a read-only file system`);
  t.equal(writableDirectoryProblem(ro.dir), 'it is on a read-only file system');
  const target = path.join(ro.dir, 'run', 'data');
  const e = thrown(() => fs.mkdirSync(target, { recursive: true }));
  // Node's recursive mkdir reports ENOENT here, not EROFS: the message must still say read-only.
  t.match(describeSystemError(e), new RegExp(`^creating directory ${target}: E[A-Z]+: .*read-only`));
  t.match(describeSystemError(thrown(() => fs.writeFileSync(path.join(ro.dir, 'x'), 'x'))), /^opening .*: EROFS: the file system is read-only$/);
});
