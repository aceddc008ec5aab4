// adamw: the fused AdamW step against a float64 step-by-step reference (torch.optim.AdamW semantics) over
// several steps, with a decay mask, gradScale, segments crossing the kernel's blocks, the bf16 compute copy
// bit-exact, and the segment and argument checks.
import t from 'tap';
import { ops, Tensor } from '../../lib/index';
import { ADAMW_ARENA_SIZE, ADAMW_LAYOUT, adamwRef, type AdamWHyper } from '../helpers/op-references';
import { bf16Bits, randn, relErr, seed, TOL } from '../helpers/reference';

t.comment(`seed ${seed}`);

const layout = ADAMW_LAYOUT;
const P = ADAMW_ARENA_SIZE;

function segmentsOf(triples: readonly (readonly [number, number, number])[]): Int32Array {
  return Int32Array.from(triples.flat());
}

t.test('adamw: five steps against float64, decay mask, gradScale, bf16 copy', async (t) => {
  const h: AdamWHyper = { lr: 1e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };
  const decay = new Uint8Array(P);
  for (const [o, n, d] of layout) decay.fill(d, o, o + n);
  const p0 = Float64Array.from(Float32Array.from(randn(P, 0.1)));
  const pRef = Float64Array.from(p0);
  const mRef = new Float64Array(P);
  const vRef = new Float64Array(P);
  const params = Tensor.from(Float32Array.from(p0));
  const grads = Tensor.zeros('f32', [P]);
  const m = Tensor.zeros('f32', [P]);
  const v = Tensor.zeros('f32', [P]);
  const pb = Tensor.zeros('bf16', [P]);
  // Segments are passed out of order: only coverage matters.
  const segments = segmentsOf([...layout].reverse());
  const scales = [1, 0.5, 1, 0.25, 1];
  let worst = { update: 0, m: 0, v: 0 };
  for (let step = 1; step <= 5; step++) {
    const g = Float64Array.from(Float32Array.from(randn(P, step === 3 ? 10 : 0.01)));
    grads.copyFrom(Float32Array.from(g));
    const gradScale = scales[step - 1];
    adamwRef(pRef, g, mRef, vRef, decay, h, step, gradScale);
    if (step === 4) {
      await ops.adamwUpdateAsync(params, grads, m, v, null, segments, h.lr, h.beta1, h.beta2, h.eps, h.weightDecay, step, gradScale);
    } else {
      ops.adamwUpdate(params, grads, m, v, pb, segments, h.lr, h.beta1, h.beta2, h.eps, h.weightDecay, step, gradScale);
    }
    const p = Float64Array.from(params.toFloat32());
    // The displacement from the start (the params themselves would hide any error in the update). Over the
    // whole arena: a single wrong element moves this by ~1/sqrt(P) = 3e-3. The decay mask is checked exactly
    // in the next test; tiny segments alone would make a flaky relative error (displacements can cancel).
    const got = p.map((x, i) => x - p0[i]);
    const want = pRef.map((x, i) => x - p0[i]);
    const e = relErr(got, want);
    worst.update = Math.max(worst.update, e);
    t.ok(e <= TOL.f32, `step ${step}: params displacement rel err ${e}`);
    const em = relErr(Float64Array.from(m.toFloat32()), mRef);
    const ev = relErr(Float64Array.from(v.toFloat32()), vRef);
    worst = { update: worst.update, m: Math.max(worst.m, em), v: Math.max(worst.v, ev) };
    t.ok(em <= TOL.f32 && ev <= TOL.f32, `step ${step}: m rel err ${em}, v rel err ${ev}`);
    if (step !== 4) {
      const bits = pb.toBf16Bits();
      let mismatches = 0;
      for (let i = 0; i < P; i++) if (bits[i] !== bf16Bits(p[i])) mismatches++;
      t.equal(mismatches, 0, `step ${step}: paramsBf16 is bf16(params) bit for bit`);
    }
  }
  t.comment(`max rel errors ${JSON.stringify(worst)}`);
  for (const x of [params, grads, m, v, pb]) x.dispose();
});

t.test('adamw: zero gradients leave only the decoupled decay, exactly where decay = 1', async (t) => {
  const h: AdamWHyper = { lr: 0.5, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.2 };
  const p0 = Float32Array.from(randn(P));
  const params = Tensor.from(p0);
  const grads = Tensor.zeros('f32', [P]);
  const m = Tensor.zeros('f32', [P]);
  const v = Tensor.zeros('f32', [P]);
  ops.adamwUpdate(params, grads, m, v, null, segmentsOf(layout), h.lr, h.beta1, h.beta2, h.eps, h.weightDecay, 1, 1);
  const p = params.toFloat32();
  const factor = Math.fround(1 - h.lr * h.weightDecay);
  let bad = 0;
  for (const [o, n, d] of layout) {
    for (let i = o; i < o + n; i++) if (p[i] !== (d ? Math.fround(p0[i] * factor) : p0[i])) bad++;
  }
  t.equal(bad, 0, 'p * (1 - lr wd) in decayed segments, unchanged elsewhere');
  for (const x of [params, grads, m, v]) x.dispose();
});

t.test('adamw rejects bad segments and arguments, naming the op', async (t) => {
  const n = 10;
  const p = Tensor.zeros('f32', [n]);
  const g = Tensor.zeros('f32', [n]);
  const m = Tensor.zeros('f32', [n]);
  const v = Tensor.zeros('f32', [n]);
  const hb = Tensor.zeros('bf16', [n]);
  const short = Tensor.zeros('f32', [n - 1]);
  const pbWrong = Tensor.zeros('f32', [n]);
  const run = (segs: number[], o: { step?: number; beta1?: number; m?: Tensor; v?: Tensor; pb?: Tensor | null; grads?: Tensor } = {}) =>
    ops.adamwUpdate(p, o.grads ?? g, o.m ?? m, o.v ?? v, o.pb ?? null, Int32Array.from(segs), 1e-3, o.beta1 ?? 0.9, 0.95, 1e-8, 0.1, o.step ?? 1, 1);
  t.doesNotThrow(() => run([5, 5, 1, 0, 5, 0]), 'two segments tiling the arena');
  t.throws(() => run([0, 6, 1, 5, 5, 0]), /adamwUpdate: segment 1 \[5, 10\) overlaps segment 0 \[0, 6\)/);
  t.throws(() => run([0, 4, 1, 5, 5, 0]), /adamwUpdate: elements \[4, 5\) are not covered by any segment/);
  t.throws(() => run([0, 9, 1]), /adamwUpdate: elements \[9, 10\) are not covered by any segment/);
  t.throws(() => run([0, 5, 1, 5, 6, 0]), /adamwUpdate: segment 1 \[offset 5, length 6\] is outside the arena of 10 elements/);
  t.throws(() => run([-1, 11, 1]), /adamwUpdate: segment 0 \[offset -1, length 11\] is outside/);
  t.throws(() => run([0, 10, 2]), /adamwUpdate: segment 0 has decay 2; it must be 0 or 1/);
  t.throws(() => run([0, 10]), /adamwUpdate: 'segments' must hold \[offset, length, decay\] triples, got 2 numbers/);
  t.throws(() => run([0, 10, 1], { step: 0 }), /adamwUpdate: step must be >= 1/);
  t.throws(() => run([0, 10, 1], { beta1: 1 }), /adamwUpdate: beta1 must be in \[0, 1\)/);
  t.throws(() => run([0, 10, 1], { m: hb }), /adamwUpdate: 'm' must be f32, got bf16\[10\]/);
  t.throws(() => run([0, 10, 1], { v: short }), /adamwUpdate: 'v' must have 10 elements, got f32\[9\]/);
  t.throws(() => run([0, 10, 1], { pb: pbWrong }), /adamwUpdate: 'paramsBf16' must be bf16/);
  t.throws(() => run([0, 10, 1], { grads: m }), /adamwUpdate: 'grads' and 'm' overlap in memory/);
  await t.rejects(
    ops.adamwUpdateAsync(p, g, m, v, null, Int32Array.from([0, 6, 1, 5, 5, 0]), 1e-3, 0.9, 0.95, 1e-8, 0.1, 1, 1),
    /adamwUpdate: segment 1 \[5, 10\) overlaps/,
  );
  for (const x of [p, g, m, v, hb, short, pbWrong]) x.dispose();
});
