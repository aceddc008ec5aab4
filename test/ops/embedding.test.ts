// embedding: gather forward and scatter-add backward against float64, both dtypes, odd sizes; dwte
// accumulates (+=) and is the same bit for bit for any thread count; bad ids are refused before any write.
import t from 'tap';
import { ops, Tensor, setThreads, backendInfo } from '../../lib/index';
import { gatherRef, scatterAddRef } from '../helpers/op-references';
import { randInt, randn, relErr, seed, tensorOf, toF64, TOL } from '../helpers/reference';

t.comment(`seed ${seed}`);

const sizes: [n: number, c: number, v: number][] = [
  [1, 32, 37],
  [7, 48, 37],
  [129, 96, 37], // many repeated ids
  [129, 130, 1001], // columns not a multiple of the backward's column block
];

for (const dtype of ['f32', 'bf16'] as const) {
  for (const [n, c, v] of sizes) {
    t.test(`embedding ${dtype} N=${n} C=${c} V=${v}`, async (t) => {
      const { t: wte, x: w } = tensorOf(randn(v * c), [v, c], dtype);
      const { t: dout, x: g } = tensorOf(randn(n * c), [n, c], dtype);
      const { t: dwte, x: d0 } = tensorOf(randn(v * c), [v, c], 'f32');
      const idsArr = randInt(n, v);
      const ids = Tensor.from(idsArr);
      const out = Tensor.zeros(dtype, [n, c]);
      out.fill(7);

      ops.embeddingForward(out, ids, wte, v);
      const ref = gatherRef(idsArr, w, c);
      t.equal(relErr(toF64(out), ref), 0, 'forward is an exact copy of the rows');

      // += twice (once async): dwte = d0 + 2 * scatter(dout)
      ops.embeddingBackward(dwte, ids, dout);
      await ops.embeddingBackwardAsync(dwte, ids, dout);
      const dref = Float64Array.from(d0);
      scatterAddRef(dref, idsArr, g, c);
      scatterAddRef(dref, idsArr, g, c);
      const err = relErr(toF64(dwte), dref);
      t.ok(err <= TOL.f32, `backward (accumulated twice) rel err ${err}`);
      for (const x of [wte, dout, dwte, ids, out]) x.dispose();
    });
  }
}

t.test('embedding forward async, 3-D ids and vocabLimit < V', async (t) => {
  const [b, tt, c, v] = [3, 5, 48, 40];
  const { t: wte, x: w } = tensorOf(randn(v * c), [v, c], 'bf16');
  const idsArr = randInt(b * tt, 37);
  const ids = Tensor.from(idsArr, [b, tt]);
  const out = Tensor.zeros('bf16', [b, tt, c]);
  await ops.embeddingForwardAsync(out, ids, wte, 37);
  t.equal(relErr(toF64(out), gatherRef(idsArr, w, c)), 0, 'forward exact');
  for (const x of [wte, ids, out]) x.dispose();
});

t.test('embedding backward is deterministic across thread counts', async (t) => {
  const [n, c, v] = [257, 200, 13];
  const { t: dout } = tensorOf(randn(n * c), [n, c], 'f32');
  const ids = Tensor.from(randInt(n, v));
  const results: Float32Array[] = [];
  for (const threads of [1, 2, 3]) {
    setThreads(threads);
    const dwte = Tensor.zeros('f32', [v, c]);
    ops.embeddingBackward(dwte, ids, dout);
    results.push(dwte.toFloat32());
    dwte.dispose();
  }
  setThreads(0);
  t.same(results[1], results[0], '2 threads == 1 thread, bit for bit');
  t.same(results[2], results[0], '3 threads == 1 thread, bit for bit');
  t.comment(`default threads ${backendInfo().threads}`);
  for (const x of [dout, ids]) x.dispose();
});

t.test('embedding refuses ids outside [0, vocabLimit) before writing anything', async (t) => {
  const [n, c, v] = [9, 32, 37];
  const { t: wte } = tensorOf(randn(v * c), [v, c], 'f32');
  const idsArr = randInt(n, 30);
  idsArr[4] = 33; // valid row of wte, but above vocabLimit 30
  const ids = Tensor.from(idsArr);
  const out = Tensor.zeros('f32', [n, c]);
  out.fill(-1);
  t.throws(() => ops.embeddingForward(out, ids, wte, 30), /embeddingForward: ids\[4\] = 33 is outside the vocabulary \[0, 30\)/);
  t.ok(out.toFloat32().every((x) => x === -1), 'out untouched');
  await t.rejects(ops.embeddingForwardAsync(out, ids, wte, 30), { name: 'TypeError', message: /ids\[4\] = 33/ });
  t.ok(out.toFloat32().every((x) => x === -1), 'out untouched (async)');
  // the backward checks against V (the gradient rows that exist)
  idsArr[4] = 2;
  idsArr[7] = -3;
  ids.copyFrom(idsArr);
  const dwte = Tensor.zeros('f32', [v, c]);
  const dout = Tensor.zeros('f32', [n, c]);
  dout.fill(1);
  t.throws(() => ops.embeddingBackward(dwte, ids, dout), /embeddingBackward: ids\[7\] = -3 is outside the vocabulary \[0, 37\)/);
  t.ok(dwte.toFloat32().every((x) => x === 0), 'dwte untouched');
  idsArr[7] = 37;
  ids.copyFrom(idsArr);
  t.throws(() => ops.embeddingBackward(dwte, ids, dout), /ids\[7\] = 37 is outside the vocabulary \[0, 37\)/);
  t.throws(() => ops.embeddingForward(out, ids, wte, 38), /embeddingForward: vocabLimit 38 must be in \[1, V\]/);
  t.throws(() => ops.embeddingForward(out, ids, wte, 0), /vocabLimit 0 must be in \[1, V\]/);
  for (const x of [wte, ids, out, dwte, dout]) x.dispose();
});

t.test('embedding rejects wrong shapes and dtypes naming the op', async (t) => {
  const wte = Tensor.zeros('f32', [37, 32]);
  const wteH = Tensor.zeros('bf16', [37, 32]);
  const ids = Tensor.from(new Int32Array([1, 2, 3]));
  const idsF = Tensor.zeros('f32', [3]);
  const out = Tensor.zeros('f32', [3, 32]);
  const outBad = Tensor.zeros('f32', [3, 31]);
  const dwteH = Tensor.zeros('bf16', [37, 32]);
  t.throws(() => ops.embeddingForward(out, idsF, wte, 37), /embeddingForward: 'ids' must be i32, got f32\[3\]/);
  t.throws(() => ops.embeddingForward(out, ids, wteH, 37), /embeddingForward: 'out' f32\[3,32\] and 'wte' bf16\[37,32\] must have the same dtype/);
  t.throws(() => ops.embeddingForward(outBad, ids, wte, 37), /embeddingForward: 'out' must have shape \[3,32\], got f32\[3,31\]/);
  t.throws(() => ops.embeddingForward(out, ids, wte.view(0, [37 * 32]), 37), /embeddingForward: 'wte' must be 2-D/);
  t.throws(() => ops.embeddingBackward(dwteH, ids, out), /embeddingBackward: 'dwte' must be f32, got bf16\[37,32\]/);
  t.throws(() => ops.embeddingBackward(wte, ids, outBad), /embeddingBackward: 'dout' must have shape \[3,32\]/);
  await t.rejects(ops.embeddingBackwardAsync(wte, idsF, out), /embeddingBackward: 'ids' must be i32/);
  for (const x of [wte, wteH, ids, idsF, out, outBad, dwteH]) x.dispose();
});
