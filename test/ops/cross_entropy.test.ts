// cross_entropy: the fused LM head + softmax cross-entropy against float64, both dtypes, both GEMM engines,
// every ISA path of the softmax rows: per-row losses and their sum, dinp (overwritten), dwte (accumulated),
// ignored rows, a padded vocabulary that is never predicted, several row blocks, a finite-difference check,
// and argument errors.
import t from 'tap';
import { ops, Tensor, backendInfo, setGemmEngine, setIsaLimit } from '../../lib/index';
import { crossEntropyRef } from '../helpers/op-references';
import { randInt, randn, relErr, seed, tensorOf, toF64, TOL } from '../helpers/reference';

t.comment(`seed ${seed}`);

const IGNORE = -100;

// Every fifth row (from the fourth) is ignored; row 0 always targets the last real id.
function makeTargets(N: number, V: number, ignore = IGNORE): Int32Array {
  const tg = randInt(N, V);
  for (let i = 3; i < N; i += 5) tg[i] = ignore;
  tg[0] = V - 1;
  return tg;
}

function rowsAreZero(a: Float64Array | Float32Array, rows: Iterable<number>, C: number): boolean {
  for (const i of rows) for (let k = 0; k < C; k++) if (a[i * C + k] !== 0) return false;
  return true;
}

const maxErr: Record<string, number> = {};
function note(key: string, e: number): number {
  maxErr[key] = Math.max(maxErr[key] ?? 0, e);
  return e;
}

/** Fresh random inputs of one case, its targets and the float64 reference (gradScale 1 / (N + 1)). */
function makeCase(N: number, C: number, V: number, Vp: number, dtype: 'f32' | 'bf16') {
  const gradScale = 1 / (N + 1);
  const wRaw = randn(Vp * C, 0.3);
  // Padded rows are large: if they took part in the softmax they would dominate it.
  for (let j = V; j < Vp; j++) for (let k = 0; k < C; k++) wRaw[j * C + k] = 25 * Math.sign(wRaw[j * C + k] || 1);
  const { t: inp, x } = tensorOf(randn(N * C), [N, C], dtype);
  const { t: wte, x: w } = tensorOf(wRaw, [Vp, C], dtype);
  const tg = makeTargets(N, V);
  const targets = Tensor.from(tg);
  return { gradScale, inp, wte, tg, targets, ref: crossEntropyRef(x, w, tg, C, V, Vp, IGNORE, gradScale) };
}

const engines: ('onednn' | 'portable')[] = backendInfo().gemm.oneDnnAvailable ? ['onednn', 'portable'] : ['portable'];
const cases: [N: number, C: number, V: number, Vp: number][] = [
  [1, 32, 33, 40],
  [7, 32, 33, 40],
  [7, 48, 33, 40],
  [129, 32, 33, 40],
  [129, 48, 33, 40],
  [1100, 48, 1000, 1024], // several row chunks: f32 blocks of 512, 512, 76; bf16 blocks of 1024 (two logits chunks) and 76
];

for (const engine of engines) {
  for (const dtype of ['f32', 'bf16'] as const) {
    for (const [N, C, V, Vp] of cases) {
      t.test(`crossEntropy ${dtype} N=${N} C=${C} V=${V} Vp=${Vp} gemm=${engine}`, async (t) => {
        setGemmEngine(engine);
        const { gradScale, inp, wte, tg, targets, ref } = makeCase(N, C, V, Vp, dtype);
        const ignored = [...tg.keys()].filter((i) => tg[i] === IGNORE);
        const padded = Array.from({ length: Vp - V }, (_, j) => V + j);

        const losses = Tensor.zeros('f32', [N]);
        const total = ops.crossEntropyForward(losses, inp, wte, targets, V, IGNORE);
        t.ok(note(`loss ${dtype}`, relErr(toF64(losses), ref.losses)) <= TOL.f32, `forward losses rel err ${relErr(toF64(losses), ref.losses)}`);
        t.ok(note(`total ${dtype}`, Math.abs(total - ref.total) / ref.total) <= TOL.f32, `forward total ${total} vs ${ref.total}`);

        const losses2 = Tensor.zeros('f32', [N]);
        const dinp = Tensor.zeros(dtype, [N, C]);
        dinp.fill(7); // overwritten, not accumulated
        const dwte = Tensor.zeros('f32', [Vp, C]);
        const total2 = ops.crossEntropyForwardBackward(losses2, dinp, dwte, inp, wte, targets, V, IGNORE, gradScale);
        t.equal(total2, total, 'forward+backward returns the same loss sum as forward');
        t.same(toF64(losses2), toF64(losses), 'and the same per-row losses');
        const dinp1 = toF64(dinp);
        t.ok(note(`dinp ${dtype}`, relErr(dinp1, ref.dinp)) <= TOL[dtype], `dinp rel err ${relErr(dinp1, ref.dinp)}`);
        t.ok(note(`dwte ${dtype}`, relErr(toF64(dwte), ref.dwte)) <= TOL[dtype], `dwte rel err ${relErr(toF64(dwte), ref.dwte)}`);
        t.ok(rowsAreZero(dwte.toFloat32(), padded, C), 'padded vocabulary rows of dwte stay exactly 0');
        t.ok(rowsAreZero(dinp1, ignored, C), 'ignored rows have zero dinp');
        t.ok(ignored.every((i) => losses2.toFloat32()[i] === 0), 'ignored rows have loss 0');

        // A second call accumulates into dwte and overwrites dinp.
        const total3 = await ops.crossEntropyForwardBackwardAsync(losses2, dinp, dwte, inp, wte, targets, V, IGNORE, gradScale);
        t.equal(total3, total, 'async form returns the same loss sum');
        t.same(toF64(dinp), dinp1, 'dinp is overwritten by the second call');
        const twice = ref.dwte.map((d) => 2 * d);
        t.ok(note(`dwte ${dtype}`, relErr(toF64(dwte), twice)) <= TOL[dtype], `dwte after two calls rel err ${relErr(toF64(dwte), twice)}`);
        t.ok(rowsAreZero(dwte.toFloat32(), padded, C), 'padded rows still 0 after two calls');

        for (const a of [inp, wte, targets, losses, losses2, dinp, dwte]) a.dispose();
      });
    }
  }
}

// The softmax rows have an AVX-512 path (avx512: bf16 dlogits rounded with integer arithmetic; avx512_bf16:
// with vcvtneps2bf16) and the multiversioned loops (any lower level): each against the same float64 reference
// and bounds, on a case of one block and one of several blocks with partial logits chunks.
const isaLevels = [...new Set(['scalar', 'avx512', backendInfo().cpu.detectedIsa] as const)];
for (const level of isaLevels) {
  for (const dtype of ['f32', 'bf16'] as const) {
    for (const [N, C, V, Vp] of [[7, 48, 33, 40], [1100, 48, 1000, 1024]] as const) {
      t.test(`crossEntropy ${dtype} N=${N} C=${C} V=${V} Vp=${Vp} isa=${level}`, async (t) => {
        setGemmEngine(engines[0]);
        setIsaLimit(level);
        t.teardown(() => void setIsaLimit(backendInfo().cpu.detectedIsa));
        const { gradScale, inp, wte, targets, ref } = makeCase(N, C, V, Vp, dtype);
        const losses = Tensor.zeros('f32', [N]);
        const total = ops.crossEntropyForward(losses, inp, wte, targets, V, IGNORE);
        t.ok(relErr(toF64(losses), ref.losses) <= TOL.f32, `forward losses rel err ${relErr(toF64(losses), ref.losses)}`);
        const losses2 = Tensor.zeros('f32', [N]);
        const dinp = Tensor.zeros(dtype, [N, C]);
        const dwte = Tensor.zeros('f32', [Vp, C]);
        dwte.fill(0.5); // accumulated into
        const total2 = ops.crossEntropyForwardBackward(losses2, dinp, dwte, inp, wte, targets, V, IGNORE, gradScale);
        t.ok(Math.abs(total2 - total) <= 1e-6 * Math.abs(total), `forward+backward loss sum ${total2} vs forward ${total}`);
        t.ok(relErr(toF64(losses2), ref.losses) <= TOL.f32, `forward+backward losses rel err ${relErr(toF64(losses2), ref.losses)}`);
        t.ok(relErr(toF64(dinp), ref.dinp) <= TOL[dtype], `dinp rel err ${relErr(toF64(dinp), ref.dinp)}`);
        const dwteRef = ref.dwte.map((d, i) => (i < V * C ? d + 0.5 : 0.5));
        t.ok(relErr(toF64(dwte), dwteRef) <= TOL[dtype], `dwte rel err ${relErr(toF64(dwte), dwteRef)}`);
        const pad = dwte.toFloat32().subarray(V * C);
        t.ok(pad.every((v) => v === 0.5), 'padded vocabulary rows of dwte untouched');
        for (const a of [inp, wte, targets, losses, losses2, dinp, dwte]) a.dispose();
      });
    }
  }
}

t.test('crossEntropy: every row ignored, custom ignoreIndex, async forward', async (t) => {
  const [N, C, V, Vp] = [5, 32, 33, 40];
  const inp = Tensor.from(Float32Array.from(randn(N * C)), [N, C]);
  const wte = Tensor.from(Float32Array.from(randn(Vp * C)), [Vp, C]);
  const targets = Tensor.from(new Int32Array(N).fill(-1));
  const losses = Tensor.zeros('f32', [N]);
  losses.fill(3);
  const dinp = Tensor.zeros('f32', [N, C]);
  dinp.fill(3);
  const dwte = Tensor.zeros('f32', [Vp, C]);
  t.equal(await ops.crossEntropyForwardAsync(losses, inp, wte, targets, V, -1), 0);
  t.equal(ops.crossEntropyForwardBackward(losses, dinp, dwte, inp, wte, targets, V, -1, 1), 0);
  t.ok(losses.toFloat32().every((v) => v === 0), 'losses 0');
  t.ok(dinp.toFloat32().every((v) => v === 0), 'dinp 0');
  t.ok(dwte.toFloat32().every((v) => v === 0), 'dwte untouched');
  // With ignoreIndex -1, -100 is an ordinary (out of range) target.
  targets.copyFrom(Int32Array.from([0, 1, -100, 2, -1]));
  t.throws(() => ops.crossEntropyForward(losses, inp, wte, targets, V, -1), /targets\[2\] = -100 is outside/);
  for (const a of [inp, wte, targets, losses, dinp, dwte]) a.dispose();
});

t.test('crossEntropy: finite differences of the f32 loss w.r.t. inp', async (t) => {
  const [N, C, V, Vp] = [7, 32, 33, 40];
  const xs = Float32Array.from(randn(N * C));
  const inp = Tensor.from(xs, [N, C]);
  const wte = Tensor.from(Float32Array.from(randn(Vp * C, 0.3)), [Vp, C]);
  const tg = makeTargets(N, V);
  const targets = Tensor.from(tg);
  const losses = Tensor.zeros('f32', [N]);
  const dinp = Tensor.zeros('f32', [N, C]);
  const dwte = Tensor.zeros('f32', [Vp, C]);
  ops.crossEntropyForwardBackward(losses, dinp, dwte, inp, wte, targets, V, IGNORE, 1);
  const grad = dinp.toFloat32();
  const h = 1e-2;
  let worst = 0;
  for (const [i, k] of [[0, 0], [1, 5], [2, 31], [4, 17], [6, 9], [3, 3]]) {
    const plus = Float32Array.from(xs);
    const minus = Float32Array.from(xs);
    plus[i * C + k] += h;
    minus[i * C + k] -= h;
    inp.copyFrom(plus);
    ops.crossEntropyForward(losses, inp, wte, targets, V, IGNORE);
    const lp = losses.toFloat32()[i];
    inp.copyFrom(minus);
    ops.crossEntropyForward(losses, inp, wte, targets, V, IGNORE);
    const lm = losses.toFloat32()[i];
    const fd = (lp - lm) / (plus[i * C + k] - minus[i * C + k]);
    const err = Math.abs(fd - grad[i * C + k]);
    worst = Math.max(worst, err);
    t.ok(err <= 1e-3 * Math.max(1, Math.abs(fd)), `d loss[${i}] / d inp[${i},${k}]: fd ${fd} vs ${grad[i * C + k]}`);
  }
  note('finite difference abs', worst);
  for (const a of [inp, wte, targets, losses, dinp, dwte]) a.dispose();
});

t.test('crossEntropy rejects bad arguments, naming the op', async (t) => {
  const [N, C, V, Vp] = [4, 32, 33, 40];
  const made: Tensor[] = [];
  const z = (dtype: 'f32' | 'bf16', shape: number[]) => {
    const x = Tensor.zeros(dtype, shape);
    made.push(x);
    return x;
  };
  const ids = (v: number[]) => {
    const x = Tensor.from(Int32Array.from(v));
    made.push(x);
    return x;
  };
  const [inp, wte, losses, dinp, dwte] = [z('f32', [N, C]), z('f32', [Vp, C]), z('f32', [N]), z('f32', [N, C]), z('f32', [Vp, C])];
  const good = ids([0, 1, IGNORE, 32]);
  type Fwd = Partial<{ losses: Tensor; inp: Tensor; wte: Tensor; targets: Tensor; vocabSize: number }>;
  type Bwd = Fwd & Partial<{ dinp: Tensor; dwte: Tensor; gradScale: number }>;
  const fwd = (o: Fwd = {}) =>
    ops.crossEntropyForward(o.losses ?? losses, o.inp ?? inp, o.wte ?? wte, o.targets ?? good, o.vocabSize ?? V, IGNORE);
  const fb = (o: Bwd = {}) =>
    ops.crossEntropyForwardBackward(o.losses ?? losses, o.dinp ?? dinp, o.dwte ?? dwte, o.inp ?? inp, o.wte ?? wte,
      o.targets ?? good, o.vocabSize ?? V, IGNORE, o.gradScale ?? 1);

  const bad = ids([0, 1, 33, 2]);
  losses.fill(5);
  dwte.fill(5);
  t.throws(() => fwd({ targets: bad }), /crossEntropyForward: targets\[2\] = 33 is outside the vocabulary \[0, 33\)/);
  t.throws(() => fb({ targets: bad }), /crossEntropyForwardBackward: targets\[2\] = 33 is outside/);
  await t.rejects(ops.crossEntropyForwardBackwardAsync(losses, dinp, dwte, inp, wte, bad, V, IGNORE, 1), /targets\[2\] = 33/);
  t.ok(losses.toFloat32().every((v) => v === 5) && dwte.toFloat32().every((v) => v === 5), 'nothing written before the check');
  t.throws(() => fwd({ targets: ids([0, -7, 1, 2]) }), /targets\[1\] = -7 is outside/);

  const sameDType = /crossEntropyForward: 'wte' bf16\[40,32\] and 'inp' f32\[4,32\] must have the same dtype/;
  t.throws(() => fwd({ wte: z('bf16', [Vp, C]) }), sameDType);
  t.throws(() => fwd({ targets: z('f32', [N]) }), /crossEntropyForward: 'targets' must be i32/);
  t.throws(() => fwd({ losses: z('bf16', [N]) }), /crossEntropyForward: 'losses' must be f32/);
  t.throws(() => fwd({ inp: z('f32', [N, C + 1]) }), /crossEntropyForward: 'inp' must have shape \[4,32\]/);
  t.throws(() => fwd({ losses: z('f32', [N + 1]) }), /crossEntropyForward: 'losses' must have 4 elements/);
  t.throws(() => fwd({ vocabSize: Vp + 1 }), /crossEntropyForward: vocabSize 41 must be in \[1, 40\]/);
  t.throws(() => fwd({ vocabSize: 0 }), /vocabSize 0 must be in/);
  t.throws(() => fb({ dwte: z('bf16', [Vp, C]) }), /crossEntropyForwardBackward: 'dwte' must be f32/);
  t.throws(() => fb({ dwte: z('f32', [V, C]) }), /crossEntropyForwardBackward: 'dwte' must have shape \[40,32\]/);
  const dinpDType = /crossEntropyForwardBackward: 'dinp' bf16\[4,32\] and 'inp' f32\[4,32\] must have the same dtype/;
  t.throws(() => fb({ dinp: z('bf16', [N, C]) }), dinpDType);
  t.throws(() => fb({ gradScale: NaN }), /crossEntropyForwardBackward: gradScale must be finite/);
  t.throws(() => fb({ dinp: inp }), /crossEntropyForwardBackward: 'dinp' and 'inp' overlap/);
  await t.rejects(ops.crossEntropyForwardAsync(losses, z('f32', [N, C + 1]), wte, good, V, IGNORE), /crossEntropyForward: 'inp' must have shape/);
  for (const x of made) x.dispose();
});

t.test('max errors observed', async (t) => {
  setGemmEngine(engines[0]);
  t.comment(JSON.stringify(maxErr));
});
