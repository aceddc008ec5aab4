// readJsonFile: the parsed value, or a problem of each kind handed to the caller's `fail`; by default the
// errors name the file (a FileSystemError for a system error).
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readJsonFile, type JsonFileProblem } from '../../lib/core/json-file';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pajama-json-file-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string): string => {
  const f = path.join(dir, name);
  fs.writeFileSync(f, text);
  return f;
};

t.test('values', async (t) => {
  t.same(readJsonFile(file('obj.json', '{"a": [1, 2]}'), { object: true }), { a: [1, 2] });
  t.same(readJsonFile(file('arr.json', '[1, null]')), [1, null], 'any JSON value without object: true');
});

t.test('default errors name the file', async (t) => {
  const missing = path.join(dir, 'missing.json');
  t.throws(() => readJsonFile(missing), { name: 'FileSystemError', code: 'ENOENT', message: `reading ${missing}: ENOENT: no such file or directory` });
  t.throws(() => readJsonFile(dir), { name: 'FileSystemError', code: 'EISDIR', message: `reading ${dir}: EISDIR: it is a directory` });
  const bad = file('bad.json', '{"a": ');
  t.throws(() => readJsonFile(bad), { name: 'TypeError', code: 'ERR_PAJAMA_INVALID_ARG', message: new RegExp(`^${bad} is not valid JSON: `) });
  const arr = file('top-array.json', '[]');
  t.throws(() => readJsonFile(arr, { object: true }), { name: 'TypeError', message: `${arr} must hold a JSON object` });
  t.throws(() => readJsonFile(file('null.json', 'null'), { object: true }), { message: /must hold a JSON object$/ });
});

t.test('fail receives each kind of problem and its result is thrown', async (t) => {
  const seen: JsonFileProblem[] = [];
  const fail = (p: JsonFileProblem) => {
    seen.push(p);
    return new Error(p.kind);
  };
  t.throws(() => readJsonFile(path.join(dir, 'nope.json'), { fail }), { message: 'unreadable' });
  t.throws(() => readJsonFile(file('s.json', 'x'), { fail }), { message: 'syntax' });
  t.throws(() => readJsonFile(file('n.json', '3'), { object: true, fail }), { message: 'not-object' });
  t.equal((seen[0] as { error: NodeJS.ErrnoException }).error.code, 'ENOENT');
  t.ok((seen[1] as { error: Error }).error instanceof SyntaxError);
  t.same(seen.map((p) => path.basename(p.file)), ['nope.json', 's.json', 'n.json']);
});
