// reduce: sumSquares (double-accumulated, non-finite elements counted) and scaleInPlace, both dtypes, against
// float64; the sum is the same for every thread count.
import t from 'tap';
import { ops, Tensor, setThreads } from '../../lib/index';
import { randn, relErr, roundBf16, seed, tensorOf, toF64, TOL } from '../helpers/reference';

t.comment(`seed ${seed}`);

let worstSum = 0;

for (const dtype of ['f32', 'bf16'] as const) {
  for (const n of [1, 7, 129, 100003]) {
    t.test(`sumSquares ${dtype} n=${n}`, async (t) => {
      const { t: x, x: ref } = tensorOf(randn(n, 3), [n], dtype);
      let want = 0;
      for (const v of ref) want += v * v;
      const [sum, nonFinite] = ops.sumSquares(x);
      // Each square is exact in double; only the n additions round.
      const e = Math.abs(sum - want) / want;
      worstSum = Math.max(worstSum, e);
      t.ok(e <= 1e-12, `sum ${sum} vs ${want} (rel err ${e})`);
      t.equal(nonFinite, 0);
      t.same(await ops.sumSquaresAsync(x), [sum, 0], 'async form agrees');
      x.dispose();
    });
  }
}

for (const dtype of ['f32', 'bf16'] as const) {
  t.test(`sumSquares ${dtype} counts NaN and +-Inf and sums the finite rest`, async (t) => {
    const n = 40000;
    const raw = randn(n);
    raw[5] = NaN;
    raw[17000] = Infinity;
    raw[n - 1] = -Infinity;
    raw[33000] = 3.4e38; // finite in f32 (its square still fits a double); past bf16 max, so Inf in bf16
    const { t: x, x: q } = tensorOf(raw, [n], dtype);
    let want = 0;
    let bad = 0;
    for (const v of q) {
      if (Number.isFinite(v)) want += v * v;
      else bad++;
    }
    const [sum, nonFinite] = ops.sumSquares(x);
    t.equal(nonFinite, dtype === 'f32' ? 3 : 4, 'non-finite elements counted');
    t.equal(nonFinite, bad);
    t.ok(Math.abs(sum - want) / want <= 1e-12, `finite part ${sum} vs ${want}`);
    x.dispose();
  });
}

t.test('sumSquares is the same for 1 and 2 threads', async (t) => {
  const { t: x } = tensorOf(randn(300001), [300001], 'f32');
  setThreads(1);
  const one = ops.sumSquares(x);
  setThreads(2);
  const two = ops.sumSquares(x);
  setThreads(0);
  t.same(two, one);
  x.dispose();
});

for (const dtype of ['f32', 'bf16'] as const) {
  for (const n of [1, 7, 129, 100003]) {
    t.test(`scaleInPlace ${dtype} n=${n}`, async (t) => {
      const factor = 0.3712;
      const { t: x, x: ref } = tensorOf(randn(n, 2), [n], dtype);
      if (n === 7) await ops.scaleInPlaceAsync(x, factor);
      else ops.scaleInPlace(x, factor);
      const got = toF64(x);
      const e = relErr(got, ref.map((v) => v * factor));
      t.ok(e <= TOL[dtype], `rel err ${e}`);
      // f32 math, one rounding to the dtype: bit-exact.
      const f = Math.fround(factor);
      const exact = ref.map((v) => (dtype === 'bf16' ? roundBf16(Math.fround(v * f)) : Math.fround(v * f)));
      let mismatches = 0;
      for (let k = 0; k < n; k++) if (got[k] !== exact[k]) mismatches++;
      t.equal(mismatches, 0, 'x * f32(factor) rounded once to the dtype, bit for bit');
      x.dispose();
    });
  }
}

t.test('reduce ops reject bad arguments, naming the op', async (t) => {
  const i = Tensor.zeros('i32', [4]);
  const x = Tensor.zeros('f32', [4]);
  t.throws(() => ops.sumSquares(i), /sumSquares: 't' must be f32 or bf16, got i32\[4\]/);
  t.throws(() => ops.scaleInPlace(i, 2), /scaleInPlace: 't' must be f32 or bf16/);
  t.throws(() => ops.scaleInPlace(x, NaN), /scaleInPlace: factor must be finite, got nan/i);
  t.throws(() => ops.scaleInPlace(x, Infinity), /scaleInPlace: factor must be finite/);
  await t.rejects(ops.sumSquaresAsync(i), /sumSquares: 't' must be f32 or bf16/);
  i.dispose();
  x.dispose();
});

t.test('max error observed', async (t) => {
  t.comment(`sumSquares rel err ${worstSum}`);
});
