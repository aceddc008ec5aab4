// sweep.ts: a grid of training-config overrides x seeds, run one after another as ordinary run directories,
// resumable (`pajama sweep`).
//
// The grid is a JSON object. Each key but `groups` is a dotted config key (as `--set` takes them) with an
// array of the values to try; `groups` (optional) is an object of named groups, each an object of dotted keys
// and single values that change together. Every key and `groups` is one axis; the runs are the cartesian
// product of the axes, in the order the grid lists them (the first axis varies slowest), repeated for each
// seed with the seeds outermost (all groups at the first seed, then all at the second: an interrupted sweep
// has every group at the seeds it finished):
//
//   { "batch.globalBatchTokens": [16384, 65536],
//     "groups": { "ptwd": { "weightDecay.mode": "ptwd" },
//                 "wd0.1": { "weightDecay.mode": "constant", "weightDecay.value": 0.1 } } }
//
// gives 4 groups per seed: "batch.globalBatchTokens=16384 ptwd", "batch.globalBatchTokens=16384 wd0.1", ...
// A group's label is its coordinates (key=value for a key, the name for a named group; "base" for an empty
// grid). A run's directory is <out>/runs/<label made filesystem-safe>-s<seed>: characters outside
// [A-Za-z0-9._=+-] become '_', and a label that had to change, or is longer than 64 characters, gets the
// first 8 hex digits of its SHA-256 (names are stable: the same grid gives the same names). `seed` and
// `runDir` cannot be grid keys (the seeds and the sweep set them); a key that is also inside another key's
// value (`weightDecay` and `weightDecay.mode`), an empty value list, a value listed twice and two groups with
// the same settings are errors naming the key. Every run's config is resolved before the first run starts,
// so a value the config rejects fails at once, naming the run and the key.
//
// Each run is a normal run directory: config.json (the resolved config it runs with, written first, with
// paths made absolute against the spec's baseDir), metrics.jsonl, checkpoints/. <out>/sweep.json records the
// spec (base config, grid, seeds) and the runs. Rerunning the same sweep resumes it: a run whose latest
// checkpoint is at its config's `steps` is finished and skipped; a run with an earlier checkpoint resumes
// from it (the trainer's resume, exact; `checkpoint.every` decides how much of a killed run is redone); a
// run directory whose config.json differs from the run's config is refused naming the key, as is a
// sweep.json with another base config or grid. The seeds may grow (the recorded list a prefix of the new
// one): the runs already made keep their indices.
//
// Runs execute one after another in this process, each using every thread the config gives it. One run per
// MPI rank is not done: each run may itself be data parallel over all the ranks, and runs sharing a
// machine's cores would each run slower (the CLI refuses to run a sweep under mpirun).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { invalidArg, showValue } from '../core/errors';
import { canonicalJson } from '../core/json-file';
import { writeTextAtomic } from '../core/atomic';
import { withFsContext } from '../core/fs-errors';
import { resolveConfig, type ConfigDialect } from '../core/config-schema';
import { TRAIN_CONFIG_SCHEMA, resolveTrainConfig, type TrainConfig } from './config';
import { latestCheckpoint, TRAINER_STATE_FILE } from './checkpoint';
import { Trainer } from './trainer';
import type { Communicator } from '../dist/communicator';

export interface SweepRun {
  /** 0-based position in the sweep's order. */
  index: number;
  /** The run directory's name: the group's label made filesystem-safe, + '-s' + seed. */
  name: string;
  /** The group's label: its grid coordinates, e.g. "weightDecay.mode=constant" or a named group's name. */
  group: string;
  /** Dotted key -> value applied to the base config (seed excluded). */
  overrides: Record<string, unknown>;
  seed: number;
  /** <out>/runs/<name>. */
  dir: string;
}

export interface SweepSpec {
  /** The base training config (a partial config as a JSON file holds it, --set overrides applied). */
  base: Record<string, unknown>;
  /** Relative paths in the base config and the grid resolve against this (the CLI: the working directory, as pajama train). */
  baseDir: string;
  grid: unknown;
  seeds: number[];
}

export interface SweepProgress {
  run: SweepRun;
  /** 1-based position of the run. */
  i: number;
  n: number;
  /** Seconds left, from the durations of the runs finished so far; null before any. */
  etaSeconds: number | null;
  /** 'start': a new run; 'resume': from its latest checkpoint; 'skip': already finished; 'done': just finished. */
  state: 'start' | 'skip' | 'resume' | 'done';
}

export interface SweepOptions {
  onProgress?: (p: SweepProgress) => void;
  /** Called with each run's trainer before it trains: listen to its events, or keep it to requestStop(). */
  onTraining?: (trainer: Trainer, run: SweepRun) => void;
  /** The ranks every run trains on. Defaults to the trainer's default (a world of one outside mpirun). */
  communicator?: Communicator;
}

/** The sweep's record in its output directory. */
export const SWEEP_FILE = 'sweep.json';
/** Where the run directories go, under the sweep's output directory. */
export const SWEEP_RUNS_DIR = 'runs';
/** The resolved config each run directory holds, written before the run starts. */
export const RUN_CONFIG_FILE = 'config.json';
/** The grid key of named groups. */
export const GROUPS_KEY = 'groups';
const NAME_MAX = 64;
const SWEEP_FILE_VERSION = 1;

/** A run stopped before its last step (trainer.requestStop(), e.g. on a signal): the sweep stopped there. */
export class SweepStoppedError extends Error {
  readonly code = 'ERR_PAJAMA_SWEEP_STOPPED';
  constructor(
    readonly run: SweepRun,
    readonly step: number,
    message: string,
  ) {
    super(message);
    this.name = 'SweepStoppedError';
  }
}

interface AxisValue {
  label: string;
  overrides: Record<string, unknown>;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A value as a label shows it: strings as they are, the rest as canonical JSON. */
function valueLabel(v: unknown): string {
  return typeof v === 'string' ? v : canonicalJson(v);
}

const SET_BY_SWEEP: Record<string, string> = {
  seed: "'seed' is set by the sweep's seeds (--seeds)",
  runDir: "'runDir' is set by the sweep (<out>/runs/<name>)",
};

/** A dotted config key of the grid, checked. */
function checkKey(key: string, where: string): void {
  if (key === '' || key.split('.').some((p) => p === '')) throw invalidArg(`grid: ${where}key '${key}' is not a dotted config key (like 'optimizer.lr')`);
  if (SET_BY_SWEEP[key]) throw invalidArg(`grid: ${where}key '${key}' cannot be swept: ${SET_BY_SWEEP[key]}`);
}

/** The grid's axes, in the order it lists them; errors name the key. */
function gridAxes(grid: unknown): AxisValue[][] {
  if (!isPlainObject(grid)) throw invalidArg(`grid: must be a JSON object of dotted config keys and arrays of values (and '${GROUPS_KEY}'), got ${showValue(grid)}`);
  const axes: AxisValue[][] = [];
  const keysUsed: { key: string; where: string }[] = [];
  for (const [key, values] of Object.entries(grid)) {
    if (key === GROUPS_KEY) {
      if (!isPlainObject(values) || Object.keys(values).length === 0) {
        throw invalidArg(`grid: '${GROUPS_KEY}' must be a non-empty object of named groups ({"name": {"key": value, ...}}), got ${showValue(values)}`);
      }
      const axis: AxisValue[] = [];
      const seen = new Map<string, string>();
      for (const [name, settings] of Object.entries(values)) {
        if (name.trim() === '') throw invalidArg(`grid: '${GROUPS_KEY}' has a group with an empty name`);
        if (!isPlainObject(settings)) throw invalidArg(`grid: group '${name}' must be an object of dotted config keys and values, got ${showValue(settings)}`);
        for (const k of Object.keys(settings)) {
          checkKey(k, `group '${name}': `);
          keysUsed.push({ key: k, where: `group '${name}'` });
        }
        const c = canonicalJson(settings);
        if (seen.has(c)) throw invalidArg(`grid: groups '${seen.get(c)}' and '${name}' have the same settings (${c}); each group must differ`);
        seen.set(c, name);
        axis.push({ label: name, overrides: { ...settings } });
      }
      axes.push(axis);
      continue;
    }
    checkKey(key, '');
    if (!Array.isArray(values) || values.length === 0) {
      throw invalidArg(`grid: '${key}' must be a non-empty array of the values to try, got ${showValue(values)} (a single value: [value], or --set ${key}=...)`);
    }
    const seen = new Set<string>();
    for (const v of values) {
      const c = canonicalJson(v);
      if (seen.has(c)) throw invalidArg(`grid: '${key}' lists the value ${c} twice`);
      seen.add(c);
    }
    keysUsed.push({ key, where: 'the grid' });
    axes.push(values.map((v) => ({ label: `${key}=${valueLabel(v)}`, overrides: { [key]: v } })));
  }
  // A key set by two axes, or inside another's value, would make the order of the axes decide the config.
  const axisKeys = keysUsed.filter((k) => k.where === 'the grid');
  for (const a of keysUsed) {
    for (const b of axisKeys) {
      if (a === b) continue;
      if (a.key === b.key) throw invalidArg(`grid: '${a.key}' is both an axis of the grid and set in ${a.where}; give it in one place`);
      if (a.key.startsWith(`${b.key}.`) || b.key.startsWith(`${a.key}.`)) {
        const [outer, inner] = a.key.length < b.key.length ? [a.key, b.key] : [b.key, a.key];
        throw invalidArg(`grid: '${inner}' is inside '${outer}' (${a.where === 'the grid' ? 'both axes of the grid' : `set in ${a.where} and an axis of the grid`}); sweep one or the other`);
      }
    }
  }
  const groupKeys = keysUsed.filter((k) => k.where !== 'the grid');
  for (const a of groupKeys) {
    for (const b of groupKeys) {
      if (a.where === b.where && a.key !== b.key && b.key.startsWith(`${a.key}.`)) throw invalidArg(`grid: '${b.key}' (${b.where}) is inside '${a.key}' (${a.where}); set one or the other`);
    }
  }
  return axes;
}

/** The seeds of a sweep: a non-empty list of distinct non-negative integers. */
function checkSeeds(seeds: readonly number[]): void {
  if (!Array.isArray(seeds) || seeds.length === 0) throw invalidArg(`sweep: seeds must be a non-empty array of non-negative integers, got ${showValue(seeds)}`);
  for (const s of seeds) {
    if (!Number.isSafeInteger(s) || s < 0) throw invalidArg(`sweep: seed ${showValue(s)} is not a non-negative integer`);
  }
  const twice = seeds.find((s, i) => seeds.indexOf(s) !== i);
  if (twice !== undefined) throw invalidArg(`sweep: seed ${twice} is listed twice`);
}

const hash8 = (text: string) => createHash('sha256').update(text).digest('hex').slice(0, 8);

/** A label as a directory name: see the file header. */
function labelSlug(label: string, parts: string[]): string {
  const safe = parts.map((p) => p.replace(/[^A-Za-z0-9._=+-]+/g, '_'));
  const slug = safe.join('_');
  const changed = safe.some((s, i) => s !== parts[i]) || /^[.-]/.test(slug);
  if (!changed && slug.length <= NAME_MAX) return slug;
  return `${slug.slice(0, NAME_MAX - 9).replace(/^[.-]+/, '_')}-${hash8(label)}`;
}

/**
 * The runs of a grid x seeds, in the sweep's order (seeds outermost, then the grid's axes in the order it
 * lists them, the first slowest), with stable, unique, filesystem-safe names. See the file header.
 */
export function expandGrid(grid: unknown, seeds: readonly number[], out: string): SweepRun[] {
  const axes = gridAxes(grid);
  checkSeeds(seeds);
  let combos: { parts: string[]; overrides: Record<string, unknown> }[] = [{ parts: [], overrides: {} }];
  for (const axis of axes) {
    combos = combos.flatMap((c) => axis.map((v) => ({ parts: [...c.parts, v.label], overrides: { ...c.overrides, ...v.overrides } })));
  }
  const groups = combos.map((c) => {
    const label = c.parts.length === 0 ? 'base' : c.parts.join(' ');
    return { label, slug: labelSlug(label, c.parts.length === 0 ? ['base'] : c.parts), overrides: c.overrides };
  });
  // Names that differ only in case are one directory on case-insensitive file systems: hash them apart.
  const byLower = new Map<string, number>();
  for (const g of groups) byLower.set(g.slug.toLowerCase(), (byLower.get(g.slug.toLowerCase()) ?? 0) + 1);
  for (const g of groups) if (byLower.get(g.slug.toLowerCase())! > 1) g.slug = `${g.slug.slice(0, NAME_MAX - 9)}-${hash8(g.label)}`;
  const runs: SweepRun[] = [];
  for (const seed of seeds) {
    for (const g of groups) {
      const name = `${g.slug}-s${seed}`;
      runs.push({ index: runs.length, name, group: g.label, overrides: structuredClone(g.overrides), seed, dir: path.join(out, SWEEP_RUNS_DIR, name) });
    }
  }
  return runs;
}

/** `obj` with `value` at the dotted `key`, creating objects on the way. */
function setDotted(obj: Record<string, unknown>, key: string, value: unknown, where: string): void {
  const parts = key.split('.');
  let node = obj;
  for (const [i, p] of parts.slice(0, -1).entries()) {
    if (node[p] === undefined) node[p] = {};
    if (!isPlainObject(node[p])) throw invalidArg(`sweep: ${where}: cannot set '${key}': '${parts.slice(0, i + 1).join('.')}' is ${showValue(node[p])} in the base config, not an object`);
    node = node[p] as Record<string, unknown>;
  }
  node[parts[parts.length - 1]] = structuredClone(value);
}

/** Only reached for an input resolveTrainConfig already accepted (the second resolution only rebases paths). */
const REBASE_DIALECT: ConfigDialect = {
  mismatch: (key, must, value) => `config: '${key}' must ${must}, got ${showValue(value)}`,
  unknownKey: (key) => `config: unknown key '${key}'`,
  notObject: (key, value) => `config: '${key}' must be an object, got ${showValue(value)}`,
  fail: (message) => `config: ${message}`,
};

/** A config resolved and checked, with relative paths made absolute against baseDir. */
function resolveAgainst(input: Record<string, unknown>, baseDir: string): TrainConfig {
  resolveTrainConfig(input); // the errors of pajama train, worded as it words them
  return resolveConfig(TRAIN_CONFIG_SCHEMA, input, { dialect: REBASE_DIALECT, baseDir: path.resolve(baseDir) });
}

/** The config a run trains with: the base, the run's overrides, its seed and its directory. */
export function sweepRunConfig(spec: SweepSpec, run: SweepRun): TrainConfig {
  const input = structuredClone(spec.base);
  for (const [k, v] of Object.entries(run.overrides)) setDotted(input, k, v, `run '${run.name}'`);
  input.seed = run.seed;
  input.runDir = path.resolve(run.dir);
  try {
    return resolveAgainst(input, spec.baseDir);
  } catch (e) {
    if (!(e instanceof TypeError)) throw e;
    throw invalidArg(`sweep: run '${run.name}' (${run.group}, seed ${run.seed}) has an invalid config: ${e.message}`);
  }
}

/** The first path (object keys) at which two JSON values differ, or null when they are the same. */
function differencePath(a: unknown, b: unknown, at: string[] = []): string[] | null {
  if (isPlainObject(a) && isPlainObject(b)) {
    for (const k of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) {
      const d = differencePath(a[k], b[k], [...at, k]);
      if (d !== null) return d;
    }
    return null;
  }
  return canonicalJson(a, 'unset') === canonicalJson(b, 'unset') ? null : at;
}

/** Where two JSON values first differ, as a dotted key, with the value on each side; null when the same. */
export function firstDifference(a: unknown, b: unknown): { key: string; a: unknown; b: unknown } | null {
  const p = differencePath(a, b);
  if (p === null) return null;
  const at = (o: unknown) => p.reduce<unknown>((n, k) => (isPlainObject(n) ? n[k] : undefined), o);
  return { key: p.length === 0 ? '(root)' : p.join('.'), a: at(a), b: at(b) };
}

/** A config without the keys that may differ between otherwise equal runs (where the directory is). */
function comparable(c: unknown): Record<string, unknown> {
  const o = structuredClone(c) as Record<string, unknown>;
  delete o.runDir;
  return o;
}

/** The base config as a sweep compares it: resolved, without its seed and runDir (the sweep sets them). */
function baseIdentity(spec: SweepSpec): Record<string, unknown> {
  let c: TrainConfig;
  try {
    c = resolveAgainst({ ...structuredClone(spec.base), runDir: 'runs/sweep-base' }, spec.baseDir);
  } catch (e) {
    if (!(e instanceof TypeError)) throw e;
    throw invalidArg(`sweep: the base config is invalid: ${e.message}`);
  }
  const o = comparable(c);
  delete o.seed;
  return o;
}

interface SweepFile {
  version: number;
  base: Record<string, unknown>;
  baseDir: string;
  /** The base config resolved (without seed and runDir): what a resume compares. */
  baseResolved: Record<string, unknown>;
  grid: unknown;
  seeds: number[];
  /** The runs, with `dir` relative to the sweep's directory (runs/<name>). */
  runs: (Omit<SweepRun, 'dir'> & { dir: string })[];
}

const show = (v: unknown) => canonicalJson(v, 'unset');

/** Checks an existing sweep.json against this spec; returns whether it must be rewritten (more seeds). */
function checkSweepFile(file: string, record: SweepFile): boolean {
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw invalidArg(`sweep: ${file} cannot be read as JSON (${(e as Error).message}); it is not a sweep's record, or it is damaged: use another --out`);
  }
  if (!isPlainObject(raw) || raw.version !== SWEEP_FILE_VERSION) throw invalidArg(`sweep: ${file} is not a version ${SWEEP_FILE_VERSION} sweep record; use another --out`);
  const again = 'use another --out for another sweep, or the same base config, grid and seeds to resume this one';
  const base = firstDifference(raw.baseResolved, record.baseResolved);
  if (base !== null) throw invalidArg(`sweep: ${file} records another base config: '${base.key}' is ${show(base.a)} there and ${show(base.b)} now; ${again}`);
  const grid = firstDifference(raw.grid, record.grid);
  if (!isPlainObject(raw.grid)) throw invalidArg(`sweep: ${file} holds no grid object; it is damaged: use another --out`);
  if (grid !== null || canonicalJson(Object.keys(raw.grid)) !== canonicalJson(Object.keys(record.grid as object))) {
    const what = grid === null ? 'the same keys in another order (the order of the runs)' : `'${grid.key}' is ${show(grid.a)} there and ${show(grid.b)} now`;
    throw invalidArg(`sweep: ${file} records another grid: ${what}; ${again}`);
  }
  const seeds = raw.seeds as number[];
  const prefix = Array.isArray(seeds) && seeds.length <= record.seeds.length && seeds.every((s, i) => s === record.seeds[i]);
  if (!prefix) {
    throw invalidArg(`sweep: ${file} records the seeds ${show(seeds)} and this sweep has ${show(record.seeds)}; the seeds may only grow at the end (e.g. ${show([...(Array.isArray(seeds) ? seeds : []), '...'])}); ${again}`);
  }
  return seeds.length !== record.seeds.length;
}

/** The training seconds a finished run took, from its last checkpoint's trainer state; null when unreadable. */
function recordedSeconds(checkpointDir: string): number | null {
  try {
    const s = JSON.parse(fs.readFileSync(path.join(checkpointDir, TRAINER_STATE_FILE), 'utf8')) as { elapsedSec?: unknown };
    return typeof s.elapsedSec === 'number' && Number.isFinite(s.elapsedSec) ? s.elapsedSec : null;
  } catch {
    return null;
  }
}

/**
 * Runs a sweep into `out` (see the file header): checks every run's config, writes or checks
 * <out>/sweep.json, then trains the runs in order, skipping the finished ones and resuming the half-finished.
 * A run stopped by trainer.requestStop() ends the sweep with SweepStoppedError; any other failure of a run
 * ends it with that run's error. Returns the runs.
 */
export async function runSweep(spec: SweepSpec, out: string, options: SweepOptions = {}): Promise<SweepRun[]> {
  if (!isPlainObject(spec) || !isPlainObject(spec.base)) throw invalidArg('sweep: spec.base must be a training config object');
  if (typeof spec.baseDir !== 'string' || spec.baseDir === '') throw invalidArg(`sweep: spec.baseDir must be a directory path, got ${showValue(spec.baseDir)}`);
  if (typeof out !== 'string' || out === '') throw invalidArg(`sweep: the output directory must be a path, got ${showValue(out)}`);
  const runs = expandGrid(spec.grid, spec.seeds, out);
  const baseResolved = baseIdentity(spec);
  const configs = runs.map((r) => sweepRunConfig(spec, r));
  const record: SweepFile = {
    version: SWEEP_FILE_VERSION,
    base: spec.base,
    baseDir: path.resolve(spec.baseDir),
    baseResolved,
    grid: spec.grid,
    seeds: [...spec.seeds],
    runs: runs.map((r) => ({ ...r, dir: path.join(SWEEP_RUNS_DIR, r.name) })),
  };
  const sweepFile = path.join(out, SWEEP_FILE);
  const exists = fs.existsSync(sweepFile);
  const rewrite = exists ? checkSweepFile(sweepFile, record) : true;
  // Every run directory already there must hold this run's config: checked before anything trains.
  const runConfigFile = (r: SweepRun) => path.join(r.dir, RUN_CONFIG_FILE);
  runs.forEach((r, i) => {
    const f = runConfigFile(r);
    if (!fs.existsSync(f)) return;
    let had: unknown;
    try {
      had = JSON.parse(fs.readFileSync(f, 'utf8'));
    } catch (e) {
      throw invalidArg(`sweep: run '${r.name}': ${f} cannot be read as JSON (${(e as Error).message}); remove the run directory ${r.dir} to start that run again`);
    }
    if (!isPlainObject(had)) throw invalidArg(`sweep: run '${r.name}': ${f} does not hold a config object; remove the run directory ${r.dir} to start that run again`);
    const d = firstDifference(comparable(had), comparable(configs[i]));
    if (d !== null) {
      throw invalidArg(
        `sweep: run '${r.name}' in ${r.dir} was started with another config: '${d.key}' is ${show(d.a)} there and ${show(d.b)} in this sweep; ` +
          `use another --out, or remove ${r.dir} to start that run again`,
      );
    }
  });
  if (rewrite) {
    withFsContext('creating the sweep directory', out, () => fs.mkdirSync(out, { recursive: true }));
    writeTextAtomic(sweepFile, JSON.stringify(record, null, 2) + '\n');
  }
  const fresh: number[] = []; // wall seconds of runs trained from their first step in this process
  const recorded: number[] = []; // training seconds of finished runs, from their checkpoints
  const eta = (left: number): number | null => {
    const d = fresh.length > 0 ? fresh : recorded;
    return d.length === 0 ? null : (left * d.reduce((a, b) => a + b, 0)) / d.length;
  };
  const n = runs.length;
  for (const [k, run] of runs.entries()) {
    const config = configs[k];
    const latest = latestCheckpoint(run.dir);
    if (latest && latest.step >= config.steps) {
      const s = recordedSeconds(latest.dir);
      if (s !== null) recorded.push(s);
      options.onProgress?.({ run, i: k + 1, n, etaSeconds: eta(n - k - 1), state: 'skip' });
      continue;
    }
    const state = latest ? 'resume' : 'start';
    options.onProgress?.({ run, i: k + 1, n, etaSeconds: eta(n - k), state });
    if (!fs.existsSync(runConfigFile(run))) {
      withFsContext('creating the run directory', run.dir, () => fs.mkdirSync(run.dir, { recursive: true }));
      writeTextAtomic(runConfigFile(run), JSON.stringify(config, null, 2) + '\n');
    }
    const t0 = performance.now();
    const trainer = await Trainer.fromConfig(config, { resume: true, ...(options.communicator ? { communicator: options.communicator } : {}) });
    let steps: number;
    let stopped: boolean;
    try {
      options.onTraining?.(trainer, run);
      const r = await trainer.fit();
      steps = r.steps;
      stopped = r.stopped;
    } finally {
      trainer.dispose();
    }
    if (stopped) {
      throw new SweepStoppedError(run, steps, `the sweep stopped in run ${k + 1} of ${n} (${run.name}) at step ${steps} of ${config.steps}; run the same sweep again to resume it`);
    }
    const seconds = (performance.now() - t0) / 1e3;
    if (state === 'start') fresh.push(seconds);
    else {
      const s = recordedSeconds(latestCheckpoint(run.dir)?.dir ?? '');
      if (s !== null) recorded.push(s);
    }
    options.onProgress?.({ run, i: k + 1, n, etaSeconds: eta(n - k - 1), state: 'done' });
  }
  return runs;
}

/**
 * `--seeds`: a count N (seeds 1..N), a comma list (`1,2,3`) or an inclusive range (`5..8`).
 */
export function parseSeeds(text: string): number[] {
  const t = text.trim();
  const int = (s: string) => {
    if (!/^\d+$/.test(s.trim())) throw invalidArg(`--seeds '${text}': '${s.trim()}' is not a non-negative integer (give a count N, a list 1,2,3 or a range 5..8)`);
    const v = Number(s.trim());
    if (!Number.isSafeInteger(v)) throw invalidArg(`--seeds '${text}': ${s.trim()} is too large`);
    return v;
  };
  let seeds: number[];
  const range = /^(.*)\.\.(.*)$/.exec(t);
  if (range) {
    const [a, b] = [int(range[1]), int(range[2])];
    if (b < a) throw invalidArg(`--seeds '${text}': the range ends before it starts`);
    if (b - a >= 10_000) throw invalidArg(`--seeds '${text}': more than 10000 seeds`);
    seeds = Array.from({ length: b - a + 1 }, (_, i) => a + i);
  } else if (t.includes(',')) {
    seeds = t.split(',').map(int);
  } else {
    const count = int(t);
    if (count < 1 || count > 10_000) throw invalidArg(`--seeds ${text}: a count of seeds must be 1 to 10000 (for the single seed ${count}, give ${count}..${count})`);
    seeds = Array.from({ length: count }, (_, i) => i + 1);
  }
  checkSeeds(seeds);
  return seeds;
}
