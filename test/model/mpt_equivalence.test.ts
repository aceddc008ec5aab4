// Whole-model properties of MptModel that need no reference implementation: gradient accumulation over
// micro-batches equals one big batch, activation checkpointing changes no bit of the gradients, the init and
// the derived counts (parameters, FLOPs, presets) are what MPT's are, a tiny batch is memorised with the native
// AdamW step in fp32 and bf16, and bad batches and use after dispose are refused with errors that say why.
import t from 'tap';
import { ops, DisposedError } from '../../lib/index';
import { MptModel, type Precision } from '../../lib/model/mpt';
import { flopsPerToken, mptConfig, padVocab, parameterCount, PRESETS, type MptConfig } from '../../lib/model/config';
import { randInt, relErr, seed } from '../helpers/reference';

t.comment(`seed ${seed}`);

const IGNORE = -100;
const cfg = mptConfig({ dModel: 64, nHeads: 2, nLayers: 2, maxSeqLen: 32, vocabSize: 128, realVocabSize: 100 });

function batch(c: MptConfig, B: number, T: number): { ids: Int32Array; targets: Int32Array; tokens: number } {
  const ids = randInt(B * T, c.realVocabSize);
  const targets = randInt(B * T, c.realVocabSize);
  for (let i = 3; i < B * T; i += 7) targets[i] = IGNORE;
  return { ids, targets, tokens: targets.filter((v) => v !== IGNORE).length };
}

const sameBits = (a: Float32Array, b: Float32Array) => Buffer.from(a.buffer).equals(Buffer.from(b.buffer));

for (const precision of ['fp32', 'bf16'] as Precision[]) {
  t.test(`accumulation: 4 micro-batches of 2 equal one batch of 8 (${precision})`, async (t) => {
    const [B, T, K] = [8, 16, 4];
    const { ids, targets, tokens } = batch(cfg, B, T);
    const model = new MptModel(cfg, { precision, seed });
    const big = await model.forwardBackward(ids, targets, B, T, 1 / tokens);
    const gBig = model.grads.buffer.toFloat32();
    model.grads.zero();
    let lossSum = 0;
    let count = 0;
    const b = B / K;
    const slice = (a: Int32Array, k: number) => a.slice(k * b * T, (k + 1) * b * T);
    for (let k = 0; k < K; k++) {
      const r = await model.forwardBackward(slice(ids, k), slice(targets, k), b, T, 1 / tokens);
      lossSum += r.lossSum;
      count += r.tokens;
    }
    // Rows are computed alike at any batch size (bf16 included); only the f32 sums into grads reorder.
    const err = relErr(model.grads.buffer.toFloat32(), gBig);
    t.ok(err <= 1e-5, `grads rel err ${err.toExponential(2)} over the whole buffer`);
    const lossErr = Math.abs(lossSum - big.lossSum) / big.lossSum;
    t.ok(lossErr <= 1e-6, `summed loss ${lossSum} vs ${big.lossSum}: rel err ${lossErr.toExponential(2)}`);
    t.equal(count, big.tokens);
    t.equal(big.tokens, tokens);
    // The last micro-batch alone is far from the sum: accumulation really adds.
    model.grads.zero();
    await model.forwardBackward(slice(ids, K - 1), slice(targets, K - 1), b, T, 1 / tokens);
    t.ok(relErr(model.grads.buffer.toFloat32(), gBig) > 0.1, 'one micro-batch alone does not match (the check can fail)');
    // A second pass over the same batch adds the same gradient again.
    model.grads.zero();
    await model.forwardBackward(ids, targets, B, T, 1 / tokens);
    await model.forwardBackward(ids, targets, B, T, 1 / tokens);
    t.ok(relErr(model.grads.buffer.toFloat32(), gBig.map((v) => 2 * v)) <= 1e-6, 'two passes accumulate twice the gradient');
    model.dispose();
  });
}

t.test('activation checkpointing: every 0, 1, 2 and 3 blocks give bit-identical loss and gradients', async (t) => {
  const c = mptConfig({ ...cfg, nLayers: 4 });
  const [B, T] = [2, 16];
  const first = batch(c, B, T);
  const second = batch(c, B, T);
  for (const precision of ['fp32', 'bf16'] as Precision[]) {
    let want: { losses: number[]; grads: Float32Array } | null = null;
    const bytes: number[] = [];
    for (const checkpointEvery of [0, 1, 2, 3]) {
      const model = new MptModel(c, { precision, checkpointEvery, seed });
      // Two batches into the same grads: the shared recompute scratch must not leak between steps.
      const losses: number[] = [];
      for (const { ids, targets, tokens } of [first, second]) {
        losses.push((await model.forwardBackward(ids, targets, B, T, 1 / tokens)).lossSum);
      }
      const grads = model.grads.buffer.toFloat32();
      bytes.push(model.activationBytes(B, T));
      if (!want) {
        want = { losses, grads };
        t.ok(grads.some((v) => v !== 0), `${precision}: gradients are not all zero`);
      } else {
        t.same(losses, want.losses, `${precision} checkpointEvery ${checkpointEvery}: same losses`);
        t.ok(sameBits(grads, want.grads), `${precision} checkpointEvery ${checkpointEvery}: bit-identical gradients`);
      }
      model.dispose();
    }
    // Every block checkpointed (1) keeps least; 2 (blocks 0, 2) and 3 (blocks 0, 3) keep two blocks fewer than 0.
    t.ok(bytes[1] < bytes[2] && bytes[2] === bytes[3] && bytes[3] < bytes[0], `${precision} activation bytes ${bytes.join(', ')} (checkpointEvery 0, 1, 2, 3)`);
  }
});

t.test('init: MPT kaiming-normal fan-in weights, and a loss at init that follows from them', async (t) => {
  const c = mptConfig({ dModel: 128, nHeads: 2, nLayers: 3, maxSeqLen: 32, vocabSize: 512, realVocabSize: 500 });
  const model = new MptModel(c, { seed });
  for (const e of model.params.entries) {
    const w = model.params.get(e.name).toFloat32();
    if (e.shape.length === 1) {
      t.ok(w.every((v) => v === 1), `${e.name} is all ones`);
      continue;
    }
    let want = Math.sqrt(2 / e.shape[1]);
    if (/(out_proj|down_proj)\.weight$/.test(e.name)) want /= Math.sqrt(2 * c.nLayers);
    let s = 0;
    let s2 = 0;
    for (const v of w) {
      s += v;
      s2 += v * v;
    }
    const mean = s / w.length;
    const std = Math.sqrt(s2 / w.length - mean * mean);
    // The sample std of n >= 16k normals is within ~1% of the truth; 5% is many sigmas.
    t.ok(Math.abs(std / want - 1) < 0.05 && Math.abs(mean) < (5 * want) / Math.sqrt(w.length), `${e.name}: std ${std.toFixed(4)} (want ${want.toFixed(4)}), mean ${mean.toExponential(1)}`);
  }
  // Logits are norm_f(x) . wte[v]: the normalised x has |x|^2 ~ C and wte rows are N(0, 2/C), so logits are
  // ~N(0, 2) independent of the target, and the expected loss is E[logsumexp] ~ ln V + 2/2 (not ln V: MPT's
  // kaiming init of the tied embedding is not small). Averaged over 512 tokens it lands within ~0.15 of that;
  // a GPT-2 style N(0, 0.02) embedding would land near ln V, 1 below, and fail.
  const [B, T] = [16, 32];
  const { ids, targets } = batch(c, B, T);
  const want = Math.log(c.realVocabSize) + 1;
  for (const precision of ['fp32', 'bf16'] as Precision[]) {
    const m = precision === 'fp32' ? model : new MptModel(c, { precision, seed });
    const r = await m.evaluate(ids, targets, B, T);
    const loss = r.lossSum / r.tokens;
    t.ok(Math.abs(loss - want) < 0.5, `${precision} loss at init ${loss.toFixed(3)}; ln(${c.realVocabSize}) + 1 = ${want.toFixed(3)}`);
    m.dispose();
  }
  // The same seed gives the same weights; another seed different ones.
  const a = new MptModel(c, { seed: 1 });
  const b = new MptModel(c, { seed: 1 });
  const d = new MptModel(c, { seed: 2 });
  t.ok(sameBits(a.params.buffer.toFloat32(), b.params.buffer.toFloat32()), 'init is deterministic in the seed');
  t.notOk(sameBits(a.params.buffer.toFloat32(), d.params.buffer.toFloat32()), 'and depends on it');
  for (const x of [a, b, d]) x.dispose();
});

// V d (tied wte) + L (Wqkv 3d^2 + out_proj d^2 + up/down 2 F d + two norms 2d) + norm_f d
function closedFormCount(c: MptConfig): number {
  const d = c.dModel;
  const F = c.expansionRatio * d;
  return c.vocabSize * d + c.nLayers * (4 * d * d + 2 * F * d + 2 * d) + d;
}

t.test('parameter and FLOP counts; presets', async (t) => {
  for (const precision of ['fp32', 'bf16'] as Precision[]) {
    const model = new MptModel(cfg, { precision });
    t.equal(model.parameterCount, model.params.numel, `${precision}: parameterCount is the arena's numel`);
    t.equal(model.grads.numel, model.params.numel);
    t.equal(model.computeParams?.numel ?? model.params.numel, model.params.numel);
    t.equal(model.parameterCount, closedFormCount(cfg));
    model.dispose();
  }
  const N = parameterCount(cfg);
  t.equal(flopsPerToken(cfg), 6 * N + 12 * cfg.nLayers * cfg.dModel * cfg.maxSeqLen, 'flopsPerToken = 6N + 12 L d T');
  t.equal(flopsPerToken(cfg, 7), 6 * N + 12 * cfg.nLayers * cfg.dModel * 7, 'at a given sequence length');

  t.equal(padVocab(50257), 50304);
  t.equal(padVocab(50277), 50304);
  t.equal(padVocab(50277, 256), 50432, 'GPT-NeoX / MPT padding');
  t.equal(padVocab(128), 128);
  const bench = mptConfig('bench-45m');
  t.match(bench, { nLayers: 6, dModel: 512, nHeads: 8, maxSeqLen: 512, vocabSize: 50304, realVocabSize: 50257, expansionRatio: 4, alibiBiasMax: 8, layerNormEps: 1e-5 });
  t.ok(parameterCount(bench) > 44e6 && parameterCount(bench) < 46e6, `bench-45m has ${parameterCount(bench)} parameters`);
  const m7 = mptConfig('mpt-7b');
  t.match(m7, { nLayers: 32, dModel: 4096, nHeads: 32, maxSeqLen: 2048, vocabSize: 50432, realVocabSize: 50277, expansionRatio: 4 });
  // From the layout alone (nothing allocated): MosaicML's published count for MPT-7B.
  t.equal(parameterCount(m7), 6_649_286_656, 'mpt-7b has 6.65e9 parameters');
  t.equal(parameterCount(m7), closedFormCount(m7));
  t.equal(flopsPerToken(m7), 6 * 6_649_286_656 + 12 * 32 * 4096 * 2048);
  for (const name of Object.keys(PRESETS)) {
    const c = mptConfig(name);
    t.equal(parameterCount(c), closedFormCount(c), `${name}: count from the layout`);
    t.equal(c.vocabSize % 128, 0, `${name}: vocabulary padded to a multiple of 128`);
  }
  t.equal(mptConfig('tiny', { nLayers: 3 }).nLayers, 3, 'overrides apply over a preset');
});

t.test('mptConfig and MptModel refuse bad configs, saying what is wrong', async (t) => {
  const bad = { name: 'TypeError', code: 'ERR_PAJAMA_INVALID_ARG' };
  const good = { dModel: 64, nHeads: 2, nLayers: 2, maxSeqLen: 32, vocabSize: 128 };
  t.throws(() => mptConfig('mpt-3b'), { ...bad, message: /model preset 'mpt-3b' is unknown \(presets: tiny, bench-45m, mpt-125m, mpt-1b, mpt-7b\)/ });
  t.throws(() => mptConfig({ ...good, nHeads: 3 }), { ...bad, message: /dModel 64 is not divisible by nHeads 3/ });
  t.throws(() => mptConfig({ ...good, realVocabSize: 129 }), { ...bad, message: /realVocabSize 129 exceeds vocabSize 128/ });
  t.throws(() => mptConfig('bench-45m', { vocabSize: 1024 }), { ...bad, message: /realVocabSize 50257 exceeds vocabSize 1024/ });
  t.throws(() => mptConfig({ ...good, nHeads: 1, dModel: 512 }), { ...bad, message: /head dim 512 \(dModel \/ nHeads\) is above 256/ });
  t.throws(() => mptConfig({ ...good, nLayers: 0 }), { ...bad, message: /nLayers must be a positive integer, got 0/ });
  t.throws(() => mptConfig({ ...good, dModel: 64.5 }), { ...bad, message: /dModel must be a positive integer, got 64.5/ });
  t.throws(() => mptConfig({ dModel: 64, nHeads: 2 }), { ...bad, message: /nLayers must be a positive integer, got undefined/ });
  t.throws(() => mptConfig({ ...good, layerNormEps: 0 }), { ...bad, message: /layerNormEps must be positive/ });
  t.throws(() => mptConfig({ ...good, alibiBiasMax: -1 }), { ...bad, message: /alibiBiasMax must be positive/ });
  // A misspelt key is an error, not silently dropped (which would leave the preset's value in force).
  t.throws(() => mptConfig('tiny', { nLayer: 4 } as Partial<MptConfig>), { ...bad, message: /unknown key 'nLayer'/ });
  t.throws(() => mptConfig({ ...good, heads: 2 } as Partial<MptConfig>), { ...bad, message: /unknown key 'heads'/ });
  t.throws(() => new MptModel({ ...cfg, vocabSize: 64 }), { ...bad, message: /realVocabSize 100 exceeds vocabSize 64/ });
  t.throws(() => new MptModel(cfg, { precision: 'fp16' as Precision }), { ...bad, message: /precision must be 'fp32' or 'bf16', got 'fp16'/ });
  t.throws(() => new MptModel(cfg, { checkpointEvery: -1 }), { ...bad, message: /checkpointEvery must be a non-negative integer, got -1/ });
});

t.test('memorisation: one batch of 2 x 16 is learnt with the native AdamW step', async (t) => {
  const [B, T] = [2, 16];
  const ids = randInt(B * T, cfg.realVocabSize);
  const targets = randInt(B * T, cfg.realVocabSize);
  for (const precision of ['fp32', 'bf16'] as Precision[]) {
    const model = new MptModel(cfg, { precision, seed });
    const m = model.params.like('f32');
    const v = model.params.like('f32');
    // Weight decay on the matrices and the embedding, not on LayerNorm weights.
    const segments = Int32Array.from(model.params.entries.flatMap((e) => [e.offset, e.numel, e.shape.length > 1 ? 1 : 0]));
    let first = NaN;
    let last = NaN;
    let steps = 0;
    while (steps < 200) {
      model.grads.zero();
      const r = await model.forwardBackward(ids, targets, B, T, 1 / (B * T));
      last = r.lossSum / r.tokens;
      if (steps === 0) first = last;
      if (last < 0.1) break;
      steps++;
      await ops.adamwUpdateAsync(model.params.buffer, model.grads.buffer, m.buffer, v.buffer, model.computeParams?.buffer ?? null, segments, 1e-2, 0.9, 0.95, 1e-8, 0.1, steps, 1);
    }
    t.ok(last < 0.1, `${precision}: loss ${first.toFixed(3)} -> ${last.toFixed(4)} after ${steps} AdamW steps`);
    t.ok(Number.isFinite(last));
    model.dispose();
    m.dispose();
    v.dispose();
  }
});

t.test('bad batches are refused with errors that name the problem, and leave the model usable', async (t) => {
  const [B, T] = [2, 8];
  const { ids, targets, tokens } = batch(cfg, B, T);
  const model = new MptModel(cfg, { seed });
  const bad = { name: 'TypeError', code: 'ERR_PAJAMA_INVALID_ARG' };
  const before = await model.evaluate(ids, targets, B, T);

  const short = ids.slice(1);
  await t.rejects(model.forwardBackward(short, targets, B, T, 1), { ...bad, message: /MptModel: ids has 15 tokens, expected B\*T = 16/ });
  await t.rejects(model.evaluate(short, targets, B, T), { ...bad, message: /ids has 15 tokens/ });
  await t.rejects(model.lastLogits(short, B, T), { ...bad, message: /ids has 15 tokens/ });
  await t.rejects(model.forwardBackward(ids, targets.slice(2), B, T, 1), { ...bad, message: /MptModel: targets has 14 tokens, expected B\*T = 16/ });
  const long = randInt(33, cfg.realVocabSize);
  await t.rejects(model.evaluate(long, long, 1, 33), { ...bad, message: /MptModel: sequence length 33 exceeds maxSeqLen 32/ });
  await t.rejects(model.forwardBackward(ids, targets, 0, 16, 1), { ...bad, message: /batch 0 x 16 is not a positive size/ });
  await t.rejects(model.forwardBackward(ids, targets, B, T, NaN), { ...bad, message: /gradScale must be finite, got NaN/ });

  // Ids are checked against the real vocabulary: a padded row (100..127) is as wrong as one past the table.
  for (const [pos, id] of [[5, cfg.realVocabSize], [9, cfg.vocabSize], [0, -1]]) {
    const badIds = Int32Array.from(ids);
    badIds[pos] = id;
    const msg = new RegExp(`embeddingForward: ids\\[${pos}\\] = ${id} is outside the vocabulary \\[0, ${cfg.realVocabSize}\\)`);
    await t.rejects(model.forwardBackward(badIds, targets, B, T, 1), { ...bad, message: msg });
    await t.rejects(model.evaluate(badIds, targets, B, T), { ...bad, message: msg });
  }
  // Targets likewise: a padded id is never a legal target, and -1 is not the ignore index.
  for (const [pos, tg] of [[4, cfg.realVocabSize + 10], [6, -1]]) {
    const badTargets = Int32Array.from(targets);
    badTargets[pos] = tg;
    const msg = new RegExp(`targets\\[${pos}\\] = ${tg} is outside the vocabulary \\[0, ${cfg.realVocabSize}\\)`);
    await t.rejects(model.forwardBackward(ids, badTargets, B, T, 1), { ...bad, message: msg });
    await t.rejects(model.evaluate(ids, badTargets, B, T), { ...bad, message: msg });
  }
  t.ok(model.grads.buffer.toFloat32().every((v) => v === 0), 'refused batches left the gradients untouched');
  const after = await model.evaluate(ids, targets, B, T);
  t.equal(after.lossSum, before.lossSum, 'and the model computes the same loss as before');
  t.equal(after.tokens, tokens);
  // -1 is a legal ignore index when asked for.
  const minusOne = Int32Array.from(targets, (v) => (v === IGNORE ? -1 : v));
  const custom = await model.evaluate(ids, minusOne, B, T, -1);
  t.equal(custom.lossSum, before.lossSum, 'a custom ignoreIndex ignores the same positions');
  model.dispose();
});

t.test('use after dispose is a DisposedError; dispose is idempotent', async (t) => {
  const [B, T] = [1, 4];
  const { ids, targets } = batch(cfg, B, T);
  const model = new MptModel(cfg, { precision: 'bf16' });
  await model.evaluate(ids, targets, B, T);
  model.dispose();
  model.dispose();
  t.ok(model.params.disposed && model.grads.disposed && model.computeParams!.disposed && model.slopes.disposed, 'every arena and tensor is freed');
  const gone = { name: 'DisposedError', code: 'ERR_PAJAMA_DISPOSED' };
  await t.rejects(model.forwardBackward(ids, targets, B, T, 1), DisposedError);
  await t.rejects(model.forwardBackward(ids, targets, B, T, 1), { ...gone, message: /MptModel: used after dispose\(\)/ });
  await t.rejects(model.evaluate(ids, targets, B, T), gone);
  await t.rejects(model.lastLogits(ids, B, T), gone);
  t.throws(() => model.activationBytes(B, T), gone);
  t.throws(() => model.weight('transformer.wte.weight'), gone);
  t.throws(() => model.initialize(1), gone);
  t.throws(() => model.syncComputeParams(), gone);
});
