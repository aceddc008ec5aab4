// linear: matmulForward / matmulBackward (PyTorch Linear layout, no bias) and the general gemm op against
// float64, on every GEMM path this machine has: the portable engine at each ISA level its micro-kernel is
// built for (baseline, AVX2, AVX-512), oneDNN with native bf16 products
// (AVX512-BF16/AMX) and oneDNN with bf16 widened to f32 (ISA capped at avx512). dweight accumulates (+=, f32),
// dinp is overwritten; K == 0 gives C = beta * C everywhere.
import t from 'tap';
import { ops, Tensor, backendInfo, setGemmEngine, setIsaLimit, setThreads, type IsaLevel } from '../../lib/index';
import { matmulRef } from '../helpers/op-references';
import { randn, relErr, seed, tensorOf, toF64, TOL } from '../helpers/reference';

t.comment(`seed ${seed}`);

function norm(x: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i] * x[i];
  return Math.sqrt(s);
}

interface GemmPath {
  engine: 'portable' | 'onednn';
  isa: IsaLevel;
  bf16Native: boolean;
  label: string;
}

const info = backendInfo();
const detected = info.cpu.detectedIsa;
const cpuBf16 = info.cpu.features.avx512bf16 || info.cpu.features.amxBf16;
// The portable engine's micro-kernel is compiled for the baseline ISA, AVX2 and AVX-512 (picked by the ISA level).
const ISA_ORDER: IsaLevel[] = ['scalar', 'avx2', 'avx512', 'avx512_bf16'];
const portableIsas = (['scalar', 'avx2', 'avx512'] as IsaLevel[]).filter((l) => ISA_ORDER.indexOf(l) <= ISA_ORDER.indexOf(detected));
const paths: GemmPath[] = portableIsas.map((isa) => ({ engine: 'portable' as const, isa, bf16Native: false, label: `portable isa=${isa}` }));
if (info.gemm.oneDnnAvailable) {
  const native = cpuBf16 && detected === 'avx512_bf16';
  paths.push({ engine: 'onednn', isa: detected, bf16Native: native, label: `onednn isa=${detected}` });
  // Capping the ISA below AVX512-BF16 makes gemm.cc widen bf16 operands to f32 before oneDNN.
  if (native) paths.push({ engine: 'onednn', isa: 'avx512', bf16Native: false, label: 'onednn isa=avx512' });
} else {
  t.comment('this build has no oneDNN: only the portable engine is tested');
}

function usePath(p: GemmPath) {
  setGemmEngine(p.engine);
  setIsaLimit(p.isa);
  const g = backendInfo().gemm;
  if (g.engine !== p.engine || g.bf16Native !== p.bf16Native) {
    throw new Error(`GEMM path ${p.label}: backend reports ${JSON.stringify(g)}`);
  }
}

const linearSizes: [n: number[], c: number, oc: number][] = [
  [[1], 32, 37],
  [[7], 48, 96],
  [[129], 96, 48],
  [[3, 5], 48, 37], // 3-D activations (B, T, C)
];

for (const p of paths) {
  for (const dtype of ['f32', 'bf16'] as const) {
    for (const [lead, c, oc] of linearSizes) {
      const n = lead.reduce((a, b) => a * b, 1);
      t.test(`matmul ${dtype} [${lead}] C=${c} OC=${oc} ${p.label} (bf16 ${p.bf16Native ? 'native' : 'widened'})`, async (t) => {
        usePath(p);
        const { t: inp, x } = tensorOf(randn(n * c), [...lead, c], dtype);
        const { t: weight, x: w } = tensorOf(randn(oc * c, 1 / Math.sqrt(c)), [oc, c], dtype);
        const { t: dout, x: g } = tensorOf(randn(n * oc), [...lead, oc], dtype);
        const { t: dweight, x: dw0 } = tensorOf(randn(oc * c), [oc, c], 'f32');
        const out = Tensor.zeros(dtype, [...lead, oc]);
        out.fill(Number.NaN); // overwritten, never read
        const dinp = Tensor.zeros(dtype, [...lead, c]);
        dinp.fill(Number.NaN);

        if (n === 7) await ops.matmulForwardAsync(out, inp, weight);
        else ops.matmulForward(out, inp, weight);
        const eOut = relErr(toF64(out), matmulRef(x, w, n, oc, c, false, true));
        t.ok(eOut <= TOL[dtype], `forward rel err ${eOut}`);

        ops.matmulBackward(dinp, dweight, dout, inp, weight);
        await ops.matmulBackwardAsync(dinp, dweight, dout, inp, weight);
        const eDinp = relErr(toF64(dinp), matmulRef(g, w, n, c, oc, false, false));
        t.ok(eDinp <= TOL[dtype], `dinp rel err ${eDinp}`);
        const dwRef = matmulRef(g, x, oc, c, n, true, false).map((v, i) => dw0[i] + 2 * v);
        const eDw = relErr(toF64(dweight), dwRef);
        // f32 accumulation of exact products of the stored values: f32 accuracy for both dtypes
        t.ok(eDw <= TOL.f32, `dweight (accumulated twice) rel err ${eDw}`);
        for (const z of [inp, weight, dout, dweight, out, dinp]) z.dispose();
      });
    }
  }

  t.test(`matmulBackward skips a null output ${p.label}`, async (t) => {
    usePath(p);
    const [n, c, oc] = [5, 32, 24];
    const { t: inp, x } = tensorOf(randn(n * c), [n, c], 'f32');
    const { t: weight, x: w } = tensorOf(randn(oc * c), [oc, c], 'f32');
    const { t: dout, x: g } = tensorOf(randn(n * oc), [n, oc], 'f32');
    const dweight = Tensor.zeros('f32', [oc, c]);
    const dinp = Tensor.zeros('f32', [n, c]);
    ops.matmulBackward(null, dweight, dout, inp, weight);
    t.ok(relErr(toF64(dweight), matmulRef(g, x, oc, c, n, true, false)) <= TOL.f32, 'dweight only');
    dweight.fill(0);
    await ops.matmulBackwardAsync(dinp, null, dout, inp, weight);
    t.ok(relErr(toF64(dinp), matmulRef(g, w, n, c, oc, false, false)) <= TOL.f32, 'dinp only');
    t.ok(dweight.toFloat32().every((v) => v === 0), 'dweight untouched when null');
    for (const z of [inp, weight, dout, dweight, dinp]) z.dispose();
  });

  const gemmSizes: [m: number, n: number, k: number][] = [
    [7, 37, 48],
    [1, 1, 1],
    [100, 530, 260], // crosses the portable engine's M (96), N (512) and K (256) blocks and its 6-row tiles
  ];
  for (const [m, n, k] of gemmSizes) {
    for (const abType of ['f32', 'bf16'] as const) {
      for (const cType of ['f32', 'bf16'] as const) {
        if (m === 100 && cType === 'bf16') continue; // the big size runs once per input dtype
        t.test(`gemm ${abType}->${cType} M=${m} N=${n} K=${k} ${p.label}`, async (t) => {
          usePath(p);
          for (const transA of [false, true]) {
            for (const transB of [false, true]) {
              const { t: a, x: av } = tensorOf(randn(m * k), transA ? [k, m] : [m, k], abType);
              const { t: b, x: bv } = tensorOf(randn(k * n), transB ? [n, k] : [k, n], abType);
              const { t: c, x: c0 } = tensorOf(randn(m * n), [m, n], cType);
              const [alpha, beta] = [0.5, -1.5];
              if (transA && transB) await ops.gemmAsync(c, a, b, transA, transB, alpha, beta);
              else ops.gemm(c, a, b, transA, transB, alpha, beta);
              const ab = matmulRef(av, bv, m, n, k, transA, transB);
              const ref = ab.map((v, i) => alpha * v + beta * c0[i]);
              // error relative to the size of the two terms: alpha AB and beta C may cancel (M = N = K = 1)
              const e = relErr(toF64(c), ref) * (norm(ref) / norm(ab.map((v, i) => Math.abs(alpha * v) + Math.abs(beta * c0[i]))));
              t.ok(e <= TOL[cType === 'bf16' || abType === 'bf16' ? 'bf16' : 'f32'], `transA=${transA} transB=${transB} rel err ${e}`);
              // beta = 0 ignores C, even NaN
              c.fill(Number.NaN);
              ops.gemm(c, a, b, transA, transB, 1, 0);
              const e0 = relErr(toF64(c), ab);
              t.ok(e0 <= TOL[cType === 'bf16' || abType === 'bf16' ? 'bf16' : 'f32'], `beta=0 over NaN rel err ${e0}`);
              for (const z of [a, b, c]) z.dispose();
            }
          }
        });
      }
    }
  }

  t.test(`K == 0 gives C = beta * C ${p.label}`, async (t) => {
    usePath(p);
    const [m, n] = [5, 7];
    for (const abType of ['f32', 'bf16'] as const) {
      for (const cType of ['f32', 'bf16'] as const) {
        const a = Tensor.zeros(abType, [m, 0]);
        const b = Tensor.zeros(abType, [0, n]);
        const { t: c, x: c0 } = tensorOf(randn(m * n), [m, n], cType);
        ops.gemm(c, a, b, false, false, 2, 0.5);
        t.same(toF64(c), c0.map((v) => 0.5 * v), `${abType}->${cType} beta=0.5`);
        c.fill(Number.NaN);
        await ops.gemmAsync(c, a, b, false, false, 1, 0);
        t.ok(c.toFloat32().every((v) => v === 0), `${abType}->${cType} beta=0 clears NaN`);
        for (const z of [a, b, c]) z.dispose();
      }
    }
    // A linear layer with no input features (out = 0), and a backward over zero rows (dweight += 0).
    const inp = Tensor.zeros('bf16', [3, 0]);
    const weight = Tensor.zeros('bf16', [4, 0]);
    const out = Tensor.zeros('bf16', [3, 4]);
    out.fill(Number.NaN);
    ops.matmulForward(out, inp, weight);
    t.ok(out.toFloat32().every((v) => v === 0), 'C=0: out = 0');
    const inp0 = Tensor.zeros('f32', [0, 8]);
    const dout0 = Tensor.zeros('f32', [0, 4]);
    const w8 = Tensor.zeros('f32', [4, 8]);
    const dw = Tensor.zeros('f32', [4, 8]);
    dw.fill(3);
    const dinp0 = Tensor.zeros('f32', [0, 8]);
    ops.matmulBackward(dinp0, dw, dout0, inp0, w8);
    t.ok(dw.toFloat32().every((v) => v === 3), 'N=0: dweight unchanged');
    for (const z of [inp, weight, out, inp0, dout0, w8, dw, dinp0]) z.dispose();
  });
}

t.test('portable gemm: the same bits for 1, 2 and 3 threads', async (t) => {
  setGemmEngine('portable');
  setIsaLimit(detected);
  const [m, n, k] = [101, 530, 300];
  const { t: a } = tensorOf(randn(m * k), [k, m], 'f32');
  const { t: b } = tensorOf(randn(k * n), [k, n], 'f32');
  const results: Float32Array[] = [];
  for (const threads of [1, 2, 3]) {
    setThreads(threads);
    const c = Tensor.zeros('f32', [m, n]);
    ops.gemm(c, a, b, true, false, 1, 0);
    results.push(c.toFloat32());
    c.dispose();
  }
  setThreads(0);
  t.same(results[1], results[0], '2 threads == 1 thread');
  t.same(results[2], results[0], '3 threads == 1 thread');
  for (const z of [a, b]) z.dispose();
});

t.test('linear and gemm reject wrong shapes and dtypes naming the op', async (t) => {
  setGemmEngine(info.gemm.oneDnnAvailable ? 'onednn' : 'portable');
  setIsaLimit(detected);
  const inp = Tensor.zeros('f32', [4, 32]);
  const inpH = Tensor.zeros('bf16', [4, 32]);
  const w = Tensor.zeros('f32', [16, 32]);
  const w1 = Tensor.zeros('f32', [512]);
  const w33 = Tensor.zeros('f32', [16, 33]);
  const w32 = Tensor.zeros('f32', [32, 32]);
  const out = Tensor.zeros('f32', [4, 16]);
  const out5 = Tensor.zeros('f32', [5, 16]);
  const dwH = Tensor.zeros('bf16', [16, 32]);
  t.throws(() => ops.matmulForward(out, inp, w1), /matmulForward: 'weight' must be 2-D \(OC, C\), got f32\[512\]/);
  t.throws(() => ops.matmulForward(out, inp, w33), /matmulForward: 'inp' f32\[4,32\] must end in 33/);
  t.throws(() => ops.matmulForward(out, inpH, w), /matmulForward: 'weight' f32\[16,32\] and 'inp' bf16\[4,32\] must have the same dtype/);
  t.throws(() => ops.matmulForward(out5, inp, w), /matmulForward: 'out' f32\[5,16\] must hold 4 rows of 16/);
  t.throws(() => ops.matmulForward(inp, inp, w32), /matmulForward: 'out' and 'inp' overlap in memory/);
  t.throws(() => ops.matmulBackward(null, dwH, out, inp, w), /matmulBackward: 'dweight' must be f32, got bf16\[16,32\]/);
  t.throws(() => ops.matmulBackward(out, null, out, inp, w), /matmulBackward: 'dinp' must have 128 elements, got f32\[4,16\]/);
  t.throws(() => ops.matmulBackward(null, null, out5, inp, w), /matmulBackward: 'dout' f32\[5,16\] must hold 4 rows of 16/);
  const a = Tensor.zeros('f32', [4, 8]);
  const b = Tensor.zeros('f32', [9, 5]);
  const bH = Tensor.zeros('bf16', [8, 5]);
  const c = Tensor.zeros('f32', [4, 5]);
  t.throws(() => ops.gemm(c, a, b, false, false, 1, 0), /gemm: op\(a\) \[4,8\] and op\(b\) \[9,5\] do not chain/);
  t.throws(() => ops.gemm(c, a, bH, false, false, 1, 0), /gemm: 'b' bf16\[8,5\] and 'a' f32\[4,8\] must have the same dtype/);
  t.throws(() => ops.gemm(c, a, a, false, true, 1, 0), /gemm: 'c' must have shape \[4,4\], got f32\[4,5\]/);
  t.throws(() => ops.gemm(c, a, a, false, true, 1, Number.NaN), /gemm: alpha and beta must be finite/);
  await t.rejects(ops.gemmAsync(c, a, b, false, false, 1, 0), /gemm: op\(a\) \[4,8\] and op\(b\) \[9,5\] do not chain/);
  for (const z of [inp, inpH, w, w1, w33, w32, out, out5, dwH, a, b, bH, c]) z.dispose();
});
