// MptKvCache and MptModel's inference mode: an inference model allocates no gradient arena and no
// activation-gradient buffers (exact byte counts), computes the same bits as a training model with the same
// weights, and refuses forwardBackward; a KV cache session (prefill, then one or more tokens per step, truncate)
// gives the logits of a forward over the whole sequence, for one sequence and a batch, in fp32 (within float
// rounding) and bf16 (within bf16 rounding); passing maxLen is an error naming the numbers.
import t from 'tap';
import { MptModel } from '../../lib/model/mpt';
import { mptConfig } from '../../lib/model/config';
import { makeRng } from '../helpers/reference';

const cfg = mptConfig('tiny', { realVocabSize: 200, maxSeqLen: 48 }); // vocab 256: ids 200..255 are padding
const rng = makeRng(12345);
const randomIds = (n: number) => Int32Array.from({ length: n }, () => Math.floor(rng() * cfg.realVocabSize));

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i] === b[i]) continue; // -Infinity padding
    m = Math.max(m, Math.abs(a[i] - b[i]));
  }
  return m;
}

function argmax(a: Float32Array, from = 0, n = a.length): number {
  let best = from;
  for (let i = from; i < from + n; i++) if (a[i] > a[best]) best = i;
  return best - from;
}

t.test('an inference model: no gradients, one block of scratch, the same bits as a training model', async (t) => {
  for (const precision of ['fp32', 'bf16'] as const) {
    const train = new MptModel(cfg, { seed: 5, precision });
    const infer = new MptModel(cfg, { seed: 5, precision, inference: true });
    t.teardown(() => {
      train.dispose();
      infer.dispose();
    });
    t.equal(infer.inference, true);
    t.equal(infer.arenaBytes.gradients, 0, `${precision}: no gradient arena`);
    t.equal(infer.arenaBytes.weights, train.arenaBytes.weights, `${precision}: the same weights`);
    t.ok(train.arenaBytes.gradients > 0);
    const [B, T] = [2, 40];
    const { dModel: C, nHeads: H, nLayers: L } = cfg;
    const F = 4 * C;
    const e = precision === 'bf16' ? 2 : 4;
    const block = e * B * T * (C + 3 * C + C + C + C + F + F) + 4 * (4 * B * T + B * H * T);
    const common = 4 * 2 * B * T + e * B * T * C + 4 * 3 * B * T; // ids, targets; lnf; meanf, rstdf, losses
    t.equal(infer.activationBytes(B, T), common + 2 * e * B * T * C + block, `${precision}: two residual tensors and one block scratch`);
    const grads = e * B * T * (3 * C + 3 * C + F); // dx, dtmp, dln; dqkv; dff
    t.equal(train.activationBytes(B, T), common + (L + 1) * e * B * T * C + L * block + grads, `${precision}: the training model's, for comparison`);
    const ids = randomIds(B * T);
    const targets = randomIds(B * T);
    const positions = Int32Array.from({ length: B * T }, (_, i) => i);
    t.same(await infer.positionLogits(ids, B, T, positions), await train.positionLogits(ids, B, T, positions), `${precision}: positionLogits identical`);
    t.same(await infer.evaluate(ids, targets, B, T), await train.evaluate(ids, targets, B, T), `${precision}: evaluate identical`);
    await t.rejects(infer.forwardBackward(ids, targets, B, T, 1), { name: 'TypeError', message: /MptModel.forwardBackward: this model was built for inference/ });
    t.throws(() => infer.grads, /an inference model \(option inference\) has no gradients/);
  }
  t.throws(() => new MptModel(cfg, { inference: true, checkpointEvery: 1 }), /checkpointEvery is for training/);
  t.throws(() => new MptModel(cfg, { inference: true, precision: 'bf16', masterWeights: false }), /an inference model holds its own master weights/);
});

t.test('fp32: prefill and decode steps give the logits of the whole sequence', async (t) => {
  const model = new MptModel(cfg, { seed: 9, inference: true });
  const cache = model.createCache();
  t.teardown(() => {
    cache.dispose();
    model.dispose();
  });
  const seq = Array.from(randomIds(13));
  let logits = await cache.prefill(Int32Array.from(seq));
  let worst = 0;
  for (let step = 0; step < cfg.maxSeqLen - 13; step++) {
    const whole = await model.lastLogits(Int32Array.from(seq), 1, seq.length);
    worst = Math.max(worst, maxAbsDiff(logits, whole));
    t.equal(argmax(logits), argmax(whole), `step ${step}: the same argmax`);
    const next = argmax(whole);
    seq.push(next);
    if (seq.length > cfg.maxSeqLen) break;
    logits = await cache.append(Int32Array.of(next));
  }
  t.equal(cache.length, cfg.maxSeqLen);
  t.ok(worst <= 1e-4, `max |cached - whole| ${worst} over every step`);
  t.same(cache.ids(), seq.slice(0, cfg.maxSeqLen), 'the cache records its ids');
  await t.rejects(cache.append(Int32Array.of(1)), { name: 'TypeError', message: /MptKvCache.append: 48 cached \+ 1 new positions exceed the cache's maxLen 48/ });
});

t.test('several tokens per step, chosen rows, a batch, and truncate', async (t) => {
  const model = new MptModel(cfg, { seed: 4, inference: true });
  const B = 2;
  const cache = model.createCache({ batch: B, maxLen: 30 });
  t.teardown(() => {
    cache.dispose();
    model.dispose();
  });
  const T = 25;
  const ids = randomIds(B * T);
  const all = Int32Array.from({ length: B * T }, (_, i) => i);
  const whole = await model.positionLogits(ids, B, T, all);
  const V = cfg.vocabSize;
  const part = (t0: number, t1: number) => {
    const out = new Int32Array(B * (t1 - t0));
    for (let b = 0; b < B; b++) out.set(ids.subarray(b * T + t0, b * T + t1), b * (t1 - t0));
    return out;
  };
  const wholeRows = (t0: number, t1: number) => {
    const out = new Float32Array(B * (t1 - t0) * V);
    for (let b = 0; b < B; b++) out.set(whole.subarray((b * T + t0) * V, (b * T + t1) * V), b * (t1 - t0) * V);
    return out;
  };
  const rowsOf = (n: number) => Int32Array.from({ length: B * n }, (_, i) => i);
  // 10 tokens, then 1, then 9 at once, then 5: every row of every step.
  let worst = 0;
  let at = 0;
  for (const n of [10, 1, 9, 5]) {
    const got = await (at === 0 ? cache.prefill(part(0, n), { positions: rowsOf(n) }) : cache.append(part(at, at + n), { positions: rowsOf(n) }));
    worst = Math.max(worst, maxAbsDiff(got, wholeRows(at, at + n)));
    at += n;
  }
  t.equal(cache.length, T);
  t.ok(worst <= 1e-4, `max |cached - whole| ${worst}`);
  t.same(cache.ids(1), Array.from(ids.subarray(T, 2 * T)));
  // Roll back to 12 positions and go on: the same as having stopped there.
  cache.truncate(12);
  const again = await cache.append(part(12, 20));
  const want = new Float32Array(B * V);
  for (let b = 0; b < B; b++) want.set(whole.subarray((b * T + 19) * V, (b * T + 20) * V), b * V);
  t.ok(maxAbsDiff(again, want) <= 1e-4, 'after truncate(12), the last rows of the next append');
  t.throws(() => cache.truncate(21), /MptKvCache.truncate: length must be an integer in 0..20, got 21/);
  await t.rejects(cache.append(Int32Array.of(1, 2, 3)), /ids has 3 tokens, expected a positive multiple of the batch \(2\)/);
  await t.rejects(cache.append(Int32Array.of(1, 250)), /ids\[1\] is 250, outside the model's vocabulary \[0, 200\)/);
  await t.rejects(cache.append(Int32Array.of(1, 2), { positions: Int32Array.of(2) }), /positions\[0\] is 2, outside the appended block's \[0, 2\)/);
  t.throws(() => model.createCache({ maxLen: 49 }), /maxLen must be an integer in 1..48 \(the model's maxSeqLen\), got 49/);
  t.throws(() => model.createCache({ batch: 0 }), /batch must be a positive integer, got 0/);
  cache.dispose();
  await t.rejects(cache.append(Int32Array.of(1, 2)), { name: 'Error', code: 'ERR_PAJAMA_DISPOSED' });
});

t.test('bf16: cached logits within bf16 rounding of the whole-sequence forward', async (t) => {
  const model = new MptModel(cfg, { seed: 9, precision: 'bf16', inference: true });
  const cache = model.createCache();
  t.teardown(() => {
    cache.dispose();
    model.dispose();
  });
  const seq = Array.from(randomIds(20));
  let logits = await cache.prefill(Int32Array.from(seq));
  let worst = 0;
  let scale = 0;
  for (let step = 0; step < 20; step++) {
    const whole = await model.lastLogits(Int32Array.from(seq), 1, seq.length);
    worst = Math.max(worst, maxAbsDiff(logits, whole));
    for (let v = 0; v < cfg.realVocabSize; v++) scale = Math.max(scale, Math.abs(whole[v]));
    const next = argmax(whole);
    seq.push(next);
    logits = await cache.append(Int32Array.of(next));
  }
  t.ok(worst <= 0.05 * scale, `max |cached - whole| ${worst} (logits up to ${scale})`);
});
