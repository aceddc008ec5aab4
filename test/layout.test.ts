// The import-layer check (scripts/check-imports.js, issue #9): lib/ has no import cycle and no import from a
// lower layer to a higher one, and the checker really finds both kinds of problem in a synthetic tree.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const SCRIPT = path.join(__dirname, '..', 'scripts', 'check-imports.js');

function runChecker(dir?: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, dir === undefined ? [SCRIPT] : [SCRIPT, dir], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

t.test('lib/ has no import cycle and no upward import', async (t) => {
  const r = runChecker();
  t.equal(r.status, 0, `check-imports failed:\n${r.stderr}`);
  t.match(r.stdout, /^check-imports: OK: \d+ files, \d+ imports in /);
});

t.test('the checker reports cycles, upward imports (type-only too) and files outside the layers', async (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'pajama-layout-'));
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  const write = (rel: string, text: string): void => {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.writeFileSync(path.join(root, rel), text);
  };
  // A clean tree first: downward imports, a sibling import, an import in a comment, the public index.
  write('core/errors.ts', "export const E = 1;\n// import { x } from '../train/loop';\n");
  write('model/a.ts', "import { E } from '../core/errors';\nexport const A = E;\n");
  write('data/b.ts', "import { A } from '../model/a';\nexport const B = A;\n");
  write('train/loop.ts', "import { B } from '../data/b';\nexport const x = B;\n");
  write('index.ts', "export * from './train/loop';\nexport * as errors from './core/errors';\n");
  const clean = runChecker(root);
  t.equal(clean.status, 0, clean.stderr);
  t.match(clean.stdout, /OK: 5 files, 5 imports/);

  // Now a cycle between two data files, a data file reaching up into train (type-only), a dynamic import
  // from core into cli, and a file in no layer.
  write('data/c.ts', "import { D } from './d';\nexport const C = 1;\n");
  write('data/d.ts', "export { C as D } from './c';\n");
  write('data/e.ts', "import type { x } from '../train/loop';\nexport type X = typeof x;\n");
  write('core/lazy.ts', "export const load = () => import('../cli/main');\n");
  write('cli/main.ts', "export const main = 1;\n");
  write('misc/stray.ts', 'export const s = 1;\n');
  const bad = runChecker(root);
  t.equal(bad.status, 1);
  t.match(bad.stderr, /import cycle through 2 files: data\/c\.ts, data\/d\.ts/);
  t.match(bad.stderr, /data\/e\.ts:1: upward import of train\/loop\.ts \(type-only\): layer 2 may not import layer 3/);
  t.match(bad.stderr, /core\/lazy\.ts:1: upward import of cli\/main\.ts: layer 1 may not import layer 4/);
  t.match(bad.stderr, /misc\/stray\.ts: not in a declared layer/);
  t.match(bad.stderr, /^check-imports: 4 problems/);

  // Inside data/: training data may not import a tokenizer, a tokenizer may not import the corpus pipeline.
  fs.rmSync(path.join(root, 'data'), { recursive: true });
  fs.rmSync(path.join(root, 'core', 'lazy.ts'));
  fs.rmSync(path.join(root, 'misc'), { recursive: true });
  write('data/b.ts', "import { A } from '../model/a';\nexport const B = A;\n");
  write('data/shard.ts', "import { tok } from './tokenizers/bpe';\nexport const s = tok;\n");
  write('data/tokenizers/bpe.ts', "import type { P } from '../corpus/prepare';\nexport const tok = 1;\nexport type Q = P;\n");
  write('data/corpus/prepare.ts', "import { B } from '../b';\nexport type P = number;\nexport const p = B;\n");
  write('data/stray/x.ts', 'export const x = 1;\n');
  const stages = runChecker(root);
  t.equal(stages.status, 1);
  t.match(stages.stderr, /data\/shard\.ts:1: upward import of data\/tokenizers\/bpe\.ts: training data \(data\/\*\.ts\) may not import data\/tokenizers/);
  t.match(stages.stderr, /data\/tokenizers\/bpe\.ts:1: upward import of data\/corpus\/prepare\.ts \(type-only\): data\/tokenizers may not import data\/corpus/);
  t.match(stages.stderr, /data\/stray\/x\.ts: not in a declared stage of data/);
  t.notMatch(stages.stderr, /data\/corpus\/prepare\.ts:\d+: upward/);
  t.match(stages.stderr, /^check-imports: 3 problems/);
  fs.rmSync(path.join(root, 'data', 'shard.ts'));
  fs.rmSync(path.join(root, 'data', 'tokenizers'), { recursive: true });
  fs.rmSync(path.join(root, 'data', 'corpus'), { recursive: true });
  fs.rmSync(path.join(root, 'data', 'stray'), { recursive: true });

  // A self-import is a cycle too.
  write('data/b.ts', "import { A } from '../model/a';\nimport * as self from './b';\nexport const B = A;\nexport const again = self;\n");
  const self = runChecker(root);
  t.equal(self.status, 1);
  t.match(self.stderr, /import cycle through 1 file: data\/b\.ts \(data\/b\.ts -> data\/b\.ts\)/);
});

t.test('the checker refuses a missing directory', async (t) => {
  const r = runChecker(path.join(os.tmpdir(), 'pajama-layout-no-such-dir'));
  t.equal(r.status, 2);
  t.match(r.stderr, /cannot read/);
});
