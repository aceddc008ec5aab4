// replay.test.ts: every stored fuzz input, the corpus and the crash inputs the fuzzer found (kept as
// regression inputs), replayed through its target (test/fuzz/harness/targets.ts) without the fuzzer: each
// must end in the parser's documented error or a result whose invariants hold. A target with a new crash
// input fails here until its parser is fixed. The fuzzer itself runs with `npm run fuzz` (scripts/fuzz.js).
import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { targets } from './harness/targets';

const root = __dirname;
const MAX_INPUT_MS = 5000;

function inputs(kind: 'corpus' | 'crashes', target: string): string[] {
  const dir = path.join(root, kind, target);
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir).filter((f) => !f.startsWith('.')).sort().map((f) => path.join(dir, f));
}

t.test('every target has a seed corpus, and every stored input belongs to a target', async (t) => {
  for (const name of Object.keys(targets)) t.ok(inputs('corpus', name).length > 0, `${name} has corpus inputs`);
  for (const kind of ['corpus', 'crashes'] as const) {
    const dir = path.join(root, kind);
    if (!fs.existsSync(dir)) continue;
    for (const d of fs.readdirSync(dir)) t.ok(d in targets, `${kind}/${d} is a target`);
  }
});

for (const [name, target] of Object.entries(targets)) {
  t.test(name, async (t) => {
    const files = [...inputs('corpus', name), ...inputs('crashes', name)];
    let failures = 0;
    for (const file of files) {
      const data = fs.readFileSync(file);
      const started = Date.now();
      try {
        await target.run(data);
      } catch (e) {
        failures++;
        t.fail(`${path.relative(root, file)}: ${(e as Error)?.stack ?? String(e)}`);
      }
      // The fuzzer's hang limit is 10 s instrumented; replayed plainly, a stored input gets half of it.
      const ms = Date.now() - started;
      if (ms > MAX_INPUT_MS) {
        failures++;
        t.fail(`${path.relative(root, file)}: took ${ms} ms, more than ${MAX_INPUT_MS} ms`);
      }
    }
    t.equal(failures, 0, `${files.length} inputs of ${name} replayed without a finding`);
  });
}
