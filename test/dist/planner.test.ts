// The cluster planner (lib/dist/planner.ts): the paper's MFU definition, its Table 12 within the stated error,
// memory of a tiny config by hand arithmetic, the activation count against the model's own allocation, the
// micro-batch choice, the collective costs, and bad inputs named by their option.
import t from 'tap';
import { MptModel } from '../../lib/model/mpt';
import { flopsPerToken, mptConfig, parameterCount } from '../../lib/model/config';
import { GPU_SPECS, mptActivationBytes, parseTokenCount, planCluster, type ModePlan, type PlanOptions } from '../../lib/dist/planner';

const GIB = 2 ** 30;
const rel = (got: number, want: number) => (got - want) / want;
const mode = (plan: { modes: ModePlan[] }, s: string): ModePlan => plan.modes.find((m) => m.sharding === s)!;

// Table 12 of the paper (SlimPajama-DC): LBS-7B on 232 A100-80G and MPT-7B, tokens/s per GPU and MFU.
const LBS = { tokensPerSecPerGpu: 3626, mfu: 0.5011 };
const MPT = { tokensPerSecPerGpu: 3310, mfu: 0.4575 };
// The LBS run: global batch 14.3M tokens, sequence 2048, FSDP full sharding, bf16, activation checkpointing.
const LBS_RUN: PlanOptions = { model: 'mpt-7b', gpu: 'a100-80g', gpus: 232, globalBatchTokens: 14_300_000, seqLen: 2048, sharding: 'full', checkpointing: true };
// MPT-7B as MosaicML's model card describes its run: 440 A100-40GB, FSDP, batch 1760 x 2048.
const MPT_RUN: PlanOptions = { model: 'mpt-7b', gpu: 'a100-40g', gpus: 440, globalBatchTokens: 1760 * 2048, seqLen: 2048, sharding: 'full', checkpointing: true };

t.test("the paper's MFU is tokens/s x flopsPerToken (6N + 12 L d T, no recompute) over 312 TFLOP/s", async (t) => {
  const fpt = flopsPerToken(mptConfig('mpt-7b'), 2048);
  t.equal(fpt, 6 * 6_649_286_656 + 12 * 32 * 4096 * 2048);
  const a100 = GPU_SPECS['a100-80g'].bf16Tflops * 1e12;
  // Both rows of Table 12 satisfy this definition to the rounding of their tokens/s (+-0.5 tokens/s).
  t.ok(Math.abs((LBS.tokensPerSecPerGpu * fpt) / a100 - LBS.mfu) < 0.00015, `LBS: ${((LBS.tokensPerSecPerGpu * fpt) / a100).toFixed(5)}`);
  t.ok(Math.abs((MPT.tokensPerSecPerGpu * fpt) / a100 - MPT.mfu) < 0.00015, `MPT: ${((MPT.tokensPerSecPerGpu * fpt) / a100).toFixed(5)}`);
});

t.test("Table 12 within the stated error: LBS-7B within 2%, MPT-7B within 10%", async (t) => {
  const lbs = planCluster(LBS_RUN);
  t.equal(lbs.sequencesPerGpu, 30, '14.3M tokens over 232 GPUs at 2048 is 30 sequences per GPU');
  t.equal(lbs.globalBatchTokens, 30 * 2048 * 232);
  t.same(lbs.collective, { link: 'network', GBps: 25 });
  const full = mode(lbs, 'full');
  t.ok(full.fits);
  const eLbs = rel(full.tokensPerSecPerGpu, LBS.tokensPerSecPerGpu);
  t.comment(`LBS-7B: planned ${full.tokensPerSecPerGpu.toFixed(0)} tokens/s/GPU, MFU ${full.mfu.toFixed(4)}; paper 3,626 and 0.5011: error ${(100 * eLbs).toFixed(2)}%`);
  t.ok(Math.abs(eLbs) < 0.02, `LBS tokens/s error ${(100 * eLbs).toFixed(2)}%`);
  t.ok(Math.abs(rel(full.mfu, LBS.mfu)) < 0.02, `LBS MFU error ${(100 * rel(full.mfu, LBS.mfu)).toFixed(2)}%`);
  t.ok(Math.abs(full.hfu - (4 / 3) * full.mfu) < 1e-12, 'HFU counts the recompute');

  const mpt = mode(planCluster(MPT_RUN), 'full');
  const eMpt = rel(mpt.tokensPerSecPerGpu, MPT.tokensPerSecPerGpu);
  t.comment(`MPT-7B (440 x A100-40G, 1760 x 2048): planned ${mpt.tokensPerSecPerGpu.toFixed(0)} tokens/s/GPU, MFU ${mpt.mfu.toFixed(4)}; paper 3,310 and 0.4575: error ${(100 * eMpt).toFixed(2)}%`);
  t.ok(Math.abs(eMpt) < 0.1, `MPT-7B tokens/s error ${(100 * eMpt).toFixed(2)}%`);
  t.ok(Math.abs(rel(mpt.mfu, MPT.mfu)) < 0.1);
  // The same inputs for both rows give one prediction: the rows differ by more than the cost model sees.
  const same = rel(full.tokensPerSecPerGpu, MPT.tokensPerSecPerGpu);
  t.comment(`MPT-7B row against the LBS setup: error ${(100 * same).toFixed(2)}%`);
  t.ok(Math.abs(same) < 0.1);
});

t.test('the LBS run by hand: collectives, overlap and step time', async (t) => {
  const plan = planCluster({ ...LBS_RUN, sharding: undefined });
  const P = 6_649_286_656;
  const ring = 231 / 232;
  const bw = 25e9;
  const full = mode(plan, 'full');
  // per micro-batch: all-gather bf16 weights twice (forward, backward), reduce-scatter f32 gradients once
  t.ok(Math.abs(full.time.commS - (full.accumulation * ring * (2 * P + 2 * P + 4 * P)) / bw) < 1e-9);
  t.equal(full.commBytesPerStep, full.accumulation * ring * 8 * P);
  // 30 sequences x 2048 x flopsPerToken x 4/3 at 0.67 of 312 TFLOP/s
  const computeS = (30 * 2048 * flopsPerToken(mptConfig('mpt-7b'), 2048) * (4 / 3)) / (312e12 * 0.67);
  t.ok(Math.abs(full.time.computeS - computeS) < 1e-9);
  // hidden but for the embedding unit: its all-gather first in the forward, its f32 reduce-scatter last
  const unit = 50432 * 4096 + 4096;
  t.ok(Math.abs(full.time.exposedCommS - (full.accumulation * ring * (2 * unit + 4 * unit)) / bw) < 1e-9);
  t.ok(Math.abs(full.time.stepS - (full.time.computeS + full.time.exposedCommS + full.time.optimizerS)) < 1e-12);
  t.ok(Math.abs(full.time.optimizerS - (34 * Math.ceil(P / 232)) / 2039e9) < 1e-12);
  // DDP: one f32 all-reduce per step, 2(n-1)/n x 4P; 18 bytes per parameter do not fit in 80 GiB
  const none = mode(plan, 'none');
  t.ok(Math.abs(none.time.commS - (2 * ring * 4 * P) / bw) < 1e-9);
  t.notOk(none.fits);
  t.equal(none.maxMicroBatch, 0);
  t.equal(none.microBatch, 1);
  t.equal(none.accumulation, 30);
  t.ok(none.time.exposedCommS > 1, 'a 26.6 GB all-reduce does not hide behind one sequence of backward');
  t.ok(mode(plan, 'optimizer').fits);
});

t.test('memory of a tiny config, by hand', async (t) => {
  // tiny: C 64, H 2, L 2, T 64, vocab 256, F 256.
  // P = 256*64 (wte) + 2 * (64 + 3*64*64 + 64*64 + 64 + 2*256*64) + 64 (norm_f) = 16384 + 2*49280 + 64 = 115008
  const cfg = mptConfig('tiny');
  t.equal(parameterCount(cfg), 115_008);
  // Activation bytes per token in bf16:
  //   ids + targets 8; xs 3 x 2 x 64 = 384; a block's saved tensors 2 x (7 x 64 + 2 x 256) + 4 x 4 + 4 x 2 = 1944;
  //   lnf 128 + meanf, rstdf, losses 12 = 140; dx, dtmp, dln 384; dqkv 384; dff 512.
  //   without checkpointing: 8 + 384 + 2 x 1944 + 140 + 384 + 384 + 512 = 5700; with: one scratch block, 3756.
  t.equal(mptActivationBytes(cfg, 2, 64, { checkpointing: false }), 2 * 64 * 5700);
  t.equal(mptActivationBytes(cfg, 2, 64, { checkpointing: true }), 2 * 64 * 3756);

  const plan = planCluster({ model: 'tiny', gpu: 'a100-40g', gpus: 4, gpusPerNode: 2, globalBatchTokens: 4 * 6 * 64, microBatch: 3, checkpointing: false });
  t.equal(plan.nodes, 2);
  t.same(plan.collective, { link: 'network', GBps: 25 });
  const shard = 28_752; // 115008 / 4
  const workspaceAndReserve = 512 * 2 ** 20 + 2 * GIB;
  const acts = 3 * 64 * 5700;
  const none = mode(plan, 'none');
  t.same(
    { ...none.memory },
    { masterWeights: 460_032, computeWeights: 230_016, gradients: 460_032, adamMoments: 920_064, activations: acts, commBuffers: 0, workspace: 512 * 2 ** 20, reserve: 2 * GIB, total: 460_032 * 2 + 230_016 + 920_064 + acts + workspaceAndReserve },
  );
  t.equal(none.microBatch, 3);
  t.equal(none.accumulation, 2);
  // a unit is a block (49280 parameters) or the embedding with norm_f (16448): buffers hold the larger
  const opt = mode(plan, 'optimizer');
  t.equal(opt.memory.masterWeights, 4 * shard);
  t.equal(opt.memory.computeWeights, 230_016);
  t.equal(opt.memory.gradients, 4 * shard);
  t.equal(opt.memory.adamMoments, 8 * shard);
  t.equal(opt.memory.commBuffers, 2 * 4 * 49_280);
  const full = mode(plan, 'full');
  t.equal(full.memory.computeWeights, 2 * shard);
  t.equal(full.memory.commBuffers, 2 * 2 * 49_280 + 2 * 4 * 49_280);
  t.equal(full.memory.total, 18 * shard + 12 * 49_280 + acts + workspaceAndReserve);
  t.same(full.activationsPerMicroBatch, { checkpointing: 3 * 64 * 3756, noCheckpointing: 3 * 64 * 5700 });
  // one GPU: no collectives, no buffers, no communication time
  const one = mode(planCluster({ model: 'tiny', gpu: 'h200', gpus: 1, sharding: 'full' }), 'full');
  t.equal(one.memory.commBuffers, 0);
  t.equal(one.time.commS, 0);
  t.equal(one.memory.masterWeights, 4 * 115_008);
});

t.test('the activation count is what MptModel allocates', async (t) => {
  const cfg = mptConfig('tiny', { nLayers: 3, dModel: 96, nHeads: 3, expansionRatio: 3, vocabSize: 384 });
  for (const precision of ['bf16', 'fp32'] as const) {
    for (const checkpointing of [false, true]) {
      const model = new MptModel(cfg, { precision, checkpointEvery: checkpointing ? 1 : 0 });
      try {
        for (const [B, T] of [
          [1, 64],
          [3, 37],
        ]) {
          t.equal(mptActivationBytes(cfg, B, T, { checkpointing, precision }), model.activationBytes(B, T), `${precision}, checkpointing ${checkpointing}, ${B} x ${T}`);
        }
      } finally {
        model.dispose();
      }
    }
  }
});

t.test('the micro-batch: the largest divisor that fits; maxMicroBatch is the memory bound', async (t) => {
  const h200 = planCluster({ model: 'mpt-7b', gpu: 'h200', gpus: 1, sharding: 'none' });
  const m = h200.modes[0];
  t.ok(m.fits);
  t.equal(m.microBatch, m.maxMicroBatch, 'without a global batch, one micro-batch of the largest size that fits');
  t.equal(m.accumulation, 1);
  t.equal(h200.globalBatchTokens, null);
  // states: 18 bytes per parameter (4 master + 2 bf16 + 4 gradients + 8 moments)
  const P = 6_649_286_656;
  t.equal(m.memory.masterWeights + m.memory.computeWeights + m.memory.gradients + m.memory.adamMoments, 18 * P);
  const at = (microBatch: number) => planCluster({ model: 'mpt-7b', gpu: 'h200', gpus: 1, sharding: 'none', microBatch }).modes[0];
  t.ok(at(m.maxMicroBatch).fits);
  t.notOk(at(m.maxMicroBatch + 1).fits);
  t.ok(at(m.maxMicroBatch + 1).memory.total > GPU_SPECS.h200.memoryGiB * GIB);
  // with a global batch of 30 sequences per GPU: the largest divisor of 30 within maxMicroBatch
  const b = planCluster({ model: 'mpt-7b', gpu: 'a100-80g', gpus: 8, globalBatchTokens: 8 * 30 * 2048, sharding: 'full' }).modes[0];
  const divisors = [30, 15, 10, 6, 5, 3, 2, 1];
  t.equal(b.microBatch, divisors.find((d) => d <= b.maxMicroBatch));
  t.equal(b.microBatch * b.accumulation, 30);
  // without checkpointing fewer sequences fit
  const noCk = planCluster({ model: 'mpt-7b', gpu: 'h200', gpus: 1, sharding: 'none', checkpointing: false }).modes[0];
  t.ok(noCk.maxMicroBatch >= 1 && noCk.maxMicroBatch < m.maxMicroBatch);
  t.equal(noCk.hfu, noCk.mfu);
});

t.test('collectives: NVLink inside a node, the network across nodes, overrides, exposure', async (t) => {
  const base: PlanOptions = { model: 'mpt-1b', gpu: 'h100-sxm', gpus: 8, globalBatchTokens: 8 * 8 * 2048, sharding: 'full' };
  t.same(planCluster(base).collective, { link: 'nvlink', GBps: 450 });
  t.same(planCluster({ ...base, gpus: 16, globalBatchTokens: 16 * 8 * 2048 }).collective, { link: 'network', GBps: 50 });
  t.same(planCluster({ ...base, intraNodeGBps: 100 }).collective, { link: 'nvlink', GBps: 100 });
  t.same(planCluster({ ...base, gpus: 16, interNodeGBps: 12.5 }).collective, { link: 'network', GBps: 12.5 });
  // A slow network: communication no longer hides, and the exposed time is the excess over compute.
  const slow = mode(planCluster({ ...base, gpus: 16, globalBatchTokens: 16 * 8 * 2048, interNodeGBps: 0.5 }), 'full');
  const fast = mode(planCluster({ ...base, gpus: 16, globalBatchTokens: 16 * 8 * 2048 }), 'full');
  t.ok(slow.time.exposedCommS > fast.time.exposedCommS);
  t.ok(slow.tokensPerSecPerGpu < fast.tokensPerSecPerGpu);
  t.ok(slow.time.exposedCommS >= slow.time.commS - slow.time.computeS - 1e-9);
  t.ok(slow.time.exposedCommS <= slow.time.commS);
  // The compute fraction scales compute time inversely.
  const half = mode(planCluster({ ...base, computeFraction: 0.335 }), 'full');
  t.ok(Math.abs(half.time.computeS / mode(planCluster(base), 'full').time.computeS - 2) < 1e-9);
});

t.test('token counts with suffixes', async (t) => {
  t.equal(parseTokenCount('14.3M'), 14_300_000);
  t.equal(parseTokenCount('4M'), 4_000_000);
  t.equal(parseTokenCount('1.5k'), 1500);
  t.equal(parseTokenCount('2B'), 2e9);
  t.equal(parseTokenCount('0.25G'), 2.5e8);
  t.equal(parseTokenCount('14,254,080'), 14_254_080);
  t.equal(parseTokenCount('2048'), 2048);
  t.throws(() => parseTokenCount('1.2345k'), /not a whole number of tokens/);
  t.throws(() => parseTokenCount('14.3Q'), /is not a count of tokens/);
  t.throws(() => parseTokenCount('-5'), /is not a count of tokens/);
  t.throws(() => parseTokenCount('0'), /positive whole number/);
  t.throws(() => parseTokenCount(''), /is not a count of tokens/);
});

t.test('bad inputs name the option', async (t) => {
  const ok: PlanOptions = { model: 'mpt-7b', gpu: 'a100-80g', gpus: 8 };
  const bad = (o: Partial<Record<keyof PlanOptions, unknown>>, re: RegExp) =>
    t.throws(() => planCluster({ ...ok, ...o } as PlanOptions), { code: 'ERR_PAJAMA_INVALID_ARG', message: re });
  bad({ gpus: 0 }, /plan: 'gpus' must be a positive integer, got 0/);
  bad({ gpus: 2.5 }, /'gpus' must be a positive integer/);
  bad({ gpu: 'v100' }, /'gpu' must be one of a100-40g, a100-80g, h100-sxm, h200, got "v100"/);
  bad({ model: 'mpt-3b' }, /'model': 'mpt-3b' is not a preset \(presets: tiny, /);
  bad({ model: { dModel: 64, nHeads: 3, nLayers: 1, maxSeqLen: 8, vocabSize: 16 } }, /'model': model config: dModel 64 is not divisible by nHeads 3/);
  bad({ model: 7 }, /'model' must be a preset name or a model config/);
  bad({ seqLen: 4096 }, /'seqLen' 4096 is above the model's maxSeqLen 2048/);
  bad({ globalBatchTokens: 1000 }, /'globalBatchTokens' 1000 is less than one sequence of 2048 per GPU/);
  bad({ globalBatchTokens: 8 * 30 * 2048, microBatch: 7 }, /'microBatch' 7 does not divide the 30 sequences per GPU/);
  bad({ computeFraction: 1.5 }, /'computeFraction' must be a number above 0 and at most 1, got 1.5/);
  bad({ computeFraction: 0 }, /'computeFraction' must be a number above 0/);
  bad({ sharding: 'zero3' }, /'sharding' must be one of none, optimizer, full, got "zero3"/);
  bad({ interNodeGBps: -1 }, /'interNodeGBps' must be a number above 0/);
  bad({ checkpointing: 'yes' }, /'checkpointing' must be true or false/);
  bad({ reserveGiB: -1 }, /'reserveGiB' must be a number >= 0/);
  t.throws(() => planCluster({ ...ok, gpus: 0 }, (k) => `--${k}`), { message: /^--gpus must be a positive integer/ });
  t.throws(() => mptActivationBytes(mptConfig('tiny'), 0, 8, { checkpointing: true }), /B must be a positive integer/);
});
