// schedule: warmup + cosine learning rate at its landmarks (first step, end of warmup, the cosine's midpoint
// and quarter, the last step, after the run) and monotonic in each piece; PTWD stages at and around their
// boundaries, custom stages, and every rejected option; the plateau controller advancing on a flat loss at
// the exact step its criterion gives, never on a falling one, with minStageSteps, patience resets and the
// boundary cap, and a JSON round-trip of its state that continues identically.
import t from 'tap';
import {
  constantWeightDecay,
  cosineWithWarmup,
  PtwdController,
  ptwdStage,
  ptwdWeightDecay,
  resolvePtwd,
  type PtwdControllerOptions,
} from '../../lib/optim/index';
import { makeRng, seed } from '../helpers/reference';

t.comment(`seed ${seed}`);

const rel = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);

t.test('cosineWithWarmup: landmarks', async (t) => {
  const peakLr = 3e-4;
  const o = { peakLr, warmupSteps: 2000, totalSteps: 10000, minLrRatio: 0.1 };
  const lr = (s: number) => cosineWithWarmup(s, o);
  t.equal(lr(0), peakLr / 2000, 'step 0: peakLr / warmupSteps, small and > 0');
  t.equal(lr(999), peakLr / 2, 'halfway through warmup: peakLr / 2');
  t.equal(lr(1999), peakLr, 'last warmup step: exactly peakLr');
  // The decay runs from step 1999 (peak) to step 9999 (min) over 8000 steps: midpoint 5999, quarter 3999.
  t.ok(rel(lr(5999), (peakLr + 0.1 * peakLr) / 2) < 1e-12, `midpoint: (peak + min) / 2, got ${lr(5999)}`);
  const quarter = 0.1 * peakLr + 0.9 * peakLr * 0.5 * (1 + Math.SQRT1_2);
  t.ok(rel(lr(3999), quarter) < 1e-12, `quarter: min + (peak - min) (1 + cos(pi/4)) / 2, got ${lr(3999)}`);
  t.equal(lr(9999), 0.1 * peakLr, 'last step: exactly minLrRatio * peakLr');
  t.equal(lr(10000), 0.1 * peakLr, 'after the run: clamped');
  t.equal(lr(1e9), 0.1 * peakLr);
  // Symmetry of the half cosine about its midpoint.
  for (const k of [1, 17, 1234, 3999]) {
    t.ok(rel(lr(1999 + k) + lr(9999 - k), 1.1 * peakLr) < 1e-12, `lr(peak + ${k}) + lr(last - ${k}) = peak + min`);
  }
});

t.test('cosineWithWarmup: monotonic pieces and defaults', async (t) => {
  const o = { peakLr: 1e-3, warmupSteps: 100, totalSteps: 1001 };
  let badUp = 0;
  let badDown = 0;
  for (let s = 1; s < 100; s++) if (!(cosineWithWarmup(s, o) > cosineWithWarmup(s - 1, o))) badUp++;
  for (let s = 100; s <= 1000; s++) if (!(cosineWithWarmup(s, o) < cosineWithWarmup(s - 1, o))) badDown++;
  t.equal(badUp, 0, 'strictly increasing through warmup');
  t.equal(badDown, 0, 'strictly decreasing from the peak to the last step');
  t.equal(cosineWithWarmup(1000, o), 1e-3 * 0.1, 'default minLrRatio 0.1');
  t.equal(cosineWithWarmup(0, { peakLr: 1, totalSteps: 5000 }), 1 / 2000, 'default warmupSteps 2000');
  t.equal(cosineWithWarmup(1999, { peakLr: 1, totalSteps: 5000 }), 1);
  t.equal(cosineWithWarmup(0, { peakLr: 2, warmupSteps: 0, totalSteps: 11 }), 2, 'no warmup: peak at step 0');
  t.equal(cosineWithWarmup(10, { peakLr: 2, warmupSteps: 0, totalSteps: 11 }), 0.2 * 1);
  t.ok(rel(cosineWithWarmup(5, { peakLr: 2, warmupSteps: 0, totalSteps: 11 }), 1.1) < 1e-12, 'no warmup: midpoint');
  t.equal(cosineWithWarmup(0, { peakLr: 2, warmupSteps: 1, totalSteps: 3 }), 2, 'one warmup step: peak at step 0');
  t.equal(cosineWithWarmup(1, { peakLr: 2, warmupSteps: 1, totalSteps: 3, minLrRatio: 0 }), 1);
  t.equal(cosineWithWarmup(2, { peakLr: 2, warmupSteps: 1, totalSteps: 3, minLrRatio: 0 }), 0, 'minLrRatio 0 ends at 0');
  t.equal(cosineWithWarmup(5, { peakLr: 2, warmupSteps: 2, totalSteps: 9, minLrRatio: 1 }), 2, 'minLrRatio 1 is constant');
});

t.test('cosineWithWarmup rejects bad options, naming option, expectation and value', async (t) => {
  const ok = { peakLr: 1e-3, warmupSteps: 10, totalSteps: 100 };
  const bad = (s: number, o: unknown) => () => cosineWithWarmup(s, o as typeof ok);
  t.throws(bad(0, { ...ok, peakLr: 0 }), { name: 'TypeError', code: 'ERR_PAJAMA_INVALID_ARG', message: "cosineWithWarmup: option 'peakLr' must be a finite number > 0, got 0" });
  t.throws(bad(0, { ...ok, peakLr: NaN }), /option 'peakLr' must be a finite number > 0, got NaN/);
  t.throws(bad(0, { ...ok, peakLr: '3e-4' }), /option 'peakLr' must be a finite number > 0, got "3e-4"/);
  t.throws(bad(0, { ...ok, peakLr: undefined }), /option 'peakLr' must be a finite number > 0, got undefined/);
  t.throws(bad(0, { ...ok, warmupSteps: 2.5 }), /option 'warmupSteps' must be an integer >= 0, got 2.5/);
  t.throws(bad(0, { ...ok, warmupSteps: -1 }), /option 'warmupSteps' must be an integer >= 0, got -1/);
  t.throws(bad(0, { ...ok, totalSteps: 10 }), /option 'totalSteps' must be an integer > warmupSteps \(10\) and >= 2, got 10/);
  t.throws(bad(0, { peakLr: 1, totalSteps: 1500 }), /option 'totalSteps' must be an integer > warmupSteps \(2000\)/);
  t.throws(bad(0, { peakLr: 1, warmupSteps: 0, totalSteps: 1 }), /'totalSteps' must be an integer > warmupSteps \(0\) and >= 2, got 1/);
  t.throws(bad(0, { peakLr: 1 }), /option 'totalSteps' must be an integer .* got undefined/);
  t.throws(bad(0, { ...ok, minLrRatio: 1.5 }), /option 'minLrRatio' must be a finite number in \[0, 1\], got 1.5/);
  t.throws(bad(0, { ...ok, minLrRatio: -0.1 }), /option 'minLrRatio' must be a finite number in \[0, 1\], got -0.1/);
  t.throws(bad(0, { ...ok, warmup: 10 }), /cosineWithWarmup: unknown option 'warmup' \(known: peakLr, warmupSteps, totalSteps, minLrRatio\)/);
  t.throws(bad(0, null), /cosineWithWarmup: options must be an object, got null/);
  t.throws(bad(-1, ok), /cosineWithWarmup: step must be an integer >= 0, got -1/);
  t.throws(bad(1.5, ok), /cosineWithWarmup: step must be an integer >= 0, got 1.5/);
  t.throws(bad(NaN, ok), /step must be an integer >= 0, got NaN/);
});

t.test('PTWD fixed stages: defaults over thirds of 300 steps', async (t) => {
  const o = { totalSteps: 300 };
  t.same(resolvePtwd(o), { values: [0, 0.5, 0.1], boundaries: [100, 200] });
  const want: [number, number, number][] = [
    [0, 0, 0],
    [99, 0, 0],
    [100, 1, 0.5],
    [101, 1, 0.5],
    [199, 1, 0.5],
    [200, 2, 0.1],
    [299, 2, 0.1],
    [5000, 2, 0.1],
  ];
  for (const [s, stage, wd] of want) {
    t.equal(ptwdStage(s, o), stage, `stage at step ${s}`);
    t.equal(ptwdWeightDecay(s, o), wd, `weight decay at step ${s}`);
  }
  t.same(resolvePtwd({ totalSteps: 301 }).boundaries, [100, 200], 'floor(k T / n)');
  t.same(resolvePtwd({ totalSteps: 3 }).boundaries, [1, 2], 'one step per stage');
  t.same(resolvePtwd({ totalSteps: 10, values: [1, 2, 3, 4] }).boundaries, [2, 5, 7]);
  t.equal(constantWeightDecay(0, { value: 0.1 }), 0.1);
  t.equal(constantWeightDecay(123456, { value: 0 }), 0);
});

t.test('PTWD fixed stages: custom values and boundaries', async (t) => {
  const o = { values: [0.2, 0, 0.05], boundaries: [7, 50] };
  t.same([6, 7, 49, 50, 1000].map((s) => ptwdWeightDecay(s, o)), [0.2, 0, 0, 0.05, 0.05]);
  t.same([6, 7, 49, 50].map((s) => ptwdStage(s, o)), [0, 1, 1, 2]);
  t.same([0, 10, 1e6].map((s) => ptwdWeightDecay(s, { values: [0.3], boundaries: [] })), [0.3, 0.3, 0.3], 'one stage');
  t.equal(ptwdWeightDecay(0, { values: [0.3], totalSteps: 1 }), 0.3);
  t.same(resolvePtwd({ values: [1, 2], boundaries: [3], totalSteps: 4 }), { values: [1, 2], boundaries: [3] });
});

t.test('PTWD rejects bad configs with precise messages', async (t) => {
  const bad = (o: unknown, s = 0) => () => ptwdWeightDecay(s, o as { totalSteps: number });
  t.throws(bad({}), /ptwdWeightDecay: give option 'totalSteps' \(for equal stages\) or option 'boundaries', got neither/);
  t.throws(bad({ values: [], totalSteps: 9 }), /option 'values' must be a non-empty array of weight decays, got \[\]/);
  t.throws(bad({ values: 0.1, totalSteps: 9 }), /option 'values' must be a non-empty array of weight decays, got 0.1/);
  t.throws(bad({ values: [0, -0.1], totalSteps: 9 }), /option 'values\[1\]' must be a finite number >= 0, got -0.1/);
  t.throws(bad({ values: [NaN], totalSteps: 9 }), /option 'values\[0\]' must be a finite number >= 0, got NaN/);
  t.throws(bad({ boundaries: [100] }), /option 'boundaries' must be an array of 2 step\(s\) \(one fewer than 'values'\), got \[100\]/);
  t.throws(bad({ boundaries: [200, 100] }), /option 'boundaries\[1\]' must be an integer >= 201 \(boundaries are >= 1 and strictly increasing\), got 100/);
  t.throws(bad({ boundaries: [100, 100] }), /option 'boundaries\[1\]' must be an integer >= 101/);
  t.throws(bad({ boundaries: [0, 100] }), /option 'boundaries\[0\]' must be an integer >= 1 .* got 0/);
  t.throws(bad({ boundaries: [10.5, 100] }), /option 'boundaries\[0\]' must be an integer >= 1 .* got 10.5/);
  t.throws(bad({ boundaries: [100, 300], totalSteps: 300 }), /option 'boundaries\[1\]' must be < totalSteps \(300\), or stage 2 never runs; got 300/);
  t.throws(bad({ totalSteps: 2 }), /option 'totalSteps' must be an integer >= the number of stages \(3\), got 2/);
  t.throws(bad({ totalSteps: 300, plateau: {} }), /ptwdWeightDecay: unknown option 'plateau' \(known: values, boundaries, totalSteps\)/);
  t.throws(bad({ totalSteps: 300 }, -3), /ptwdWeightDecay: step must be an integer >= 0, got -3/);
  t.throws(() => ptwdStage(0, { totalSteps: 1.5 }), /ptwdStage: option 'totalSteps' must be an integer >= the number of stages \(3\), got 1.5/);
  t.throws(() => constantWeightDecay(0, { value: -1 }), /constantWeightDecay: option 'value' must be a finite number >= 0, got -1/);
  t.throws(() => constantWeightDecay(0, {} as { value: number }), /option 'value' must be a finite number >= 0, got undefined/);
  t.throws(() => new PtwdController({ totalSteps: 300, plateau: { window: 0 } }), /PtwdController: option 'plateau.window' must be an integer >= 1, got 0/);
  t.throws(() => new PtwdController({ totalSteps: 300, plateau: { patience: 1.5 } }), /option 'plateau.patience' must be an integer >= 1, got 1.5/);
  t.throws(() => new PtwdController({ totalSteps: 300, plateau: { threshold: -1 } }), /option 'plateau.threshold' must be a finite number >= 0, got -1/);
  t.throws(() => new PtwdController({ totalSteps: 300, plateau: { minStageSteps: -1 } }), /option 'plateau.minStageSteps' must be an integer >= 0/);
  t.throws(
    () => new PtwdController({ totalSteps: 300, plateau: { windows: 5 } } as PtwdControllerOptions),
    /PtwdController: option 'plateau': unknown option 'windows' \(known: window, threshold, patience, minStageSteps\)/,
  );
});

// Drives a controller the way the trainer does: weightDecay(step) for the update, then observe(step, loss).
// Returns the weight decay used at each step.
function drive(c: PtwdController, from: number, to: number, loss: (s: number) => number): number[] {
  const used: number[] = [];
  for (let s = from; s < to; s++) {
    used.push(c.weightDecay(s));
    c.observe(s, loss(s));
  }
  return used;
}

const flat = (s: number) => 2 + 1e-3 * Math.sin(s);

t.test('PtwdController without plateau: the fixed schedule', async (t) => {
  const c = new PtwdController({ totalSteps: 300 });
  t.equal(c.plateau, null);
  const used = drive(c, 0, 300, flat);
  t.same(used, Array.from({ length: 300 }, (_, s) => ptwdWeightDecay(s, { totalSteps: 300 })), 'same as ptwdWeightDecay');
  t.same(c.transitions, [
    { step: 100, from: 0, to: 1, reason: 'boundary' },
    { step: 200, from: 1, to: 2, reason: 'boundary' },
  ]);
});

t.test('PtwdController plateau: a flat loss advances at the step the criterion gives', async (t) => {
  // Windows of 10; the first comparison needs two windows; only stage ages >= 50 count; 3 flat in a row.
  // Checks counting: windows ending at stage steps 50, 60, 70 -> the stage ends after step 69.
  const c = new PtwdController({ totalSteps: 30000, plateau: { window: 10, patience: 3, minStageSteps: 50 } });
  const used = drive(c, 0, 400, flat);
  t.same(c.transitions, [
    { step: 70, from: 0, to: 1, reason: 'plateau' },
    { step: 140, from: 1, to: 2, reason: 'plateau' },
  ]);
  t.same([used[0], used[69], used[70], used[139], used[140], used[399]], [0, 0, 0.5, 0.5, 0.1, 0.1]);
  t.equal(c.stage, 2, 'never past the last stage');
  t.equal(c.weightDecay(20000), 0.1);
  // The default patience and threshold with another window and minimum: first counting window ends at 200.
  const d = new PtwdController({ totalSteps: 30000, plateau: { window: 20, minStageSteps: 200 } });
  drive(d, 0, 300, flat);
  t.same(d.transitions, [{ step: 240, from: 0, to: 1, reason: 'plateau' }], 'windows at 200, 220, 240');
  const e = new PtwdController({ totalSteps: 30000, plateau: { window: 10, minStageSteps: 0 } });
  drive(e, 0, 45, flat);
  t.same(e.transitions, [{ step: 40, from: 0, to: 1, reason: 'plateau' }], 'minStageSteps 0: windows at 20, 30, 40');
});

t.test('PtwdController plateau: a steadily falling loss never advances; the boundaries still do', async (t) => {
  // 0.5% per step is ~4.9% per window of 10, well above the 1% threshold.
  const falling = (s: number) => 5 * 0.995 ** s;
  const c = new PtwdController({ totalSteps: 3000, plateau: { window: 10, patience: 3, minStageSteps: 0 } });
  const used = drive(c, 0, 3000, falling);
  t.same(c.transitions, [
    { step: 1000, from: 0, to: 1, reason: 'boundary' },
    { step: 2000, from: 1, to: 2, reason: 'boundary' },
  ]);
  t.same(used, Array.from({ length: 3000 }, (_, s) => ptwdWeightDecay(s, { totalSteps: 3000 })));
  // A plateau that would come after the boundary: the boundary wins.
  const d = new PtwdController({ values: [0, 0.5, 0.1], boundaries: [60, 200], plateau: { window: 10, minStageSteps: 50 } });
  const u = drive(d, 0, 300, flat);
  t.same(d.transitions, [
    { step: 60, from: 0, to: 1, reason: 'boundary' },
    { step: 130, from: 1, to: 2, reason: 'plateau' },
  ], 'stage 0 capped at 60; stage 1 ends at its plateau (60 + 70) before its boundary at 200');
  t.same([u[59], u[60], u[129], u[130]], [0, 0.5, 0.5, 0.1]);
  // weightDecay() honours a boundary even before observe() reaches it.
  const e = new PtwdController({ boundaries: [5, 10], plateau: {} });
  t.same([4, 5, 9, 10].map((s) => e.weightDecay(s)), [0, 0.5, 0.5, 0.1]);
  t.equal(e.stage, 0);
  t.same(e.observe(12, 1), { step: 10, from: 0, to: 2, reason: 'boundary' }, 'a gap past two boundaries: one change');
});

t.test('PtwdController plateau: patience counts flat windows in a row; non-finite losses are skipped', async (t) => {
  // window 1: every observation is a window. Step 3 improves by 10% and resets the count.
  const o: PtwdControllerOptions = { totalSteps: 1000, plateau: { window: 1, patience: 3, minStageSteps: 0 } };
  const losses = [10, 10, 10, 9, 9, 9, 9, 9];
  const c = new PtwdController(o);
  const changes = losses.map((l, s) => c.observe(s, l));
  t.same(changes.slice(0, 6), [null, null, null, null, null, null]);
  t.same(changes[6], { step: 7, from: 0, to: 1, reason: 'plateau' }, 'flat at 1, 2; reset at 3; flat at 4, 5, 6');
  const d = new PtwdController(o);
  [10, 10, NaN, 10, Infinity, 10].forEach((l, s) => d.observe(s, l));
  t.same(d.transitions, [{ step: 6, from: 0, to: 1, reason: 'plateau' }], 'four finite losses, three flat comparisons');
  t.throws(() => d.observe(5, 1), /PtwdController.observe: step 5 is not after the last observed step 5/);
  t.throws(() => d.observe(6, '1' as unknown as number), /PtwdController.observe: loss must be a number, got "1"/);
});

t.test('PtwdController state round-trips through JSON and continues identically', async (t) => {
  const rng = makeRng(seed);
  const noise = Array.from({ length: 3000 }, () => rng() - 0.5);
  // Falls, then flattens, with noise: plateaus land at data-dependent steps.
  const loss = (s: number) => 3 + 4 * Math.exp(-s / 150) + 0.02 * noise[s];
  const o: PtwdControllerOptions = { totalSteps: 3000, plateau: { window: 25, patience: 2, threshold: 0.005, minStageSteps: 100 } };
  const ref = new PtwdController(o);
  const refUsed = drive(ref, 0, 3000, loss);
  t.ok(ref.transitions.some((x) => x.reason === 'plateau'), `a plateau happens: ${JSON.stringify(ref.transitions)}`);
  for (const cut of [0, 137, 500, 1001, 2222]) {
    const a = new PtwdController(o);
    drive(a, 0, cut, loss);
    const saved = JSON.stringify(a.state());
    const b = new PtwdController(o);
    b.restore(JSON.parse(saved));
    t.same(b.state(), a.state(), `cut ${cut}: restored state equals the saved one`);
    const used = drive(b, cut, 3000, loss);
    t.same(used, refUsed.slice(cut), `cut ${cut}: the same weight decays after the resume`);
    t.same(b.state(), ref.state(), `cut ${cut}: the same final state`);
  }
  const s = ref.state();
  const two = new PtwdController({ totalSteps: 3000, values: [0, 0.1], plateau: {} });
  t.throws(() => two.restore(s), /PtwdController.restore: state.stage 2 does not exist in a schedule of 2 stages/);
  t.throws(() => ref.restore({ ...s, version: 2 as 1 }), /state.version must be 1, got 2/);
  t.throws(() => ref.restore({ ...s, windowSum: NaN }), /state.windowSum must be a finite number, got NaN/);
  t.throws(() => ref.restore({ ...s, windowCount: 25 }), /state.windowCount must be < plateau.window \(25\), got 25/);
  t.throws(() => ref.restore({ ...s, extra: 1 } as typeof s), /PtwdController.restore: state: unknown option 'extra'/);
  const { lastStep: _omit, ...missing } = s;
  t.throws(() => ref.restore(missing as typeof s), /state.lastStep must be an integer >= -1, got undefined/);
  t.throws(
    () => ref.restore({ ...s, transitions: [{ step: 5, from: 0, to: 1, reason: 'manual' as 'plateau' }] }),
    /state.transitions\[0\].reason must be 'plateau' or 'boundary', got "manual"/,
  );
});
