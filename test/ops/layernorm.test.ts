// layernorm (no bias): forward statistics and output, backward dinp (overwritten) and dweight (+=) against
// float64, both dtypes, odd sizes; finite differences; rows with a large common offset; in-place use;
// deterministic dweight across thread counts; argument errors.
import t from 'tap';
import { ops, Tensor, setThreads, setIsaLimit, backendInfo, type DType } from '../../lib/index';
import { layerNormBackwardRef, layerNormForwardRef } from '../helpers/op-references';
import { randn, relErr, seed, tensorOf, toF64, TOL } from '../helpers/reference';

t.comment(`seed ${seed}`);

const EPS = 1e-5;

const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
};

interface Case {
  inp: Tensor;
  weight: Tensor;
  dout: Tensor;
  x: Float64Array;
  w: Float64Array;
  g: Float64Array;
}

function makeCase(n: number, c: number, dtype: DType, offset = 0): Case {
  const xr = randn(n * c).map((v) => v + offset);
  const { t: inp, x } = tensorOf(xr, [n, c], dtype);
  const { t: weight, x: w } = tensorOf(randn(c).map((v) => 1 + 0.5 * v), [c], dtype);
  const { t: dout, x: g } = tensorOf(randn(n * c), [n, c], dtype);
  return { inp, weight, dout, x, w, g };
}

for (const dtype of ['f32', 'bf16'] as const) {
  for (const n of [1, 7, 129]) {
    for (const c of [32, 48, 96]) {
      t.test(`layernorm ${dtype} N=${n} C=${c}`, async (t) => {
        const { inp, weight, dout, x, w, g } = makeCase(n, c, dtype);
        const out = Tensor.zeros(dtype, [n, c]);
        const mean = Tensor.zeros('f32', [n]);
        const rstd = Tensor.zeros('f32', [n]);
        const dinp = Tensor.zeros(dtype, [n, c]);
        dinp.fill(123); // overwritten, never read
        const { t: dweight, x: dw0 } = tensorOf(randn(c), [c], 'f32');

        ops.layerNormForward(out, mean, rstd, inp, weight, EPS);
        const f = layerNormForwardRef(x, w, n, c, EPS);
        const eOut = relErr(toF64(out), f.out);
        t.ok(eOut <= TOL[dtype], `forward rel err ${eOut}`);
        // statistics are f32 for both dtypes, computed from the values the tensor holds
        t.ok(relErr(toF64(mean), f.mean) <= TOL.f32, `mean rel err ${relErr(toF64(mean), f.mean)}`);
        t.ok(relErr(toF64(rstd), f.rstd) <= TOL.f32, `rstd rel err ${relErr(toF64(rstd), f.rstd)}`);

        ops.layerNormBackward(dinp, dweight, dout, inp, weight, mean, rstd);
        const first = toF64(dinp);
        await ops.layerNormBackwardAsync(dinp, dweight, dout, inp, weight, mean, rstd);
        const b = layerNormBackwardRef(g, x, w, n, c, EPS);
        const eDinp = relErr(toF64(dinp), b.dinp);
        t.ok(eDinp <= TOL[dtype], `dinp rel err ${eDinp}`);
        t.same(toF64(dinp), first, 'dinp is overwritten: the second call gives the same values');
        const dwRef = dw0.map((v, j) => v + 2 * b.dweight[j]);
        const eDw = relErr(toF64(dweight), dwRef);
        // dweight is f32 whatever the activations, summed from the exact bf16 values: f32 accuracy
        t.ok(eDw <= TOL.f32, `dweight (accumulated twice) rel err ${eDw}`);
        for (const z of [inp, weight, dout, out, mean, rstd, dinp, dweight]) z.dispose();
      });
    }
  }
}

t.test('layernorm f32 with a large mean offset (x ~ 1000 + N(0, 1))', async (t) => {
  for (const [n, c] of [
    [7, 96],
    [33, 1024],
  ]) {
    const { inp, weight, dout, x, w, g } = makeCase(n, c, 'f32', 1000);
    const out = Tensor.zeros('f32', [n, c]);
    const mean = Tensor.zeros('f32', [n]);
    const rstd = Tensor.zeros('f32', [n]);
    const dinp = Tensor.zeros('f32', [n, c]);
    const dweight = Tensor.zeros('f32', [c]);
    await ops.layerNormForwardAsync(out, mean, rstd, inp, weight, EPS);
    ops.layerNormBackward(dinp, dweight, dout, inp, weight, mean, rstd);
    const f = layerNormForwardRef(x, w, n, c, EPS);
    const b = layerNormBackwardRef(g, x, w, n, c, EPS);
    const errs = {
      out: relErr(toF64(out), f.out),
      rstd: relErr(toF64(rstd), f.rstd),
      mean: relErr(toF64(mean), f.mean),
      dinp: relErr(toF64(dinp), b.dinp),
      dweight: relErr(toF64(dweight), b.dweight),
    };
    for (const [k, e] of Object.entries(errs)) t.ok(e <= TOL.f32, `N=${n} C=${c} ${k} rel err ${e}`);
    for (const z of [inp, weight, dout, out, mean, rstd, dinp, dweight]) z.dispose();
  }
});

t.test('layernorm f32 backward matches finite differences of the forward', async (t) => {
  const [n, c] = [3, 48];
  const { inp, weight, dout, x, w, g } = makeCase(n, c, 'f32');
  const out = Tensor.zeros('f32', [n, c]);
  const mean = Tensor.zeros('f32', [n]);
  const rstd = Tensor.zeros('f32', [n]);
  const dinp = Tensor.zeros('f32', [n, c]);
  const dweight = Tensor.zeros('f32', [c]);
  ops.layerNormForward(out, mean, rstd, inp, weight, EPS);
  ops.layerNormBackward(dinp, dweight, dout, inp, weight, mean, rstd);
  const dx = toF64(dinp);
  const dw = toF64(dweight);

  // L = sum(out * g). The float64 reference backward against float64 central differences (tight), and the
  // native f32 backward against central differences of the native f32 forward (as tight as f32 allows).
  const lossRef = (xx: Float64Array, ww: Float64Array) => dot(layerNormForwardRef(xx, ww, n, c, EPS).out, g);
  const lossNative = (xx: Float64Array, ww: Float64Array) => {
    const ti = Tensor.from(Float32Array.from(xx), [n, c]);
    const tw = Tensor.from(Float32Array.from(ww), [c]);
    const to = Tensor.zeros('f32', [n, c]);
    ops.layerNormForward(to, mean, rstd, ti, tw, EPS);
    const l = dot(toF64(to), g);
    for (const z of [ti, tw, to]) z.dispose();
    return l;
  };
  const ref = layerNormBackwardRef(g, x, w, n, c, EPS);
  const coords = [0, 5, c + 7, 2 * c + c - 1];
  const hRef = 1e-5;
  const hNat = 1e-2; // f32 forward: h large enough that rounding noise is small against the difference
  const fdRef: number[] = [];
  const fdNat: number[] = [];
  const anRef: number[] = [];
  const anNat: number[] = [];
  const bump = (a: Float64Array, i: number, h: number) => {
    const p = Float64Array.from(a);
    p[i] += h;
    return p;
  };
  for (const i of coords) {
    fdRef.push((lossRef(bump(x, i, hRef), w) - lossRef(bump(x, i, -hRef), w)) / (2 * hRef));
    fdNat.push((lossNative(bump(x, i, hNat), w) - lossNative(bump(x, i, -hNat), w)) / (2 * hNat));
    anRef.push(ref.dinp[i]);
    anNat.push(dx[i]);
  }
  for (const j of [0, 17, c - 1]) {
    fdRef.push((lossRef(x, bump(w, j, hRef)) - lossRef(x, bump(w, j, -hRef))) / (2 * hRef));
    fdNat.push((lossNative(x, bump(w, j, hNat)) - lossNative(x, bump(w, j, -hNat))) / (2 * hNat));
    anRef.push(ref.dweight[j]);
    anNat.push(dw[j]);
  }
  const eRef = relErr(anRef, fdRef);
  const eNat = relErr(anNat, fdNat);
  t.ok(eRef <= 1e-7, `float64 reference backward vs finite differences: rel err ${eRef}`);
  t.ok(eNat <= 2e-3, `native f32 backward vs finite differences of the native forward: rel err ${eNat}`);
  for (const z of [inp, weight, dout, out, mean, rstd, dinp, dweight]) z.dispose();
});

t.test('layernorm in place (out = inp, dinp = dout) and a 3-D input', async (t) => {
  const [b, tt, c] = [2, 5, 48];
  const n = b * tt;
  for (const dtype of ['f32', 'bf16'] as const) {
    const { inp, weight, dout, x, w, g } = makeCase(n, c, dtype);
    const inp3 = inp.reshape([b, tt, c]);
    const dout3 = dout.reshape([b, tt, c]);
    const mean = Tensor.zeros('f32', [n]);
    const rstd = Tensor.zeros('f32', [n]);
    const dweight = Tensor.zeros('f32', [c]);
    // backward first needs the original inp: keep a copy
    const inpCopy = Tensor.from(Float32Array.from(x), [b, tt, c], dtype);
    ops.layerNormForward(inpCopy, mean, rstd, inpCopy, weight, EPS); // in place: inpCopy now holds out
    const f = layerNormForwardRef(x, w, n, c, EPS);
    t.ok(relErr(toF64(inpCopy), f.out) <= TOL[dtype], `${dtype} in-place forward rel err ${relErr(toF64(inpCopy), f.out)}`);
    ops.layerNormBackward(dout3, dweight, dout3, inp3, weight, mean, rstd); // dinp = dout in place
    const r = layerNormBackwardRef(g, x, w, n, c, EPS);
    t.ok(relErr(toF64(dout), r.dinp) <= TOL[dtype], `${dtype} in-place dinp rel err ${relErr(toF64(dout), r.dinp)}`);
    t.ok(relErr(toF64(dweight), r.dweight) <= TOL.f32, `${dtype} dweight rel err ${relErr(toF64(dweight), r.dweight)}`);
    for (const z of [inp, weight, dout, mean, rstd, dweight, inpCopy]) z.dispose();
  }
});

t.test('layernorm dweight is the same bit for bit for any thread count', async (t) => {
  const [n, c] = [300, 96];
  const { inp, weight, dout } = makeCase(n, c, 'f32');
  const out = Tensor.zeros('f32', [n, c]);
  const mean = Tensor.zeros('f32', [n]);
  const rstd = Tensor.zeros('f32', [n]);
  const dinp = Tensor.zeros('f32', [n, c]);
  ops.layerNormForward(out, mean, rstd, inp, weight, EPS);
  const results: Float32Array[] = [];
  for (const threads of [1, 2, 3]) {
    setThreads(threads);
    const dweight = Tensor.zeros('f32', [c]);
    ops.layerNormBackward(dinp, dweight, dout, inp, weight, mean, rstd);
    results.push(dweight.toFloat32());
    dweight.dispose();
  }
  setThreads(0);
  t.same(results[1], results[0], '2 threads == 1 thread');
  t.same(results[2], results[0], '3 threads == 1 thread');
  for (const z of [inp, weight, dout, out, mean, rstd, dinp]) z.dispose();
});

// Every ISA path (bf16 rows have hand-written AVX2 and AVX-512 paths), with row lengths that leave a partial
// vector (C below, at and past one 16-lane vector), forward, backward and in place, against float64.
// avx2: 8 lanes; avx512: the AVX-512 path with integer bf16 rounding; avx512_bf16 (where detected): with
// vcvtneps2bf16. A level above the CPU's runs the CPU's own (setIsaLimit never raises it).
for (const level of [...new Set(['scalar', 'avx2', 'avx512', backendInfo().cpu.detectedIsa] as const)]) {
  for (const dtype of ['f32', 'bf16'] as const) {
    t.test(`layernorm ${dtype} isa=${level}, C with a partial vector`, async (t) => {
      setIsaLimit(level);
      t.teardown(() => void setIsaLimit(backendInfo().cpu.detectedIsa));
      for (const [n, c] of [
        [3, 1],
        [5, 15],
        [4, 17],
        [3, 33],
        [2, 127],
        [3, 515],
      ]) {
        const { inp, weight, dout, x, w, g } = makeCase(n, c, dtype, 3);
        const out = Tensor.zeros(dtype, [n, c]);
        const mean = Tensor.zeros('f32', [n]);
        const rstd = Tensor.zeros('f32', [n]);
        const dinp = Tensor.zeros(dtype, [n, c]);
        dinp.fill(123);
        const { t: dweight, x: dw0 } = tensorOf(randn(c), [c], 'f32');
        ops.layerNormForward(out, mean, rstd, inp, weight, EPS);
        await ops.layerNormBackwardAsync(dinp, dweight, dout, inp, weight, mean, rstd);
        const f = layerNormForwardRef(x, w, n, c, EPS);
        const b = layerNormBackwardRef(g, x, w, n, c, EPS);
        const errs = {
          out: [relErr(toF64(out), f.out), TOL[dtype]],
          mean: [relErr(toF64(mean), f.mean), TOL.f32],
          rstd: [relErr(toF64(rstd), f.rstd), TOL.f32],
          dinp: [relErr(toF64(dinp), b.dinp), TOL[dtype]],
          dweight: [relErr(toF64(dweight), dw0.map((v, j) => v + b.dweight[j])), TOL.f32],
        };
        if (c === 1) {
          // C = 1: out is exactly 0 (x - mean = 0) and so is the true dinp, but dinp is computed as
          // rstd * (dxhat - mean(dxhat)), a difference of equal terms: bound it by the size of what cancels
          // (rstd = 1/sqrt(eps) here) instead of a relative error against zero.
          const scale = Math.max(...Array.from(toF64(rstd))) * Math.max(...g.map((v, i) => Math.abs(v * w[i % c])));
          const worst = Math.max(...Array.from(toF64(dinp), Math.abs));
          t.ok(worst <= TOL[dtype] * scale, `N=${n} C=1 |dinp| ${worst} <= ${TOL[dtype]} * ${scale}`);
          delete (errs as Partial<typeof errs>).dinp;
        }
        for (const [k, [e, tol]] of Object.entries(errs)) t.ok(e <= tol, `N=${n} C=${c} ${k} rel err ${e}`);
        // in place: out = inp, then dinp = dout
        ops.layerNormForward(inp, mean, rstd, inp, weight, EPS);
        t.same(toF64(inp), toF64(out), `N=${n} C=${c} in-place forward equals the out-of-place one`);
        const { t: x2 } = tensorOf(x, [n, c], dtype);
        ops.layerNormBackward(dout, dweight, dout, x2, weight, mean, rstd);
        t.same(toF64(dout), toF64(dinp), `N=${n} C=${c} in-place backward equals the out-of-place one`);
        for (const z of [inp, weight, dout, out, mean, rstd, dinp, dweight, x2]) z.dispose();
      }
    });
  }
}

t.test('layernorm rejects wrong shapes, dtypes and overlaps naming the op', async (t) => {
  const inp = Tensor.zeros('f32', [4, 32]);
  const out = Tensor.zeros('f32', [4, 32]);
  const w = Tensor.zeros('f32', [32]);
  const w31 = Tensor.zeros('f32', [31]);
  const wH = Tensor.zeros('bf16', [32]);
  const mean = Tensor.zeros('f32', [4]);
  const rstd = Tensor.zeros('f32', [4]);
  const mean5 = Tensor.zeros('f32', [5]);
  const rstdH = Tensor.zeros('bf16', [4]);
  const dweightH = Tensor.zeros('bf16', [32]);
  const big = Tensor.zeros('f32', [200]);
  t.throws(() => ops.layerNormForward(out, mean, rstd, inp, w31, EPS), /layerNormForward: 'inp' f32\[4,32\] must end in the size of 'weight' f32\[31\]/);
  t.throws(() => ops.layerNormForward(out, mean, rstd, inp, wH, EPS), /layerNormForward: 'weight' bf16\[32\] and 'inp' f32\[4,32\] must have the same dtype/);
  t.throws(() => ops.layerNormForward(out, mean5, rstd, inp, w, EPS), /layerNormForward: 'mean' must have 4 elements, got f32\[5\]/);
  t.throws(() => ops.layerNormForward(out, mean, rstdH, inp, w, EPS), /layerNormForward: 'rstd' must be f32, got bf16\[4\]/);
  t.throws(() => ops.layerNormForward(out, mean, rstd, inp, w, -1), /layerNormForward: eps must be a finite number >= 0/);
  t.throws(() => ops.layerNormBackward(out, dweightH, out, inp, w, mean, rstd), /layerNormBackward: 'dweight' must be f32, got bf16\[32\]/);
  t.throws(() => ops.layerNormBackward(out, w, out, inp, w, mean, rstd), /layerNormBackward: 'dweight' and 'weight' overlap in memory/);
  // out shifted by one element against inp inside one buffer: a partial overlap
  const a = big.view(0, [4, 32]);
  const b = big.view(1, [4, 32]);
  t.throws(() => ops.layerNormForward(b, mean, rstd, a, w, EPS), /layerNormForward: 'out' f32\[4,32\] partly overlaps 'inp'/);
  await t.rejects(ops.layerNormForwardAsync(out, mean5, rstd, inp, w, EPS), /layerNormForward: 'mean' must have 4 elements/);
  for (const z of [inp, out, w, w31, wH, mean, rstd, mean5, rstdH, dweightH, big]) z.dispose();
});
