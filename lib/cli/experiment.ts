// experiment.ts: `pajama experiment ptwd|mixtures|dedup|batch`: the SlimPajama-DC paper's comparisons rerun in
// miniature. Each preset is a plan (experimentPlan: a pure function of the preset, the size and the data: the
// question, the base training config, the groups, the seeds) run as a sweep (train/sweep.ts: every group x
// seed is one run directory; an interrupted experiment resumes) and read back as a comparison
// (eval/compare.ts: mean ± sd over seeds, a 95% interval for each difference against the baseline, the
// overlaid curves and a one-sentence verdict), written to <out>/report.md and <out>/curves.svg.
//
// Sizes: QUICK_SIZES fit about 10 minutes per preset on a 2-core CPU on the embedded corpus (a tiny model whose
// cost is mostly the 50k-vocabulary LM head); FULL_SIZES are for a real machine and a real prepared corpus.
// A miniature run may not reproduce a 7B result, and report.md says so.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { invalidArg } from '../core/errors';
import { readJsonFile } from '../core/json-file';
import { writeTextAtomic } from '../core/atomic';
import { writableDirectoryProblem } from '../core/fs-errors';
import { mptConfig, padVocab, parameterCount } from '../model/config';
import { MIXTURE_PRESETS } from '../data/mixture';
import { readDataManifest } from '../data/manifest';
import { DEMO_MIXTURE, DEMO_SOURCES, buildDemoCorpus } from '../data/corpus/demo';
import { prepareData, resolvePrepareConfig, type PrepareReport } from '../data/corpus/prepare/prepare';
import { applyOverrides, resolveTrainConfig } from '../train/config';
import { runSweep, type SweepProgress } from '../train/sweep';
import type { Trainer } from '../train/trainer';
import { latestCheckpoint, TRAINER_STATE_FILE } from '../train/checkpoint';
import { compareRuns, comparisonSvg, formatComparison, loadRuns, verdict, type Comparison } from '../eval/compare';

export const EXPERIMENT_PRESETS = ['ptwd', 'mixtures', 'dedup', 'batch'] as const;
export type ExperimentPreset = (typeof EXPERIMENT_PRESETS)[number];

/** How big an experiment's runs are. Every group of a preset trains on the same number of tokens. */
export interface ExperimentSize {
  dModel: number;
  nHeads: number;
  nLayers: number;
  seqLen: number;
  microBatchSize: number;
  /** The large global batch in tokens (ptwd, mixtures, dedup, and batch's large group). */
  largeBatchTokens: number;
  /** batch's small global batch in tokens. */
  smallBatchTokens: number;
  /** Training tokens per run: a multiple of largeBatchTokens (and of smallBatchTokens). */
  tokens: number;
  /** Seeds 1..seeds. */
  seeds: number;
  /** Peak learning rate at the large batch. */
  lr: number;
  /** Warmup as a share of the run's steps (the same tokens at every batch size). */
  warmupShare: number;
  /** Evaluations per run (evenly spaced; the last at the final step), for the curves. */
  evals: number;
  /** Validation batches per source at each evaluation. */
  evalBatches: number;
  /** The embedded corpus's bytes per source (null: the demo's 2 MiB). */
  corpusBytesPerSource: number | null;
  /** Save a checkpoint every this many steps (0: only at the end), so a killed run resumes from it. */
  checkpointEvery: number;
  /** The model preset the dimensions override. */
  preset: string;
  precision: 'fp32' | 'bf16';
}

const QUICK_BASE: ExperimentSize = {
  preset: 'tiny',
  precision: 'bf16',
  dModel: 128,
  nHeads: 4,
  nLayers: 2,
  seqLen: 128,
  microBatchSize: 16,
  largeBatchTokens: 8192,
  smallBatchTokens: 2048,
  tokens: 48 * 8192,
  seeds: 3,
  lr: 2e-3,
  warmupShare: 0.1,
  evals: 6,
  evalBatches: 2,
  checkpointEvery: 0,
  corpusBytesPerSource: null,
};

/**
 * --quick sizes, from runs of this model on the project's 2-core AMD Zen 5 (7,500 to 11,000 tokens/s
 * depending on what else ran; the 50k-vocabulary LM head is most of the cost): each run 393k tokens (48 steps
 * of 8,192); ptwd 3 groups x 3 seeds, batch 2 x 3, dedup 2 x 3, mixtures 4 groups x 2 seeds: each preset 4 to
 * 10 minutes (ptwd took 9 minutes with the machine shared, batch 4 with it nearly free).
 */
export const QUICK_SIZES: Readonly<Record<ExperimentPreset, ExperimentSize>> = Object.freeze({
  ptwd: { ...QUICK_BASE },
  mixtures: { ...QUICK_BASE, seeds: 2 },
  dedup: { ...QUICK_BASE },
  batch: { ...QUICK_BASE },
});

const FULL_BASE: ExperimentSize = {
  preset: 'mpt-125m',
  precision: 'bf16',
  dModel: 768,
  nHeads: 12,
  nLayers: 12,
  seqLen: 2048,
  microBatchSize: 8,
  largeBatchTokens: 1024 * 1024,
  smallBatchTokens: 256 * 1024,
  tokens: 2000 * 1024 * 1024,
  seeds: 3,
  lr: 6e-4,
  warmupShare: 0.05,
  evals: 20,
  evalBatches: 8,
  checkpointEvery: 250,
  corpusBytesPerSource: null,
};

/**
 * Sizes without --quick: MPT-125M at 2,048 tokens, a 1M-token large batch (256k small), 2.1B tokens per
 * run, 3 seeds: a GPU machine (or many CPU ranks) and a prepared corpus of a few billion tokens (--data).
 */
export const FULL_SIZES: Readonly<Record<ExperimentPreset, ExperimentSize>> = Object.freeze({
  ptwd: { ...FULL_BASE },
  mixtures: { ...FULL_BASE },
  dedup: { ...FULL_BASE },
  batch: { ...FULL_BASE },
});

/** Where the data comes from: the embedded corpus (built under <out>/data), a prepared manifest, or (dedup) a prepare config. */
export type ExperimentData =
  | { kind: 'embedded' }
  | { kind: 'manifest'; file: string; sources: string[]; vocabSize: number }
  | { kind: 'prepare'; file: string; config: Record<string, unknown>; vocabSize?: number };

/** One group of runs: a name (the run directories' prefix) and the config keys it sets over the base. */
export interface ExperimentGroup {
  name: string;
  overrides: Record<string, unknown>;
  /** What the group is, for report.md. */
  describe: string;
}

/** A preset's whole plan: what runSweep and compareRuns are given, and what report.md says about it. */
export interface ExperimentPlan {
  preset: ExperimentPreset;
  quick: boolean;
  question: string;
  /** The base training config (without runDir and seed, which the sweep sets per run). */
  base: Record<string, unknown>;
  groups: ExperimentGroup[];
  seeds: number[];
  /** The group the others are compared against. */
  baseline: string;
  /** The metric of the verdict, then any others reported ('val' is the union of the sources' validation sets). */
  metrics: string[];
  size: ExperimentSize;
  /** Steps of each group (they differ only in batch). */
  steps: Record<string, number>;
  /** Setup lines for report.md (data, rules). */
  notes: string[];
  /** Data preparations to run before the sweep: a manifest path each. */
  data: { name: string; manifest: string; prepare: 'demo' | 'demo-local' | Record<string, unknown> | null; baseDir: string }[];
}

/** The default output directory: runs/experiment-<preset>[-quick]. */
export function defaultExperimentDir(preset: ExperimentPreset, quick: boolean): string {
  return path.join('runs', `experiment-${preset}${quick ? '-quick' : ''}`);
}

const QUESTIONS: Record<ExperimentPreset, string> = {
  ptwd:
    'Does progressive weight decay (PTWD: 0 -> 0.5 -> 0.1 over thirds of training) reach a lower validation loss than constant weight decay 0.1 or none, ' +
    "at the same large batch and token budget? (the paper's Figure 4 and section C.4)",
  mixtures:
    'Does training on a mixture of sources give a lower validation loss, on each source and on their union, than training on fewer sources, ' +
    "for the same number of tokens? (the paper's data combinations DC-1 ... DC-6)",
  dedup:
    'Does globally deduplicated data (near-duplicates removed across sources) train to a lower validation loss than locally deduplicated data ' +
    "(removed within each source only), for the same number of tokens? (the paper's global against local deduplication)",
  batch:
    'At the same number of training tokens, does a large global batch (fewer steps) reach the validation loss of a small one (more steps), ' +
    'with the learning rate scaled by the square root of the batch ratio?',
};

/**
 * The learning rate at `batchTokens` from `lr` at `refTokens` by square-root scaling: lr * sqrt(batch / ref).
 * Why square root: Adam's update is normalised per coordinate, so growing the batch k times shrinks the gradient
 * noise by sqrt(k) rather than growing the step; the SDE analysis of adaptive methods (Malladi et al.,
 * NeurIPS 2022, "On the SDEs and Scaling Rules for Adaptive Gradient Algorithms") gives sqrt scaling as the
 * rule that keeps Adam's dynamics the same, where linear scaling (Goyal et al. 2017) is SGD's.
 */
export function scaledLr(lr: number, refTokens: number, batchTokens: number): number {
  return lr * Math.sqrt(batchTokens / refTokens);
}

function checkSize(size: ExperimentSize, preset: ExperimentPreset): void {
  const where = `experiment ${preset}`;
  for (const k of ['dModel', 'nHeads', 'nLayers', 'seqLen', 'microBatchSize', 'largeBatchTokens', 'smallBatchTokens', 'tokens', 'seeds', 'evals', 'evalBatches'] as const) {
    if (!Number.isSafeInteger(size[k]) || size[k] < 1) throw invalidArg(`${where}: size.${k} must be a positive integer, got ${size[k]}`);
  }
  if (!Number.isSafeInteger(size.checkpointEvery) || size.checkpointEvery < 0) throw invalidArg(`${where}: size.checkpointEvery must be an integer >= 0, got ${size.checkpointEvery}`);
  const micro = size.microBatchSize * size.seqLen;
  for (const k of ['largeBatchTokens', 'smallBatchTokens'] as const) {
    if (size[k] % micro !== 0) throw invalidArg(`${where}: size.${k} ${size[k]} is not a multiple of a micro-batch (${size.microBatchSize} x ${size.seqLen} = ${micro} tokens)`);
  }
  const batches = preset === 'batch' ? [size.largeBatchTokens, size.smallBatchTokens] : [size.largeBatchTokens];
  for (const b of batches) {
    if (size.tokens % b !== 0) throw invalidArg(`${where}: size.tokens ${size.tokens} is not a multiple of the global batch ${b}: the groups would train on different numbers of tokens`);
    if (size.tokens / b < 3) throw invalidArg(`${where}: size.tokens ${size.tokens} is under 3 steps of ${b} tokens (PTWD needs a step per stage)`);
  }
  if (preset === 'batch' && size.smallBatchTokens >= size.largeBatchTokens) {
    throw invalidArg(`${where}: size.smallBatchTokens ${size.smallBatchTokens} must be below size.largeBatchTokens ${size.largeBatchTokens}`);
  }
}

/**
 * Training keys for `batchTokens` per step at this size: steps, batch, LR schedule, evaluations. Warmup is
 * counted in tokens (warmupShare of the large batch's steps), so every batch size warms up over the same tokens.
 */
function budgetOverrides(size: ExperimentSize, batchTokens: number, lr: number): Record<string, unknown> {
  const steps = size.tokens / batchTokens;
  const warmupTokens = Math.max(1, Math.round((size.warmupShare * size.tokens) / size.largeBatchTokens)) * size.largeBatchTokens;
  return {
    steps,
    'batch.globalBatchTokens': batchTokens,
    'optimizer.lr': lr,
    'optimizer.warmupSteps': Math.min(steps - 1, Math.max(1, Math.round(warmupTokens / batchTokens))),
    'eval.every': Math.max(1, Math.floor(steps / size.evals)),
  };
}

/** Sets dotted keys of `overrides` into a copy of `config` (objects along the path are copied). */
function withKeys(config: Record<string, unknown>, overrides: Record<string, unknown>): Record<string, unknown> {
  const out = structuredClone(config);
  for (const [key, value] of Object.entries(overrides)) {
    const parts = key.split('.');
    let o = out;
    for (const p of parts.slice(0, -1)) {
      if (typeof o[p] !== 'object' || o[p] === null || Array.isArray(o[p])) o[p] = {};
      o = o[p] as Record<string, unknown>;
    }
    o[parts[parts.length - 1]] = structuredClone(value);
  }
  return out;
}

/** The mixture groups on a SlimPajama manifest: DC-1, DC-6 and the other Table 8 presets, by RedPajama set names. */
function slimPajamaMixtureGroups(sources: string[]): { groups: ExperimentGroup[]; notes: string[] } {
  const candidates: { name: string; percent: Readonly<Record<string, number>>; describe: string }[] = [
    { name: 'DC-1', percent: { RedPajamaCommonCrawl: 100 }, describe: 'DC-1: CommonCrawl only (the refinedweb preset of Table 8)' },
    { name: 'DC-6', percent: MIXTURE_PRESETS.slimpajama.percent, describe: "DC-6: all seven sources in SlimPajama's proportions (the slimpajama preset of Table 8)" },
    { name: 'redpajama', percent: MIXTURE_PRESETS.redpajama.percent, describe: "RedPajama's proportions (Table 8)" },
    { name: 'llama-1', percent: MIXTURE_PRESETS['llama-1'].percent, describe: "LLaMA-1's proportions (Table 8)" },
  ];
  const groups: ExperimentGroup[] = [];
  const notes: string[] = [];
  for (const c of candidates) {
    const present = Object.keys(c.percent).filter((s) => sources.includes(s));
    const missing = Object.keys(c.percent).filter((s) => !sources.includes(s));
    if (present.length === 0) {
      notes.push(`${c.name} left out: the manifest has none of its sources (${Object.keys(c.percent).join(', ')})`);
      continue;
    }
    if (missing.length > 0) notes.push(`${c.name}: the manifest lacks ${missing.join(', ')}; the other sources are renormalised`);
    groups.push({ name: c.name, overrides: { 'data.mixture': { ...c.percent }, 'data.mixtureMissing': 'renormalize' }, describe: c.describe });
  }
  if (groups.length < 2) {
    throw invalidArg(`experiment mixtures: the manifest's sources (${sources.join(', ')}) allow fewer than two of DC-1, DC-6, redpajama, llama-1: name them by their RedPajama set names (RedPajamaCommonCrawl, RedPajamaC4, ...)`);
  }
  return { groups, notes };
}

/**
 * A preset's plan: a pure function of the preset, the size, the data and the output directory (where the
 * embedded corpus goes: <out>/data). `seeds` overrides the size's seed count; `sets` are --set overrides of
 * the base training config.
 */
export function experimentPlan(
  preset: ExperimentPreset,
  options: { quick: boolean; out: string; data?: ExperimentData; seeds?: number; size?: Partial<ExperimentSize>; sets?: string[] },
): ExperimentPlan {
  if (!EXPERIMENT_PRESETS.includes(preset)) throw invalidArg(`unknown experiment '${preset}' (experiments: ${EXPERIMENT_PRESETS.join(', ')})`);
  const size: ExperimentSize = { ...(options.quick ? QUICK_SIZES : FULL_SIZES)[preset], ...options.size };
  if (options.seeds !== undefined) {
    if (!Number.isSafeInteger(options.seeds) || options.seeds < 2) throw invalidArg(`--seeds must be an integer >= 2 (a spread needs two runs per group), got ${options.seeds}`);
    size.seeds = options.seeds;
  }
  checkSize(size, preset);
  const data = options.data ?? { kind: 'embedded' };
  const out = path.resolve(options.out);
  const demoManifest = path.join(out, 'data', 'prepared', 'manifest.json');
  if (preset === 'dedup' && data.kind === 'manifest') {
    throw invalidArg(`experiment dedup prepares the data twice (global and local dedup): --data must be a prepare config (with 'inputs'), not a prepared manifest (${data.file})`);
  }
  if (preset !== 'dedup' && data.kind === 'prepare') {
    throw invalidArg(`experiment ${preset}: --data must be a data manifest (pajama prepare's manifest.json), got a prepare config (${data.file})`);
  }
  // GPT-2's 50,257 ids for the embedded corpus; a prepare config's tokenizer is known once it has run.
  const vocab = data.kind === 'embedded' ? 50257 : (data.vocabSize ?? 50257);
  const base: Record<string, unknown> = {
    model: {
      preset: size.preset,
      overrides: { dModel: size.dModel, nHeads: size.nHeads, nLayers: size.nLayers, maxSeqLen: size.seqLen, vocabSize: padVocab(vocab), realVocabSize: vocab },
      precision: size.precision,
    },
    batch: { seqLen: size.seqLen, microBatchSize: size.microBatchSize, globalBatchTokens: size.largeBatchTokens },
    optimizer: { lr: size.lr, warmupSteps: 1, minLrRatio: 0.1 },
    weightDecay: { mode: 'ptwd', stages: [0, 0.5, 0.1] },
    steps: size.tokens / size.largeBatchTokens,
    data: data.kind === 'manifest' ? { manifest: path.resolve(data.file) } : { manifest: demoManifest, mixture: { ...DEMO_MIXTURE } },
    eval: { every: 1, batches: size.evalBatches },
    checkpoint: { every: size.checkpointEvery, keepLast: 1 },
    logEvery: 10,
  };
  const large = budgetOverrides(size, size.largeBatchTokens, size.lr);
  let groups: ExperimentGroup[];
  let baseline: string;
  let metrics = ['val'];
  const notes: string[] = [];
  const prep: ExperimentPlan['data'] =
    data.kind === 'manifest' ? [{ name: 'data', manifest: path.resolve(data.file), prepare: null, baseDir: out }] : [{ name: 'data', manifest: demoManifest, prepare: 'demo', baseDir: out }];
  const dataLine =
    data.kind === 'manifest'
      ? `Data: the prepared corpus ${path.resolve(data.file)} (sources ${data.sources.join(', ')})`
      : `Data: the embedded corpus (${DEMO_SOURCES.map((s) => s.name).join(', ')}; pajama demo's, through the data pipeline with global MinHash dedup) in ${path.join(out, 'data')}`;
  switch (preset) {
    case 'ptwd':
      groups = [
        { name: 'ptwd', overrides: { ...large, 'weightDecay.mode': 'ptwd', 'weightDecay.stages': [0, 0.5, 0.1] }, describe: 'PTWD: weight decay 0, then 0.5, then 0.1, over equal thirds of the steps' },
        { name: 'wd-0.1', overrides: { ...large, 'weightDecay.mode': 'constant', 'weightDecay.value': 0.1 }, describe: 'constant weight decay 0.1' },
        { name: 'wd-0', overrides: { ...large, 'weightDecay.mode': 'constant', 'weightDecay.value': 0 }, describe: 'no weight decay' },
      ];
      baseline = 'wd-0.1';
      notes.push(dataLine + (data.kind === 'manifest' ? '' : `, mixture ${mixtureText(DEMO_MIXTURE)}`));
      break;
    case 'batch': {
      const smallLr = scaledLr(size.lr, size.largeBatchTokens, size.smallBatchTokens);
      groups = [
        { name: `batch-${size.smallBatchTokens}`, overrides: { ...budgetOverrides(size, size.smallBatchTokens, smallLr) }, describe: `small batch: ${size.smallBatchTokens} tokens a step, peak LR ${fmtLr(smallLr)}` },
        { name: `batch-${size.largeBatchTokens}`, overrides: { ...large }, describe: `large batch: ${size.largeBatchTokens} tokens a step, peak LR ${fmtLr(size.lr)}` },
      ];
      baseline = groups[0].name;
      notes.push(dataLine + (data.kind === 'manifest' ? '' : `, mixture ${mixtureText(DEMO_MIXTURE)}`));
      notes.push(
        `LR rule: square-root scaling, lr(B) = lr(B_large) x sqrt(B / B_large) (${fmtLr(size.lr)} at ${size.largeBatchTokens} tokens -> ${fmtLr(smallLr)} at ${size.smallBatchTokens}): ` +
          "Adam normalises its update per coordinate, so a k-times larger batch cuts the gradient noise by sqrt(k); square-root scaling keeps Adam's dynamics (Malladi et al., NeurIPS 2022), where linear scaling is SGD's rule. " +
          'Warmup is the same share of each run (the same tokens), and both use PTWD 0 -> 0.5 -> 0.1 over thirds.',
      );
      break;
    }
    case 'mixtures':
      metrics = ['val'];
      if (data.kind === 'manifest') {
        const m = slimPajamaMixtureGroups(data.sources);
        groups = m.groups.map((g) => ({ ...g, overrides: { ...large, ...g.overrides } }));
        baseline = groups.some((g) => g.name === 'DC-6') ? 'DC-6' : groups[0].name;
        notes.push(dataLine, ...m.notes);
        metrics.push(...data.sources.map((s) => `val/${s}`));
      } else {
        const names = DEMO_SOURCES.map((s) => s.name);
        groups = [
          ...names.map((s) => ({ name: `only-${s}`, overrides: { ...large, 'data.mixture': { [s]: 1 } }, describe: `${s} alone` })),
          { name: 'mixture', overrides: { ...large, 'data.mixture': { ...DEMO_MIXTURE } }, describe: `the demo mixture ${mixtureText(DEMO_MIXTURE)}` },
        ];
        baseline = 'mixture';
        notes.push(dataLine);
        metrics.push(...names.map((s) => `val/${s}`));
      }
      notes.push('Every run is evaluated on every source\'s validation shard, whatever it trains on; "val" is their union.');
      break;
    case 'dedup': {
      const localManifest = path.join(out, 'data', 'prepared-local', 'manifest.json');
      if (data.kind === 'prepare') {
        const g = path.join(out, 'data', 'prepared-global');
        const l = path.join(out, 'data', 'prepared-local');
        const cfg = (mode: string, output: string) => ({ ...data.config, output, dedup: { ...((data.config.dedup as object) ?? {}), mode } });
        prep.length = 0;
        const baseDir = path.dirname(path.resolve(data.file));
        prep.push({ name: 'global', manifest: path.join(g, 'manifest.json'), prepare: cfg('global', g), baseDir }, { name: 'local', manifest: path.join(l, 'manifest.json'), prepare: cfg('local', l), baseDir });
        delete (base.data as Record<string, unknown>).mixture;
        notes.push(`Data: ${path.resolve(data.file)}'s inputs, prepared twice by the data pipeline (dedup.mode global and local) into ${g} and ${l}`);
      } else {
        prep.push({ name: 'local', manifest: localManifest, prepare: 'demo-local', baseDir: out });
        notes.push(
          `Data: the embedded corpus prepared twice by the data pipeline from the same raw files, dedup.mode global (${demoManifest}) and local (${localManifest}), ` +
            `same filter, split and tokenizer; mixture ${mixtureText(DEMO_MIXTURE)}`,
        );
      }
      groups = [
        { name: 'global', overrides: { ...large, 'data.manifest': prep.find((p) => p.name === 'global' || p.name === 'data')!.manifest }, describe: 'globally deduplicated (across sources)' },
        { name: 'local', overrides: { ...large, 'data.manifest': prep.find((p) => p.name === 'local')!.manifest }, describe: 'locally deduplicated (within each source)' },
      ];
      baseline = 'local';
      notes.push('Each preparation draws its own validation documents from what it kept: with the same kept documents the validation sets are the same.');
      break;
    }
  }
  let finalBase = base;
  if (options.sets && options.sets.length > 0) finalBase = applyOverrides(base, options.sets);
  // Every group's config must resolve (the manifests may not exist yet: checked by the trainer at run time).
  for (const g of groups) {
    try {
      resolveTrainConfig({ ...withKeys(finalBase, g.overrides), runDir: path.join(out, 'check'), seed: 1 });
    } catch (e) {
      throw invalidArg(`experiment ${preset}: group '${g.name}' makes an invalid training config: ${(e as Error).message}`);
    }
  }
  const steps = Object.fromEntries(groups.map((g) => [g.name, g.overrides.steps as number]));
  return {
    preset,
    quick: options.quick,
    question: QUESTIONS[preset],
    base: finalBase,
    groups,
    seeds: Array.from({ length: size.seeds }, (_, i) => i + 1),
    baseline,
    metrics,
    size,
    steps,
    notes,
    data: prep,
  };
}

function fmtLr(lr: number): string {
  return Number(lr.toPrecision(3)).toExponential();
}

function mixtureText(m: Readonly<Record<string, number>>): string {
  return Object.entries(m)
    .map(([k, v]) => `${k} ${Math.round(v * 100)}%`)
    .join(' / ');
}

/** The sweep grid of a plan: its groups, named, each with its overrides (train/sweep.ts's named-group form). */
export function experimentGrid(plan: ExperimentPlan): unknown {
  return { groups: Object.fromEntries(plan.groups.map((g) => [g.name, g.overrides])) };
}

export interface ExperimentOptions {
  preset: ExperimentPreset;
  quick?: boolean;
  /** --data: a prepared manifest (or, for dedup, a prepare config). */
  data?: string;
  seeds?: number;
  out?: string;
  sets?: string[];
  /** Overrides of the size (tests shrink the runs with it). */
  size?: Partial<ExperimentSize>;
  /** Where lines go (default console.log). */
  log?: (line: string) => void;
  /** Stop on SIGINT/SIGTERM after the step in flight, with a checkpoint (the CLI sets it). */
  handleSignals?: boolean;
}

export interface ExperimentResult {
  plan: ExperimentPlan;
  out: string;
  report: string;
  svg: string;
  comparisons: Comparison[];
  verdict: string;
}

/** --data's file: a manifest (kind 'pajama-data-manifest') or, for dedup, a prepare config (has 'inputs'). */
export function readExperimentData(file: string): ExperimentData {
  const json = readJsonFile(file, {
    object: true,
    fail: (p) => invalidArg(`--data ${file}: ${p.kind === 'unreadable' ? `cannot read it (${(p.error as Error).message})` : p.kind === 'syntax' ? `not valid JSON (${p.error.message})` : 'the top level is not an object'}`),
  }) as Record<string, unknown>;
  if (json.kind === 'pajama-data-manifest') {
    const m = readDataManifest(file);
    return { kind: 'manifest', file: path.resolve(file), sources: Object.keys(m.sources), vocabSize: m.tokenizer.vocabSize };
  }
  if (Array.isArray(json.inputs)) return { kind: 'prepare', file: path.resolve(file), config: json };
  throw invalidArg(`--data ${file} is neither a data manifest (pajama prepare's manifest.json) nor a prepare config (with 'inputs')`);
}

/** Prepares the plan's data (each step resumes or is skipped when done); the dedup reports by name. */
async function prepareExperimentData(plan: ExperimentPlan, out: string, size: ExperimentSize, log: (line: string) => void): Promise<Record<string, PrepareReport>> {
  const reports: Record<string, PrepareReport> = {};
  for (const d of plan.data) {
    if (d.prepare === null) continue;
    if (d.prepare === 'demo') {
      log(`pajama experiment: the embedded corpus in ${path.join(out, 'data')}`);
      const corpus = await buildDemoCorpus({ outDir: path.join(out, 'data'), ...(size.corpusBytesPerSource !== null ? { maxBytesPerSource: size.corpusBytesPerSource } : {}) });
      reports[plan.preset === 'dedup' ? 'global' : 'data'] = corpus.report;
    } else if (d.prepare === 'demo-local') {
      // The same raw files and settings as the demo corpus's preparation, with dedup.mode local.
      const global = readDataManifest(path.join(out, 'data', 'prepared', 'manifest.json'));
      const cfg = { ...global.config, output: path.dirname(d.manifest), dedup: { ...(global.config.dedup as object), mode: 'local' } };
      log(`pajama experiment: the embedded corpus again with dedup.mode local in ${path.dirname(d.manifest)}`);
      reports.local = (await prepareData(resolvePrepareConfig(cfg, out))).report;
    } else {
      log(`pajama experiment: preparing ${d.name} (dedup.mode ${(d.prepare.dedup as { mode: string }).mode}) in ${path.dirname(d.manifest)}`);
      reports[d.name] = (await prepareData(resolvePrepareConfig(d.prepare, d.baseDir))).report;
    }
  }
  return reports;
}

/** Lines of report.md comparing the two dedup preparations (empty unless both ran here). */
function dedupLines(reports: Record<string, PrepareReport>): string[] {
  const g = reports.global;
  const l = reports.local;
  if (!g || !l) return [];
  const lines = ['### The two preparations', '', '| preparation | documents removed as near-duplicates | training documents | training tokens |', '| --- | ---: | ---: | ---: |'];
  for (const [name, r] of [['global', g], ['local', l]] as const) {
    lines.push(`| ${name} | ${r.totals.duplicates.documents} | ${r.totals.train.documents} | ${r.totals.train.tokens} |`);
  }
  const names = [...new Set([...Object.keys(g.sources), ...Object.keys(l.sources)])];
  const same = names.every((n) => g.sources[n] && l.sources[n] && g.sources[n].duplicates.documents === l.sources[n].duplicates.documents && g.sources[n].train.tokens === l.sources[n].train.tokens);
  lines.push(
    '',
    same
      ? 'Both preparations removed as many documents from every source and kept as many tokens: no near-duplicate pair crosses sources in this corpus, so the two data sets are the same, ' +
          "runs of one seed train on the same data, and the comparison below checks the pipeline rather than deduplication. The paper's difference comes from overlap between sources " +
          '(CommonCrawl, C4 and others share web pages), which this corpus does not have.'
      : `Global dedup removed ${g.totals.duplicates.documents - l.totals.duplicates.documents} more documents than local: the near-duplicates that cross sources.`,
    '',
  );
  return lines;
}

/** Runs an experiment: prepares the data, runs (or resumes) the sweep, compares, writes report.md and curves.svg. */
export async function runExperiment(options: ExperimentOptions): Promise<ExperimentResult> {
  const log = options.log ?? ((line: string) => console.log(line));
  const quick = Boolean(options.quick);
  const out = path.resolve(options.out ?? defaultExperimentDir(options.preset, quick));
  const problem = writableDirectoryProblem(out);
  if (problem) throw invalidArg(`--out ${out}: cannot write there: ${problem}`);
  const data = options.data !== undefined ? readExperimentData(options.data) : undefined;
  const planFor = (d: ExperimentData | undefined) =>
    experimentPlan(options.preset, { quick, out, ...(d ? { data: d } : {}), ...(options.seeds !== undefined ? { seeds: options.seeds } : {}), ...(options.size ? { size: options.size } : {}), ...(options.sets ? { sets: options.sets } : {}) });
  let plan = planFor(data); // every check before any work
  const started = Date.now();
  fs.mkdirSync(out, { recursive: true });
  log(`pajama experiment ${plan.preset}${quick ? ' --quick' : ''}: ${plan.groups.length} groups x ${plan.seeds.length} seeds in ${out}`);
  const reports = await prepareExperimentData(plan, out, plan.size, log);
  if (data?.kind === 'prepare') {
    // The model's vocabulary is the tokenizer's, which the prepared manifest records.
    plan = planFor({ ...data, vocabSize: readDataManifest(plan.data[0].manifest).tokenizer.vocabSize });
  }
  // SIGINT/SIGTERM stop the run in flight after its step, with a checkpoint (SweepStoppedError); running the
  // same command again resumes there. A second signal exits at once.
  let current: Trainer | null = null;
  let stopping = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (stopping) process.exit(sig === 'SIGINT' ? 130 : 143);
    stopping = true;
    console.error(`\npajama experiment: ${sig}: stopping after this step with a checkpoint; run the same command to resume (${sig} again to exit at once)`);
    current?.requestStop();
  };
  if (options.handleSignals) for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, onSignal);
  try {
    await runSweep({ base: plan.base, baseDir: out, grid: experimentGrid(plan), seeds: plan.seeds }, out, {
      onProgress: (p: SweepProgress) => {
        const eta = p.etaSeconds === null ? '' : `, ETA ${formatMinutes(p.etaSeconds)}`;
        log(`pajama experiment: run ${p.i} of ${p.n} (${p.run.name}) ${p.state}${eta}`);
      },
      onTraining: (trainer) => {
        current = trainer;
        if (stopping) trainer.requestStop();
      },
    });
  } finally {
    for (const sig of ['SIGINT', 'SIGTERM'] as const) process.removeListener(sig, onSignal);
  }
  const runs = loadRuns([out]);
  // Paired over seeds: a seed sets the initialisation and the data order in every group, so runs of one seed share that noise.
  const comparisons = plan.metrics.map((metric) => compareRuns(runs, { metric, at: 'final', baseline: plan.baseline, paired: true }));
  const sentence = verdict(comparisons[0]);
  const svg = comparisonSvg(runs, {
    metric: plan.metrics[0],
    x: plan.preset === 'batch' ? 'tokens' : 'step', // the groups take different numbers of steps
    title: `pajama experiment ${plan.preset}${quick ? ' --quick' : ''}: ${plan.metrics[0] === 'val' ? 'validation loss (union of sources)' : plan.metrics[0]}`,
  });
  const svgPath = path.join(out, 'curves.svg');
  writeTextAtomic(svgPath, svg);
  const command = [
    `pajama experiment ${plan.preset}`,
    ...(quick ? ['--quick'] : []),
    ...(options.data !== undefined ? [`--data ${options.data}`] : []),
    ...(options.seeds !== undefined ? [`--seeds ${options.seeds}`] : []),
    ...(options.out !== undefined ? [`--out ${options.out}`] : []),
    ...(options.sets ?? []).map((x) => `--set ${x}`),
  ].join(' ');
  const runSeconds = runs.map((r) => checkpointSeconds(r.dir)).filter((x): x is number => x !== null);
  const report = experimentReport(plan, comparisons, sentence, { reports, seconds: (Date.now() - started) / 1000, runSeconds: runSeconds.length === runs.length ? runSeconds : [], out, command });
  const reportPath = path.join(out, 'report.md');
  writeTextAtomic(reportPath, report);
  log('');
  log(plan.question);
  log('');
  for (const c of comparisons) {
    log(`${metricTitle(c.metric)}:`);
    log(formatComparison(c, 'text'));
    log('');
  }
  log(sentence);
  log(`\npajama experiment: ${reportPath}, ${svgPath}`);
  return { plan, out, report: reportPath, svg: svgPath, comparisons, verdict: sentence };
}

/** A run's training seconds, from its latest checkpoint's trainer_state.json (elapsedSec); null when it has none. */
function checkpointSeconds(runDir: string): number | null {
  const latest = latestCheckpoint(runDir);
  if (!latest) return null;
  try {
    const v = (JSON.parse(fs.readFileSync(path.join(latest.dir, TRAINER_STATE_FILE), 'utf8')) as { elapsedSec?: unknown }).elapsedSec;
    return typeof v === 'number' && Number.isFinite(v) ? v : null;
  } catch {
    return null;
  }
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : word.endsWith('ch') ? 'es' : 's'}`;
}

function metricTitle(metric: string): string {
  if (metric === 'val') return 'Validation loss on the union of the sources, final step';
  if (metric === 'train') return 'Training loss, final step';
  return `Validation loss on ${metric.slice('val/'.length)}, final step`;
}

function formatMinutes(s: number): string {
  if (!Number.isFinite(s)) return '?';
  return s < 60 ? `${Math.round(s)} s` : `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

/** report.md: the question, the setup, the tables, the plot and the verdict. */
export function experimentReport(
  plan: ExperimentPlan,
  comparisons: Comparison[],
  sentence: string,
  info: { reports?: Record<string, PrepareReport>; seconds: number; runSeconds: number[]; out: string; command: string; date?: Date },
): string {
  const s = plan.size;
  const model = mptConfig(s.preset, (plan.base.model as { overrides: Record<string, unknown> }).overrides);
  const params = parameterCount(model);
  const cpu = os.cpus();
  const lines = [
    `# pajama experiment ${plan.preset}${plan.quick ? ' --quick' : ''}`,
    '',
    `**Question.** ${plan.question}`,
    '',
    '## Setup',
    '',
    `- Model: MPT, d_model ${model.dModel}, ${plural(model.nLayers, 'layer')}, ${plural(model.nHeads, 'head')}, ${(params / 1e6).toFixed(2)}M parameters (${((model.vocabSize * model.dModel) / 1e6).toFixed(2)}M of them the tied embedding), ${s.precision}, sequence length ${s.seqLen}.`,
    `- Budget: ${s.tokens.toLocaleString('en-US')} training tokens per run in every group (${plan.groups.map((g) => `${g.name}: ${plan.steps[g.name]} steps of ${(g.overrides['batch.globalBatchTokens'] as number).toLocaleString('en-US')} tokens`).join('; ')}); peak LR ${fmtLr(s.lr)} at the large batch, linear warmup over the first ${Math.round(s.warmupShare * 100)}% of the tokens, cosine decay to 10%, AdamW, gradients clipped to 1.`,
    `- Seeds: ${plan.seeds.join(', ')} for every group (${plan.groups.length * plan.seeds.length} runs). A seed sets both the initialisation and the order of the training data, so the spread over seeds is the noise a difference must exceed.`,
    ...plan.notes.map((n) => `- ${n}${/\.$/.test(n) ? '' : '.'}`),
    `- Groups: ${plan.groups.map((g) => `\`${g.name}\` (${g.describe})`).join('; ')}. Baseline: \`${plan.baseline}\`.`,
    `- Metric: validation loss at the final step (${plural(s.evalBatches, 'batch')} of ${s.microBatchSize} x ${s.seqLen} tokens per source; "val" is the union of the sources). Each difference against the baseline gets a 95% paired t-interval over the seeds (runs of one seed share their initialisation and data order); a difference is called real only when its interval excludes zero.`,
    `- A miniature run may not reproduce a 7B result: this model is ${(params / 6.65e9 * 100).toPrecision(2)}% of the paper's 7B and trains on ${s.tokens.toLocaleString('en-US')} tokens, not hundreds of billions; at this size effects that need long training (weight decay, data diversity) can be invisible or reversed.`,
    '',
    '## Results',
    '',
    ...(info.reports ? dedupLines(info.reports) : []),
  ];
  for (const c of comparisons) {
    lines.push(`### ${metricTitle(c.metric)}`, '', formatComparison(c, 'markdown'), '');
  }
  lines.push(`![${plan.metrics[0]} curves: mean over seeds with the seed spread as a band](curves.svg)`, '', `**Verdict.** ${sentence}`);
  const date = (info.date ?? new Date()).toISOString().replace(/\.\d+Z$/, 'Z');
  const trained = info.runSeconds.length > 0 ? info.runSeconds.reduce((a, b) => a + b, 0) : null;
  lines.push(
    '',
    '## Run',
    '',
    `\`${info.command}\`, ${date}, ${cpu.length} x ${cpu[0]?.model.trim() ?? 'unknown CPU'}` +
      (trained !== null
        ? `: training ${formatMinutes(trained)} over ${plural(info.runSeconds.length, 'run')} (${formatMinutes(trained / info.runSeconds.length)} a run, ${Math.round((s.tokens * info.runSeconds.length) / trained).toLocaleString('en-US')} tokens/s; the checkpoints' elapsed times)`
        : '') +
      `; this invocation ${formatMinutes(info.seconds)} (finished runs are not redone).`,
    `Runs: ${path.join(info.out, 'runs')}/; \`pajama compare ${info.out}\` redoes the tables.`,
    '',
  );
  return lines.join('\n');
}
