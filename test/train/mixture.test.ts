// The trainer over a data manifest and a mixture, on the tiny model: the plan at start, per-source tokens
// and epochs in the step metrics, one validation metric per source with a validation shard, bit-identical
// resume with the mixture's loader state, refusal to resume under another mixture, and the config checks.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ShardWriter } from '../../lib/data/shard';
import { writeSentenceShard } from '../helpers/shards';
import { writeDataManifest, type DataManifest } from '../../lib/data/manifest';
import { Trainer, type DataPlan, type StepMetrics } from '../../lib/train/trainer';
import { resolveTrainConfig } from '../../lib/train/config';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pajama-trainer-mixture-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));

/** `docs` documents of 40 tokens + EOS over a 200-token alphabet, each source its own stride. */
function writeShard(rel: string, docs: number, stride: number, seed: number): number {
  return writeSentenceShard(path.join(dir, 'data', rel), docs, seed, stride);
}

const tokens = {
  alpha: [writeShard('shards/alpha.train.0.bin', 60, 3, 1), writeShard('shards/alpha.train.1.bin', 40, 3, 2)],
  alphaVal: writeShard('shards/alpha.validation.bin', 20, 3, 3),
  beta: writeShard('shards/beta.train.0.bin', 30, 7, 4),
  betaVal: writeShard('shards/beta.validation.bin', 20, 7, 5),
  gamma: writeShard('shards/gamma.train.0.bin', 50, 11, 6),
  gammaTest: writeShard('shards/gamma.test.bin', 10, 11, 7),
};
const counts = (n: number) => ({ train: n });
const manifest: DataManifest = {
  version: 1,
  kind: 'pajama-data-manifest',
  tokenizer: { name: 'synthetic', vocabSize: 256, eosId: 255 },
  sources: {
    gamma: {
      train: ['shards/gamma.train.0.bin'],
      validation: null,
      test: 'shards/gamma.test.bin',
      documents: counts(50),
      tokens: { train: tokens.gamma, validation: 0, test: tokens.gammaTest },
      bytes: {},
    },
    beta: {
      train: ['shards/beta.train.0.bin'],
      validation: 'shards/beta.validation.bin',
      test: null,
      documents: counts(30),
      tokens: { train: tokens.beta, validation: tokens.betaVal, test: 0 },
      bytes: {},
    },
    alpha: {
      train: ['shards/alpha.train.0.bin', 'shards/alpha.train.1.bin'],
      validation: 'shards/alpha.validation.bin',
      test: null,
      documents: counts(100),
      tokens: { train: tokens.alpha[0] + tokens.alpha[1], validation: tokens.alphaVal, test: 0 },
      bytes: {},
    },
  },
  created: new Date(0).toISOString(),
  config: {},
};
const manifestPath = path.join(dir, 'data', 'manifest.json');
writeDataManifest(manifestPath, manifest);

function config(runDir: string, extra: Record<string, unknown> = {}) {
  return {
    model: { preset: 'tiny', precision: 'fp32' },
    batch: { seqLen: 32, microBatchSize: 2, globalBatchTokens: 128 },
    optimizer: { lr: 3e-3, warmupSteps: 2 },
    steps: 8,
    data: { manifest: manifestPath, mixture: { alpha: 3, beta: 1, gamma: 0 } },
    eval: { every: 0, batches: 2 },
    checkpoint: { every: 0, keepLast: 2 },
    runDir,
    seed: 11,
    peakFlops: 1e11,
    ...extra,
  };
}

t.test('fit: the plan at start, tokens and epochs per source, one validation metric per source', async (t) => {
  const runDir = path.join(dir, 'fit');
  const tr = await Trainer.create(config(runDir), { progress: false });
  t.same(tr.loader.sourceNames, ['alpha', 'beta'], 'sources by name; gamma (weight 0) is not in the loader');
  t.same(tr.validation, { alpha: path.join(dir, 'data/shards/alpha.validation.bin'), beta: path.join(dir, 'data/shards/beta.validation.bin') });
  const plans: DataPlan[] = [];
  const steps: StepMetrics[] = [];
  tr.on('plan', (p) => plans.push(p));
  tr.on('step', (m) => steps.push(m));
  const r = await tr.fit();
  t.equal(plans.length, 1, 'one plan event');
  const plan = plans[0];
  t.equal(plan.manifest, manifestPath);
  t.equal(plan.preset, null);
  t.equal(plan.totalSequences, 8 * 4, '8 steps x 128 tokens / 32');
  t.same(plan.notDrawn, ['gamma']);
  const alphaTokens = tokens.alpha[0] + tokens.alpha[1];
  t.same(
    plan.sources.map((s) => [s.name, s.weight, s.tokens, s.expectedEpochs]),
    [
      ['alpha', 0.75, alphaTokens, (0.75 * 1024) / alphaTokens],
      ['beta', 0.25, tokens.beta, (0.25 * 1024) / tokens.beta],
    ],
  );
  t.same(plan.warnings, []);

  const last = steps[steps.length - 1];
  t.same(Object.keys(last.sources), ['alpha', 'beta']);
  t.equal(last.sources.alpha.tokensDrawn + last.sources.beta.tokensDrawn, last.tokens, 'every trained token is counted once');
  t.equal(last.sources.beta.epochs, last.sources.beta.tokensDrawn / tokens.beta);
  t.same(
    tr.loader.sourceReport().map((s) => s.tokensDrawn),
    [last.sources.alpha.tokensDrawn, last.sources.beta.tokensDrawn],
  );
  t.ok(r.eval, 'evaluated at the end');
  t.same(Object.keys(r.eval!.losses), ['alpha', 'beta'], 'one validation loss per source with a validation shard');
  t.ok(Object.values(r.eval!.losses).every(Number.isFinite));

  const lines = fs.readFileSync(path.join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  t.equal(lines[0].type, 'plan', 'the plan is the first record');
  t.same(lines[0].sources, plan.sources);
  t.same(lines.find((l) => l.type === 'step' && l.step === 8).sources, last.sources);
  t.same(Object.keys(lines.find((l) => l.type === 'eval').losses), ['alpha', 'beta']);
  tr.dispose();
});

t.test('resume continues the identical stream and refuses another mixture', async (t) => {
  const a = await Trainer.create(config(path.join(dir, 'straight')), { progress: false });
  const lossesA: number[] = [];
  let lastA: StepMetrics | null = null;
  while (!a.done) lossesA.push((lastA = await a.step()).loss);
  const pa = a.model.params.buffer.toFloat32();
  const stateA = a.loader.state();
  a.dispose();

  const splitDir = path.join(dir, 'split');
  const b = await Trainer.create(config(splitDir), { progress: false });
  const lossesB: number[] = [];
  for (let i = 0; i < 3; i++) lossesB.push((await b.step()).loss);
  const ckpt = b.saveCheckpoint();
  b.dispose();
  const saved = JSON.parse(fs.readFileSync(path.join(ckpt, 'trainer_state.json'), 'utf8'));
  t.equal(saved.loader.version, 2, 'the checkpoint holds the mixture loader state');
  t.same(saved.loader.sources.map((s: { name: string }) => s.name), ['alpha', 'beta']);

  const c = await Trainer.create(config(splitDir), { progress: false });
  t.equal(c.stepsDone, 3);
  let lastC: StepMetrics | null = null;
  while (!c.done) lossesB.push((lastC = await c.step()).loss);
  const pc = c.model.params.buffer.toFloat32();
  t.same(c.loader.state(), stateA, 'the loader ends where the uninterrupted one did');
  c.dispose();
  t.same(lossesB, lossesA, 'same losses step for step');
  t.ok(Buffer.from(pc.buffer).equals(Buffer.from(pa.buffer)), 'identical parameters');
  t.same(lastC!.sources, lastA!.sources, 'same tokens drawn per source');

  await t.rejects(Trainer.create(config(splitDir, { data: { manifest: manifestPath, mixture: { alpha: 1, beta: 1 } } }), { progress: false }), {
    name: 'TypeError',
    message: /cannot resume from .*step.*: TokenLoader\.restore: the state's mixture weights \(alpha 0\.750000, beta 0\.250000\) differ from this loader's \(alpha 0\.500000, beta 0\.500000\)/,
  });
  await t.rejects(Trainer.create(config(splitDir, { data: { manifest: manifestPath, mixture: { alpha: 1, beta: 1, gamma: 1 } } }), { progress: false }), {
    message: /the state is for sources \[alpha, beta\], this loader has \[alpha, beta, gamma\]/,
  });
});

t.test('no mixture: sources in proportion to their training tokens; presets need their sources', async (t) => {
  const tr = await Trainer.create(config(path.join(dir, 'by-size'), { data: { manifest: manifestPath } }), { progress: false, resume: false });
  const total = tokens.alpha[0] + tokens.alpha[1] + tokens.beta + tokens.gamma;
  t.same(
    tr.dataPlan.sources.map((s) => [s.name, s.weight]),
    [
      ['alpha', (tokens.alpha[0] + tokens.alpha[1]) / total],
      ['beta', tokens.beta / total],
      ['gamma', tokens.gamma / total],
    ],
  );
  t.same(tr.dataPlan.notDrawn, []);
  t.same(Object.keys(tr.validation), ['alpha', 'beta']);
  tr.dispose();

  await t.rejects(Trainer.create(config(path.join(dir, 'preset'), { data: { manifest: manifestPath, mixture: 'slimpajama' } })), {
    message: /the mixture preset 'slimpajama' draws from sources RedPajamaCommonCrawl, .*, which the data does not have \(available: alpha, beta, gamma\)/,
  });

  // A source drawn many times over warns, and the warning is in the plan.
  const warned: string[] = [];
  const onWarning = (w: Error & { code?: string }) => {
    if (w.code === 'PAJAMA_MIXTURE_REPEAT') warned.push(w.message);
  };
  process.on('warning', onWarning);
  const heavy = await Trainer.create(config(path.join(dir, 'heavy'), { steps: 400, data: { manifest: manifestPath, mixture: { beta: 1 } } }), { progress: false });
  await new Promise((resolve) => setImmediate(resolve));
  process.removeListener('warning', onWarning);
  t.equal(heavy.dataPlan.warnings.length, 1);
  t.match(heavy.dataPlan.warnings[0], /source 'beta' .* is expected to repeat 41\.6 times over the run's 51200 tokens, more than 4/);
  t.same(heavy.dataPlan.notDrawn, ['alpha', 'gamma']);
  t.same(warned, [`pajama train: ${heavy.dataPlan.warnings[0]}`], 'emitted as a process warning');
  heavy.dispose();

  const small = path.join(dir, 'data', 'big-vocab.bin');
  const w = new ShardWriter(small, { vocabSize: 300, eosId: 299 });
  w.appendDocument(Array.from({ length: 100 }, (_, i) => i));
  w.close();
  await t.rejects(Trainer.create(config(path.join(dir, 'vocab'), { data: { train: [small] } })), {
    message: /the training shards' vocab size 300 exceeds the model's vocabSize 256/,
  });
});

t.test('config: data.manifest and data.mixture, and what contradicts them', async (t) => {
  const c = resolveTrainConfig({});
  t.same(c.data, { train: [], validation: {}, manifest: null, mixture: null, mixtureMissing: 'error', chat: c.data.chat });
  t.same(c.data.chat.train, [], 'not a chat run by default');
  t.equal(resolveTrainConfig({ data: { manifest: 'm.json', mixture: 'slimpajama-dc-7b' } }).data.mixture, 'slimpajama-dc-7b');
  t.same(resolveTrainConfig({ data: { manifest: 'm.json', mixture: { a: 1, b: 0 } } }).data.mixture, { a: 1, b: 0 });
  t.throws(() => resolveTrainConfig({ data: { manifest: 'm.json', train: ['a.bin'] } }), /'data.train' and 'data.manifest' both name training shards; give one/);
  t.throws(() => resolveTrainConfig({ data: { manifest: 'm.json', validation: { a: 'v.bin' } } }), /'data.validation' and 'data.manifest' both name validation shards/);
  t.throws(() => resolveTrainConfig({ data: { train: ['a.bin'], mixture: 'slimpajama' } }), /'data.mixture' weighs sources by name and needs 'data.manifest'/);
  t.throws(() => resolveTrainConfig({ data: { manifest: 'm.json', mixture: 'pile' } }), /'data.mixture' 'pile' is not a preset \(presets: slimpajama, redpajama, llama-1, refinedweb, slimpajama-dc-7b\)/);
  t.throws(() => resolveTrainConfig({ data: { manifest: 'm.json', mixture: { a: -1 } } }), /config: 'data.mixture': the weight of source 'a' must be a finite non-negative number/);
  t.throws(() => resolveTrainConfig({ data: { manifest: 'm.json', mixture: { a: 0 } } }), /at least one source needs a positive weight/);
  t.throws(() => resolveTrainConfig({ data: { manifest: 'm.json', mixture: {} } }), /'data.mixture' must be a preset name or an object of weights/);
  t.throws(() => resolveTrainConfig({ data: { manifest: 'm.json', mixture: 3 } }), /'data.mixture' must be a preset name, an object of weights by source name, or null/);
  t.throws(() => resolveTrainConfig({ data: { manifest: '' } }), /'data.manifest' must be a manifest path or null/);
  t.throws(() => resolveTrainConfig({ data: { mixtures: 'x' } }), /unknown key 'data.mixtures'/);
  await t.rejects(Trainer.create(config(path.join(dir, 'nodata'), { data: {} })), /'data.train' lists no token shards and 'data.manifest' is not set/);
});

t.test('a validation shard smaller than one evaluation batch: a warning for a manifest source, an error for data.validation', async (t) => {
  const tiny = writeShard('shards/delta.validation.bin', 1, 5, 9); // 41 tokens: fewer than 2 windows of 32 + 1
  const deltaTrain = writeShard('shards/delta.train.0.bin', 30, 5, 10);
  const m2: DataManifest = structuredClone(manifest);
  m2.sources.delta = {
    train: ['shards/delta.train.0.bin'],
    validation: 'shards/delta.validation.bin',
    test: null,
    documents: counts(30),
    tokens: { train: deltaTrain, validation: tiny, test: 0 },
    bytes: {},
  };
  const m2Path = path.join(dir, 'data', 'manifest-delta.json');
  writeDataManifest(m2Path, m2);
  const warnings: string[] = [];
  const onWarning = (w: Error & { code?: string }) => void (w.code === 'PAJAMA_VALIDATION_TOO_SMALL' && warnings.push(w.message));
  process.on('warning', onWarning);
  const trainer = await Trainer.create({ ...config(path.join(dir, 'run-delta')), data: { manifest: m2Path, mixture: null } }, { resume: false });
  await new Promise((r) => setImmediate(r));
  process.removeListener('warning', onWarning);
  t.same(Object.keys(trainer.validation).sort(), ['alpha', 'beta'], 'delta is not evaluated');
  t.match(warnings.join('\n'), /validation shard of 'delta' .* holds 41 tokens, fewer than one evaluation batch of 2 windows of 32 \+ 1/);
  trainer.dispose();
  await t.rejects(
    Trainer.create(
      { ...config(path.join(dir, 'run-delta2')), data: { train: [path.join(dir, 'data', 'shards/delta.train.0.bin')], validation: { delta: path.join(dir, 'data', 'shards/delta.validation.bin') } } },
      { resume: false },
    ),
    { name: 'TypeError', message: /validation shard of 'delta' .* holds 41 tokens/ },
  );
});
