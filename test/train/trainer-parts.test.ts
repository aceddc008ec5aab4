// The trainer as handed its parts: a model, optimizer and data built by hand train bit for bit like the
// config path (same losses, weights, checkpoints and metrics records); parts that disagree with the config
// are refused naming the part; custom metric sinks receive every record; the world-of-one communicator; the
// trainer draws nothing; peak FLOP/s is measured by the backend.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Trainer } from '../../lib/train/trainer';
import { TrainingData } from '../../lib/train/data';
import { optimizerFromConfig, type TrainOptimizer } from '../../lib/train/optimizer';
import { WorldOfOne, type Communicator } from '../../lib/dist/communicator';
import { JsonlMetricSink, type MetricRecord, type MetricSink } from '../../lib/train/metrics';
import { resolveTrainConfig, type TrainConfig } from '../../lib/train/config';
import { measurePeakFlops } from '../../lib/core/backend';
import { mptConfig } from '../../lib/model/config';
import { MptModel, type Precision } from '../../lib/model/mpt';
import { AdamW, PtwdController, cosineWithWarmup } from '../../lib/optim/index';
import { TokenLoader } from '../../lib/data/loader';
import { writeTinyShard } from '../helpers/tiny-run';

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

t.test('the trainer takes a world-of-one communicator', async (t) => {
  const w = new WorldOfOne();
  // The trainer trains a world of one; more ranks are refused until the gradient all-reduce is wired (#12).
  const w1 = new WorldOfOne();
  const two: Communicator = {
    rank: 1,
    worldSize: 2,
    localRank: 1,
    allReduce: w1.allReduce.bind(w1),
    reduceScatter: w1.reduceScatter.bind(w1),
    allGather: w1.allGather.bind(w1),
    broadcast: w1.broadcast.bind(w1),
    barrier: w1.barrier.bind(w1),
    abort: w1.abort.bind(w1),
  };
  await t.rejects(Trainer.fromConfig(config(path.join(dir, 'two-ranks'), 'fp32'), { communicator: two }), {
    code: 'ERR_PAJAMA_INVALID_ARG',
    message: /Trainer\.fromConfig: the communicator has 2 ranks, but data-parallel training .* is not implemented yet \(issue #12\)/,
  });
  await t.rejects(Trainer.fromConfig(config(path.join(dir, 'two-ranks'), 'fp32'), { communicator: { ...two, rank: 2 } }), {
    message: 'Trainer.fromConfig: communicator.rank must be an integer in [0, worldSize = 2), got 2',
  });
  t.notOk(fs.existsSync(path.join(dir, 'two-ranks')), 'refused before anything was written');
  const tr = await Trainer.fromConfig(config(path.join(dir, 'one-rank'), 'fp32'), { communicator: w });
  t.equal(tr.communicator, w, 'the communicator handed in');
  tr.dispose();
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
