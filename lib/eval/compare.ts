// compare.ts: `pajama compare`: runs grouped by how their configs differ, each group's mean ± sd over seeds
// of one metric, and a 95% interval for each group's difference against a baseline group (stats.ts), with a
// verdict sentence that claims no more than the intervals show, as aligned text, Markdown, JSON, and an SVG
// of each group's mean curve with its seed band (drawn like plot.ts's loss.svg).
//
// Runs. A directory given is a sweep's output (it holds sweep.json, lib/train/sweep.ts: all its runs under
// runs/, in the sweep's order; runs not started yet, without metrics.jsonl, are skipped and reported) or a run
// directory (metrics.jsonl). A run's config is the resolved training config: <dir>/config.json (a sweep
// writes it), else `trainConfig` of the latest checkpoint's trainer_state.json. Its seed is the config's.
//
// Groups. Runs are grouped by the config keys whose values differ among the runs given (dotted keys, as
// `--set` takes them; nested objects are compared key by key, arrays and other values whole), leaving out
// the seed and keys that do not change what a run computes (NOT_COMPARED_KEYS: where it is written, how
// often it logs or checkpoints), and any string that is a path inside the run's own directory. A group's
// name lists its differing keys as key=value (a key the group does not set is left out of the name unless
// that makes two names equal; then it reads key=(unset)). When every run comes from a sweep.json and the
// sweep's group labels partition the runs exactly as the configs do, the labels are the names instead.
//
// Metrics (CompareOptions.metric), each read at `at` ('final': each run's last record of that kind; a step:
// the record of that step, an error when a run lacks it):
// - 'train': the mean of the training losses of the last TRAIN_WINDOW (10) logged steps up to `at`, skipped
//   (non-finite) steps left out: one step's loss is one batch's, too noisy to compare;
// - 'val': validation loss on the union of the sources: the token-weighted mean over sources when the eval
//   record carries `tokens` by source, else the plain mean (the trainer evaluates every source on
//   eval.batches batches of the same shape, so the two agree unless a source's shard holds fewer batches).
//   Runs must evaluate the same sources, else compare 'val/<source>';
// - 'val/<source>': that source's validation loss.
// With 'final', a run whose last step is below its config's `steps` is unfinished, and an error.
//
// Statistics. Each group: n, the mean and the sample sd (n - 1) over its seeds. Each other group's difference
// (group - baseline) gets a 95% Welch t-interval (Welch-Satterthwaite degrees of freedom), or with `paired`
// the paired t-interval over the seeds both groups ran (seeds set the initialisation and the data order in
// every group, so runs of one seed share their noise). A difference is `real` only when its interval
// excludes zero. A group of one run has no sd and gives no interval: nothing is claimed. Each interval is
// 95% on its own: with several groups against one baseline, one of them may exclude zero by chance (no
// multiple-comparison correction is made; the output says so).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { invalidArg } from '../core/errors';
import { canonicalJson, readJsonFile } from '../core/json-file';
import { latestCheckpoint, TRAINER_STATE_FILE } from '../train/checkpoint';
import { METRICS_FILE } from '../train/metrics';
import { EVAL_COLORS, FONT, TRAIN_COLOR, esc, gridAndTicks, movingAverage, niceStep, num } from './plot';
import { mean, pairedInterval, sampleSd, welchInterval, type DifferenceInterval } from './stats';

/** The sweep output file and runs folder (lib/train/sweep.ts's SWEEP_FILE and SWEEP_RUNS_DIR). */
const SWEEP_FILE = 'sweep.json';
const SWEEP_RUNS_DIR = 'runs';
const RUN_CONFIG_FILE = 'config.json';

/** Config keys left out of the grouping: they do not change what a run computes, only where and how often it writes. */
export const NOT_COMPARED_KEYS: readonly string[] = ['seed', 'runDir', 'logEvery', 'peakFlops', 'checkpoint.every', 'checkpoint.keepLast', 'dist.timeoutSeconds'];

/** Logged training steps averaged for metric 'train'. */
export const TRAIN_WINDOW = 10;

/** One logged training step of a run (the last record of that step when it was logged twice). */
export interface RunStep {
  step: number;
  /** null: a skipped (non-finite) step. */
  loss: number | null;
  /** Tokens trained on so far, or null when the record lacks them. */
  tokens: number | null;
  ptwdStage: number | null;
  weightDecay: number | null;
}

/** One evaluation of a run. */
export interface RunEval {
  step: number;
  losses: Record<string, number | null>;
  /** Validation tokens by source, when the record carries them. */
  tokens: Record<string, number> | null;
}

export interface RunRecord {
  /** The run directory (absolute). */
  dir: string;
  /** The directory's name. */
  name: string;
  /** The resolved training config. */
  config: Record<string, unknown>;
  /** The file the config was read from. */
  configFile: string;
  seed: number;
  /** The group's name (see the file header). */
  group: string;
  /** The config keys that differ among the runs loaded together, with this run's values (undefined: unset). */
  difference: Record<string, unknown>;
  /** The sweep group label, when the run comes from a sweep.json. */
  sweepGroup: string | null;
  /** Step records in step order. */
  steps: RunStep[];
  /** Eval records in step order. */
  evals: RunEval[];
}

export interface LoadRunsOptions {
  /** Called for each run of a sweep that is left out (not started), with why. */
  onSkip?: (dir: string, reason: string) => void;
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

function readObject(file: string, what: string): Record<string, unknown> {
  return readJsonFile(file, {
    object: true,
    fail: (p) =>
      p.kind === 'unreadable'
        ? invalidArg(`compare: cannot read ${what} ${file}: ${(p.error as Error).message}`)
        : invalidArg(`compare: ${what} ${file} ${p.kind === 'syntax' ? `is not valid JSON: ${p.error.message}` : 'must hold a JSON object'}`),
  });
}

/** The step and eval records of a metrics.jsonl; a step logged twice (a resumed run) keeps its last record. */
export function readRunMetrics(file: string): { steps: RunStep[]; evals: RunEval[] } {
  const steps = new Map<number, RunStep>();
  const evals = new Map<number, RunEval>();
  const n = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : null);
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    let r: Record<string, unknown>;
    try {
      r = JSON.parse(line) as Record<string, unknown>;
    } catch {
      continue; // a torn last line of a killed run
    }
    if (!isPlainObject(r) || typeof r.step !== 'number' || !Number.isFinite(r.step)) continue;
    if (r.type === 'step') {
      steps.set(r.step, { step: r.step, loss: n(r.loss), tokens: n(r.tokens), ptwdStage: n(r.ptwdStage), weightDecay: n(r.weightDecay) });
    } else if (r.type === 'eval' && isPlainObject(r.losses)) {
      const losses: Record<string, number | null> = {};
      for (const [k, v] of Object.entries(r.losses)) losses[k] = n(v);
      let tokens: Record<string, number> | null = null;
      if (isPlainObject(r.tokens) && Object.keys(losses).every((k) => n((r.tokens as Record<string, unknown>)[k]) !== null)) {
        tokens = Object.fromEntries(Object.keys(losses).map((k) => [k, (r.tokens as Record<string, number>)[k]]));
      }
      evals.set(r.step, { step: r.step, losses, tokens });
    }
  }
  const byStep = <T extends { step: number }>(m: Map<number, T>) => [...m.values()].sort((a, b) => a.step - b.step);
  return { steps: byStep(steps), evals: byStep(evals) };
}

/** A run directory's resolved config and where it came from. */
function readRunConfig(dir: string): { config: Record<string, unknown>; file: string } {
  const direct = path.join(dir, RUN_CONFIG_FILE);
  if (fs.existsSync(direct)) {
    const config = readObject(direct, 'the run config');
    if ('d_model' in config || 'model_type' in config) throw invalidArg(`compare: ${direct} is a model config (Hugging Face), not a training config: is ${dir} a checkpoint rather than a run directory?`);
    return { config, file: direct };
  }
  const ckpt = latestCheckpoint(dir);
  if (ckpt) {
    const file = path.join(ckpt.dir, TRAINER_STATE_FILE);
    const state = readObject(file, 'the trainer state');
    if (isPlainObject(state.trainConfig)) return { config: state.trainConfig, file };
    throw invalidArg(`compare: ${file} holds no 'trainConfig' (a checkpoint from before configs were recorded?): cannot tell how run ${dir} was configured`);
  }
  throw invalidArg(`compare: run ${dir} has no resolved config: neither ${RUN_CONFIG_FILE} nor a checkpoint's ${TRAINER_STATE_FILE}`);
}

interface LoadedRun {
  dir: string;
  sweepGroup: string | null;
}

/** The run directories a path stands for: a sweep's runs, or the run itself. */
function expandDir(dir: string, onSkip: LoadRunsOptions['onSkip']): LoadedRun[] {
  const abs = path.resolve(dir);
  if (!fs.existsSync(abs)) throw invalidArg(`compare: ${dir} does not exist`);
  if (!fs.statSync(abs).isDirectory()) throw invalidArg(`compare: ${dir} is not a directory (give run directories or a sweep's output directory)`);
  const sweepFile = path.join(abs, SWEEP_FILE);
  if (fs.existsSync(sweepFile)) {
    const sweep = readObject(sweepFile, 'the sweep file');
    if (!Array.isArray(sweep.runs)) throw invalidArg(`compare: ${sweepFile} has no 'runs' array`);
    const out: LoadedRun[] = [];
    sweep.runs.forEach((r: unknown, i: number) => {
      if (!isPlainObject(r) || typeof r.name !== 'string' || r.name === '') throw invalidArg(`compare: ${sweepFile}: runs[${i}] has no 'name'`);
      const runDir = path.join(abs, SWEEP_RUNS_DIR, r.name);
      if (!fs.existsSync(path.join(runDir, METRICS_FILE))) {
        onSkip?.(runDir, 'not started (no metrics.jsonl)');
        return;
      }
      out.push({ dir: runDir, sweepGroup: typeof r.group === 'string' ? r.group : null });
    });
    return out;
  }
  if (!fs.existsSync(path.join(abs, METRICS_FILE))) {
    throw invalidArg(`compare: ${dir} is neither a run directory (no ${METRICS_FILE}) nor a sweep's output directory (no ${SWEEP_FILE})`);
  }
  return [{ dir: abs, sweepGroup: null }];
}

/** Whether `v` is a path inside (or equal to) run directory `dir`: such a value only names the run. */
function namesRun(v: unknown, dir: string): boolean {
  if (typeof v !== 'string' || v === '' || !path.isAbsolute(v)) return false;
  const rel = path.relative(dir, v);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

const UNSET = '(unset)';

function showConfigValue(v: unknown): string {
  if (v === undefined) return UNSET;
  return typeof v === 'string' ? v : canonicalJson(v);
}

/**
 * The config keys whose values differ among `configs` (NOT_COMPARED_KEYS and run-naming paths left out), in
 * the order the first config lists them. Nested objects are walked key by key; anything else is one value.
 */
export function configDifferences(configs: readonly Record<string, unknown>[], dirs: readonly string[] = []): string[] {
  const keys: string[] = [];
  const walk = (prefix: string, values: unknown[]) => {
    if (NOT_COMPARED_KEYS.includes(prefix)) return;
    if (values.every(isPlainObject)) {
      const names: string[] = [];
      for (const v of values) for (const k of Object.keys(v)) if (!names.includes(k)) names.push(k);
      for (const k of names) walk(prefix ? `${prefix}.${k}` : k, values.map((v) => (v as Record<string, unknown>)[k]));
      return;
    }
    const texts = values.map((v, i) => (dirs[i] !== undefined && namesRun(v, dirs[i]) ? '<run>' : v === undefined ? UNSET : canonicalJson(v)));
    if (new Set(texts).size > 1) keys.push(prefix);
  };
  walk('', [...configs]);
  return keys;
}

function valueAt(config: Record<string, unknown>, key: string): unknown {
  let v: unknown = config;
  for (const part of key.split('.')) {
    if (!isPlainObject(v)) return undefined;
    v = v[part];
  }
  return v;
}

/**
 * Loads runs (see the file header): each `dirs` entry is a run directory or a sweep's output directory. The
 * runs come back in the order given (a sweep's in its order), grouped by their config difference.
 */
export function loadRuns(dirs: string[], options: LoadRunsOptions = {}): RunRecord[] {
  if (!Array.isArray(dirs) || dirs.length === 0) throw invalidArg('compare: give at least one run directory or sweep directory');
  const found: LoadedRun[] = [];
  for (const d of dirs) {
    if (typeof d !== 'string' || d === '') throw invalidArg(`compare: a run directory must be a path, got ${JSON.stringify(d)}`);
    for (const r of expandDir(d, options.onSkip)) {
      if (found.some((f) => f.dir === r.dir)) throw invalidArg(`compare: run ${r.dir} is given twice`);
      found.push(r);
    }
  }
  if (found.length === 0) throw invalidArg(`compare: no run in ${dirs.join(', ')} has started (no metrics.jsonl)`);
  const loaded = found.map((r) => {
    const { config, file } = readRunConfig(r.dir);
    if (!Number.isSafeInteger(config.seed)) throw invalidArg(`compare: ${file} has no integer 'seed'`);
    const { steps, evals } = readRunMetrics(path.join(r.dir, METRICS_FILE));
    return { ...r, config, configFile: file, steps, evals };
  });
  const keys = configDifferences(
    loaded.map((r) => r.config),
    loaded.map((r) => r.dir),
  );
  const identity = (r: (typeof loaded)[number]) => keys.map((k) => (namesRun(valueAt(r.config, k), r.dir) ? '<run>' : showConfigValue(valueAt(r.config, k)))).join('\u0000');
  const ids = loaded.map(identity);
  const nameOf = (r: (typeof loaded)[number], withUnset: boolean) =>
    keys
      .map((k) => [k, valueAt(r.config, k)] as const)
      .filter(([, v]) => withUnset || v !== undefined)
      .map(([k, v]) => `${k}=${showConfigValue(v)}`)
      .join(' ');
  const distinctIds = [...new Set(ids)];
  let names = loaded.map((r) => nameOf(r, false) || (keys.length === 0 ? 'all runs' : ''));
  const clash = distinctIds.some((id, i) => distinctIds.some((other, j) => j !== i && names[ids.indexOf(id)] === names[ids.indexOf(other)]));
  if (clash || names.some((n) => n === '')) names = loaded.map((r) => nameOf(r, true) || 'all runs');
  // A sweep's labels, when they partition the runs exactly as the configs do.
  const labels = loaded.map((r) => r.sweepGroup);
  if (labels.every((l): l is string => l !== null)) {
    const byLabel = new Map<string, string>();
    const byId = new Map<string, string>();
    const consistent = loaded.every((_, i) => {
      if ((byLabel.get(labels[i]!) ?? ids[i]) !== ids[i] || (byId.get(ids[i]) ?? labels[i]) !== labels[i]) return false;
      byLabel.set(labels[i]!, ids[i]);
      byId.set(ids[i], labels[i]!);
      return true;
    });
    if (consistent) names = labels as string[];
  }
  return loaded.map((r, i) => ({
    dir: r.dir,
    name: path.basename(r.dir),
    config: r.config,
    configFile: r.configFile,
    seed: r.config.seed as number,
    group: names[i],
    difference: Object.fromEntries(keys.map((k) => [k, valueAt(r.config, k)])),
    sweepGroup: r.sweepGroup,
    steps: r.steps,
    evals: r.evals,
  }));
}

export interface CompareOptions {
  /** 'train' (training loss), 'val' (validation loss on the union of the sources) or 'val/<source>'. */
  metric: string;
  /** 'final' (each run's last record) or a step. */
  at: 'final' | number;
  /** The group the others are compared against. Defaults to the first group. */
  baseline?: string;
  /** Paired t-intervals over the seeds the two groups share (else Welch's). Defaults to false. */
  paired?: boolean;
}

export interface GroupSummary {
  group: string;
  n: number;
  mean: number;
  /** The sample standard deviation over seeds; null with one run. */
  sd: number | null;
  /** One value per run, in the runs' order, with its seed and the step it was read at. */
  values: number[];
  seeds: number[];
  steps: number[];
  dirs: string[];
}

export interface GroupDifference {
  group: string;
  baseline: string;
  /** mean(group) - mean(baseline) (paired: the mean of the per-seed differences). */
  diff: number;
  /** The 95% interval of diff; null when there is none (see note). */
  lo: number | null;
  hi: number | null;
  df: number | null;
  /** How the interval was computed, or why there is none. */
  method: string;
  /** True only when the interval excludes zero. */
  real: boolean;
  /** Why there is no interval, else null. */
  note: string | null;
  /** Runs each side (paired: the pairs). */
  n: [number, number];
}

export interface Comparison {
  metric: string;
  /** What the metric is, in words. */
  metricDescription: string;
  at: 'final' | number;
  baseline: string;
  level: number;
  /** The interval method of the table, in words (with its caveats). */
  method: string;
  groups: GroupSummary[];
  diffs: GroupDifference[];
}

function checkMetric(metric: unknown): asserts metric is string {
  if (typeof metric !== 'string' || !(metric === 'train' || metric === 'val' || (metric.startsWith('val/') && metric.length > 4))) {
    throw invalidArg(`compare: metric must be 'train', 'val' or 'val/<source>', got ${JSON.stringify(metric)}`);
  }
}

function describeMetric(metric: string): string {
  if (metric === 'train') return `training loss (mean of the last ${TRAIN_WINDOW} logged steps)`;
  if (metric === 'val') return 'validation loss on the union of the sources (token-weighted where tokens are recorded, else the mean over sources)';
  return `validation loss on source '${metric.slice(4)}'`;
}

function describeSteps(steps: readonly { step: number }[]): string {
  if (steps.length === 0) return 'none';
  if (steps.length <= 8) return steps.map((s) => s.step).join(', ');
  return `${steps
    .slice(0, 4)
    .map((s) => s.step)
    .join(', ')}, ..., ${steps[steps.length - 1].step}`;
}

/** The union validation loss of one eval record. */
function unionLoss(run: RunRecord, e: RunEval): number {
  const names = Object.keys(e.losses);
  if (names.length === 0) throw invalidArg(`compare: run ${run.dir} evaluated no source at step ${e.step}`);
  for (const k of names) {
    if (e.losses[k] === null) throw invalidArg(`compare: run ${run.dir}: the validation loss of '${k}' at step ${e.step} is not finite`);
  }
  if (e.tokens) {
    let s = 0;
    let w = 0;
    for (const k of names) {
      s += e.losses[k]! * e.tokens[k];
      w += e.tokens[k];
    }
    if (w > 0) return s / w;
  }
  return mean(names.map((k) => e.losses[k]!));
}

/** One run's value of `metric` at `at`, and the step it was read at. */
export function metricValue(run: RunRecord, metric: string, at: 'final' | number): { value: number; step: number } {
  checkMetric(metric);
  const target = (records: readonly { step: number }[], kind: string) => {
    if (records.length === 0) throw invalidArg(`compare: run ${run.dir} has no ${kind} records yet`);
    if (at === 'final') {
      const last = records[records.length - 1].step;
      const lastTrained = run.steps.length > 0 ? run.steps[run.steps.length - 1].step : 0;
      const planned = run.config.steps;
      if (typeof planned === 'number' && lastTrained < planned) {
        throw invalidArg(`compare: run ${run.dir} is unfinished (step ${lastTrained} of ${planned}): compare --at a step every run reached, or let it finish`);
      }
      return last;
    }
    if (!records.some((r) => r.step === at)) throw invalidArg(`compare: run ${run.dir} has no ${kind} record at step ${at} (its ${kind} steps: ${describeSteps(records)})`);
    return at;
  };
  if (metric === 'train') {
    const step = target(run.steps, 'step');
    const window = run.steps.filter((s) => s.step <= step && s.loss !== null).slice(-TRAIN_WINDOW);
    if (window.length === 0) throw invalidArg(`compare: run ${run.dir} has no finite training loss up to step ${step}`);
    return { value: mean(window.map((s) => s.loss!)), step };
  }
  const step = target(run.evals, 'eval');
  const e = run.evals.find((r) => r.step === step)!;
  if (metric === 'val') return { value: unionLoss(run, e), step };
  const source = metric.slice(4);
  const loss = e.losses[source];
  if (loss === undefined) throw invalidArg(`compare: run ${run.dir} has no validation source '${source}' (its sources: ${Object.keys(e.losses).join(', ') || 'none'})`);
  if (loss === null) throw invalidArg(`compare: run ${run.dir}: the validation loss of '${source}' at step ${step} is not finite`);
  return { value: loss, step };
}

/** The groups of `runs` in the order they first appear. */
function groupsOf(runs: readonly RunRecord[]): Map<string, RunRecord[]> {
  const groups = new Map<string, RunRecord[]>();
  for (const r of runs) {
    if (!groups.has(r.group)) groups.set(r.group, []);
    groups.get(r.group)!.push(r);
  }
  return groups;
}

/** Finds the group `name` names: exactly, else the one group whose name holds every space-separated part of it. */
function findGroup(names: readonly string[], name: string): string {
  if (names.includes(name)) return name;
  const parts = name.split(/\s+/).filter((p) => p !== '');
  const hits = names.filter((g) => parts.every((p) => g.split(' ').includes(p)));
  if (hits.length === 1) return hits[0];
  throw invalidArg(`compare: baseline '${name}' ${hits.length > 1 ? 'matches several groups' : 'is not a group'}; the groups: ${names.map((g) => `'${g}'`).join(', ')}`);
}

function intervalMethod(iv: DifferenceInterval): string {
  if (iv.lo === null) return `no interval: ${iv.reason}`;
  const df = Number(iv.df!.toPrecision(3));
  return iv.method === 'welch' ? `Welch t, df ${df}` : `paired t over seeds, df ${df}`;
}

/** Compares one metric across the groups of `runs`; see the file header for what each number is. */
export function compareRuns(runs: RunRecord[], options: CompareOptions): Comparison {
  if (!Array.isArray(runs) || runs.length === 0) throw invalidArg('compareRuns: no runs');
  if (!isPlainObject(options)) throw invalidArg('compareRuns: options must be { metric, at, baseline? }');
  checkMetric(options.metric);
  const at = options.at;
  if (at !== 'final' && !(Number.isSafeInteger(at) && at >= 0)) throw invalidArg(`compare: at must be 'final' or a step (an integer >= 0), got ${JSON.stringify(at)}`);
  const { metric } = options;
  if (metric === 'val') {
    const sourcesOf = (r: RunRecord) => (r.evals.length ? Object.keys(r.evals[r.evals.length - 1].losses).sort().join(', ') : '');
    const first = sourcesOf(runs[0]);
    const other = runs.find((r) => r.evals.length > 0 && sourcesOf(r) !== first);
    if (other && first !== '') {
      throw invalidArg(`compare: the runs evaluate different sources (${runs[0].name}: ${first}; ${other.name}: ${sourcesOf(other)}), so their union losses measure different things: compare val/<source> for a source they share`);
    }
  }
  const grouped = groupsOf(runs);
  const groups: GroupSummary[] = [];
  for (const [group, members] of grouped) {
    const read = members.map((r) => metricValue(r, metric, at));
    const seeds = members.map((r) => r.seed);
    const dup = seeds.find((s, i) => seeds.indexOf(s) !== i);
    if (dup !== undefined) {
      const twice = members.filter((r) => r.seed === dup).map((r) => r.dir);
      throw invalidArg(`compare: group '${group}' has two runs with seed ${dup} (${twice.join(', ')}): the same configuration twice is not seed spread; give one of them`);
    }
    if (at === 'final' && new Set(read.map((v) => v.step)).size > 1) {
      throw invalidArg(`compare: group '${group}' ends at different steps (${members.map((r, i) => `${r.name}: ${read[i].step}`).join(', ')}): compare --at a step they all reached`);
    }
    const values = read.map((v) => v.value);
    groups.push({ group, n: values.length, mean: mean(values), sd: sampleSd(values), values, seeds, steps: read.map((v) => v.step), dirs: members.map((r) => r.dir) });
  }
  const baseline = options.baseline === undefined ? groups[0].group : findGroup([...grouped.keys()], options.baseline);
  const base = groups.find((g) => g.group === baseline)!;
  const diffs: GroupDifference[] = [];
  for (const g of groups) {
    if (g === base) continue;
    let iv: DifferenceInterval;
    let n: [number, number];
    if (options.paired) {
      const shared = g.seeds.filter((s) => base.seeds.includes(s));
      if (shared.length === 0) throw invalidArg(`compare: --paired: groups '${g.group}' and '${baseline}' share no seed`);
      const a = shared.map((s) => g.values[g.seeds.indexOf(s)]);
      const b = shared.map((s) => base.values[base.seeds.indexOf(s)]);
      iv = pairedInterval(a, b);
      n = [shared.length, shared.length];
    } else {
      iv = welchInterval(g.values, base.values);
      n = [g.n, base.n];
    }
    const real = iv.lo !== null && iv.hi !== null && (iv.lo > 0 || iv.hi < 0);
    diffs.push({ group: g.group, baseline, diff: iv.diff, lo: iv.lo, hi: iv.hi, df: iv.df, method: intervalMethod(iv), real, note: iv.reason, n });
  }
  const method =
    (options.paired
      ? '95% paired t-interval of the per-seed differences (seeds both groups ran)'
      : "95% Welch t-interval of the difference of means (Welch-Satterthwaite degrees of freedom)") +
    (diffs.length > 1 ? '; each interval is 95% on its own (no correction for comparing several groups)' : '') +
    '; a difference is marked real only when its interval excludes zero';
  return { metric, metricDescription: describeMetric(metric), at, baseline, level: 0.95, method, groups, diffs };
}

/** Decimals that show a spread of `scale` with two significant digits (at least 3, at most 6). */
function decimalsForScale(scale: number): number {
  if (!(scale > 0) || !Number.isFinite(scale)) return 3;
  return Math.min(6, Math.max(3, 1 - Math.floor(Math.log10(scale))));
}

function comparisonDecimals(c: Comparison): number {
  const spreads = [...c.groups.map((g) => g.sd ?? 0), ...c.diffs.map((d) => (d.lo !== null && d.hi !== null ? (d.hi - d.lo) / 2 : Math.abs(d.diff)))].filter((x) => x > 0);
  return decimalsForScale(spreads.length ? Math.min(...spreads) : 0);
}

/** x with its sign (+ or −) to d decimals; a value that rounds to zero has none. */
function signed(x: number, d: number): string {
  const text = Math.abs(x).toFixed(d);
  return Number(text) === 0 ? text : (x > 0 ? '+' : '−') + text;
}

function atText(c: Comparison): string {
  if (c.at !== 'final') return `step ${c.at}`;
  const steps = [...new Set(c.groups.flatMap((g) => g.steps))];
  return steps.length === 1 ? `the final step (${steps[0]})` : 'the final step of each run';
}

/** The comparison as an aligned text table or a Markdown table, with the metric, the step and the method. */
export function formatComparison(c: Comparison, format: 'text' | 'markdown'): string {
  if (format !== 'text' && format !== 'markdown') throw invalidArg(`formatComparison: format must be 'text' or 'markdown', got ${JSON.stringify(format)}`);
  const d = comparisonDecimals(c);
  const multipleSteps = new Set(c.groups.flatMap((g) => g.steps)).size > 1;
  const header = ['group', 'n', 'seeds', ...(multipleSteps ? ['step'] : []), 'mean', 'sd', 'diff vs baseline', '95% CI', 'method', 'real'];
  const rows = c.groups.map((g) => {
    const diff = c.diffs.find((x) => x.group === g.group);
    const ci = diff && diff.lo !== null && diff.hi !== null ? `${signed(diff.lo, d)} to ${signed(diff.hi, d)}` : diff ? 'none' : '';
    return [
      g.group,
      String(g.n),
      g.seeds.join(','),
      ...(multipleSteps ? [String(g.steps[0])] : []),
      g.mean.toFixed(d),
      g.sd === null ? '—' : g.sd.toFixed(d),
      diff ? signed(diff.diff, d) : '(baseline)',
      ci,
      diff ? diff.method : '',
      diff ? (diff.real ? 'yes' : 'no') : '',
    ];
  });
  const numeric = new Set(['n', 'step', 'mean', 'sd']);
  const lines: string[] = [];
  const title = `${c.metricDescription}, at ${atText(c)}; lower is better. Baseline: ${c.baseline}.`;
  if (format === 'markdown') {
    lines.push(title, '');
    const cell = (s: string) => s.replace(/\|/g, '\\|');
    lines.push(`| ${header.map(cell).join(' | ')} |`);
    lines.push(`|${header.map((h) => (numeric.has(h) ? ' ---: ' : ' --- ')).join('|')}|`);
    for (const r of rows) lines.push(`| ${r.map(cell).join(' | ')} |`);
    lines.push('', `Method: ${c.method}.`);
  } else {
    lines.push(title);
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
    const line = (r: string[]) =>
      r
        .map((s, i) => (numeric.has(header[i]) ? s.padStart(widths[i]) : s.padEnd(widths[i])))
        .join('  ')
        .trimEnd();
    lines.push(line(header), widths.map((w) => '-'.repeat(w)).join('  '));
    for (const r of rows) lines.push(line(r));
    lines.push(`Method: ${c.method}.`);
  }
  return lines.join('\n');
}

function seedsText(n: [number, number], paired: boolean): string {
  if (paired) return `${n[0]} seed pair${n[0] === 1 ? '' : 's'}`;
  return n[0] === n[1] ? `${n[0]} seed${n[0] === 1 ? '' : 's'} each` : `${n[0]} and ${n[1]} seeds`;
}

/**
 * One sentence on every difference against the baseline that says no more than its interval: a direction and
 * size only when the interval excludes zero, "no difference shown" when it includes zero, and no claim at all
 * without an interval.
 */
export function verdict(c: Comparison): string {
  const d = comparisonDecimals(c);
  const what = c.metric === 'train' ? 'training loss' : c.metric === 'val' ? 'validation loss' : `validation loss on ${c.metric.slice(4)}`;
  if (c.diffs.length === 0) return `Only one group (${c.groups[0].group}): nothing to compare.`;
  const parts = c.diffs.map((x) => {
    const paired = x.method.startsWith('paired');
    const kind = paired ? 'paired t' : 'Welch t';
    if (x.lo === null || x.hi === null) {
      return `${x.group} − ${x.baseline} = ${signed(x.diff, d)} with no interval (${x.note}), so no difference can be claimed`;
    }
    if (x.real) {
      const lower = x.diff < 0;
      const [a, b] = lower ? [-x.hi, -x.lo] : [x.lo, x.hi];
      return `${x.group} has a ${lower ? 'lower' : 'higher'} ${what} than ${x.baseline} by ${Math.abs(x.diff).toFixed(d)} (95% CI ${a.toFixed(d)} to ${b.toFixed(d)}, ${kind}, ${seedsText(x.n, paired)}), a difference larger than the noise between seeds`;
    }
    return `${x.group} − ${x.baseline} = ${signed(x.diff, d)} (95% CI ${signed(x.lo, d)} to ${signed(x.hi, d)}, ${kind}, ${seedsText(x.n, paired)}); the interval includes zero: no difference shown at this size`;
  });
  const caveat = c.diffs.length > 1 && c.diffs.some((x) => x.real) ? ' (each interval 95% on its own)' : '';
  return `At ${atText(c)}: ${parts.join('; ')}${caveat}.`;
}

export interface ComparisonSvgOptions {
  /** 'train', 'val' or 'val/<source>'. */
  metric: string;
  title?: string;
  /** The x axis: optimizer steps, or tokens trained on (groups with different batch sizes). Defaults to 'step'. */
  x?: 'step' | 'tokens';
  /** The band around each group's mean: 'minmax' (the lowest to the highest seed) or 'sd' (mean ± one sd). Defaults to 'minmax'. */
  band?: 'minmax' | 'sd';
  /** Pixels. Default 880 x 500. */
  width?: number;
  height?: number;
}

/** One run's curve of `metric`: [x, value] pairs. */
function runCurve(run: RunRecord, metric: string, x: 'step' | 'tokens'): [number, number][] {
  const tokensAt = new Map(run.steps.map((s) => [s.step, s.tokens]));
  const xOf = (step: number) => {
    if (x === 'step') return step;
    const t = tokensAt.get(step);
    if (t === undefined || t === null) throw invalidArg(`comparisonSvg: run ${run.dir} has no token count at step ${step} (draw against steps instead)`);
    return t;
  };
  if (metric === 'train') return run.steps.filter((s) => s.loss !== null).map((s) => [xOf(s.step), s.loss!]);
  const out: [number, number][] = [];
  for (const e of run.evals) {
    if (metric === 'val') {
      if (Object.values(e.losses).some((v) => v === null) || Object.keys(e.losses).length === 0) continue;
      out.push([xOf(e.step), unionLoss(run, e)]);
    } else {
      const v = e.losses[metric.slice(4)];
      if (typeof v === 'number') out.push([xOf(e.step), v]);
    }
  }
  return out;
}

/** The PTWD boundaries a run's records show: the update index where each stage after the first starts, and each stage's decay. */
function ptwdStages(run: RunRecord): { boundaries: number[]; values: number[] } {
  const boundaries: number[] = [];
  const values: number[] = [];
  let stage: number | null = null;
  for (const s of run.steps) {
    if (s.ptwdStage === null || s.weightDecay === null || s.ptwdStage === stage) continue;
    if (stage !== null) boundaries.push(s.step - 1);
    values.push(s.weightDecay);
    stage = s.ptwdStage;
  }
  return { boundaries, values };
}

/**
 * Each group's mean curve of `metric` over its seeds (at the x values every seed has), with a band for the
 * seed spread (min-max by default, or ± one sd: the legend says which), and the PTWD stage boundaries of the
 * groups that use PTWD as dashed vertical lines (in the group's colour when groups differ in them). A long
 * training-loss curve is drawn smoothed (plot.ts's centred moving average), the window in the legend.
 */
export function comparisonSvg(runs: RunRecord[], options: ComparisonSvgOptions): string {
  if (!Array.isArray(runs) || runs.length === 0) throw invalidArg('comparisonSvg: no runs');
  if (!isPlainObject(options)) throw invalidArg('comparisonSvg: options must be { metric, title?, x?, band? }');
  checkMetric(options.metric);
  const xKind = options.x ?? 'step';
  if (xKind !== 'step' && xKind !== 'tokens') throw invalidArg(`comparisonSvg: x must be 'step' or 'tokens', got ${JSON.stringify(xKind)}`);
  const bandKind = options.band ?? 'minmax';
  if (bandKind !== 'minmax' && bandKind !== 'sd') throw invalidArg(`comparisonSvg: band must be 'minmax' or 'sd', got ${JSON.stringify(bandKind)}`);
  const W = options.width ?? 880;
  const H = options.height ?? 500;
  for (const [k, v] of [['width', W], ['height', H]] as const) {
    if (!(typeof v === 'number' && Number.isFinite(v) && v >= 240)) throw invalidArg(`comparisonSvg: ${k} must be a number >= 240, got ${v}`);
  }
  const metric = options.metric;

  interface Series {
    group: string;
    n: number;
    mean: [number, number][];
    lo: [number, number][];
    hi: [number, number][];
    ptwd: { boundaries: number[]; values: number[] } | null;
  }
  const series: Series[] = [];
  let window = 0;
  for (const [group, members] of groupsOf(runs)) {
    const curves = members.map((r) => new Map(runCurve(r, metric, xKind)));
    const xs = [...curves[0].keys()].filter((x) => curves.every((c) => c.has(x))).sort((a, b) => a - b);
    const mean_: [number, number][] = [];
    const lo: [number, number][] = [];
    const hi: [number, number][] = [];
    for (const x of xs) {
      const vs = curves.map((c) => c.get(x)!);
      const m = mean(vs);
      mean_.push([x, m]);
      if (bandKind === 'minmax') {
        lo.push([x, Math.min(...vs)]);
        hi.push([x, Math.max(...vs)]);
      } else {
        const sd = sampleSd(vs) ?? 0;
        lo.push([x, m - sd]);
        hi.push([x, m + sd]);
      }
    }
    const stages = ptwdStages(members[0]);
    series.push({ group, n: members.length, mean: mean_, lo, hi, ptwd: stages.boundaries.length > 0 ? stages : null });
  }
  if (metric === 'train') {
    const longest = Math.max(...series.map((s) => s.mean.length));
    window = longest >= 100 ? Math.min(501, Math.max(5, 2 * Math.floor(longest / 100) + 1)) : 0;
    if (window >= 3) {
      for (const s of series) {
        s.mean = movingAverage(s.mean, window);
        s.lo = movingAverage(s.lo, window);
        s.hi = movingAverage(s.hi, window);
      }
    }
  }

  // Domains.
  let xMax = 1;
  let yLo = Infinity;
  let yHi = -Infinity;
  for (const s of series) {
    for (const [x, y] of [...s.lo, ...s.hi, ...s.mean]) {
      xMax = Math.max(xMax, x);
      yLo = Math.min(yLo, y);
      yHi = Math.max(yHi, y);
    }
  }
  const empty = !Number.isFinite(yLo);
  if (empty) [yLo, yHi] = [0, 1];
  else if (yHi - yLo < 1e-9 * Math.max(1, Math.abs(yHi))) {
    const pad = Math.max(0.5, Math.abs(yHi) * 0.05);
    [yLo, yHi] = [yLo - pad, yHi + pad];
  }
  const yStep = niceStep(yLo, yHi, 6);
  yLo = Math.floor(yLo / yStep + 1e-9) * yStep;
  yHi = Math.ceil(yHi / yStep - 1e-9) * yStep;
  const xStep = Math.max(1, niceStep(0, xMax, 8));

  // PTWD boundaries: shared ones in grey with stage labels, else each group's in its colour (steps only).
  const ptwdSeries = xKind === 'step' ? series.filter((s) => s.ptwd) : [];
  const sharedPtwd = ptwdSeries.length > 0 && ptwdSeries.every((s) => canonicalJson(s.ptwd) === canonicalJson(ptwdSeries[0].ptwd)) ? ptwdSeries[0].ptwd : null;

  const bandText = bandKind === 'minmax' ? 'band: min–max over seeds' : 'band: mean ± 1 sd over seeds';
  const legendTexts = [
    ...series.map((s) => `${s.group} (n=${s.n})`),
    bandText,
    ...(window >= 3 ? [`curves: mean of ${window} steps`] : []),
    ...(ptwdSeries.length > 0 ? ['PTWD stage change'] : []),
  ];
  // The legend takes at most 40% of the width; longer texts wrap (see entry below).
  const legendW = Math.min(Math.max(160, Math.floor(W * 0.4)), 46 + Math.max(...legendTexts.map((t) => t.length)) * 7);
  const legendChars = Math.floor((legendW - 46) / 7);
  const L = 64;
  const R = W - legendW - 24;
  const T = 64;
  const B = H - 58;
  const X = (v: number) => L + (v / xMax) * (R - L);
  const Y = (v: number) => B - ((v - yLo) / (yHi - yLo)) * (B - T);
  const colorOf = (i: number) => [TRAIN_COLOR, ...EVAL_COLORS][i % (EVAL_COLORS.length + 1)];

  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="${esc(FONT)}" font-size="12" data-groups="${series.length}" data-band="${bandKind}">`,
  );
  out.push(`<rect class="background" x="0" y="0" width="${W}" height="${H}" fill="#ffffff"/>`);
  const title = options.title ?? `${metric === 'train' ? 'training loss' : metric === 'val' ? 'validation loss (union of the sources)' : `validation loss: ${metric.slice(4)}`} by group`;
  out.push(`<text class="title" x="${num((L + R) / 2)}" y="24" text-anchor="middle" font-size="16" font-weight="600" fill="#222">${esc(title)}</text>`);
  out.push(`<defs><clipPath id="plot-clip"><rect x="${L - 5}" y="${T - 5}" width="${num(R - L + 10)}" height="${num(B - T + 10)}"/></clipPath></defs>`);
  out.push(`<rect class="plot-area" x="${L}" y="${T}" width="${num(R - L)}" height="${num(B - T)}" fill="#fcfcfc" stroke="none"/>`);

  const labels = gridAndTicks(out, { L, R, T, B, X, Y, yLo, yHi, yStep, xMax, xStep });

  if (sharedPtwd) {
    const lines = sharedPtwd.boundaries.filter((b) => b <= xMax).map((b) => `<line class="ptwd-boundary" data-step="${b}" x1="${num(X(b))}" y1="${T - 20}" x2="${num(X(b))}" y2="${num(B)}"/>`);
    out.push(`<g stroke="#555" stroke-width="1.2" stroke-dasharray="5 4">${lines.join('')}</g>`);
    const edges = [0, ...sharedPtwd.boundaries, Infinity];
    const stageLabels: string[] = [];
    for (let k = 0; k < sharedPtwd.values.length; k++) {
      const a = edges[k];
      if (a >= xMax && k > 0) break;
      const b = Math.min(edges[k + 1], xMax);
      stageLabels.push(`<text class="ptwd-stage" data-stage="${k}" x="${num((X(a) + X(b)) / 2)}" y="${T - 8}" text-anchor="middle">wd = ${String(Number(sharedPtwd.values[k].toPrecision(4)))}</text>`);
    }
    out.push(`<g font-size="12" fill="#333">${stageLabels.join('')}</g>`);
  } else {
    for (const s of ptwdSeries) {
      const color = colorOf(series.indexOf(s));
      const lines = s.ptwd!.boundaries.filter((b) => b <= xMax).map((b) => `<line class="ptwd-boundary" data-group="${esc(s.group)}" data-step="${b}" x1="${num(X(b))}" y1="${T}" x2="${num(X(b))}" y2="${num(B)}"/>`);
      out.push(`<g stroke="${color}" stroke-width="1.2" stroke-dasharray="5 4">${lines.join('')}</g>`);
    }
  }

  const data: string[] = [];
  const pts = (s: [number, number][]) => s.map(([x, y]) => `${num(X(x))},${num(Y(y))}`).join(' ');
  series.forEach((s, i) => {
    const color = colorOf(i);
    if (s.n > 1 && s.mean.length > 0) {
      const polygon = [...s.hi, ...[...s.lo].reverse()];
      data.push(`<polygon class="seed-band" data-group="${esc(s.group)}" points="${pts(polygon)}" fill="${color}" fill-opacity="0.18" stroke="none"/>`);
    }
    data.push(`<polyline class="group-mean" data-group="${esc(s.group)}" data-n="${s.n}" points="${pts(s.mean)}" fill="none" stroke="${color}" stroke-width="1.8" stroke-linejoin="round"/>`);
    if (metric !== 'train' || s.mean.length === 1) {
      data.push(`<g fill="${color}" stroke="#ffffff" stroke-width="1">${s.mean.map(([x, y]) => `<circle cx="${num(X(x))}" cy="${num(Y(y))}" r="3"/>`).join('')}</g>`);
    }
  });
  out.push(`<g clip-path="url(#plot-clip)">${data.join('')}</g>`);

  out.push(`<g class="axes" stroke="#444" stroke-width="1" fill="none"><rect x="${L}" y="${T}" width="${num(R - L)}" height="${num(B - T)}"/></g>`);
  out.push(`<g font-size="11" fill="#444">${labels.join('')}</g>`);
  out.push(`<text class="x-label" x="${num((L + R) / 2)}" y="${num(H - 14)}" text-anchor="middle" fill="#222">${xKind === 'step' ? 'optimizer step' : 'tokens trained'}</text>`);
  out.push(`<text class="y-label" transform="translate(18 ${num((T + B) / 2)}) rotate(-90)" text-anchor="middle" fill="#222">${esc(metric === 'train' ? 'training loss (nats / token)' : metric === 'val' ? 'validation loss (nats / token)' : `validation loss: ${metric.slice(4)}`)}</text>`);
  if (empty) out.push(`<text x="${num((L + R) / 2)}" y="${num((T + B) / 2)}" text-anchor="middle" fill="#888" font-size="14">no finite values to draw</text>`);

  const lx = R + 18;
  let ly = T + 4;
  const legend: string[] = [];
  const entry = (swatch: string, text: string) => {
    // Wrapped at spaces (between a group's key=value parts); a word longer than a line is cut in its middle.
    const lines: string[] = [];
    for (let word of text.split(' ')) {
      if (word.length > legendChars) word = `${word.slice(0, Math.floor((legendChars - 1) / 2))}…${word.slice(word.length - Math.ceil((legendChars - 1) / 2))}`;
      const last = lines.length - 1;
      if (last >= 0 && lines[last].length + 1 + word.length <= legendChars) lines[last] += ` ${word}`;
      else lines.push(word);
    }
    const full = lines.join(' ') === text ? '' : `<title>${esc(text)}</title>`;
    const tspans = lines.map((l, k) => `<tspan x="30" dy="${k === 0 ? '0.32em' : '1.2em'}">${esc(l)}</tspan>`).join('');
    legend.push(`<g transform="translate(${lx} ${ly})">${full}${swatch}<text fill="#222">${tspans}</text></g>`);
    ly += 20 + 14 * (lines.length - 1);
  };
  series.forEach((s, i) => {
    const c = colorOf(i);
    entry(`<rect x="0" y="-6" width="22" height="12" fill="${c}" fill-opacity="0.18"/><line x1="0" y1="0" x2="22" y2="0" stroke="${c}" stroke-width="1.8"/>`, `${s.group} (n=${s.n})`);
  });
  entry(`<rect x="0" y="-6" width="22" height="12" fill="#888" fill-opacity="0.18"/>`, bandText);
  if (window >= 3) entry('', `curves: mean of ${window} steps`);
  if (ptwdSeries.length > 0) entry(`<line x1="0" y1="0" x2="22" y2="0" stroke="#555" stroke-width="1.2" stroke-dasharray="5 4"/>`, 'PTWD stage change');
  const frame = `<rect x="${lx - 8}" y="${T - 6}" width="${legendW}" height="${num(ly - T - 4 + 12)}" fill="#ffffff" stroke="#dddddd" rx="3"/>`;
  out.push(`<g class="legend" font-size="12">${frame}${legend.join('')}</g>`);
  out.push('</svg>');
  return out.join('\n') + '\n';
}
