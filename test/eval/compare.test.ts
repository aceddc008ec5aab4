// compare.ts on run directories written here (config.json + metrics.jsonl, no training): grouping by config
// difference (seed, runDir, logEvery and paths inside a run left out; a sweep's labels), metric extraction
// (train / val / val/<source>, final / a step, and the errors), the statistics against the hand-computed
// cases of stats.test.ts (an interval that excludes zero, one that includes it, n = 1, paired), the verdict's
// wording for each, the tables, the SVG (well-formed, one curve and one band per group, PTWD boundaries),
// and `pajama compare` in-process.
import t, { type Test } from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { compareRuns, comparisonSvg, configDifferences, formatComparison, loadRuns, metricValue, verdict, TRAIN_WINDOW } from '../../lib/eval/compare';
import { byClass, parseXml } from '../helpers/xml';
import { runCli } from '../helpers/cli-run';

const STEPS = 30;

interface RunSpec {
  seed: number;
  /** Config overrides (deep-merged into the base). */
  config?: Record<string, unknown>;
  /** The final validation loss on the union (sources a and b at value -+ 0.1). */
  val: number;
  /** Steps logged (default STEPS): fewer makes an unfinished run. */
  logged?: number;
  /** Steps whose loss is null (skipped). */
  skipped?: number[];
  /** Validation tokens by source in the eval records. */
  evalTokens?: Record<string, number>;
}

function merge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const cur = out[k];
    out[k] = v && typeof v === 'object' && !Array.isArray(v) && cur && typeof cur === 'object' && !Array.isArray(cur) ? merge(cur as Record<string, unknown>, v as Record<string, unknown>) : v;
  }
  return out;
}

/** The training loss a fabricated run logs at `step`. */
const trainLoss = (step: number, seed: number) => 6 - 0.05 * step + 0.001 * seed;

function writeRun(dir: string, spec: RunSpec): string {
  fs.mkdirSync(dir, { recursive: true });
  const config = merge(
    {
      model: { preset: 'tiny', overrides: {}, precision: 'fp32', init: null },
      batch: { seqLen: 16, microBatchSize: 2, globalBatchTokens: 32 },
      weightDecay: { mode: 'ptwd', value: 0.1, stages: [0, 0.5, 0.1], boundaries: null, plateau: false },
      steps: STEPS,
      data: { manifest: '/data/manifest.json', mixture: null },
      eval: { every: 10, batches: 2 },
      checkpoint: { every: 10, keepLast: 2 },
      logEvery: 1,
      runDir: dir,
      seed: spec.seed,
    },
    spec.config ?? {},
  );
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config, null, 2));
  const ptwd = (config.weightDecay as { mode: string }).mode === 'ptwd';
  const lines: string[] = [JSON.stringify({ type: 'plan', step: 0 })];
  for (let s = 1; s <= (spec.logged ?? STEPS); s++) {
    const stage = ptwd ? Math.min(2, Math.floor((s - 1) / 10)) : 0;
    const wd = ptwd ? [0, 0.5, 0.1][stage] : (config.weightDecay as { value: number }).value;
    const loss = spec.skipped?.includes(s) ? null : trainLoss(s, spec.seed);
    lines.push(JSON.stringify({ type: 'step', step: s, loss, lr: 1e-3, weightDecay: wd, ptwdStage: stage, tokens: 32 * s }));
    if (s % 10 === 0) {
      const v = s === STEPS ? spec.val : spec.val + (STEPS - s) * 0.01;
      lines.push(JSON.stringify({ type: 'eval', step: s, losses: { a: v - 0.1, b: v + 0.1 }, ...(spec.evalTokens ? { tokens: spec.evalTokens } : {}) }));
    }
  }
  lines.push('{"type":"step","step":'); // a torn last line of a killed run: ignored
  fs.writeFileSync(path.join(dir, 'metrics.jsonl'), lines.join('\n'));
  return dir;
}

function tmp(t: Test): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'pajama-compare-'));
  t.teardown(() => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

const close = (t: Test, actual: number | null | undefined, expected: number, msg: string, tol = 1e-9) =>
  t.ok(typeof actual === 'number' && Math.abs(actual - expected) <= tol, `${msg}: ${actual} vs ${expected}`);

const PTWD = { weightDecay: { mode: 'ptwd' } };
const WD01 = { weightDecay: { mode: 'constant', value: 0.1 } };
const WD0 = { weightDecay: { mode: 'constant', value: 0 } };

/** Three groups: ptwd (seeds 1-3), constant 0.1 (seeds 1-4), constant 0 (seeds 1-3); values of stats.test.ts. */
function threeGroups(root: string): string[] {
  const dirs: string[] = [];
  const add = (name: string, config: Record<string, unknown>, vals: number[]) =>
    vals.forEach((val, i) => dirs.push(writeRun(path.join(root, `${name}-s${i + 1}`), { seed: i + 1, val, config })));
  add('ptwd', PTWD, [3.41, 3.42, 3.4]);
  add('wd01', { ...WD01, logEvery: 5 }, [3.45, 3.46, 3.44, 3.47]);
  add('wd0', { ...WD0, model: { init: path.join(root, 'wd0-init') } }, [3.4, 3.43, 3.46]);
  return dirs;
}

t.test('runs are grouped by the config keys that differ', async (t) => {
  const root = tmp(t);
  const dirs = threeGroups(root);
  // model.init of the wd0 runs differs from null: a real difference (outside the runs), so it shows.
  const runs = loadRuns(dirs);
  t.equal(runs.length, 10);
  const groups = [...new Set(runs.map((r) => r.group))];
  t.same(groups, [
    'model.init=null weightDecay.mode=ptwd weightDecay.value=0.1',
    'model.init=null weightDecay.mode=constant weightDecay.value=0.1',
    `model.init=${path.join(root, 'wd0-init')} weightDecay.mode=constant weightDecay.value=0`,
  ]);
  t.same(runs.map((r) => r.seed), [1, 2, 3, 1, 2, 3, 4, 1, 2, 3]);
  t.same(runs[3].difference, { 'model.init': null, 'weightDecay.mode': 'constant', 'weightDecay.value': 0.1 });

  // A path inside the run's own directory only names the run: not a difference. logEvery and runDir never are.
  const inRun = [1, 2].map((seed) => writeRun(path.join(root, `own-${seed}`), { seed, val: 3, config: { model: { init: path.join(root, `own-${seed}`, 'init') } } }));
  const own = loadRuns(inRun);
  t.same([...new Set(own.map((r) => r.group))], ['all runs'], 'only the seed differs');
  t.same(configDifferences([{ a: { b: 1, c: [1, 2] }, seed: 1 }, { a: { b: 1, c: [1, 3] }, seed: 2 }]), ['a.c'], 'arrays are compared whole');
  t.same(configDifferences([{ m: { x: 1 } }, { m: { x: 1, y: 2 } }]), ['m.y'], 'a key one config lacks differs');
  t.same(configDifferences([{ m: 'slimpajama' }, { m: { code: 1 } }]), ['m'], 'a value against an object');

  t.throws(() => loadRuns([path.join(root, 'nowhere')]), /nowhere does not exist/);
  fs.mkdirSync(path.join(root, 'empty'));
  t.throws(() => loadRuns([path.join(root, 'empty')]), /is neither a run directory \(no metrics\.jsonl\) nor a sweep's output directory \(no sweep\.json\)/);
  t.throws(() => loadRuns([dirs[0], dirs[0]]), /is given twice/);
  const noConfig = path.join(root, 'no-config');
  fs.mkdirSync(noConfig);
  fs.writeFileSync(path.join(noConfig, 'metrics.jsonl'), '');
  t.throws(() => loadRuns([noConfig]), /has no resolved config: neither config\.json nor a checkpoint's trainer_state\.json/);
});

t.test("a sweep directory: its runs in order, its labels, runs not started skipped", async (t) => {
  const root = tmp(t);
  const runsDir = path.join(root, 'runs');
  const sweepRuns = [
    { name: 'ptwd-s1', group: 'ptwd', seed: 1, config: PTWD, val: 3.41 },
    { name: 'wd0.1-s1', group: 'wd0.1', seed: 1, config: WD01, val: 3.45 },
    { name: 'ptwd-s2', group: 'ptwd', seed: 2, config: PTWD, val: 3.42 },
    { name: 'wd0.1-s2', group: 'wd0.1', seed: 2, config: WD01, val: 3.46 },
    { name: 'ptwd-s3', group: 'ptwd', seed: 3, config: PTWD, val: 0 },
  ];
  for (const r of sweepRuns.slice(0, 4)) writeRun(path.join(runsDir, r.name), { seed: r.seed, val: r.val, config: r.config });
  fs.writeFileSync(
    path.join(root, 'sweep.json'),
    JSON.stringify({ version: 1, runs: sweepRuns.map((r, index) => ({ index, name: r.name, group: r.group, seed: r.seed, overrides: {}, dir: `runs/${r.name}` })) }),
  );
  const skipped: string[] = [];
  const runs = loadRuns([root], { onSkip: (dir, why) => skipped.push(`${path.basename(dir)}: ${why}`) });
  t.same(runs.map((r) => r.name), ['ptwd-s1', 'wd0.1-s1', 'ptwd-s2', 'wd0.1-s2']);
  t.same(runs.map((r) => r.group), ['ptwd', 'wd0.1', 'ptwd', 'wd0.1'], "the sweep's labels");
  t.same(skipped, ['ptwd-s3: not started (no metrics.jsonl)']);
  const c = compareRuns(runs, { metric: 'val', at: 'final', baseline: 'wd0.1' });
  t.same(c.groups.map((g) => [g.group, g.n, g.seeds]), [
    ['ptwd', 2, [1, 2]],
    ['wd0.1', 2, [1, 2]],
  ]);
  // Labels that do not match the configs (two labels, one config) are not used.
  const sweep = JSON.parse(fs.readFileSync(path.join(root, 'sweep.json'), 'utf8'));
  sweep.runs[2].group = 'other';
  fs.writeFileSync(path.join(root, 'sweep.json'), JSON.stringify(sweep));
  t.same([...new Set(loadRuns([root]).map((r) => r.group))], ['weightDecay.mode=ptwd', 'weightDecay.mode=constant']);
});

t.test('metric extraction: train, val, val/<source>, final and a step', async (t) => {
  const root = tmp(t);
  const [run] = loadRuns([writeRun(path.join(root, 'r'), { seed: 7, val: 3.5, skipped: [25] })]);
  // train at final: the last TRAIN_WINDOW finite losses, step 25 (skipped) left out: steps 20-24 and 26-30.
  t.equal(TRAIN_WINDOW, 10);
  const lastTen = [20, 21, 22, 23, 24, 26, 27, 28, 29, 30].map((s) => trainLoss(s, 7));
  const m = metricValue(run, 'train', 'final');
  t.equal(m.step, 30);
  close(t, m.value, lastTen.reduce((a, b) => a + b) / 10, 'train at final');
  close(t, metricValue(run, 'train', 12).value, [3, 4, 5, 6, 7, 8, 9, 10, 11, 12].map((s) => trainLoss(s, 7)).reduce((a, b) => a + b) / 10, 'train at 12');
  close(t, metricValue(run, 'train', 4).value, [1, 2, 3, 4].map((s) => trainLoss(s, 7)).reduce((a, b) => a + b) / 4, 'train at 4: the steps there are');
  // val: the mean of a = v - 0.1 and b = v + 0.1; at step 20, v = 3.5 + 0.1.
  close(t, metricValue(run, 'val', 'final').value, 3.5, 'val at final');
  close(t, metricValue(run, 'val', 20).value, 3.6, 'val at 20');
  close(t, metricValue(run, 'val/a', 'final').value, 3.4, 'val/a');
  close(t, metricValue(run, 'val/b', 10).value, 3.8, 'val/b at 10');
  t.throws(() => metricValue(run, 'val', 15), /has no eval record at step 15 \(its eval steps: 10, 20, 30\)/);
  t.throws(() => metricValue(run, 'train', 31), /has no step record at step 31/);
  t.throws(() => metricValue(run, 'val/c', 'final'), /has no validation source 'c' \(its sources: a, b\)/);
  t.throws(() => metricValue(run, 'loss', 'final'), /metric must be 'train', 'val' or 'val\/<source>', got "loss"/);
  // Token-weighted union when the eval records carry tokens: (3.4 * 100 + 3.6 * 300) / 400 = 3.55.
  const [weighted] = loadRuns([writeRun(path.join(root, 'w'), { seed: 1, val: 3.5, evalTokens: { a: 100, b: 300 } })]);
  close(t, metricValue(weighted, 'val', 'final').value, 3.55, 'token-weighted val');
  // An unfinished run has no 'final'; a step it reached is fine.
  const [half] = loadRuns([writeRun(path.join(root, 'half'), { seed: 1, val: 3.5, logged: 20 })]);
  t.throws(() => metricValue(half, 'val', 'final'), /is unfinished \(step 20 of 30\): compare --at a step every run reached/);
  close(t, metricValue(half, 'val', 20).value, 3.6, 'an unfinished run at a step it reached');
});

t.test('an interval that excludes zero: real, and the verdict says by how much', async (t) => {
  const root = tmp(t);
  const dirs = threeGroups(root);
  const runs = loadRuns(dirs.slice(0, 7)); // ptwd (3 seeds) and constant 0.1 (4 seeds)
  const c = compareRuns(runs, { metric: 'val', at: 'final', baseline: 'weightDecay.mode=constant' });
  t.equal(c.baseline, 'weightDecay.mode=constant');
  t.same(c.groups.map((g) => g.n), [3, 4]);
  close(t, c.groups[0].mean, 3.41, 'ptwd mean');
  close(t, c.groups[0].sd, 0.01, 'ptwd sd');
  close(t, c.groups[1].sd, 0.0129099444873581, 'constant sd');
  // The hand-computed Welch case of stats.test.ts: diff -0.045, df 4.95918, CI -0.0673171 to -0.0226829.
  const [d] = c.diffs;
  close(t, d.diff, -0.045, 'diff');
  close(t, d.lo, -0.0673171148133879, 'lo');
  close(t, d.hi, -0.022682885186612, 'hi');
  close(t, d.df, 4.95918367346939, 'df', 1e-6);
  t.equal(d.real, true);
  t.equal(d.method, 'Welch t, df 4.96');
  t.equal(
    verdict(c),
    'At the final step (30): weightDecay.mode=ptwd has a lower validation loss than weightDecay.mode=constant by 0.045 (95% CI 0.023 to 0.067, Welch t, 3 and 4 seeds), a difference larger than the noise between seeds.',
  );
  const text = formatComparison(c, 'text');
  t.match(text, /^validation loss on the union of the sources .*, at the final step \(30\); lower is better\. Baseline: weightDecay\.mode=constant\./);
  t.match(text, /weightDecay\.mode=ptwd\s+3\s+1,2,3\s+3\.410\s+0\.010\s+−0\.045\s+−0\.067 to −0\.023\s+Welch t, df 4\.96\s+yes/);
  t.match(text, /weightDecay\.mode=constant\s+4\s+1,2,3,4\s+3\.455\s+0\.013\s+\(baseline\)/);
  t.match(text, /Method: 95% Welch t-interval of the difference of means \(Welch-Satterthwaite degrees of freedom\); a difference is marked real only when its interval excludes zero\./);
  const md = formatComparison(c, 'markdown');
  t.match(md, /\| group \| n \| seeds \| mean \| sd \| diff vs baseline \| 95% CI \| method \| real \|/);
  t.match(md, /\| weightDecay\.mode=ptwd \| 3 \| 1,2,3 \| 3\.410 \| 0\.010 \| −0\.045 \| −0\.067 to −0\.023 \| Welch t, df 4\.96 \| yes \|/);
  // The default baseline is the first group; a name that matches two groups is refused.
  t.equal(compareRuns(runs, { metric: 'val', at: 'final' }).baseline, 'weightDecay.mode=ptwd');
  const all = loadRuns(dirs);
  t.throws(() => compareRuns(all, { metric: 'val', at: 'final', baseline: 'weightDecay.mode=constant' }), /baseline 'weightDecay\.mode=constant' matches several groups/);
  t.throws(() => compareRuns(all, { metric: 'val', at: 'final', baseline: 'nope' }), /baseline 'nope' is not a group; the groups: /);
  const three = compareRuns(all, { metric: 'val', at: 'final', baseline: 'weightDecay.value=0.1 weightDecay.mode=constant' });
  t.equal(three.diffs.length, 2);
  t.match(three.method, /each interval is 95% on its own \(no correction for comparing several groups\)/);
});

t.test('an interval that includes zero: not real, and the verdict claims nothing', async (t) => {
  const root = tmp(t);
  const dirs = [
    ...[3.41, 3.44, 3.44].map((val, i) => writeRun(path.join(root, `base-${i}`), { seed: i + 1, val, config: WD01 })),
    ...[3.4, 3.43, 3.46].map((val, i) => writeRun(path.join(root, `other-${i}`), { seed: i + 1, val, config: PTWD })),
  ];
  const c = compareRuns(loadRuns(dirs), { metric: 'val', at: 'final' });
  const [d] = c.diffs;
  close(t, d.diff, 0, 'diff');
  close(t, d.lo, -0.0614565785942633, 'lo');
  close(t, d.hi, 0.0614565785942633, 'hi');
  t.equal(d.real, false);
  t.equal(
    verdict(c),
    'At the final step (30): weightDecay.mode=ptwd − weightDecay.mode=constant = 0.000 (95% CI −0.061 to +0.061, Welch t, 3 seeds each); the interval includes zero: no difference shown at this size.',
  );
  t.notMatch(verdict(c), /lower|higher|larger than the noise/);
  t.match(formatComparison(c, 'text'), /0\.000\s+−0\.061 to \+0\.061\s+Welch t, df 3\.2\s+no/);
});

t.test('one run per group: no sd, no interval, no claim', async (t) => {
  const root = tmp(t);
  const c = compareRuns(loadRuns([writeRun(path.join(root, 'a'), { seed: 1, val: 3.4, config: PTWD }), writeRun(path.join(root, 'b'), { seed: 1, val: 3.5, config: WD01 })]), {
    metric: 'val',
    at: 'final',
  });
  t.equal(c.groups[0].sd, null);
  const [d] = c.diffs;
  t.same([d.lo, d.hi, d.real], [null, null, false]);
  close(t, d.diff, 0.1, 'diff');
  t.match(verdict(c), /^At the final step \(30\): weightDecay\.mode=constant − weightDecay\.mode=ptwd = \+0\.100 with no interval \(one run in a group \(n = 1 and 1\).*\), so no difference can be claimed\.$/);
  t.match(formatComparison(c, 'text'), /weightDecay\.mode=constant\s+1\s+1\s+3\.500\s+—\s+\+0\.100\s+none\s+no interval: one run in a group/);
  t.equal(verdict(compareRuns(loadRuns([path.join(root, 'a')]), { metric: 'val', at: 'final' })), 'Only one group (all runs): nothing to compare.');
});

t.test('paired intervals, and checks on the runs compared', async (t) => {
  const root = tmp(t);
  const dirs = [
    ...[3.43, 3.48, 3.4].map((val, i) => writeRun(path.join(root, `base-${i}`), { seed: i + 1, val, config: WD01 })),
    ...[3.41, 3.45, 3.38].map((val, i) => writeRun(path.join(root, `other-${i}`), { seed: i + 1, val, config: PTWD })),
  ];
  const runs = loadRuns(dirs);
  const c = compareRuns(runs, { metric: 'val', at: 'final', paired: true });
  const [d] = c.diffs;
  // stats.test.ts's paired case: CI -0.0376755 to -0.0089912 over 3 pairs.
  close(t, d.lo, -0.0376755090991645, 'lo');
  close(t, d.hi, -0.00899115756750204, 'hi');
  t.equal(d.real, true);
  t.match(verdict(c), /has a lower validation loss than weightDecay\.mode=constant by 0\.023 \(95% CI 0\.009 to 0\.038, paired t, 3 seed pairs\)/);
  t.match(c.method, /^95% paired t-interval/);
  // The same two groups unpaired: Welch's interval includes zero (the seed noise is shared, not removed).
  t.equal(compareRuns(runs, { metric: 'val', at: 'final' }).diffs[0].real, false);

  // Two runs of one group with one seed are not seed spread.
  const twin = writeRun(path.join(root, 'twin'), { seed: 1, val: 3.41, config: PTWD });
  t.throws(() => compareRuns(loadRuns([...dirs, twin]), { metric: 'val', at: 'final' }), /group 'weightDecay\.mode=ptwd' has two runs with seed 1/);
  // Runs evaluating different sources have no common union loss.
  const odd = writeRun(path.join(root, 'odd'), { seed: 9, val: 3.4, config: WD0 });
  const lines = fs.readFileSync(path.join(odd, 'metrics.jsonl'), 'utf8').replace(/"b":/g, '"c":');
  fs.writeFileSync(path.join(odd, 'metrics.jsonl'), lines);
  t.throws(() => compareRuns(loadRuns([...dirs, odd]), { metric: 'val', at: 'final' }), /the runs evaluate different sources .*compare val\/<source> for a source they share/);
  close(t, compareRuns(loadRuns([...dirs, odd]), { metric: 'val/a', at: 'final' }).groups[2].mean, 3.3, 'a shared source still compares');
  t.throws(() => compareRuns(runs, { metric: 'val', at: -1 as unknown as number }), /at must be 'final' or a step/);
});

t.test('the SVG: one mean curve and one band per group, PTWD boundaries', async (t) => {
  const root = tmp(t);
  const runs = loadRuns(threeGroups(root));
  const svg = comparisonSvg(runs, { metric: 'val', title: 'PTWD & constant' });
  const els = parseXml(svg);
  t.equal(els[0].attrs['data-groups'], '3');
  const means = byClass(els, 'group-mean');
  t.equal(means.length, 3, 'a curve per group');
  t.same(means.map((m) => m.attrs['data-n']), ['3', '4', '3']);
  for (const m of means) t.equal(m.attrs.points.trim().split(/\s+/).length, 3, 'one point per evaluation (10, 20, 30)');
  t.equal(byClass(els, 'seed-band').length, 3, 'a band per group of several seeds');
  // Only the ptwd group changes stage: its boundaries (updates 10 and 20) in grey, with the stage decays.
  t.same(byClass(els, 'ptwd-boundary').map((e) => e.attrs['data-step']), ['10', '20']);
  t.same(byClass(els, 'ptwd-stage').map((e) => e.text), ['wd = 0', 'wd = 0.5', 'wd = 0.1']);
  t.ok(els.some((e) => e.text === 'band: min–max over seeds'), 'the legend says what the band is');
  t.ok(els.some((e) => e.name === 'text' && e.text === 'PTWD &amp; constant'), 'the title, escaped');
  // The band holds the mean: the ptwd group's final values 3.40..3.42 around 3.41.
  const sd = parseXml(comparisonSvg(runs, { metric: 'train', band: 'sd', x: 'tokens' }));
  t.ok(sd.some((e) => e.text === 'band: mean ± 1 sd over seeds'));
  t.ok(sd.some((e) => e.text === 'tokens trained'));
  t.same(byClass(sd, 'ptwd-boundary'), [], 'no step boundaries on a token axis');
  t.equal(byClass(sd, 'group-mean')[0].attrs.points.trim().split(/\s+/).length, STEPS);
  // One run per group: curves without bands.
  const single = parseXml(comparisonSvg(loadRuns([runs[0].dir, runs[3].dir]), { metric: 'val/a' }));
  t.equal(byClass(single, 'group-mean').length, 2);
  t.equal(byClass(single, 'seed-band').length, 0);
  t.throws(() => comparisonSvg(runs, { metric: 'val', band: 'iqr' as 'sd' }), /band must be 'minmax' or 'sd'/);
  // Long group names wrap in the legend at their key=value parts; a word too long for a line (the path) is cut
  // in its middle, and then the whole name is the entry's <title>.
  const legend = els.filter((e) => e.name === 'title').map((e) => e.text);
  t.same(legend, [`model.init=${path.join(root, 'wd0-init')} weightDecay.mode=constant weightDecay.value=0 (n=3)`.replace(/&/g, '&amp;')]);

});

t.test('pajama compare on run directories', async (t) => {
  const root = tmp(t);
  const dirs = threeGroups(root).slice(0, 7);
  const svgFile = path.join(root, 'out', 'compare.svg');
  fs.mkdirSync(path.dirname(svgFile));
  const r = await runCli(['compare', ...dirs, '--json', '--svg', svgFile, '--baseline', 'weightDecay.mode=constant']);
  t.equal(r.code, 0, r.err);
  const json = JSON.parse(r.out);
  t.equal(json.metric, 'val', 'val by default for runs with evaluations');
  t.equal(json.baseline, 'weightDecay.mode=constant');
  t.equal(json.diffs[0].real, true);
  t.match(json.verdict, /lower validation loss than weightDecay\.mode=constant by 0\.045/);
  t.match(r.err, /Method: 95% Welch t-interval/);
  t.equal(byClass(parseXml(fs.readFileSync(svgFile, 'utf8')), 'group-mean').length, 2);

  const text = await runCli(['compare', ...dirs, '--metric', 'train', '--at', '20', '--markdown']);
  t.equal(text.code, 0, text.err);
  t.match(text.out, /^training loss \(mean of the last 10 logged steps\), at step 20; lower is better\. Baseline: weightDecay\.mode=ptwd\./);
  t.match(text.out, /\| group \| n \| seeds \| mean \|/);
  t.match(text.out, /At step 20: /);

  const bad = await runCli(['compare', ...dirs, '--metric', 'loss']);
  t.equal(bad.code, 2);
  t.match(bad.err, /metric must be 'train', 'val' or 'val\/<source>', got "loss"/);
  t.equal((await runCli(['compare', ...dirs, '--at', 'end'])).code, 2);
  t.equal((await runCli(['compare'])).code, 2);
  const over = await runCli(['compare', ...dirs, '--svg', path.join(dirs[0], 'metrics.jsonl')]);
  t.equal(over.code, 2);
  t.match(over.err, /writing it would destroy the input/);
});

t.test('groups that end at different steps (equal tokens, different batches): a step column', async (t) => {
  const root = tmp(t);
  const dirs = [
    ...[1, 2].map((seed) => writeRun(path.join(root, `long-${seed}`), { seed, val: 3.4 + seed / 100 })),
    ...[1, 2].map((seed) => writeRun(path.join(root, `short-${seed}`), { seed, val: 3.5, logged: 20, config: { steps: 20, batch: { globalBatchTokens: 64 } } })),
  ];
  const c = compareRuns(loadRuns(dirs), { metric: 'val', at: 'final' });
  t.same(c.groups.map((g) => [g.group, g.steps]), [
    ['batch.globalBatchTokens=32 steps=30', [30, 30]],
    ['batch.globalBatchTokens=64 steps=20', [20, 20]],
  ]);
  const text = formatComparison(c, 'text');
  t.match(text, /at the final step of each run;/);
  t.match(text, /^group\s+n\s+seeds\s+step\s+mean/m);
  t.match(text, /batch\.globalBatchTokens=64 steps=20\s+2\s+1,2\s+20\s+/);
  t.match(verdict(c), /^At the final step of each run: /);
});
