// The trainer as handed its parts: a model, optimizer and data built by hand train bit for bit like the
// config path (same losses, weights, checkpoints and metrics records); parts that disagree with the config
// are refused naming the part; custom metric sinks receive every record; several ranks in one process (a local
// world of communicators): the global batch of one rank, identical weights, NaN and stop agreement, start-up
// identity check; the
// trainer draws nothing; peak FLOP/s is measured by the backend.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Trainer } from '../../lib/train/trainer';
import { TrainingData } from '../../lib/train/data';
import { optimizerFromConfig, type TrainOptimizer } from '../../lib/train/optimizer';
import { WorldOfOne, type Communicator } from '../../lib/dist/communicator';
import { Arena, Tensor } from '../../lib/core/tensor';
import { localWorld } from '../helpers/local-world';
import { JsonlMetricSink, type MetricRecord, type MetricSink, type StepMetrics } from '../../lib/train/metrics';
import { resolveTrainConfig, type TrainConfig } from '../../lib/train/config';
import { measurePeakFlops } from '../../lib/core/backend';
import { mptConfig, parameterLayout, type MptConfig } from '../../lib/model/config';
import { MptModel, type Precision } from '../../lib/model/mpt';
import { AdamW, PtwdController, cosineWithWarmup } from '../../lib/optim/index';
import { TokenLoader } from '../../lib/data/loader';
import { writeTinyShard } from '../helpers/tiny-run';
import { loadModelWeights } from '../../lib/train/checkpoint';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pajama-trainer-parts-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));

const train = writeTinyShard(path.join(dir, 'train.bin'), 120, 1);
const val = writeTinyShard(path.join(dir, 'val.bin'), 30, 2);

function config(runDir: string, precision: Precision, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    model: { preset: 'tiny', precision, overrides: { nLayers: 1 } },
    batch: { seqLen: 16, microBatchSize: 2, globalBatchTokens: 64 },
    optimizer: { lr: 3e-3, warmupSteps: 2 },
    steps: 6,
    data: { train: [train], validation: { synthetic: val } },
    eval: { every: 3, batches: 2 },
    checkpoint: { every: 4, keepLast: 3 },
    runDir,
    seed: 7,
    threads: 1,
    peakFlops: 1e11,
    ...extra,
  };
}

/** The parts of `c` built by hand, without optimizerFromConfig or TrainingData.fromConfig. */
function handMade(c: TrainConfig) {
  const model = new MptModel(mptConfig('tiny', { nLayers: 1 }), { precision: c.model.precision, seed: c.seed });
  const adamw = new AdamW(model.params, model.grads, { beta1: 0.9, beta2: 0.95, eps: 1e-8, computeCopy: model.computeParams ?? false });
  const ptwd = new PtwdController({ values: [0, 0.5, 0.1], totalSteps: c.steps });
  const lr = (step: number) => cosineWithWarmup(step, { peakLr: 3e-3, warmupSteps: 2, totalSteps: c.steps, minLrRatio: 0.1 });
  const loader = new TokenLoader({ shards: [train], seqLen: 16, batchSize: 2, seed: c.seed });
  const data = new TrainingData({ loader, validation: { synthetic: val } });
  return { model, optimizer: { adamw, ptwd, lr }, data };
}

/** A sink that keeps the records it is handed. */
class Collect implements MetricSink {
  records: MetricRecord[] = [];
  write(record: MetricRecord): void {
    this.records.push(structuredClone(record));
  }
}

/** A record without the fields that measure time (they differ run to run). */
function timeless(r: Record<string, unknown>): Record<string, unknown> {
  const { time: _time, tokensPerSec: _tps, mfu: _mfu, stepSec: _s, elapsedSec: _e, dir: d, ...rest } = r;
  return typeof d === 'string' ? { ...rest, dir: path.basename(d) } : rest;
}

function metricsOf(runDir: string): Record<string, unknown>[] {
  return fs.readFileSync(path.join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => timeless(JSON.parse(l)));
}

function checkpointBytes(runDir: string, name: string, file: string): Buffer {
  return fs.readFileSync(path.join(runDir, 'checkpoints', name, file));
}

for (const precision of ['fp32', 'bf16'] as const) {
  t.test(`hand-made parts train bit for bit like the config path (${precision})`, async (t) => {
    const viaConfig = path.join(dir, `config-${precision}`);
    const a = await Trainer.fromConfig(config(viaConfig, precision));
    const ra = await a.fit();
    const pa = a.model.params.buffer.toFloat32();
    a.dispose();

    const byHand = path.join(dir, `parts-${precision}`);
    const c = resolveTrainConfig(config(byHand, precision));
    const collect = new Collect();
    const b = await Trainer.create({ config: c, ...handMade(c), sinks: [JsonlMetricSink.inRunDir(byHand), collect] });
    t.equal(b.communicator.worldSize, 1, 'a world of one by default');
    const rb = await b.fit();
    const pb = b.model.params.buffer.toFloat32();
    b.dispose();

    t.same(rb.finalLoss, ra.finalLoss, 'same final loss');
    t.same(rb.eval, ra.eval, 'same validation losses');
    t.ok(Buffer.from(pb.buffer).equals(Buffer.from(pa.buffer)), 'identical parameters');
    t.same(metricsOf(byHand), metricsOf(viaConfig), 'the same metrics.jsonl records, step for step');
    t.same(collect.records.map((r) => r.type), ['plan', 'step', 'step', 'step', 'eval', 'step', 'checkpoint', 'step', 'step', 'eval', 'checkpoint']);
    t.same(collect.records.map((r) => timeless(r as unknown as Record<string, unknown>)), metricsOf(byHand), 'the custom sink got what metrics.jsonl holds');
    for (const name of ['step-000004', 'step-000006']) {
      for (const file of ['model.safetensors', 'optimizer.safetensors', 'config.json']) {
        t.ok(checkpointBytes(byHand, name, file).equals(checkpointBytes(viaConfig, name, file)), `${name}/${file} byte for byte`);
      }
      const sa = JSON.parse(checkpointBytes(viaConfig, name, 'trainer_state.json').toString());
      const sb = JSON.parse(checkpointBytes(byHand, name, 'trainer_state.json').toString());
      for (const s of [sa, sb]) {
        delete s.elapsedSec;
        delete s.trainConfig.runDir;
      }
      t.same(sb, sa, `${name}/trainer_state.json (but the time taken and the run directory)`);
    }

    // A run built from parts resumes a run of the config path, and the other way round.
    const resumed = await Trainer.fromConfig(config(byHand, precision, { steps: 8 }));
    t.equal(resumed.stepsDone, 6, 'the config path resumes the hand-built run');
    resumed.dispose();
  });
}

t.test('parts that disagree with the config are refused naming the part; the caller keeps them', async (t) => {
  const c = resolveTrainConfig(config(path.join(dir, 'refused'), 'fp32'));
  const parts = handMade(c);
  const other = new MptModel(mptConfig('tiny', { nLayers: 2 }), { precision: 'fp32' });
  await t.rejects(Trainer.create({ config: c, ...parts, model: other }), {
    code: 'ERR_PAJAMA_INVALID_ARG',
    message: "Trainer.create: the model has nLayers 2 but 'model.preset' and 'model.overrides' give nLayers 1",
  });
  const bf16 = resolveTrainConfig(config(path.join(dir, 'refused'), 'bf16'));
  await t.rejects(Trainer.create({ config: bf16, ...parts }), { message: "Trainer.create: the model's precision is 'fp32' but 'model.precision' is 'bf16'" });
  const foreign = new AdamW(other.params, other.grads);
  await t.rejects(Trainer.create({ config: c, ...parts, optimizer: { ...parts.optimizer, adamw: foreign } }), {
    message: "Trainer.create: optimizer.adamw must update the model's params from the model's grads",
  });
  await t.rejects(Trainer.create({ config: c, ...parts, optimizer: { adamw: parts.optimizer.adamw } as unknown as TrainOptimizer }), {
    message: /optimizer must be \{ adamw: AdamW, ptwd: PtwdController, lr\(step\) \}/,
  });
  await t.rejects(Trainer.create({ config: { ...c, seed: 8 }, ...parts }), { message: "Trainer.create: the loader's seed is 7 but 'seed' is 8" });
  await t.rejects(Trainer.create({ config: { ...c, batch: { ...c.batch, microBatchSize: 4, globalBatchTokens: 128 } }, ...parts }), {
    message: "Trainer.create: the loader draws batches of 2 x 16 but 'batch' gives microBatchSize 4 x seqLen 16",
  });
  const noVal = new TrainingData({ loader: new TokenLoader({ shards: [train], seqLen: 16, batchSize: 2, seed: 7 }) });
  await t.rejects(Trainer.create({ config: c, ...parts, data: noVal }), { message: /'eval.every' is 3 but no source of null has a usable validation shard/ });
  noVal.close();
  await t.rejects(Trainer.create({ config: c, ...parts, sinks: [{} as MetricSink] }), { message: 'Trainer.create: sinks[0] must be a MetricSink (an object with write(record))' });
  await t.rejects(Trainer.create({ config: c, ...parts }, { sinks: [] } as never), { message: /give sinks and communicator among the parts/ });
  t.notOk(fs.existsSync(path.join(dir, 'refused', '.lock')), 'no lock left behind');
  // Refused parts are still the caller's, and still work.
  const tr = await Trainer.create({ config: c, ...parts, peakFlops: 2e11 });
  t.equal(tr.peakFlops, 2e11, 'peakFlops among the parts wins over the config');
  t.equal((await tr.step()).step, 1);
  tr.dispose();
  foreign.dispose();
  other.dispose();
});

t.test('a failed create(parts) leaves the parts to the caller; fromConfig releases what it built', async (t) => {
  const runDir = path.join(dir, 'locked');
  const first = await Trainer.fromConfig(config(runDir, 'fp32'));
  const c = resolveTrainConfig(config(runDir, 'fp32'));
  const parts = handMade(c);
  await t.rejects(Trainer.create({ config: c, ...parts }), { code: 'ERR_PAJAMA_RUN_LOCKED' });
  t.notOk(parts.optimizer.adamw.disposed, 'the optimizer is not disposed');
  t.equal(parts.data.loader.next().inputs.length, 32, 'the loader still draws');
  await t.rejects(Trainer.fromConfig(config(runDir, 'fp32')), { code: 'ERR_PAJAMA_RUN_LOCKED' });
  first.dispose();
  parts.optimizer.adamw.dispose();
  parts.model.dispose();
  parts.data.close();
});

t.test('a custom sink on the config path gets every record; a sink that throws stops the run', async (t) => {
  const runDir = path.join(dir, 'sinks');
  const collect = new Collect();
  const tr = await Trainer.fromConfig(config(runDir, 'fp32', { eval: { every: 0, batches: 1 }, checkpoint: { every: 0, keepLast: 1 } }), { sinks: [collect] });
  await tr.fit();
  tr.dispose();
  t.same(collect.records.map((r) => r.type), ['plan', 'step', 'step', 'step', 'step', 'step', 'step', 'eval', 'checkpoint']);
  const plan = collect.records[0] as Extract<MetricRecord, { type: 'plan' }>;
  t.equal(plan.step, 0);
  t.same(plan.sources.map((s) => s.name), ['all']);
  t.same(collect.records.map((r) => timeless(r as unknown as Record<string, unknown>)), metricsOf(runDir), 'metrics.jsonl is written beside it');

  const failing: MetricSink = {
    write(r) {
      if (r.type === 'step' && r.step === 2) throw new Error('sink full');
    },
  };
  const tr2 = await Trainer.fromConfig(config(path.join(dir, 'sink-fails'), 'fp32'), { sinks: [failing] });
  await tr2.step();
  await t.rejects(tr2.step(), { message: 'sink full' });
  tr2.dispose();
});

t.test('the trainer takes the communicator handed in, checked, and the loader must draw its rank\'s share', async (t) => {
  const w = new WorldOfOne();
  const [, rank1] = localWorld(2);
  await t.rejects(Trainer.fromConfig(config(path.join(dir, 'two-ranks'), 'fp32'), { communicator: { ...rank1, rank: 2 } }), {
    message: 'Trainer.fromConfig: communicator.rank must be an integer in [0, worldSize = 2), got 2',
  });
  const c = resolveTrainConfig(config(path.join(dir, 'two-ranks'), 'fp32'));
  const parts = handMade(c); // its loader draws the whole batch, as rank 0 of 1
  await t.rejects(Trainer.create({ config: c, ...parts, communicator: rank1 }), {
    code: 'ERR_PAJAMA_INVALID_ARG',
    message: /^Trainer\.create: the loader draws the share of rank 0 of 1 but the communicator is rank 1 of 2/,
  });
  parts.optimizer.adamw.dispose();
  parts.model.dispose();
  parts.data.close();
  t.notOk(fs.existsSync(path.join(dir, 'two-ranks')), 'refused before anything was written');
  const tr = await Trainer.fromConfig(config(path.join(dir, 'one-rank'), 'fp32'), { communicator: w });
  t.equal(tr.communicator, w, 'the communicator handed in');
  tr.dispose();
});

/** Trains `n` ranks of `cfg` concurrently in this process; returns each rank's step metrics, eval results and trainer. */
async function trainRanks(comms: Communicator[], cfg: Record<string, unknown>, onStep?: (rank: number, m: StepMetrics, tr: Trainer) => void) {
  const trainers = await Promise.all(comms.map((c) => Trainer.fromConfig(cfg, { communicator: c })));
  const steps: StepMetrics[][] = trainers.map(() => []);
  const checkpoints: number[] = trainers.map(() => 0);
  trainers.forEach((tr, r) => {
    tr.on('step', (m) => {
      steps[r].push(m);
      onStep?.(r, m, tr);
    });
    tr.on('checkpoint', () => checkpoints[r]++);
  });
  const fits = await Promise.all(trainers.map((tr) => tr.fit()));
  // a model whose master weights exist only in the shards (sharding 'full'): the final checkpoint's, gathered
  const weights = trainers.map((tr, r) => (tr.model.hasMasterWeights ? tr.model.params.buffer.toFloat32() : checkpointWeights(fits[r].checkpoint, tr.modelConfig)));
  return { trainers, steps, fits, weights, checkpoints };
}

function checkpointWeights(dir: string, cfg: MptConfig): Float32Array {
  const a = new Arena('f32', parameterLayout(cfg));
  try {
    loadModelWeights(dir, a);
    return a.buffer.toFloat32();
  } finally {
    a.dispose();
  }
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return Number.isNaN(m) ? Infinity : m;
}

function bitEqual(a: Float32Array, b: Float32Array): boolean {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

t.test('two ranks in one process train the global batch of one rank with twice the accumulation; rank 0 alone writes', async (t) => {
  // One rank: 2 micro-batches of 2 per step. Two ranks: 1 micro-batch of 2 each. The same 64-token global batch.
  const extra = { eval: { every: 3, batches: 3 }, checkpoint: { every: 2, keepLast: 5 } };
  const one = await trainRanks([new WorldOfOne()], config(path.join(dir, 'ddp-one'), 'fp32', extra));
  const two = await trainRanks(localWorld(2), config(path.join(dir, 'ddp-two'), 'fp32', extra));
  t.equal(two.trainers[0].plan.accumulationSteps, 1);
  t.equal(one.trainers[0].plan.accumulationSteps, 2);
  t.ok(bitEqual(two.weights[0], two.weights[1]), 'both ranks hold the same weights, bit for bit');
  t.same(two.steps[0].map((m) => m.loss), two.steps[1].map((m) => m.loss), 'and log the same losses');
  // The micro-batches are the same sequences (the loader's block split) and the weights start equal, so the
  // first loss is the same number; afterwards only the order of the f32 gradient additions differs.
  t.equal(two.steps[0][0].loss, one.steps[0][0].loss, 'step 1: the same loss, exactly');
  const rel = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);
  t.ok(
    two.steps[0].every((m, i) => rel(m.loss, one.steps[0][i].loss) < 1e-5 && rel(m.gradNorm, one.steps[0][i].gradNorm) < 1e-5),
    'every step: loss and gradient norm within 1e-5 of one rank with twice the accumulation',
  );
  const d = maxAbsDiff(two.weights[0], one.weights[0]);
  t.ok(d < 1e-4, `final weights within 1e-4 of one rank's (max |diff| ${d.toExponential(2)}; lr 3e-3)`);
  t.ok(two.steps[0].every((m, i) => m.tokens === 64 * (i + 1)), 'tokens count the whole global batch');
  t.ok(two.steps.flat().every((m) => m.commSeconds >= 0) && one.steps[0].every((m) => m.commSeconds === 0), 'commSeconds: 0 for one rank');
  const evals = two.fits.map((f) => f.eval!.losses.synthetic);
  t.equal(evals[0], evals[1], 'every rank gets the reduced validation loss');
  t.ok(rel(evals[0], one.fits[0].eval!.losses.synthetic) < 1e-5, 'three validation batches over two ranks: the loss of one rank');
  t.same(two.checkpoints, [3, 0], 'rank 0 alone writes checkpoints (steps 2, 4 and the end)');
  const records = fs.readFileSync(path.join(dir, 'ddp-two', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  t.equal(records.filter((r) => r.type === 'step').length, 6, 'metrics.jsonl has each step once');
  t.equal(records.filter((r) => r.type === 'plan').length, 1, 'and the plan once');
  for (const x of [...one.trainers, ...two.trainers]) x.dispose();
});

t.test('the bucket size does not change the all-reduced gradients', async (t) => {
  const extra = { steps: 3, optimizer: { lr: 3e-3, warmupSteps: 1 }, eval: { every: 0, batches: 1 }, data: { train: [train] }, checkpoint: { every: 0, keepLast: 1 } };
  const big = await trainRanks(localWorld(2), config(path.join(dir, 'bucket-big'), 'fp32', extra));
  const small = localWorld(2);
  const tiny = await trainRanks(small, config(path.join(dir, 'bucket-small'), 'fp32', { ...extra, dist: { bucketMB: 0.01 } }));
  const numel = tiny.trainers[0].model.grads.numel;
  const perStep = small.calls.filter((c) => c.kind === 'allReduce' && c.buffer instanceof Tensor).length / 3;
  t.equal(perStep, Math.ceil(numel / 2608), `0.01 MiB buckets: ${perStep} all-reduces of 2608 f32 values per step for ${numel} gradients`);
  t.ok(bitEqual(big.weights[0], tiny.weights[0]), 'the same weights, bit for bit');
  for (const x of [...big.trainers, ...tiny.trainers]) x.dispose();
});

for (const sharding of ['none', 'optimizer', 'full']) {
  t.test(`sharding '${sharding}': a NaN on one rank reaches every rank through the reduction: every rank skips that step`, async (t) => {
    const extra = { eval: { every: 0, batches: 1 }, data: { train: [train] }, checkpoint: { every: 0, keepLast: 1 }, dist: { sharding } };
    let stepsDone = 0; // the float64 round [loss, tokens, stop, sum of squares, non-finite] ends each step
    let tampered = false;
    const world = localWorld(2, {
      tamper: (rank, call, values) => {
        if (rank !== 1) return;
        // a gradient collective: the all-reduce (one bucket), or a reduce-scatter of the shards (under 'full',
        // one per unit)
        const gradient = call.buffer instanceof Tensor && (sharding === 'none' || call.kind === 'reduceScatter');
        if (gradient && stepsDone === 1 && !tampered && values.length > 17) {
          values[17] = NaN; // step 2: one gradient value
          tampered = true;
        }
        if (call.buffer instanceof Float64Array && values.length === 5 && ++stepsDone === 4) values[0] = NaN; // step 4: the loss sum
      },
    });
    const two = await trainRanks(world, config(path.join(dir, `nan-${sharding}`), 'fp32', extra));
    for (const r of [0, 1]) {
      const s = two.steps[r];
      t.same(s.map((m) => m.skipped), [false, true, false, true, false, false], `rank ${r} skips steps 2 and 4`);
      t.equal(s[1].nonFiniteGradients, 1, `rank ${r}: step 2 has the one NaN gradient of rank 1`);
      t.ok(Number.isFinite(s[1].loss) && Number.isNaN(s[3].loss), `rank ${r}: step 4's loss is NaN`);
    }
    t.ok(bitEqual(two.weights[0], two.weights[1]), 'the ranks still hold the same weights');
    t.ok(two.weights[0].every(Number.isFinite), 'and they are finite');
    for (const x of two.trainers) x.dispose();
  });
}

t.test('a stop asked of one rank stops every rank after the same step', async (t) => {
  const extra = { steps: 8, eval: { every: 0, batches: 1 }, data: { train: [train] }, checkpoint: { every: 0, keepLast: 1 } };
  const two = await trainRanks(localWorld(2), config(path.join(dir, 'stop'), 'fp32', extra), (rank, m, tr) => {
    if (rank === 1 && m.step === 2) tr.requestStop();
  });
  t.same(two.fits.map((f) => [f.steps, f.stopped]), [[3, true], [3, true]], 'both ranks stop after step 3 (the first to end after the request)');
  t.ok(bitEqual(two.weights[0], two.weights[1]));
  for (const x of two.trainers) x.dispose();
});

t.test('ranks started with different configs stop together, naming the rank and the key', async (t) => {
  const world = localWorld(2);
  const errs = await Promise.all(
    world.map((c, r) => Trainer.fromConfig(config(path.join(dir, 'mismatch'), 'fp32', r === 1 ? { optimizer: { lr: 1e-3, warmupSteps: 2 } } : {}), { communicator: c }).then(
      (tr) => (tr.dispose(), null),
      (e: Error) => e,
    )),
  );
  for (const e of errs) {
    t.match(e, { code: 'ERR_PAJAMA_RANK_MISMATCH', message: /^the ranks of this run were started differently: rank 1 differs from rank 0 in its config/ });
  }
  t.match(errs[1]!.message, /on this rank, 1: config: 'optimizer\.lr' is 0\.001 here and 0\.003 on rank 0/, 'the rank that differs names the key');
  t.notOk(fs.existsSync(path.join(dir, 'mismatch')), 'nothing was written');
});

t.test('the trainer draws nothing, even with stderr on a terminal', async (t) => {
  const stderr = process.stderr as NodeJS.WriteStream & { isTTY: boolean };
  const wasTTY = stderr.isTTY;
  const write = stderr.write;
  const written: string[] = [];
  stderr.isTTY = true;
  stderr.write = ((chunk: string | Uint8Array) => {
    written.push(String(chunk));
    return true;
  }) as typeof stderr.write;
  try {
    const tr = await Trainer.create(config(path.join(dir, 'quiet'), 'fp32', { eval: { every: 0, batches: 1 } }));
    await tr.fit();
    tr.dispose();
  } finally {
    stderr.write = write;
    stderr.isTTY = wasTTY;
  }
  t.same(written, [], 'nothing written to stderr');
});

t.test('peak FLOP/s comes from the backend', async (t) => {
  const f32 = await measurePeakFlops('f32', 64);
  t.ok(Number.isFinite(f32) && f32 > 1e6, `${(f32 / 1e9).toFixed(2)} GFLOP/s for a 64^3 f32 GEMM`);
  await t.rejects(measurePeakFlops('f16' as 'f32'), { code: 'ERR_PAJAMA_INVALID_ARG', message: /measurePeakFlops: dtype must be 'f32' or 'bf16'/ });
  // Without a peak in the config or the parts, the trainer measures one.
  const tr = await Trainer.fromConfig(config(path.join(dir, 'measured'), 'fp32', { peakFlops: null }));
  t.ok(Number.isFinite(tr.peakFlops) && tr.peakFlops > 0, 'measured at start');
  tr.dispose();
});
