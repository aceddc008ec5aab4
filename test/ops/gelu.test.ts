// gelu: exact (erf) GELU forward and backward against float64, both dtypes, every ISA path.
import t from 'tap';
import { ops, Tensor, setIsaLimit, backendInfo, type DType } from '../../lib/index';
import { dgeluRef, geluRef } from '../helpers/op-references';
import { randn, relErr, seed, tensorOf, toF64, TOL } from '../helpers/reference';

t.comment(`seed ${seed}`);

// avx512: the bf16 AVX-512 path with integer rounding; the detected level (avx512_bf16 here) rounds with
// vcvtneps2bf16
const levels = [...new Set(['scalar', 'avx512', backendInfo().cpu.detectedIsa] as const)];

for (const level of levels) {
  for (const dtype of ['f32', 'bf16'] as DType[]) {
    for (const n of [1, 7, 129, 4099]) {
      t.test(`gelu ${dtype} n=${n} isa=${level}`, async (t) => {
        setIsaLimit(level);
        const { t: inp, x } = tensorOf(randn(n, 2), [n], dtype);
        const { t: dout, x: g } = tensorOf(randn(n), [n], dtype);
        const out = Tensor.zeros(dtype, [n]);
        const dinp = Tensor.zeros(dtype, [n]);
        ops.geluForward(out, inp);
        await ops.geluBackwardAsync(dinp, inp, dout);
        const ref = x.map(geluRef);
        const dref = x.map((v, i) => g[i] * dgeluRef(v));
        t.ok(relErr(toF64(out), ref) <= TOL[dtype], `forward rel err ${relErr(toF64(out), ref)}`);
        t.ok(relErr(toF64(dinp), dref) <= TOL[dtype], `backward rel err ${relErr(toF64(dinp), dref)}`);
        for (const x of [inp, dout, out, dinp]) x.dispose();
      });
    }
  }
}

t.test('gelu rejects mismatched shapes and dtypes', async (t) => {
  const a = Tensor.zeros('f32', [4]);
  const b = Tensor.zeros('f32', [5]);
  const h = Tensor.zeros('bf16', [4]);
  t.throws(() => ops.geluForward(b, a), /geluForward: 'out' must have 4 elements, got f32\[5\]/);
  t.throws(() => ops.geluForward(h, a), /geluForward: 'out' f32?.*same dtype|'out' bf16\[4\] and 'inp' f32\[4\]/);
  await t.rejects(ops.geluForwardAsync(b, a), /must have 4 elements/);
  for (const x of [a, b, h]) x.dispose();
});
