// The trainer end to end on a tiny model: the loss falls, metrics and checkpoints are written, resuming
// continues bit-identically, and configs are validated with precise messages.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Trainer } from '../../lib/train/trainer';
import { resolveTrainConfig, planBatch, applyOverrides } from '../../lib/train/config';
import { mptConfig } from '../../lib/model/config';
import { writeTinyShard } from '../helpers/tiny-run';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pajama-trainer-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));

// A learnable corpus: repeated short "sentences" over a 200-token alphabet.
const writeShard = writeTinyShard;

const train = writeShard(path.join(dir, 'train.bin'), 200, 1);
const val = writeShard(path.join(dir, 'val.bin'), 40, 2);

function config(runDir: string, extra: Record<string, unknown> = {}) {
  return {
    model: { preset: 'tiny', precision: 'fp32' },
    batch: { seqLen: 32, microBatchSize: 2, globalBatchTokens: 128 },
    optimizer: { lr: 3e-3, warmupSteps: 2 },
    steps: 12,
    data: { train: [train], validation: { synthetic: val } },
    eval: { every: 0, batches: 2 },
    checkpoint: { every: 0, keepLast: 2 },
    runDir,
    seed: 7,
    peakFlops: 1e11,
    ...extra,
  };
}

async function paramsOf(tr: Trainer): Promise<Float32Array> {
  return tr.model.params.buffer.toFloat32();
}

t.test('fit: loss falls, metrics.jsonl and a checkpoint are written', async (t) => {
  const runDir = path.join(dir, 'fit');
  const tr = await Trainer.create(config(runDir, { steps: 30 }), { progress: false });
  t.equal(tr.plan.accumulationSteps, 2, '128 tokens = 2 micro-batches of 2 x 32');
  const losses: number[] = [];
  tr.on('step', (m) => losses.push(m.loss));
  const r = await tr.fit();
  t.equal(r.steps, 30);
  t.ok(losses[losses.length - 1] < losses[0] - 1, `loss ${losses[0].toFixed(3)} -> ${losses[losses.length - 1].toFixed(3)}`);
  t.ok(r.eval && Number.isFinite(r.eval.losses.synthetic), 'per-source validation loss');
  const lines = fs.readFileSync(path.join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  t.equal(lines.filter((l) => l.type === 'step').length, 30);
  t.equal(lines[0].type, 'plan', 'the data plan comes first');
  t.same(lines[0].sources.map((s: { name: string }) => s.name), ['all'], 'data.train is one source');
  const first = lines.find((l) => l.type === 'step');
  t.type(first.sources.all.tokensDrawn, 'number');
  for (const k of ['step', 'loss', 'lr', 'weightDecay', 'gradNorm', 'tokensPerSec', 'mfu', 'elapsedSec']) t.type(first[k], 'number', k);
  t.ok(fs.existsSync(path.join(r.checkpoint, 'model.safetensors')));
  t.ok(fs.existsSync(path.join(r.checkpoint, 'config.json')));
  tr.dispose();
});

for (const precision of ['fp32', 'bf16'] as const) {
  t.test(`resume is bit-identical (${precision})`, async (t) => {
    const straightDir = path.join(dir, `straight-${precision}`);
    const a = await Trainer.create(config(straightDir, { model: { preset: 'tiny', precision } }), { progress: false });
    const lossesA: number[] = [];
    while (!a.done) lossesA.push((await a.step()).loss);
    const pa = await paramsOf(a);
    a.dispose();

    const splitDir = path.join(dir, `split-${precision}`);
    const b = await Trainer.create(config(splitDir, { model: { preset: 'tiny', precision } }), { progress: false });
    const lossesB: number[] = [];
    for (let i = 0; i < 5; i++) lossesB.push((await b.step()).loss);
    b.saveCheckpoint();
    b.dispose();
    const c = await Trainer.create(config(splitDir, { model: { preset: 'tiny', precision } }), { progress: false });
    t.equal(c.stepsDone, 5, 'resumed at step 5');
    while (!c.done) lossesB.push((await c.step()).loss);
    const pc = await paramsOf(c);
    c.dispose();
    t.same(lossesB, lossesA, 'same losses step for step');
    t.ok(Buffer.from(pc.buffer).equals(Buffer.from(pa.buffer)), 'identical parameters');
  });
}

t.test('config validation names the key', async (t) => {
  t.throws(() => resolveTrainConfig({ optimizer: { lr: -1 } }), /'optimizer.lr' must be a positive number/);
  t.throws(() => resolveTrainConfig({ optimizer: { lrr: 1 } }), /unknown key 'optimizer.lrr'/);
  t.throws(() => resolveTrainConfig({ bogus: 1 }), /unknown key 'bogus'/);
  t.throws(() => resolveTrainConfig({ model: { precision: 'fp16' } }), /'model.precision' must be 'fp32' or 'bf16'/);
  t.throws(() => resolveTrainConfig({ model: { preset: 'gpt-9' } }), /model preset 'gpt-9' is unknown/);
  t.throws(() => resolveTrainConfig({ steps: 10, optimizer: { warmupSteps: 10 } }), /warmupSteps' 10 must be below 'steps' 10/);
  t.throws(() => resolveTrainConfig({ steps: 'many' }), /'steps' must be an integer >= 2/);
  const c = resolveTrainConfig({ batch: { seqLen: 32, microBatchSize: 3, globalBatchTokens: 200 }, steps: 10, optimizer: { warmupSteps: 1 } });
  t.throws(() => planBatch(c, mptConfig('tiny')), /globalBatchTokens' 200 is not a multiple of microBatchSize 3 x seqLen 32/);
  const ok = resolveTrainConfig({ batch: { seqLen: 32, microBatchSize: 2, globalBatchTokens: 14 * 64 }, steps: 10, optimizer: { warmupSteps: 1 } });
  t.same(planBatch(ok, mptConfig('tiny')).accumulationSteps, 14);
  // Over ranks: 14 micro-batches of 2 x 32 are 7 per rank on 2 ranks; on 3 ranks they do not divide.
  t.same(planBatch(ok, mptConfig('tiny'), 2), { seqLen: 32, microBatchSize: 2, accumulationSteps: 7, worldSize: 2, globalBatchTokens: 14 * 64 });
  t.throws(() => planBatch(ok, mptConfig('tiny'), 3), { message: "config: 'batch.globalBatchTokens' 896 is not a multiple of microBatchSize 2 x seqLen 32 x ranks 3 = 192 tokens" });
  t.same(resolveTrainConfig({}).dist, { sharding: 'none', bucketMB: 25, timeoutSeconds: 60 }, 'dist defaults');
  t.throws(() => resolveTrainConfig({ dist: { sharding: 'zero3' } }), { message: `config: 'dist.sharding' must be 'none', 'optimizer' or 'full', got "zero3"` }, 'an unknown sharding mode is refused, naming the three');
  t.throws(() => resolveTrainConfig({ dist: { bucketMB: 0 } }), { message: "config: 'dist.bucketMB' must be a positive number, got 0" });
  t.throws(() => resolveTrainConfig({ dist: { timeoutSeconds: -1 } }), { message: "config: 'dist.timeoutSeconds' must be a positive number, got -1" });
  const set = applyOverrides({ optimizer: { lr: 1 } }, ['optimizer.lr=0.5', 'model.preset=tiny', 'data.train=["a","b"]']);
  t.same(set, { optimizer: { lr: 0.5 }, model: { preset: 'tiny' }, data: { train: ['a', 'b'] } });
  t.throws(() => applyOverrides({}, ['novalue']), /expected key=value/);
});
