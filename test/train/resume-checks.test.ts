// What a resume and a config are checked for: corrupt trainer_state.json fields name the file and key;
// settings that cannot change on resume (seed, model, batch) are errors, others warnings; a finished run
// says so, reports its real final loss and leaves its checkpoint alone; config values that cannot work
// (1e999, too few steps for PTWD, eval.every with no validation data) fail at validation naming the key;
// file-system failures name the path and the action.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Trainer } from '../../lib/train/trainer';
import { resolveTrainConfig } from '../../lib/train/config';
import { latestCheckpoint } from '../../lib/train/checkpoint';
import { writeDataManifest } from '../../lib/data/manifest';
import { writeTinyShard, tinyConfig } from '../helpers/tiny-run';
import { runCli } from '../helpers/cli-run';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pajama-resume-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
const shard = writeTinyShard(path.join(dir, 'train.bin'), 60, 1);

/** A run directory with one checkpoint after 2 of 4 steps. */
async function runWithCheckpoint(name: string): Promise<{ runDir: string; ckpt: string; stateFile: string }> {
  const runDir = path.join(dir, name);
  const tr = await Trainer.create(tinyConfig(runDir, shard, { steps: 4 }), { progress: false });
  await tr.step();
  await tr.step();
  const ckpt = tr.saveCheckpoint();
  tr.dispose();
  return { runDir, ckpt, stateFile: path.join(ckpt, 'trainer_state.json') };
}

function editState(file: string, edit: (s: Record<string, unknown>) => void): void {
  const s = JSON.parse(fs.readFileSync(file, 'utf8'));
  edit(s);
  fs.writeFileSync(file, JSON.stringify(s));
}

t.test('corrupt trainer_state.json fields are refused naming the file and the key', async (t) => {
  const cases: [string, (s: Record<string, unknown>) => void, RegExp][] = [
    ['tokens', (s) => (s.tokens = 'x'), /'tokens' must be a non-negative integer, got "x"/],
    ['elapsedSec', (s) => (s.elapsedSec = -1), /'elapsedSec' must be a non-negative number, got -1/],
    ['optimizerStep', (s) => (s.optimizerStep = 1.5), /'optimizerStep' must be a non-negative integer, got 1.5/],
    ['loader', (s) => delete s.loader, /'loader' must be an object, got nothing/],
    ['ptwd', (s) => ((s.ptwd as Record<string, unknown>).stage = 7), /cannot resume from key 'ptwd': .*stage 7/],
    ['lastFiniteLoss', (s) => (s.lastFiniteLoss = { step: 1, loss: 'low' }), /'lastFiniteLoss' must be null or/],
  ];
  for (const [key, edit, message] of cases) {
    const { runDir, stateFile } = await runWithCheckpoint(`corrupt-${key}`);
    editState(stateFile, edit);
    await t.rejects(
      Trainer.create(tinyConfig(runDir, shard, { steps: 4 }), { progress: false }),
      { code: 'ERR_PAJAMA_CHECKPOINT', message: new RegExp(`${stateFile.replace(/[.\\/]/g, '\\$&')}: ${message.source}`) },
      key,
    );
    t.notOk(fs.existsSync(path.join(runDir, '.lock')), `${key}: the lock is released`);
  }
});

t.test('seed, model and batch cannot change on resume; the learning rate can, with a warning', async (t) => {
  const { runDir, stateFile } = await runWithCheckpoint('changed');
  await t.rejects(Trainer.create(tinyConfig(runDir, shard, { steps: 4, seed: 8 }), { progress: false }), {
    message: new RegExp(`cannot resume from ${stateFile.replace(/[.\\/]/g, '\\$&')}: 'seed' was 7 in that run and is 8 now`),
  });
  await t.rejects(Trainer.create(tinyConfig(runDir, shard, { steps: 4, batch: { seqLen: 8, microBatchSize: 2, globalBatchTokens: 64 } }), { progress: false }), {
    message: /'batch.seqLen' was 16 in that run and is 8 now/,
  });
  await t.rejects(Trainer.create(tinyConfig(runDir, shard, { steps: 4, model: { preset: 'tiny', precision: 'fp32', overrides: { nLayers: 2 } } }), { progress: false }), {
    message: /config\.json|'model.overrides' was \{"nLayers":1\}/,
  });
  // The same weight shapes, another model: ALiBi's slopes differ.
  await t.rejects(Trainer.create(tinyConfig(runDir, shard, { steps: 4, model: { preset: 'tiny', precision: 'fp32', overrides: { nLayers: 1, alibiBiasMax: 4 } } }), { progress: false }), {
    message: /model \(alibiBiasMax, from 'model.preset' and 'model.overrides'\) was 8 in that run and is 4 now/,
  });
  // The same run spelled differently resumes: an override equal to the preset's value, the global batch given.
  const same = await Trainer.create(
    tinyConfig(runDir, shard, { steps: 4, model: { preset: 'tiny', precision: 'fp32', overrides: { maxSeqLen: 64, nLayers: 1 } }, batch: { seqLen: 16, microBatchSize: 2, globalBatchTokens: 64 } }),
    { progress: false },
  );
  t.equal(same.stepsDone, 2, 'an equivalent config resumes');
  same.dispose();
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(w.message);
  process.on('warning', onWarning);
  const tr = await Trainer.create(tinyConfig(runDir, shard, { steps: 4, optimizer: { lr: 1e-3, warmupSteps: 1 } }), { progress: false });
  await new Promise((r) => setImmediate(r));
  process.removeListener('warning', onWarning);
  t.match(warnings.join('\n'), /resuming with 'optimizer' changed from .*"lr":0.003.* to .*"lr":0.001/);
  t.equal(tr.stepsDone, 2);
  tr.dispose();
  // --no-resume (resume: false) starts fresh with the new seed.
  const fresh = await Trainer.create(tinyConfig(runDir, shard, { steps: 4, seed: 8 }), { progress: false, resume: false });
  t.equal(fresh.stepsDone, 0);
  fresh.dispose();
});

const cli = runCli;

t.test('re-running a finished run says so, prints its final loss and does not rewrite its checkpoint', async (t) => {
  const runDir = path.join(dir, 'finished');
  const cfg = path.join(dir, 'finished.json');
  fs.writeFileSync(cfg, JSON.stringify(tinyConfig(runDir, shard, { steps: 3 })));
  const first = await cli(['train', '--config', cfg]);
  t.equal(first.code, 0, first.err);
  const m = /done at step 3, final loss (\d+\.\d{4}) \(step 3\)/.exec(first.out);
  t.ok(m, first.out);
  const latest = latestCheckpoint(runDir)!;
  const before = fs.statSync(path.join(latest.dir, 'model.safetensors'));
  const metricsBefore = fs.readFileSync(path.join(runDir, 'metrics.jsonl'), 'utf8').split('\n').length;
  const again = await cli(['train', '--config', cfg]);
  t.equal(again.code, 0, again.err);
  t.match(again.out, `already reached step 3 of 3; final loss ${m![1]} (step 3); nothing to train, checkpoint ${latest.dir} left as it is`);
  t.notMatch(again.out, /NaN/);
  const after = fs.statSync(path.join(latest.dir, 'model.safetensors'));
  t.equal(after.ino, before.ino, 'the checkpoint was not rewritten');
  t.equal(after.mtimeMs, before.mtimeMs);
  t.equal(fs.readFileSync(path.join(runDir, 'metrics.jsonl'), 'utf8').split('\n').length, metricsBefore + 1, 'only a plan record was added');
  // A checkpoint from before lastFiniteLoss was saved: the loss comes from metrics.jsonl.
  editState(path.join(latest.dir, 'trainer_state.json'), (s) => delete s.lastFiniteLoss);
  const old = await cli(['train', '--config', cfg]);
  t.match(old.out, `final loss ${m![1]} (step 3)`);
});

t.test('config values that cannot work fail at validation naming the key', async (t) => {
  const base = { data: { train: ['x.bin'] } };
  t.throws(() => resolveTrainConfig(JSON.parse('{"optimizer": {"lr": 1e999}}')), { message: "config: 'optimizer.lr' must be a positive number, got Infinity (not a finite number)" });
  t.throws(() => resolveTrainConfig({ ...base, steps: 2, optimizer: { warmupSteps: 1 } }), { message: /'steps' 2 is fewer than the 3 PTWD stages of 'weightDecay.stages'/ });
  t.doesNotThrow(() => resolveTrainConfig({ ...base, steps: 2, optimizer: { warmupSteps: 1 }, weightDecay: { mode: 'constant' } }), 'constant decay runs in 2 steps');
  t.throws(() => resolveTrainConfig({ ...base, steps: 10, optimizer: { warmupSteps: 1 }, weightDecay: { boundaries: [3, 10] } }), {
    message: /'weightDecay.boundaries\[1\]' 10 must be below 'steps' 10/,
  });
  t.throws(() => resolveTrainConfig({ ...base, steps: 10, optimizer: { warmupSteps: 1 }, weightDecay: { boundaries: [5, 5] } }), {
    message: /'weightDecay.boundaries\[1\]' 5 must be above 'weightDecay.boundaries\[0\]' 5/,
  });
  t.throws(() => resolveTrainConfig({ ...base, steps: 10, optimizer: { warmupSteps: 1 }, eval: { every: 5 } }), { message: /'eval.every' is 5 but there is no validation data/ });
  t.throws(() => resolveTrainConfig({ ...base, steps: 10, optimizer: { warmupSteps: 1 }, divergence: { maxConsecutiveSkips: -1 } }), {
    message: /'divergence.maxConsecutiveSkips' must be a non-negative integer/,
  });
  t.equal(resolveTrainConfig({ ...base, steps: 10, optimizer: { warmupSteps: 1 } }).divergence.maxConsecutiveSkips, 5, 'defaults to 5');
  // A manifest whose sources hold no validation shard: eval.every has nothing to evaluate.
  const mdir = path.join(dir, 'manifest-no-val');
  fs.mkdirSync(path.join(mdir, 'shards'), { recursive: true });
  fs.copyFileSync(shard, path.join(mdir, 'shards', 'only.bin'));
  const manifestFile = path.join(mdir, 'manifest.json');
  writeDataManifest(manifestFile, {
    version: 1,
    kind: 'pajama-data-manifest',
    tokenizer: { name: 'synthetic', vocabSize: 256, eosId: 255 },
    sources: {
      only: { train: ['shards/only.bin'], validation: null, test: null, documents: { train: 60 }, tokens: { train: 60 * 41, validation: 0, test: 0 }, bytes: {} },
    },
    created: new Date(0).toISOString(),
    config: {},
  });
  await t.rejects(Trainer.create(tinyConfig(path.join(dir, 'no-val'), shard, { data: { manifest: manifestFile }, eval: { every: 2, batches: 1 } }), { progress: false }), {
    message: /'eval.every' is 2 but no source of .*manifest\.json has a usable validation shard/,
  });
});

t.test('file-system failures name the path and what was being done', async (t) => {
  const file = path.join(dir, 'a-file');
  fs.writeFileSync(file, 'x');
  await t.rejects(Trainer.create(tinyConfig(file, shard), { progress: false }), { code: 'EEXIST', message: `creating the run directory ${file}: EEXIST: it already exists (as a file, not a directory)` });
  await t.rejects(Trainer.create(tinyConfig(path.join(file, 'run'), shard), { progress: false }), { code: 'ENOTDIR', message: /creating the run directory .*a-file\/run: ENOTDIR/ });
  if (!fs.existsSync('/dev/full')) return t.skip('no /dev/full to fill a disk');
  const runDir = path.join(dir, 'full');
  fs.mkdirSync(runDir);
  fs.symlinkSync('/dev/full', path.join(runDir, 'metrics.jsonl'));
  await t.rejects(Trainer.create(tinyConfig(runDir, shard), { progress: false }), {
    code: 'ENOSPC',
    message: `writing metrics to ${path.join(runDir, 'metrics.jsonl')}: ENOSPC: no space left on the device`,
  });
  t.notOk(fs.existsSync(path.join(runDir, '.lock')), 'the lock is released');
});

t.test('a failed metrics write leaves no torn line', async (t) => {
  const runDir = path.join(dir, 'torn');
  const tr = await Trainer.create(tinyConfig(runDir, shard, { steps: 4 }), { progress: false });
  await tr.step();
  const metrics = path.join(runDir, 'metrics.jsonl');
  const good = fs.readFileSync(metrics, 'utf8');
  // Fail the write after part of the line went out, as a full disk does: the partial line must be cut back.
  // The module object itself (the namespace import is read-only); the trainer reads fs.writeSync through it.
  const realFs = require('node:fs') as { writeSync: typeof fs.writeSync };
  const writeSync = realFs.writeSync;
  let calls = 0;
  (realFs as { writeSync: unknown }).writeSync = (fd: number, buf: Uint8Array, off = 0, len = buf.byteLength - off) => {
    if (calls++ === 0) return writeSync(fd, buf, off, Math.min(len, 10));
    throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', syscall: 'write', errno: -28 });
  };
  try {
    await t.rejects(tr.step(), { code: 'ENOSPC', message: /writing metrics to .*metrics\.jsonl: ENOSPC/ });
  } finally {
    realFs.writeSync = writeSync;
  }
  t.equal(fs.readFileSync(metrics, 'utf8'), good, 'the file is as before the failed write');
  tr.dispose();
});
