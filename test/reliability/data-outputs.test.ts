// No data command writes over one of its inputs (same path, a symbolic link or a hard link to it), and a
// tokenize killed mid-write leaves a temporary file that the next run removes: `pajama tokenize` is run as
// a child process here, as a user runs it.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { gpt2Tokenizer, openShard, tokenizeFiles } from '../../lib/data/index';
import { processAlive } from '../../lib/core/atomic';
import { checkOutputsAreNotInputs, removeStaleTempFiles } from '../../lib/core/outputs';

const ROOT = path.resolve(__dirname, '../..');
const MAIN = path.join(ROOT, 'lib/cli/main.ts');
// The TypeScript loader tap runs this file with, so the child runs the CLI from source.
const LOADER = process.execArgv.filter((a) => a.includes('typescript'));
const CHILD_ENV = { ...process.env, TS_NODE_TRANSPILE_ONLY: '1' };

function tempDir(t: { teardown(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pajama-outputs-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function pajama(args: string[]): { status: number | null; out: string } {
  const r = spawnSync(process.execPath, [...LOADER, MAIN, ...args], { cwd: ROOT, env: CHILD_ENV, encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

function shardTokens(file: string): Uint32Array {
  const r = openShard(file);
  const ids = r.read(0, r.tokenCount);
  r.close();
  return ids;
}

t.test('tokenize refuses an output that is its input: same path, symlink, hard link', async (t) => {
  const dir = tempDir(t);
  const input = path.join(dir, 'corpus.jsonl');
  const text = `${JSON.stringify({ text: 'The whale surfaced twice before noon.' })}\n`;
  fs.writeFileSync(input, text);
  fs.symlinkSync(input, path.join(dir, 'link.bin'));
  fs.linkSync(input, path.join(dir, 'hard.bin'));
  // As a user runs it: a usage error (exit 2) naming both paths, the input untouched.
  const r = pajama(['tokenize', '--out', input, input]);
  t.equal(r.status, 2, `--out the input itself: a usage error, exit 2 (${r.out.trim()})`);
  t.match(r.out, `the output ${input} is the input ${input}`);
  t.equal(fs.readFileSync(input, 'utf8'), text, 'the input is untouched');
  // Through a symbolic link, a hard link, a path with "..", and the input named by its folder.
  for (const [out, inputs] of [
    [path.join(dir, 'link.bin'), [input]],
    [path.join(dir, 'hard.bin'), [input]],
    [path.join(dir, 'hard.bin'), [dir]],
    [path.join(dir, 'sub', '..', 'corpus.jsonl'), [input]],
  ] as const) {
    await t.rejects(
      tokenizeFiles({ inputs: [...inputs], output: out, tokenizer: gpt2Tokenizer() }),
      new RegExp(`the output ${path.resolve(out)} is (the same file as )?the input ${input}`),
      `${out} is refused`,
    );
    t.equal(fs.readFileSync(input, 'utf8'), text, 'the input is untouched');
  }
  t.doesNotThrow(() => checkOutputsAreNotInputs('x', [path.join(dir, 'elsewhere.bin')], [input]), 'a distinct output passes');
  const ok = await tokenizeFiles({ inputs: [input], output: path.join(dir, 'out.bin'), tokenizer: gpt2Tokenizer() });
  t.equal(ok.documents, 1, 'a distinct output is written');
});

t.test('a tokenize killed with SIGKILL mid-write leaves a temporary file; the next run removes it', async (t) => {
  const dir = tempDir(t);
  const input = path.join(dir, 'big.jsonl');
  const lines: string[] = [];
  for (let i = 0; i < 6000; i++) lines.push(JSON.stringify({ text: `Document ${i}: ${'the harpooneer mended the sail by lantern light, '.repeat(8 + (i % 5))}` }));
  fs.writeFileSync(input, lines.join('\n') + '\n');
  const out = path.join(dir, 'out.bin');
  const child = spawn(process.execPath, [...LOADER, MAIN, 'tokenize', '--out', out, input], { cwd: ROOT, env: CHILD_ENV, stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  const tmpOf = () => fs.readdirSync(dir).filter((n) => n.startsWith('out.bin.tmp-'));
  // Wait until the child has written tokens (past the 64-byte header and the first 1 MiB buffer), then kill it.
  const deadline = Date.now() + 120_000;
  let killed = false;
  while (Date.now() < deadline) {
    const tmp = tmpOf();
    if (tmp.length === 1 && fs.statSync(path.join(dir, tmp[0])).size > 64) {
      child.kill('SIGKILL');
      killed = true;
      break;
    }
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 5));
  }
  await exited;
  t.ok(killed, 'killed while the temporary shard was being written');
  t.notOk(fs.existsSync(out), 'no shard under the final name');
  const left = tmpOf();
  t.equal(left.length, 1, `the killed run left ${left.join(', ')}`);
  t.notOk(processAlive(child.pid!), 'its process is gone');

  // A live process's temporary file is not touched.
  const mine = `${out}.tmp-${process.pid}-abcd`;
  fs.writeFileSync(mine, 'in progress');
  const s = await tokenizeFiles({ inputs: [input], output: out, tokenizer: gpt2Tokenizer() });
  t.same(tmpOf(), [path.basename(mine)], 'the dead process\'s temporary file was removed, the live one kept');
  fs.rmSync(mine);
  t.equal(s.documents, 6000);
  const ref = path.join(dir, 'ref', 'ref.bin');
  await tokenizeFiles({ inputs: [input], output: ref, tokenizer: gpt2Tokenizer() });
  t.same(shardTokens(out), shardTokens(ref), 'the rerun wrote the complete shard');
  t.same(removeStaleTempFiles(out), [], 'nothing stale is left');
});

t.test('prepare removes the temporary files a killed run left next to its outputs', async (t) => {
  const { prepareData, resolvePrepareConfig, DUPLICATES_FILE } = await import('../../lib/data/corpus/prepare/prepare');
  const dir = tempDir(t);
  fs.mkdirSync(path.join(dir, 'raw'));
  fs.writeFileSync(path.join(dir, 'raw', 'a.jsonl'), `${JSON.stringify({ text: 'x'.repeat(300), meta: { redpajama_set_name: 'RedPajamaC4' } })}\n`);
  const dead = spawnSync(process.execPath, ['-e', '0']).pid; // a process that has exited
  t.notOk(processAlive(dead));
  const out = path.join(dir, 'out');
  fs.mkdirSync(out);
  const stale = [`${DUPLICATES_FILE}.tmp-${dead}-0badc0de`, `prepare-state.json.tmp-${dead}`, `report.json.tmp-${dead}`];
  for (const f of stale) fs.writeFileSync(path.join(out, f), 'torn');
  const live = `dedup-report.json.tmp-${process.pid}-1234abcd`;
  fs.writeFileSync(path.join(out, live), 'being written');
  await prepareData(resolvePrepareConfig({ inputs: ['raw'], output: 'out', workers: 1 }, dir), { until: 'dedup' });
  const left = fs.readdirSync(out).filter((n) => n.includes('.tmp-'));
  t.same(left, [live], 'the dead run\'s temporary files are gone, a live process\'s stays');
});
