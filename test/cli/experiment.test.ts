// `pajama experiment`: each preset's plan as a pure function (groups, base config, the same tokens in every
// group, batch's LR rule, the data each group reads), checked through the sweep's own expansion and config
// resolution; usage errors of the command (exit 2); and one miniature preset end to end (a tiny model, a few
// steps, 2 groups x 2 seeds, a small embedded corpus) with report.md's sections and table.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runCli } from '../helpers/cli-run';
import {
  EXPERIMENT_PRESETS,
  QUICK_SIZES,
  FULL_SIZES,
  defaultExperimentDir,
  experimentGrid,
  experimentPlan,
  runExperiment,
  scaledLr,
  type ExperimentPlan,
} from '../../lib/cli/experiment';
import { expandGrid, sweepRunConfig } from '../../lib/train/sweep';
import type { TrainConfig } from '../../lib/train/config';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pajama-experiment-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Every run's resolved config, through the sweep's expansion of the plan's grid, by group. */
function runConfigs(plan: ExperimentPlan, out: string): Map<string, TrainConfig[]> {
  const runs = expandGrid(experimentGrid(plan), plan.seeds, out);
  const byGroup = new Map<string, TrainConfig[]>();
  for (const r of runs) {
    const c = sweepRunConfig({ base: plan.base, baseDir: out, grid: experimentGrid(plan), seeds: plan.seeds }, r);
    byGroup.set(r.group, [...(byGroup.get(r.group) ?? []), c]);
  }
  return byGroup;
}

const tokensOf = (c: TrainConfig) => c.steps * c.batch.globalBatchTokens!;

t.test('every preset: named groups x seeds, the same tokens in every group, seeds set only the seed', async (t) => {
  for (const preset of EXPERIMENT_PRESETS) {
    for (const quick of [true, false]) {
      const out = path.join(dir, `plan-${preset}-${quick}`);
      const plan = experimentPlan(preset, { quick, out });
      const size = (quick ? QUICK_SIZES : FULL_SIZES)[preset];
      t.equal(plan.seeds.length, size.seeds, `${preset} ${quick}: seeds`);
      t.ok(plan.groups.some((g) => g.name === plan.baseline), `${preset}: the baseline is a group`);
      const configs = runConfigs(plan, out);
      t.same([...configs.keys()], plan.groups.map((g) => g.name), `${preset}: one sweep group per plan group, named as the plan names them`);
      for (const [group, cs] of configs) {
        t.equal(cs.length, plan.seeds.length, `${preset} ${group}: a run per seed`);
        t.same(cs.map((c) => c.seed), plan.seeds);
        for (const c of cs) {
          t.equal(tokensOf(c), size.tokens, `${preset} ${group}: ${size.tokens} tokens`);
          t.equal(c.model.overrides.dModel, size.dModel);
          t.equal(c.batch.seqLen, size.seqLen);
          t.ok(c.eval.every >= 1 && c.eval.every <= c.steps, `${preset} ${group}: evaluations during the run`);
          t.ok(c.optimizer.warmupSteps < c.steps);
        }
        // Seeds change only the seed (and the run directory): the rest of the config is the group's.
        const strip = (c: TrainConfig) => ({ ...c, seed: 0, runDir: '' });
        t.same(strip(cs[1]), strip(cs[0]), `${preset} ${group}: seeds differ only in seed`);
      }
    }
  }
});

t.test('ptwd: PTWD 0 -> 0.5 -> 0.1 against constant 0.1 and 0 at the same large batch', async (t) => {
  const out = path.join(dir, 'ptwd');
  const plan = experimentPlan('ptwd', { quick: true, out });
  t.same(plan.groups.map((g) => g.name), ['ptwd', 'wd-0.1', 'wd-0']);
  t.equal(plan.baseline, 'wd-0.1');
  t.same(plan.metrics, ['val']);
  t.match(plan.question, /progressive weight decay/i);
  const c = runConfigs(plan, out);
  const [ptwd, wd01, wd0] = ['ptwd', 'wd-0.1', 'wd-0'].map((g) => c.get(g)![0]);
  t.equal(ptwd.weightDecay.mode, 'ptwd');
  t.same(ptwd.weightDecay.stages, [0, 0.5, 0.1]);
  t.equal(ptwd.weightDecay.boundaries, null, 'equal thirds');
  t.same([wd01.weightDecay.mode, wd01.weightDecay.value], ['constant', 0.1]);
  t.same([wd0.weightDecay.mode, wd0.weightDecay.value], ['constant', 0]);
  for (const x of [ptwd, wd01, wd0]) {
    t.equal(x.batch.globalBatchTokens, QUICK_SIZES.ptwd.largeBatchTokens);
    t.equal(x.optimizer.lr, QUICK_SIZES.ptwd.lr);
    t.equal(x.data.manifest, path.join(out, 'data', 'prepared', 'manifest.json'), 'the embedded corpus under <out>/data');
    t.same(x.data.mixture, { 'moby-dick': 0.4, sotu: 0.35, code: 0.25 });
  }
});

t.test('batch: small against large batch at the same tokens, LR by square-root scaling', async (t) => {
  t.equal(scaledLr(2e-3, 8192, 2048), 1e-3);
  t.equal(scaledLr(1e-3, 1000, 9000), 3e-3);
  const out = path.join(dir, 'batch');
  const plan = experimentPlan('batch', { quick: true, out });
  const s = QUICK_SIZES.batch;
  const small = `batch-${s.smallBatchTokens}`;
  const large = `batch-${s.largeBatchTokens}`;
  t.same(plan.groups.map((g) => g.name), [small, large]);
  t.equal(plan.baseline, small);
  const c = runConfigs(plan, out);
  const [a, b] = [c.get(small)![0], c.get(large)![0]];
  t.equal(a.batch.globalBatchTokens, s.smallBatchTokens);
  t.equal(b.batch.globalBatchTokens, s.largeBatchTokens);
  t.equal(a.steps / b.steps, s.largeBatchTokens / s.smallBatchTokens, 'more steps at the small batch');
  t.equal(tokensOf(a), tokensOf(b));
  t.ok(Math.abs(a.optimizer.lr / b.optimizer.lr - Math.sqrt(s.smallBatchTokens / s.largeBatchTokens)) < 1e-12, 'lr ratio = sqrt(batch ratio)');
  t.equal(a.optimizer.warmupSteps * s.smallBatchTokens, b.optimizer.warmupSteps * s.largeBatchTokens, 'warmup: the same tokens');
  t.ok(b.optimizer.warmupSteps >= 1);
  t.ok(plan.notes.some((n) => /square-root scaling/.test(n) && /Malladi/.test(n)), 'the rule and why, for report.md');
});

t.test('mixtures: each embedded source alone and the mixture; per-source metrics', async (t) => {
  const out = path.join(dir, 'mixtures');
  const plan = experimentPlan('mixtures', { quick: true, out });
  t.same(plan.groups.map((g) => g.name), ['only-moby-dick', 'only-sotu', 'only-code', 'mixture']);
  t.equal(plan.baseline, 'mixture');
  t.same(plan.metrics, ['val', 'val/moby-dick', 'val/sotu', 'val/code']);
  const c = runConfigs(plan, out);
  t.same(c.get('only-sotu')![0].data.mixture, { sotu: 1 });
  t.same(c.get('mixture')![0].data.mixture, { 'moby-dick': 0.4, sotu: 0.35, code: 0.25 });

  // A user's SlimPajama manifest: DC-1 (CommonCrawl only), DC-6 (SlimPajama's proportions) and Table 8's others.
  const sp = ['RedPajamaCommonCrawl', 'RedPajamaC4', 'RedPajamaGithub', 'RedPajamaBook', 'RedPajamaArXiv', 'RedPajamaWikipedia'];
  const data = { kind: 'manifest' as const, file: path.join(dir, 'sp', 'manifest.json'), sources: sp, vocabSize: 50277 };
  const p2 = experimentPlan('mixtures', { quick: false, out: path.join(dir, 'mixtures-sp'), data });
  t.same(p2.groups.map((g) => g.name), ['DC-1', 'DC-6', 'redpajama', 'llama-1']);
  t.equal(p2.baseline, 'DC-6');
  t.same(p2.groups[0].overrides['data.mixture'], { RedPajamaCommonCrawl: 100 });
  t.equal(p2.groups[1].overrides['data.mixture'] && (p2.groups[1].overrides['data.mixture'] as Record<string, number>).RedPajamaC4, 26.7);
  t.equal(p2.groups[1].overrides['data.mixtureMissing'], 'renormalize');
  t.ok(p2.notes.some((n) => /DC-6: the manifest lacks RedPajamaStackExchange/.test(n)), 'a missing source is said');
  t.same(p2.metrics, ['val', ...sp.map((s) => `val/${s}`)]);
  const model = p2.base.model as { overrides: { vocabSize: number; realVocabSize: number } };
  t.same([model.overrides.vocabSize, model.overrides.realVocabSize], [50304, 50277], "the manifest tokenizer's vocabulary");
  t.throws(
    () => experimentPlan('mixtures', { quick: true, out: path.join(dir, 'm3'), data: { ...data, sources: ['a', 'b'] } }),
    /allow fewer than two of DC-1, DC-6, redpajama, llama-1/,
  );
});

t.test('dedup: the embedded corpus prepared with global and with local dedup', async (t) => {
  const out = path.join(dir, 'dedup');
  const plan = experimentPlan('dedup', { quick: true, out });
  t.same(plan.groups.map((g) => g.name), ['global', 'local']);
  t.equal(plan.baseline, 'local');
  t.same(
    plan.data.map((d) => [d.name, d.prepare, d.manifest]),
    [
      ['data', 'demo', path.join(out, 'data', 'prepared', 'manifest.json')],
      ['local', 'demo-local', path.join(out, 'data', 'prepared-local', 'manifest.json')],
    ],
  );
  const c = runConfigs(plan, out);
  t.equal(c.get('global')![0].data.manifest, path.join(out, 'data', 'prepared', 'manifest.json'));
  t.equal(c.get('local')![0].data.manifest, path.join(out, 'data', 'prepared-local', 'manifest.json'));
  // A prepare config is prepared twice; a prepared manifest cannot be.
  const prep = { kind: 'prepare' as const, file: path.join(dir, 'data.json'), config: { inputs: ['raw'], tokenizer: 'gpt2' } };
  const p2 = experimentPlan('dedup', { quick: true, out: path.join(dir, 'd2'), data: prep });
  t.same(p2.data.map((d) => [d.name, (d.prepare as { dedup: { mode: string } }).dedup.mode, d.baseDir]), [
    ['global', 'global', dir],
    ['local', 'local', dir],
  ]);
  t.throws(() => experimentPlan('dedup', { quick: true, out, data: { kind: 'manifest', file: 'm.json', sources: ['a'], vocabSize: 50257 } }), /prepares the data twice/);
  t.throws(() => experimentPlan('ptwd', { quick: true, out, data: prep }), /must be a data manifest/);
});

t.test('sizes and options: errors name what is wrong', async (t) => {
  const out = path.join(dir, 'errs');
  t.throws(() => experimentPlan('ptwd', { quick: true, out, seeds: 1 }), /--seeds must be an integer >= 2/);
  t.equal(experimentPlan('ptwd', { quick: true, out, seeds: 5 }).seeds.length, 5);
  t.throws(() => experimentPlan('ptwd', { quick: true, out, size: { tokens: 8192 * 36 + 100 } }), /size\.tokens \d+ is not a multiple of the global batch 8192/);
  t.throws(() => experimentPlan('batch', { quick: true, out, size: { smallBatchTokens: 3000 } }), /size\.smallBatchTokens 3000 is not a multiple of a micro-batch/);
  t.throws(() => experimentPlan('ptwd', { quick: true, out, sets: ['model.precision=fp16'] }), /group 'ptwd' makes an invalid training config: .*model\.precision/);
  const p = experimentPlan('ptwd', { quick: true, out, sets: ['model.precision=fp32'] });
  t.equal((p.base.model as { precision: string }).precision, 'fp32', '--set reaches the base config');
  t.equal(defaultExperimentDir('ptwd', true), path.join('runs', 'experiment-ptwd-quick'));
  t.equal(defaultExperimentDir('batch', false), path.join('runs', 'experiment-batch'));
});

t.test('the command: usage errors exit 2 before any work', async (t) => {
  let r = await runCli(['experiment']);
  t.equal(r.code, 2);
  t.match(r.err, /give one experiment: ptwd, mixtures, dedup, batch/);
  r = await runCli(['experiment', 'lr']);
  t.equal(r.code, 2);
  t.match(r.err, /unknown experiment 'lr'/);
  r = await runCli(['experiment', 'ptwd', '--quick', '--seeds', '1', '--out', path.join(dir, 'cli')]);
  t.equal(r.code, 2);
  t.match(r.err, /--seeds must be an integer >= 2/);
  r = await runCli(['experiment', 'ptwd', '--data', path.join(dir, 'missing.json'), '--out', path.join(dir, 'cli')]);
  t.equal(r.code, 2);
  t.match(r.err, /--data .*missing\.json: cannot read it/);
  t.notOk(fs.existsSync(path.join(dir, 'cli')), 'nothing written');
});

// A miniature of a real preset: the embedded corpus at 256 KiB per source, a d32 one-layer model, 2 groups x 2 seeds.
const TINY = {
  preset: 'tiny',
  precision: 'fp32' as const,
  dModel: 32,
  nHeads: 2,
  nLayers: 1,
  seqLen: 16,
  microBatchSize: 2,
  largeBatchTokens: 64,
  smallBatchTokens: 32,
  tokens: 192,
  evals: 2,
  evalBatches: 1,
  corpusBytesPerSource: 256 * 1024,
};

t.test('end to end: batch in miniature writes report.md, curves.svg and prints the table', async (t) => {
  const out = path.join(dir, 'e2e');
  const lines: string[] = [];
  const r = await runExperiment({ preset: 'batch', quick: true, out, seeds: 2, size: TINY, log: (l) => lines.push(l) });
  const printed = lines.join('\n');
  t.match(printed, /At the same number of training tokens/, 'the question above the table');
  t.match(printed, /batch-32/);
  t.match(printed, /batch-64/);
  t.ok(printed.includes(r.verdict), 'the verdict printed');
  t.ok(r.verdict.length > 0);
  const report = fs.readFileSync(path.join(out, 'report.md'), 'utf8');
  for (const h of ['# pajama experiment batch --quick', '**Question.**', '## Setup', '## Results', '**Verdict.**', '## Run']) t.ok(report.includes(h), `report.md has ${h}`);
  t.match(report, /192 training tokens per run in every group \(batch-32: 6 steps of 32 tokens; batch-64: 3 steps of 64 tokens\)/);
  t.match(report, /Seeds: 1, 2 for every group \(4 runs\)\. A seed sets both the initialisation and the order of the training data/);
  t.match(report, /A miniature run may not reproduce a 7B result/);
  t.match(report, /square-root scaling/);
  t.match(report, /!\[[^\]]*\]\(curves\.svg\)/);
  t.match(report, /Model: MPT, d_model 32, 1 layer, 2 heads, [\d.]+M parameters/);
  t.match(report, new RegExp(`\`pajama experiment batch --quick --seeds 2 --out ${out.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\`, .*: training .* over 4 runs`));
  t.match(report, /\| *batch-32 *\|/, 'a markdown table row per group');
  t.match(report, /\| *batch-64 *\|/);
  t.match(fs.readFileSync(path.join(out, 'curves.svg'), 'utf8'), /^<svg/);
  t.equal(fs.readdirSync(path.join(out, 'runs')).sort().join(' '), 'batch-32-s1 batch-32-s2 batch-64-s1 batch-64-s2');
  t.equal(r.comparisons[0].groups.length, 2);
  for (const g of r.comparisons[0].groups) t.equal(g.n, 2, `${g.group}: two seeds`);

  // Again: every run is found finished and skipped; the same report comes back.
  const again: string[] = [];
  const r2 = await runExperiment({ preset: 'batch', quick: true, out, seeds: 2, size: TINY, log: (l) => again.push(l) });
  t.equal(again.filter((l) => / skip/.test(l)).length, 4, 'finished runs are not redone');
  t.same(r2.comparisons[0].groups.map((g) => g.values), r.comparisons[0].groups.map((g) => g.values));
});
