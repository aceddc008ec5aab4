// residual: out = a + b for every mix of f32/bf16 operands against float64, odd sizes, in place (out = a or
// out = b), and refusal of mismatched sizes, integer tensors and partial overlaps.
import t from 'tap';
import { ops, Tensor, setIsaLimit, backendInfo } from '../../lib/index';
import { quantize, randn, relErr, seed, tensorOf, toF64 } from '../helpers/reference';

t.comment(`seed ${seed}`);

const DTYPES = ['f32', 'bf16'] as const;

for (const outType of DTYPES) {
  for (const aType of DTYPES) {
    for (const bType of DTYPES) {
      t.test(`residual ${aType} + ${bType} -> ${outType}`, async (t) => {
        for (const n of [1, 7, 129, 4099]) {
          const { t: a, x } = tensorOf(randn(n), [n], aType);
          const { t: b, x: y } = tensorOf(randn(n), [n], bType);
          const out = Tensor.zeros(outType, [n]);
          out.fill(Number.NaN);
          if (n === 7) await ops.residualForwardAsync(out, a, b);
          else ops.residualForward(out, a, b);
          // the kernel adds in f32 and rounds once to the output dtype: the exact sum rounded the same way
          const ref = quantize(quantize(x.map((v, i) => v + y[i]), 'f32'), outType);
          t.same(toF64(out), ref, `n=${n} equals the f32 sum rounded to ${outType} (rel err ${relErr(toF64(out), ref)})`);
          for (const z of [a, b, out]) z.dispose();
        }
      });
    }
  }
}

// Every ISA path (AVX-512 has a hand-written loop), bit for bit against the f32 sum, with partial vectors.
// avx512: the AVX-512 path with integer bf16 rounding; avx512_bf16 (where detected): with vcvtneps2bf16
for (const level of [...new Set(['scalar', 'avx512', backendInfo().cpu.detectedIsa] as const)]) {
  t.test(`residual every dtype mix isa=${level}`, async (t) => {
    setIsaLimit(level);
    t.teardown(() => void setIsaLimit(backendInfo().cpu.detectedIsa));
    for (const outType of DTYPES) {
      for (const aType of DTYPES) {
        for (const bType of DTYPES) {
          for (const n of [5, 16, 33, 1000]) {
            const { t: a, x } = tensorOf(randn(n, 4), [n], aType);
            const { t: b, x: y } = tensorOf(randn(n), [n], bType);
            const out = Tensor.zeros(outType, [n]);
            out.fill(Number.NaN);
            ops.residualForward(out, a, b);
            const ref = quantize(quantize(x.map((v, i) => v + y[i]), 'f32'), outType);
            t.same(toF64(out), ref, `${aType} + ${bType} -> ${outType} n=${n}`);
            for (const z of [a, b, out]) z.dispose();
          }
        }
      }
    }
  });
}

t.test('residual in place: out = a and out = b, N-D shapes', async (t) => {
  for (const dtype of DTYPES) {
    const shape = [3, 5, 48];
    const n = 3 * 5 * 48;
    const { t: a, x } = tensorOf(randn(n), shape, dtype);
    const { t: b, x: y } = tensorOf(randn(n), [n], 'f32'); // shapes may differ, element counts may not
    ops.residualForward(a, a, b); // a += b
    const ref = quantize(quantize(x.map((v, i) => v + y[i]), 'f32'), dtype);
    t.same(toF64(a), ref, `${dtype} out = a`);
    const { t: c, x: z } = tensorOf(randn(n), [n], dtype);
    await ops.residualForwardAsync(c, a, c); // c = a + c
    const ref2 = quantize(quantize(ref.map((v, i) => v + z[i]), 'f32'), dtype);
    t.same(toF64(c), ref2, `${dtype} out = b`);
    ops.residualForward(c, c, c); // c = 2c
    t.same(toF64(c), ref2.map((v) => 2 * v), `${dtype} out = a = b doubles exactly`);
    for (const w of [a, b, c]) w.dispose();
  }
});

t.test('residual rejects mismatched sizes, integer tensors and partial overlaps naming the op', async (t) => {
  const a = Tensor.zeros('f32', [8]);
  const b = Tensor.zeros('bf16', [8]);
  const b9 = Tensor.zeros('f32', [9]);
  const ids = Tensor.zeros('i32', [8]);
  const buf = Tensor.zeros('f32', [20]);
  const bufH = Tensor.zeros('bf16', [20]);
  t.throws(() => ops.residualForward(a, a, b9), /residualForward: 'b' must have 8 elements, got f32\[9\]/);
  t.throws(() => ops.residualForward(b9, a, b), /residualForward: 'out' must have 8 elements, got f32\[9\]/);
  t.throws(() => ops.residualForward(a, ids, b), /residualForward: 'a' must be f32 or bf16, got i32\[8\]/);
  t.throws(() => ops.residualForward(ids, a, b), /residualForward: 'out' must be f32 or bf16, got i32\[8\]/);
  // out one element past a in the same buffer: a race, not an in-place add
  t.throws(() => ops.residualForward(buf.view(1, [8]), buf.view(0, [8]), a), /residualForward: 'out' f32\[8\] partly overlaps 'a' f32\[8\]/);
  // two views of the same bytes are the same tensor: an in-place add
  const v1 = bufH.view(2, [8]);
  const v2 = bufH.view(2, [8]);
  t.doesNotThrow(() => ops.residualForward(v1, v2, b), 'two views of the same bytes are an in-place add');
  t.throws(() => ops.residualForward(bufH.view(3, [8]), v2, b), /residualForward: 'out' bf16\[8\] partly overlaps 'a' bf16\[8\]/);
  const c = Tensor.zeros('f32', [8]);
  await t.rejects(ops.residualForwardAsync(c, a, b9), /residualForward: 'b' must have 8 elements/);
  for (const z of [a, b, b9, ids, buf, bufH, c]) z.dispose();
});
