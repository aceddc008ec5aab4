// The loss-curve SVG: well-formed XML; the training line has one point per finite loss, at the right
// place; PTWD boundaries, stage labels and the warmup band sit at the steps they describe; degenerate
// inputs (no points, one point, constant or non-finite losses) still give a clean picture; and
// writeLossCurve turns a real trainer's metrics.jsonl into loss.svg with warmup and stages read back.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { lossCurveSvg, readLossCurveRecords, writeLossCurve, type LossCurveOptions } from '../../lib/eval/plot';
import { ShardWriter } from '../../lib/data/shard';
import { Trainer } from '../../lib/train/trainer';
import { byClass, parseXml, type Element } from '../helpers/xml';

const points = (polyline: Element) =>
  polyline.attrs.points
    .trim()
    .split(/\s+/)
    .filter((p) => p !== '')
    .map((p) => p.split(',').map(Number));

function area(els: Element[]) {
  const r = byClass(els, 'plot-area')[0];
  return { x: +r.attrs.x, y: +r.attrs.y, w: +r.attrs.width, h: +r.attrs.height };
}

/** A loss curve like a short real run. */
function run(n: number): LossCurveOptions {
  const steps = Array.from({ length: n }, (_, i) => ({ step: i + 1, loss: 3 + 8 * Math.exp(-(i + 1) / 50) + 0.05 * Math.sin(i) }));
  const evals = [100, 200, 300].filter((s) => s <= n).map((s) => ({ step: s, losses: { 'moby-dick': 3.4 + 1000 / (s * s), code: 2.9 + 500 / (s * s) } }));
  return { steps, evals, warmupSteps: 30, ptwdBoundaries: [100, 200], ptwdValues: [0, 0.5, 0.1], title: 'tiny <demo> & friends' };
}

t.test('a run: one point per step, boundaries, stages, warmup and evals where they belong', async (t) => {
  const svg = lossCurveSvg(run(300));
  const els = parseXml(svg);
  t.notMatch(svg, /NaN|Infinity|undefined/);
  t.equal(els[0].attrs['data-skipped'], '0');
  const a = area(els);
  const X = (s: number) => a.x + (s / 300) * a.w;

  const [line] = byClass(els, 'train-loss');
  const pts = points(line);
  t.equal(pts.length, 300, 'one point per step');
  t.ok(Math.abs(pts[0][0] - X(1)) < 0.01 && Math.abs(pts[299][0] - X(300)) < 0.01, 'x = step');
  t.ok(pts.every(([x, y]) => x >= a.x - 1e-9 && x <= a.x + a.w + 1e-9 && y >= a.y && y <= a.y + a.h), 'inside the plot area');
  t.ok(pts[0][1] < pts[299][1], 'higher loss drawn higher (smaller y)');

  const [smooth] = byClass(els, 'train-loss-smoothed');
  const spts = points(smooth);
  t.equal(spts.length, 300, 'the smoothed line: one point per step too');
  t.same(spts.map((p) => p[0]), pts.map((p) => p[0]));
  const variation = (ps: number[][]) => ps.slice(1).reduce((n, p, i) => n + Math.abs(p[1] - ps[i][1]), 0);
  t.ok(variation(spts) < variation(pts), 'and smoother');
  t.equal(spts[0][1], pts[0][1], 'it starts at the first loss');
  t.equal(spts[299][1], pts[299][1], 'and ends at the last');
  const mean7 = pts.slice(147, 154).reduce((n, p) => n + p[1], 0) / 7;
  t.ok(Math.abs(spts[150][1] - mean7) < 0.02, 'a centred mean of 7 points (to the pixel rounding)');
  const raw = parseXml(lossCurveSvg({ ...run(300), smoothing: 0 }));
  t.equal(byClass(raw, 'train-loss-smoothed').length, 0, 'smoothing 0: the raw line only');
  t.equal(byClass(parseXml(lossCurveSvg(run(99))), 'train-loss-smoothed').length, 0, 'short runs are not smoothed by default');

  const bounds = byClass(els, 'ptwd-boundary');
  t.same(bounds.map((b) => b.attrs['data-step']), ['100', '200']);
  bounds.forEach((b, k) => {
    const x = [100, 200][k];
    t.ok(Math.abs(+b.attrs.x1 - X(x)) < 0.01 && b.attrs.x1 === b.attrs.x2, `boundary ${x} at x = ${X(x).toFixed(2)}`);
    t.ok(+b.attrs.y2 === a.y + a.h, 'down to the x axis');
  });
  const stages = byClass(els, 'ptwd-stage');
  t.same(stages.map((s) => s.text), ['wd = 0', 'wd = 0.5', 'wd = 0.1']);
  t.ok(Math.abs(+stages[1].attrs.x - X(150)) < 0.01, 'a stage label is centred on its stage');

  const [warm] = byClass(els, 'warmup');
  t.ok(+warm.attrs.x === a.x && Math.abs(+warm.attrs.width - (X(30) - a.x)) < 0.01, 'warmup shaded over [0, 30]');

  const evals = byClass(els, 'eval-loss');
  t.same(evals.map((e) => e.attrs['data-source']), ['moby-dick', 'code']);
  const circles = els.filter((e) => e.name === 'circle');
  t.equal(circles.length, 6 + 2, 'three points per source, and one per source in the legend');
  const legend = els.filter((e) => e.name === 'text').map((e) => e.text);
  for (const s of ['train (mean of 7)', 'val: moby-dick', 'val: code', 'LR warmup', 'PTWD stage change']) t.ok(legend.includes(s), `legend: ${s}`);
  t.ok(legend.includes('tiny &lt;demo&gt; &amp; friends'), 'the title is escaped');
  t.ok(legend.includes('optimizer step') && legend.some((s) => s.startsWith('loss')), 'axis titles');
  const xTicks = byClass(els, 'x-tick').map((e) => e.text);
  t.same(xTicks, ['0', '50', '100', '150', '200', '250', '300']);
  const yTicks = byClass(els, 'y-tick').map((e) => +e.text);
  t.ok(yTicks.length >= 4 && yTicks[0] <= 3 && yTicks[yTicks.length - 1] >= 10.9, `y ticks ${yTicks.join(' ')} span the losses`);
});

t.test('non-finite losses are skipped and counted', async (t) => {
  const o = run(120);
  const steps = [...o.steps];
  steps[10] = { step: 11, loss: NaN };
  steps[20] = { step: 21, loss: Infinity };
  steps[30] = { step: 31, loss: null };
  o.steps = steps;
  (o.evals as { step: number; losses: Record<string, number | null> }[])[0].losses.code = null;
  const svg = lossCurveSvg(o);
  const els = parseXml(svg);
  t.notMatch(svg, /NaN|Infinity/);
  t.equal(points(byClass(els, 'train-loss')[0]).length, 117);
  t.equal(els[0].attrs['data-skipped'], '4');
  t.same(byClass(els, 'skipped-note').map((e) => e.text), ['4 non-finite losses not drawn']);
});

t.test('degenerate inputs: one step, nothing yet, a constant loss, boundaries past the data', async (t) => {
  const one = parseXml(lossCurveSvg({ steps: [{ step: 1, loss: 10.9 }], warmupSteps: 0, ptwdBoundaries: [], ptwdValues: [0.1], title: 'one' }));
  t.equal(points(byClass(one, 'train-loss')[0]).length, 1);
  t.equal(byClass(one, 'train-point').length, 1, 'a lone point gets a marker');
  t.same(byClass(one, 'x-tick').map((e) => e.text), ['0', '1'], 'whole steps only');
  t.same(byClass(one, 'ptwd-stage').map((e) => e.text), ['wd = 0.1']);
  t.equal(byClass(one, 'warmup').length, 0);

  const emptySvg = lossCurveSvg({ steps: [], warmupSteps: 2000, ptwdBoundaries: [6666, 13333], ptwdValues: [0, 0.5, 0.1], title: 'empty', totalSteps: 20000 });
  const empty = parseXml(emptySvg);
  t.notMatch(emptySvg, /NaN|Infinity/);
  t.equal(points(byClass(empty, 'train-loss')[0]).length, 0);
  t.ok(empty.some((e) => e.text === 'no finite losses yet'));
  t.same(byClass(empty, 'x-tick').map((e) => e.text).slice(0, 3), ['0', '2k', '4k'], 'totalSteps sets the axis');
  t.equal(byClass(empty, 'ptwd-boundary').length, 2);

  const flatSvg = lossCurveSvg({ steps: [1, 2, 3].map((step) => ({ step, loss: 4 })), warmupSteps: 1, ptwdBoundaries: [], ptwdValues: [], title: 'flat' });
  const flat = parseXml(flatSvg);
  t.notMatch(flatSvg, /NaN|Infinity/);
  const ys = points(byClass(flat, 'train-loss')[0]).map((p) => p[1]);
  const a = area(flat);
  t.ok(ys.every((y) => y > a.y && y < a.y + a.h), 'a constant loss is drawn inside the plot');
  t.equal(byClass(flat, 'ptwd-stage').length, 0, 'no stage labels without values');

  const early = parseXml(lossCurveSvg({ ...run(50), evals: [] }));
  t.same(byClass(early, 'ptwd-boundary').length, 0, 'boundaries after the last step are not drawn');
  t.same(byClass(early, 'ptwd-stage').map((e) => e.text), ['wd = 0'], 'only the stage reached is labelled');
});

t.test('bad options are TypeErrors', async (t) => {
  const base = run(10);
  const bad = (o: unknown, message: RegExp) => t.throws(() => lossCurveSvg(o as LossCurveOptions), { name: 'TypeError', message });
  bad({ ...base, steps: 'x' }, /steps must be an array/);
  bad({ ...base, steps: [{ step: -1, loss: 1 }] }, /steps\[0\]\.step must be a finite number >= 0/);
  bad({ ...base, steps: [{ step: 1, loss: '2' }] }, /steps\[0\]\.loss must be a number or null/);
  bad({ ...base, ptwdBoundaries: [200, 100] }, /ptwdBoundaries must be increasing/);
  bad({ ...base, ptwdValues: [0, 0.5] }, /needs one weight decay per stage \(3 for 2 boundaries\)/);
  bad({ ...base, warmupSteps: NaN }, /warmupSteps must be a number >= 0/);
  bad({ ...base, evals: [{ step: 1, losses: { a: 'x' } }] }, /evals\[0\]\.losses\.a must be a number or null/);
  bad({ ...base, width: 10 }, /width must be a number >= 240/);
  bad({ ...base, smoothing: -1 }, /smoothing must be a number >= 0/);
  bad({ ...base, colour: 'red' }, /unknown option 'colour'/);
});

t.test('readLossCurveRecords: resumed steps keep their last record, null losses, torn last line', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pajama-plot-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const rec = (step: number, loss: number | null, stage: number) =>
    JSON.stringify({ type: 'step', step, loss, lr: Math.min(step, 3) * 0.1, weightDecay: [0, 0.5, 0.1][stage], ptwdStage: stage });
  const lines = [
    rec(1, 9, 0),
    rec(2, 8, 0),
    rec(3, 7, 0),
    JSON.stringify({ type: 'checkpoint', step: 3, dir: 'x' }),
    rec(4, 99, 0), // lost: the run crashed and resumed from step 3
    rec(4, 6, 1),
    rec(5, null, 1),
    JSON.stringify({ type: 'eval', step: 5, losses: { a: 5.5, b: null } }),
    rec(6, 5, 2),
    '{"type":"step","step":7,"lo',
  ];
  fs.writeFileSync(path.join(dir, 'metrics.jsonl'), lines.join('\n'));
  const r = readLossCurveRecords(path.join(dir, 'metrics.jsonl'));
  t.same(r.steps, [
    { step: 1, loss: 9 },
    { step: 2, loss: 8 },
    { step: 3, loss: 7 },
    { step: 4, loss: 6 },
    { step: 5, loss: null },
    { step: 6, loss: 5 },
  ]);
  t.same(r.evals, [{ step: 5, losses: { a: 5.5, b: null } }]);
  t.equal(r.warmupSteps, 3, 'the first step at the peak learning rate');
  t.same(r.ptwdBoundaries, [3, 5]);
  t.same(r.ptwdValues, [0, 0.5, 0.1]);
  const w = writeLossCurve(dir, { title: 'resumed' });
  t.same(w, { path: path.join(dir, 'loss.svg'), steps: 6, evals: 1, skipped: 2 });
  parseXml(fs.readFileSync(w.path, 'utf8'));
  t.throws(() => writeLossCurve(path.join(dir, 'nope')), { name: 'TypeError', message: /metrics\.jsonl does not exist/ });
});

t.test("writeLossCurve on a real trainer's run", async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pajama-plot-run-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const shard = (file: string, docs: number) => {
    const w = new ShardWriter(file, { vocabSize: 256, eosId: 255 });
    for (let d = 0; d < docs; d++) w.appendDocument(Array.from({ length: 40 }, (_, i) => (d + i * 3) % 200));
    w.close();
    return file;
  };
  const runDir = path.join(dir, 'run');
  const tr = await Trainer.create(
    {
      model: { preset: 'tiny', precision: 'fp32' },
      batch: { seqLen: 32, microBatchSize: 2 },
      optimizer: { lr: 3e-3, warmupSteps: 3 },
      weightDecay: { mode: 'ptwd', stages: [0, 0.5, 0.1], boundaries: [4, 7] },
      steps: 9,
      data: { train: [shard(path.join(dir, 'train.bin'), 50)], validation: { one: shard(path.join(dir, 'a.bin'), 10), two: shard(path.join(dir, 'b.bin'), 10) } },
      eval: { every: 3, batches: 1 },
      runDir,
      seed: 1,
      peakFlops: 1e11,
    },
    { progress: false },
  );
  await tr.fit();
  tr.dispose();
  const r = readLossCurveRecords(path.join(runDir, 'metrics.jsonl'));
  t.equal(r.steps.length, 9);
  t.equal(r.warmupSteps, 3, 'warmup read back from the learning rates');
  t.same(r.ptwdBoundaries, [4, 7], 'PTWD boundaries read back from ptwdStage');
  t.same(r.ptwdValues, [0, 0.5, 0.1]);
  t.same(r.evals.map((e) => e.step), [3, 6, 9]);
  const w = writeLossCurve(runDir);
  const els = parseXml(fs.readFileSync(w.path, 'utf8'));
  t.equal(points(byClass(els, 'train-loss')[0]).length, 9);
  t.same(byClass(els, 'eval-loss').map((e) => e.attrs['data-source']), ['one', 'two']);
  t.same(byClass(els, 'ptwd-boundary').map((e) => e.attrs['data-step']), ['4', '7']);
  t.ok(els.some((e) => e.name === 'text' && e.text === 'run'), 'titled with the run directory name');
});
