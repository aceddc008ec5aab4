// AdamW class: decay segments from an arena laid out like MPT (matrices decay, LayerNorm weights do not;
// the embedding and custom rules), several steps against a float64 torch.optim.AdamW reference driven by
// the real schedules and clipping scale, the bf16 compute copy, the split into several native calls, the
// checkpoint state (resume is bit-identical), and every rejected argument.
import t from 'tap';
import { Arena, DisposedError, type ArenaEntry } from '../../lib/index';
import { AdamW, clipGradNorm, cosineWithWarmup, ptwdWeightDecay } from '../../lib/optim/index';
import { randn, relErr, roundBf16, seed, TOL } from '../helpers/reference';

t.comment(`seed ${seed}`);

// A two-block MPT (d_model C, vocabulary V, expansion 4, tied wte, no biases), names as llm-foundry's.
const V = 50;
const C = 12;
function mptLayout(nLayers = 2): [string, number[]][] {
  const layout: [string, number[]][] = [['transformer.wte.weight', [V, C]]];
  for (let i = 0; i < nLayers; i++) {
    const b = `transformer.blocks.${i}`;
    layout.push(
      [`${b}.norm_1.weight`, [C]],
      [`${b}.attn.Wqkv.weight`, [3 * C, C]],
      [`${b}.attn.out_proj.weight`, [C, C]],
      [`${b}.norm_2.weight`, [C]],
      [`${b}.ffn.up_proj.weight`, [4 * C, C]],
      [`${b}.ffn.down_proj.weight`, [C, 4 * C]],
    );
  }
  layout.push(['transformer.norm_f.weight', [C]]);
  return layout;
}

const isNorm = (name: string) => /norm/.test(name);

function arenaWith(layout: [string, number[]][], data?: Float32Array): Arena {
  const a = new Arena('f32', layout);
  if (data) a.buffer.copyFrom(data);
  return a;
}

function bf16Bits(x: number): number {
  const f = new Float32Array([roundBf16(x)]);
  return new Uint32Array(f.buffer)[0] >>> 16;
}

function bf16Mismatches(copy: Arena, params: Arena): number {
  const bits = copy.buffer.toBf16Bits();
  const p = params.buffer.toFloat32();
  let bad = 0;
  for (let i = 0; i < p.length; i++) if (bits[i] !== bf16Bits(p[i])) bad++;
  return bad;
}

t.test('decay segments from an MPT layout: matrices decay, norms do not', async (t) => {
  const params = arenaWith(mptLayout());
  const grads = params.like();
  const opt = new AdamW(params, grads);
  const segs = Array.from(opt.segments);
  t.equal(segs.length, 3 * params.entries.length, 'one [offset, length, decay] triple per entry');
  params.entries.forEach((e, i) => {
    t.same(segs.slice(3 * i, 3 * i + 3), [e.offset, e.numel, isNorm(e.name) ? 0 : 1], `${e.name} [${e.shape}]`);
  });
  t.equal(opt.decays('transformer.wte.weight'), true, 'the tied embedding decays by default');
  t.equal(opt.decays('transformer.blocks.1.norm_2.weight'), false);
  t.throws(() => opt.decays('lm_head.weight'), /AdamW.decays: no entry 'lm_head.weight'/);
  t.same([opt.beta1, opt.beta2, opt.eps], [0.9, 0.95, 1e-8], "the paper's defaults");
  opt.dispose();

  const noEmb = new AdamW(params, grads, { decayEmbeddings: false });
  t.equal(noEmb.decays('transformer.wte.weight'), false, 'decayEmbeddings: false');
  t.equal(noEmb.decays('transformer.blocks.0.attn.Wqkv.weight'), true);
  t.equal(noEmb.decays('transformer.norm_f.weight'), false);
  noEmb.dispose();

  const custom = new AdamW(params, grads, { decay: (e: ArenaEntry) => e.name.endsWith('Wqkv.weight') });
  const decayed = params.entries.filter((e) => custom.decays(e.name)).map((e) => e.name);
  t.same(decayed, ['transformer.blocks.0.attn.Wqkv.weight', 'transformer.blocks.1.attn.Wqkv.weight'], 'explicit predicate');
  custom.dispose();
  params.dispose();
  grads.dispose();
});

// float64 torch.optim.AdamW step over the whole arena: p -= lr wd p (decayed elements), then Adam.
function adamwRef(
  p: Float64Array, g: Float64Array, m: Float64Array, v: Float64Array, decay: Uint8Array,
  h: { lr: number; wd: number; b1: number; b2: number; eps: number; gs: number }, step: number,
): void {
  const bc1 = 1 - h.b1 ** step;
  const bc2 = 1 - h.b2 ** step;
  for (let i = 0; i < p.length; i++) {
    const gi = g[i] * h.gs;
    m[i] = h.b1 * m[i] + (1 - h.b1) * gi;
    v[i] = h.b2 * v[i] + (1 - h.b2) * gi * gi;
    if (decay[i]) p[i] -= h.lr * h.wd * p[i];
    p[i] -= (h.lr * (m[i] / bc1)) / (Math.sqrt(v[i] / bc2) + h.eps);
  }
}

t.test('steps against a float64 AdamW, with schedules, the clipping scale and the bf16 copy', async (t) => {
  const layout = mptLayout();
  const p0 = Float32Array.from(randn(layout.reduce((n, [, s]) => n + s.reduce((a, b) => a * b, 1), 0), 0.5));
  const params = arenaWith(layout, p0);
  const grads = params.like();
  const opt = new AdamW(params, grads, { computeCopy: true });
  t.equal(bf16Mismatches(opt.computeCopy!, params), 0, 'the compute copy starts as bf16(params)');
  t.equal(opt.callsPerStep, 1);
  const decay = new Uint8Array(params.numel);
  for (const e of params.entries) if (!isNorm(e.name)) decay.fill(1, e.offset, e.offset + e.numel);
  const P = params.numel;
  const pRef = Float64Array.from(p0);
  const mRef = new Float64Array(P);
  const vRef = new Float64Array(P);
  // Large lr and weight decay so a wrong decay mask or bias correction moves the result far past f32 error.
  const lrOpts = { peakLr: 5e-2, warmupSteps: 2, totalSteps: 6 };
  const wdOpts = { totalSteps: 6, values: [0, 2, 0.5] };
  const scales: number[] = [];
  for (let s = 0; s < 6; s++) {
    // Gradient norms around 0.3 .. 30: some steps are clipped, some not.
    const g = Float32Array.from(randn(P, [0.005, 0.5, 0.02, 0.3, 0.001, 0.1][s]));
    grads.buffer.copyFrom(g);
    const { scale, nonFinite } = clipGradNorm(grads, 1.0);
    t.equal(nonFinite, 0);
    scales.push(scale);
    const lr = cosineWithWarmup(s, lrOpts);
    const weightDecay = ptwdWeightDecay(s, wdOpts);
    if (s % 2) await opt.stepAsync({ lr, weightDecay, gradScale: scale });
    else opt.step({ lr, weightDecay, gradScale: scale });
    t.equal(opt.stepCount, s + 1, 'step count');
    adamwRef(pRef, Float64Array.from(g), mRef, vRef, decay, { lr, wd: weightDecay, b1: 0.9, b2: 0.95, eps: 1e-8, gs: scale }, s + 1);
    const got = Float64Array.from(params.buffer.toFloat32()).map((x, i) => x - p0[i]);
    const want = pRef.map((x, i) => x - p0[i]);
    t.ok(relErr(got, want) <= TOL.f32, `step ${s}: displacement rel err ${relErr(got, want)}`);
    // Per entry too, so a wrong mask on a small LayerNorm vector cannot hide in the total.
    let worst = 0;
    for (const e of params.entries) {
      worst = Math.max(worst, relErr(got.subarray(e.offset, e.offset + e.numel), want.subarray(e.offset, e.offset + e.numel)));
    }
    t.ok(worst <= 1e-4, `step ${s}: worst entry displacement rel err ${worst}`);
    const em = relErr(Float64Array.from(opt.m.buffer.toFloat32()), mRef);
    const ev = relErr(Float64Array.from(opt.v.buffer.toFloat32()), vRef);
    t.ok(em <= TOL.f32 && ev <= TOL.f32, `step ${s}: m rel err ${em}, v rel err ${ev}`);
    t.equal(bf16Mismatches(opt.computeCopy!, params), 0, `step ${s}: compute copy is bf16(params) bit for bit`);
  }
  t.ok(scales.some((x) => x < 0.99) && scales.some((x) => x === 1), `both clipped and unclipped steps: ${scales.map((x) => x.toFixed(3))}`);
  const copy = opt.computeCopy!;
  opt.dispose();
  opt.dispose();
  t.ok(copy.disposed && opt.m.disposed && opt.v.disposed, 'dispose frees the moments and the owned copy; idempotent');
  t.notOk(params.disposed || grads.disposed, 'params and grads belong to the caller');
  t.throws(() => opt.step({ lr: 1, weightDecay: 0 }), DisposedError);
  params.dispose();
  grads.dispose();
});

t.test('zero gradients leave exactly p (1 - lr wd) on matrices and the norms untouched', async (t) => {
  const layout = mptLayout(1);
  const params = arenaWith(layout);
  const p0 = Float32Array.from(randn(params.numel));
  params.buffer.copyFrom(p0);
  const grads = params.like();
  const opt = new AdamW(params, grads, { decayEmbeddings: false });
  opt.step({ lr: 0.1, weightDecay: 0.5 });
  const p = params.buffer.toFloat32();
  const f = Math.fround(1 - 0.1 * 0.5);
  for (const e of params.entries) {
    const d = !isNorm(e.name) && e.name !== 'transformer.wte.weight';
    let bad = 0;
    for (let i = e.offset; i < e.offset + e.numel; i++) if (p[i] !== (d ? Math.fround(p0[i] * f) : p0[i])) bad++;
    t.equal(bad, 0, `${e.name}: ${d ? 'decayed' : 'unchanged'}`);
  }
  opt.dispose();
  params.dispose();
  grads.dispose();
});

t.test('an arena split over several native calls updates bit for bit like one call', async (t) => {
  const layout = mptLayout();
  const p0 = Float32Array.from(randn(layout.reduce((n, [, s]) => n + s.reduce((a, b) => a * b, 1), 0)));
  const pa = arenaWith(layout, p0);
  const pb = arenaWith(layout, p0);
  const grads = pa.like();
  const copyB = pb.like('bf16');
  const one = new AdamW(pa, grads, { computeCopy: true });
  const split = new AdamW(pb, grads, { computeCopy: copyB, maxElementsPerCall: 1000 });
  t.equal(split.callsPerStep, Math.ceil(pa.numel / 1000), `${split.callsPerStep} calls; entries straddle them`);
  for (let s = 1; s <= 3; s++) {
    grads.buffer.copyFrom(Float32Array.from(randn(pa.numel, 0.1)));
    one.step({ lr: 1e-2, weightDecay: 0.3, gradScale: 0.7 });
    await split.stepAsync({ lr: 1e-2, weightDecay: 0.3, gradScale: 0.7 });
  }
  t.same(pb.buffer.toFloat32(), pa.buffer.toFloat32(), 'params');
  t.same(split.m.buffer.toFloat32(), one.m.buffer.toFloat32(), 'm');
  t.same(split.v.buffer.toFloat32(), one.v.buffer.toFloat32(), 'v');
  t.same(copyB.buffer.toBf16Bits(), one.computeCopy!.buffer.toBf16Bits(), 'the caller-owned compute copy');
  split.dispose();
  t.notOk(copyB.disposed, "a caller's compute copy outlives the optimizer");
  for (const x of [one, pa, pb, grads, copyB]) x.dispose();
});

t.test('state and loadState: a resumed optimizer continues bit for bit', async (t) => {
  const layout = mptLayout(1);
  const params = arenaWith(layout, Float32Array.from(randn(2364)));
  const grads = params.like();
  const gs = [1, 2, 3].map(() => Float32Array.from(randn(params.numel, 0.05)));
  const a = new AdamW(params, grads);
  for (const g of gs.slice(0, 2)) {
    grads.buffer.copyFrom(g);
    a.step({ lr: 1e-2, weightDecay: 0.1 });
  }
  const st = a.state();
  t.same([st.step, st.beta1, st.beta2, st.eps], [2, 0.9, 0.95, 1e-8]);
  t.equal(st.m, a.m, 'the live arenas, not copies');
  // Checkpoint as raw arrays (into one optimizer) and as arenas (into another).
  const saved = { step: st.step, m: st.m.buffer.toFloat32(), v: st.v.buffer.toFloat32() };
  const pSaved = params.buffer.toFloat32();
  const pb = arenaWith(layout, pSaved);
  const pc = arenaWith(layout, pSaved);
  const b = new AdamW(pb, grads);
  const c = new AdamW(pc, grads);
  b.loadState(saved);
  c.loadState(a.state());
  t.equal(b.stepCount, 2);
  grads.buffer.copyFrom(gs[2]);
  a.step({ lr: 1e-2, weightDecay: 0.1 });
  b.step({ lr: 1e-2, weightDecay: 0.1 });
  await c.stepAsync({ lr: 1e-2, weightDecay: 0.1 });
  t.same(pb.buffer.toFloat32(), params.buffer.toFloat32(), 'from arrays: params after step 3 identical');
  t.same(pc.buffer.toFloat32(), params.buffer.toFloat32(), 'from arenas: params after step 3 identical');
  // A fresh optimizer given the same moments but step 0 bias-corrects as step 1: a different update.
  const pd = arenaWith(layout, pSaved);
  const d = new AdamW(pd, grads);
  d.loadState({ ...saved, step: 0 });
  d.step({ lr: 1e-2, weightDecay: 0.1 });
  t.not(relErr(Float64Array.from(pd.buffer.toFloat32()), Float64Array.from(params.buffer.toFloat32())), 0, 'the step count matters');
  t.throws(() => b.loadState({ ...saved, m: new Float32Array(5) }), /AdamW.loadState: 'm' must hold 2364 elements, got a Float32Array of 5/);
  const other = new Arena('f32', [['x', [2364]]]);
  t.throws(() => b.loadState({ ...saved, v: other }), /AdamW.loadState: 'v' must have the params' layout/);
  t.throws(() => b.loadState({ ...saved, step: -1 }), /AdamW.loadState: 'step' must be an integer >= 0, got -1/);
  t.throws(() => b.loadState({ ...saved, lr: 1 } as typeof saved), /AdamW.loadState: unknown option 'lr'/);
  for (const x of [a, b, c, d, params, grads, pb, pc, pd, other]) x.dispose();
});

t.test('AdamW rejects bad arguments', async (t) => {
  const layout = mptLayout(1);
  const params = arenaWith(layout);
  const grads = params.like();
  const bf = params.like('bf16');
  const short = new Arena('f32', layout.slice(1));
  t.throws(() => new AdamW(bf, grads), /AdamW: params must be an f32 arena \(master weights\), got bf16/);
  t.throws(() => new AdamW(params, bf), /AdamW: grads must be an f32 arena, got bf16/);
  t.throws(() => new AdamW(params, short), /AdamW: grads must have the params' layout/);
  t.throws(() => new AdamW(params, params), /AdamW: grads and params must be different arenas/);
  t.throws(() => new AdamW(params, grads, { computeCopy: grads }), /AdamW: option 'computeCopy' must be a bf16 arena, got f32/);
  t.throws(() => new AdamW(params, grads, { beta2: 1 }), /AdamW: option 'beta2' must be a finite number in \[0, 1\), got 1/);
  t.throws(() => new AdamW(params, grads, { eps: -1 }), /option 'eps' must be a finite number >= 0, got -1/);
  t.throws(() => new AdamW(params, grads, { lr: 1 } as object), /AdamW: unknown option 'lr'/);
  t.throws(() => new AdamW(params, grads, { decay: () => true, decayEmbeddings: false }), /give option 'decay' or option 'decayEmbeddings', not both/);
  t.throws(
    () => new AdamW(params, grads, { decay: (() => 1) as unknown as () => boolean }),
    /AdamW: the decay rule must return a boolean; for 'transformer.wte.weight' it returned 1/,
  );
  t.throws(() => new AdamW(params, grads, { maxElementsPerCall: 2 ** 31 }), /'maxElementsPerCall' must be <= 2147483647/);
  const opt = new AdamW(params, grads);
  t.throws(() => opt.step({ lr: -1, weightDecay: 0 }), /AdamW.step: 'lr' must be a finite number >= 0, got -1/);
  t.throws(() => opt.step({ lr: 1e-3, weightDecay: NaN }), /AdamW.step: 'weightDecay' must be a finite number >= 0, got NaN/);
  t.throws(() => opt.step({ lr: 1e-3, weightDecay: 0, gradScale: NaN }), /AdamW.step: 'gradScale' must be a finite number > 0, got NaN \(when the gradients are not finite, skip the step\)/);
  t.throws(() => opt.step({ lr: 1e-3, weightDecay: 0, gradScale: 0 }), /'gradScale' must be a finite number > 0, got 0/);
  t.throws(() => opt.step({ lr: 1e-3, wd: 0 } as unknown as { lr: number; weightDecay: number }), /AdamW.step: unknown option 'wd'/);
  t.equal(opt.stepCount, 0, 'rejected steps do not count');
  const first = opt.stepAsync({ lr: 1e-3, weightDecay: 0 });
  await t.rejects(opt.stepAsync({ lr: 1e-3, weightDecay: 0 }), /AdamW.stepAsync: the previous stepAsync\(\) has not finished; await it first/);
  t.throws(() => opt.step({ lr: 1e-3, weightDecay: 0 }), /AdamW.step: the previous stepAsync\(\) has not finished/);
  await first;
  t.equal(opt.stepCount, 1);
  opt.dispose();
  for (const x of [params, grads, bf, short]) x.dispose();
});
