// checkpoint.ts: the run directory's checkpoints, each a Hugging Face MPT directory plus the optimizer and
// trainer state needed to resume bit-exactly.
//
//   <runDir>/checkpoints/
//     latest                      "step-000300\n": the checkpoint to resume from (rewritten atomically)
//     step-000200/                one complete checkpoint; loads with transformers' MptForCausalLM as is
//       config.json               MptConfig (mptHfConfig, model/hf.ts)
//       model.safetensors         parameters under their HF names, f32 master weights by default
//       optimizer.safetensors     AdamW moments 'm.<name>' and 'v.<name>', in the moments' dtype (f32)
//       trainer_state.json        step, schedule and data position, RNG state... (whatever the trainer saves)
//       tokenizer.json            the run's Hugging Face tokenizer, copied (when it was trained with one)
//       tokenizer_config.json     which tokenizer decodes the model: {"pajama_tokenizer": {"kind": "gpt2"} or
//                                 {"kind": "hf", "file": "tokenizer.json", ...options}} (when the run knew it)
//     step-000300/
//     step-000400.tmp-<pid>-<hex>/  an unfinished save (crash): never listed, deleted by the next save
//
// Crash safety: a checkpoint is written into a temporary directory, flushed, and renamed into place, so a
// directory named step-N is always complete. `latest` is updated only after that rename, and older
// checkpoints are pruned only after `latest` moved; a checkpoint being deleted is first renamed to a
// temporary name. One process writes a run directory at a time.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { checkArena, sameLayout } from '../core/arena-checks';
import { Arena } from '../core/tensor';
import { invalidArg } from '../core/errors';
import { ops } from '../core/ops';
import { withFsContext } from '../core/fs-errors';
import { readJsonFile } from '../core/json-file';
import { TMP_MARKER, fsyncDir, tmpPathFor, writeTextAtomic } from '../core/atomic';
import { checkConfigFitsArena, type MptHfConfig } from '../model/hf';
import { arenaTensorsToWrite, loadArenasSafetensors, writeSafetensors, type ArenaTarget } from './safetensors';
import { TOKENIZER_FILE, type TokenizerSpec } from '../data/tokenizers/create';

// The config.json mapping moved to model/hf.ts; these names stay importable from here.
export { mptHfConfig, mptParamLayout, type MptShape, type MptHfConfig, type MptHfConfigOptions } from '../model/hf';

/** A checkpoint or model directory that is incomplete, inconsistent, or does not fit the arenas given. */
export class CheckpointError extends Error {
  readonly code = 'ERR_PAJAMA_CHECKPOINT';
  constructor(
    readonly where: string,
    message: string,
  ) {
    super(`${where}: ${message}`);
    this.name = 'CheckpointError';
  }
}

/** A checkpoint that would hold, or holds, NaN or +-Inf in its weights or optimizer moments. */
export class NonFiniteCheckpointError extends Error {
  readonly code = 'ERR_PAJAMA_NON_FINITE';
  constructor(
    readonly where: string,
    /** Each offending tensor: which file or arena, its name, and how many values are NaN or +-Inf. */
    readonly tensors: NonFiniteTensor[],
    message: string,
  ) {
    super(`${where}: ${message}`);
    this.name = 'NonFiniteCheckpointError';
  }
}

export interface NonFiniteTensor {
  /** 'model.safetensors', 'optimizer.safetensors', or the arena's role ('params', 'm', 'v'). */
  file: string;
  name: string;
  count: number;
}

/** The entries of `arena` holding NaN or +-Inf (one native pass over the whole arena when there are none). */
export function nonFiniteEntries(arena: Arena, file: string, prefix = ''): NonFiniteTensor[] {
  if (ops.sumSquares(arena.buffer)[1] === 0) return [];
  const out: NonFiniteTensor[] = [];
  for (const e of arena.entries) {
    const count = ops.sumSquares(arena.get(e.name))[1];
    if (count > 0) out.push({ file, name: prefix + e.name, count });
  }
  return out;
}

function describeNonFinite(bad: NonFiniteTensor[]): string {
  const shown = bad
    .slice(0, 3)
    .map((b) => `${b.file} tensor '${b.name}' holds ${b.count} NaN/Inf value${b.count === 1 ? '' : 's'}`)
    .join('; ');
  return shown + (bad.length > 3 ? `; and ${bad.length - 3} more tensors` : '');
}

export const CHECKPOINTS_DIR = 'checkpoints';
export const LATEST_FILE = 'latest';
export const CONFIG_FILE = 'config.json';
export const MODEL_FILE = 'model.safetensors';
export const MODEL_INDEX_FILE = 'model.safetensors.index.json';
export const OPTIMIZER_FILE = 'optimizer.safetensors';
export const TRAINER_STATE_FILE = 'trainer_state.json';
export const TOKENIZER_CONFIG_FILE = 'tokenizer_config.json';

const STEP_DIR = /^step-(\d+)$/;

/** The directory name of the checkpoint at `step`: step-000123 (at least six digits). */
export function checkpointName(step: number): string {
  return `step-${String(step).padStart(6, '0')}`;
}

// ---------------------------------------------------------------------------------------------------------
// Saving

export interface CheckpointInfo {
  step: number;
  /** The checkpoint directory. */
  dir: string;
}

export interface SaveCheckpointOptions {
  /** config.json: an MptHfConfig (mptHfConfig), checked against the shapes of `params`. */
  config: MptHfConfig | Record<string, unknown>;
  /** f32 master weights (or bf16), entries under their HF names. */
  params: Arena;
  /** The AdamW moments, each with the layout of `params`. Omitted: no optimizer.safetensors. */
  optimizerState?: { m: Arena; v: Arena };
  /** Plain JSON (objects, arrays, strings, finite numbers, booleans, null); its `step`, if any, must be `step`. */
  trainerState: Record<string, unknown>;
  /** Complete checkpoints kept, this one included (Infinity keeps all). Older ones are deleted. */
  keepLast: number;
  /** The dtype of model.safetensors. Defaults to the arena's own (F32 for f32 master weights). */
  modelDtype?: 'F32' | 'BF16';
  /** Bytes copied out of native memory per piece. Defaults to 64 MiB. */
  chunkBytes?: number;
  /**
   * The tokenizer the model was trained with: recorded in tokenizer_config.json, and a tokenizer.json copied
   * next to the weights (as Hugging Face keeps them). Omitted or null: none is recorded.
   */
  tokenizer?: TokenizerSpec | null;
}

/** tokenizer_config.json for `spec`: Hugging Face's class name, and the spec relative to the checkpoint. */
function tokenizerConfig(spec: TokenizerSpec): Record<string, unknown> {
  if (spec.kind === 'gpt2') return { tokenizer_class: 'GPT2TokenizerFast', pajama_tokenizer: { kind: 'gpt2' } };
  const { path: _file, ...options } = spec;
  void _file;
  return { tokenizer_class: 'PreTrainedTokenizerFast', pajama_tokenizer: { ...options, file: TOKENIZER_FILE } };
}

/** Throws naming the first value that JSON would drop or change (undefined, NaN, Infinity, a Date, a class...). */
function checkPlainJson(value: unknown, at: string): void {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw invalidArg(`${at} is ${value}, which JSON cannot hold`);
    return;
  }
  if (Array.isArray(value)) {
    value.forEach((v, i) => checkPlainJson(v, `${at}[${i}]`));
    return;
  }
  if (typeof value === 'object') {
    const proto = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) {
      throw invalidArg(`${at} is a ${proto?.constructor?.name ?? 'non-plain object'}; store plain JSON (e.g. a string or an array)`);
    }
    for (const [k, v] of Object.entries(value)) checkPlainJson(v, `${at}.${k}`);
    return;
  }
  throw invalidArg(`${at} is ${value === undefined ? 'undefined' : `a ${typeof value}`}, which JSON cannot hold`);
}

/** `a` as a live Arena; a disposed one is a TypeError here (checkpoint misuse), not a DisposedError. */
function checkLiveArena(a: unknown, what: string, where: string): Arena {
  return checkArena(a, what, where, { disposedAs: 'invalid' });
}

function checkMoments(params: Arena, m: Arena | undefined, v: Arena | undefined, where: string): void {
  for (const [x, name] of [[m, 'm'], [v, 'v']] as const) {
    if (x === undefined) continue;
    checkLiveArena(x, name, where);
    if (!sameLayout(params, x)) throw invalidArg(`${where}: ${name} must have the layout of params (same entries, shapes, order)`);
  }
}

function readdirOrEmpty(dir: string): fs.Dirent[] {
  try {
    return fs.readdirSync(dir, { withFileTypes: true });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
}

/** Deletes a directory so that a crash part-way never leaves a partial one under a checkpoint's name. */
function removeDirSafely(dir: string): void {
  const doomed = tmpPathFor(dir);
  fs.renameSync(dir, doomed);
  fs.rmSync(doomed, { recursive: true, force: true });
}

/** Removes the leftovers of unfinished saves and deletions (anything with a temporary name). */
function removeStale(ckptDir: string): void {
  for (const d of readdirOrEmpty(ckptDir)) {
    if (d.name.includes(TMP_MARKER)) fs.rmSync(path.join(ckptDir, d.name), { recursive: true, force: true });
  }
}

function jsonText(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

/**
 * Writes the checkpoint of `step` to <runDir>/checkpoints/step-NNNNNN/ atomically, points `latest` at it, and
 * prunes older checkpoints beyond keepLast. Saving a step that already exists replaces it. Returns where it went.
 */
export function saveCheckpoint(runDir: string, step: number, options: SaveCheckpointOptions): CheckpointInfo {
  const where = 'saveCheckpoint';
  if (typeof runDir !== 'string' || runDir === '') throw invalidArg(`${where}: runDir must be a non-empty path`);
  if (!Number.isSafeInteger(step) || step < 0) throw invalidArg(`${where}: step must be a non-negative integer, got ${step}`);
  const { config, trainerState, keepLast, optimizerState } = options ?? ({} as SaveCheckpointOptions);
  const tokenizer = options?.tokenizer ?? null;
  if (tokenizer !== null && !(tokenizer.kind === 'gpt2' || (tokenizer.kind === 'hf' && typeof tokenizer.path === 'string' && tokenizer.path !== ''))) {
    throw invalidArg(`${where}: tokenizer must be {kind: 'gpt2'} or {kind: 'hf', path}, got ${JSON.stringify(tokenizer)}`);
  }
  const params = checkLiveArena(options?.params, 'params', where);
  if (!(keepLast === Infinity || (Number.isSafeInteger(keepLast) && keepLast >= 1))) {
    throw invalidArg(`${where}: keepLast must be a positive integer or Infinity, got ${keepLast}`);
  }
  if (optimizerState !== undefined) {
    if (!optimizerState?.m || !optimizerState?.v) throw invalidArg(`${where}: optimizerState needs both m and v`);
    checkMoments(params, optimizerState.m, optimizerState.v, where);
  }
  if (config === null || typeof config !== 'object' || Array.isArray(config)) throw invalidArg(`${where}: config must be an object`);
  checkPlainJson(config, 'config');
  checkConfigFitsArena(config as Record<string, unknown>, params, 'config', (msg) => invalidArg(`${where}: ${msg}`));
  if (trainerState === null || typeof trainerState !== 'object' || Array.isArray(trainerState)) {
    throw invalidArg(`${where}: trainerState must be an object`);
  }
  checkPlainJson(trainerState, 'trainerState');
  if ('step' in trainerState && trainerState.step !== step) {
    throw invalidArg(`${where}: trainerState.step is ${JSON.stringify(trainerState.step)}, saving step ${step}`);
  }
  // A checkpoint with NaN/Inf weights or moments would become `latest` and poison every resume: refuse it.
  const bad = [
    ...nonFiniteEntries(params, MODEL_FILE),
    ...(optimizerState ? [...nonFiniteEntries(optimizerState.m, OPTIMIZER_FILE, 'm.'), ...nonFiniteEntries(optimizerState.v, OPTIMIZER_FILE, 'v.')] : []),
  ];
  if (bad.length > 0) {
    throw new NonFiniteCheckpointError(
      where,
      bad,
      `refusing to write step ${step} to ${runDir}: ${describeNonFinite(bad)}; the run has diverged (the previous checkpoint is kept as 'latest')`,
    );
  }
  // Build every writer before touching the disk, so argument errors leave nothing behind.
  const metadata = { format: 'pt', producer: 'pajama-train', step: String(step) };
  const modelTensors = arenaTensorsToWrite(params, { dtype: options.modelDtype, chunkBytes: options.chunkBytes });
  const optimizerTensors = optimizerState
    ? [
        ...arenaTensorsToWrite(optimizerState.m, { prefix: 'm.', chunkBytes: options.chunkBytes }),
        ...arenaTensorsToWrite(optimizerState.v, { prefix: 'v.', chunkBytes: options.chunkBytes }),
      ]
    : null;

  const ckptDir = path.join(runDir, CHECKPOINTS_DIR);
  const finalDir = path.join(ckptDir, checkpointName(step));
  withFsContext('writing checkpoint to', finalDir, () => {
    fs.mkdirSync(ckptDir, { recursive: true });
    removeStale(ckptDir);
    const tmpDir = tmpPathFor(finalDir);
    fs.mkdirSync(tmpDir);
    try {
      writeTextAtomic(path.join(tmpDir, CONFIG_FILE), jsonText(config));
      writeTextAtomic(path.join(tmpDir, TRAINER_STATE_FILE), jsonText(trainerState));
      if (tokenizer) {
        if (tokenizer.kind === 'hf') fs.copyFileSync(tokenizer.path, path.join(tmpDir, TOKENIZER_FILE));
        writeTextAtomic(path.join(tmpDir, TOKENIZER_CONFIG_FILE), jsonText(tokenizerConfig(tokenizer)));
      }
      writeSafetensors(path.join(tmpDir, MODEL_FILE), modelTensors, metadata);
      if (optimizerTensors) writeSafetensors(path.join(tmpDir, OPTIMIZER_FILE), optimizerTensors, metadata);
      fsyncDir(tmpDir);
    } catch (e) {
      fs.rmSync(tmpDir, { recursive: true, force: true });
      throw e;
    }
    // Saving a step again replaces it: the old directory moves to a temporary name (deleted below, or by the
    // next save after a crash) so the new one can take its name.
    const replaced = fs.existsSync(finalDir) ? tmpPathFor(finalDir) : undefined;
    if (replaced) fs.renameSync(finalDir, replaced);
    fs.renameSync(tmpDir, finalDir);
    fsyncDir(ckptDir);
    if (replaced) fs.rmSync(replaced, { recursive: true, force: true });
    writeTextAtomic(path.join(ckptDir, LATEST_FILE), `${checkpointName(step)}\n`);
    prune(ckptDir, step, keepLast);
  });
  return { step, dir: finalDir };
}

/**
 * Keeps the newest `keepLast` checkpoints up to `step` (the one just saved included). Checkpoints past `step`
 * (left by a run that went further before this one resumed from an earlier step) are kept, with a warning.
 */
function prune(ckptDir: string, step: number, keepLast: number): void {
  const all = listIn(ckptDir);
  const ahead = all.filter((c) => c.step > step);
  if (ahead.length > 0) {
    process.emitWarning(
      `${ckptDir}: checkpoints past step ${step} remain from an earlier run (${ahead.map((c) => checkpointName(c.step)).join(', ')}); ` +
        `'latest' points at ${checkpointName(step)}. Delete them if they are not wanted.`,
      { code: 'PAJAMA_CHECKPOINTS_AHEAD' },
    );
  }
  const upTo = all.filter((c) => c.step <= step);
  if (keepLast === Infinity || upTo.length <= keepLast) return;
  for (const c of upTo.slice(0, upTo.length - keepLast)) removeDirSafely(c.dir);
  fsyncDir(ckptDir);
}

// ---------------------------------------------------------------------------------------------------------
// Finding and loading

function listIn(ckptDir: string): CheckpointInfo[] {
  const out: CheckpointInfo[] = [];
  for (const d of readdirOrEmpty(ckptDir)) {
    const m = STEP_DIR.exec(d.name);
    if (m && d.isDirectory()) out.push({ step: Number(m[1]), dir: path.join(ckptDir, d.name) });
  }
  return out.sort((a, b) => a.step - b.step);
}

/** The complete checkpoints of a run, oldest first (unfinished temporary directories never appear). */
export function listCheckpoints(runDir: string): CheckpointInfo[] {
  return listIn(path.join(runDir, CHECKPOINTS_DIR));
}

/**
 * The checkpoint to resume from: the one `latest` names when it exists, else (no `latest`, or it names a
 * checkpoint since deleted) the highest step present. null when the run has none.
 */
export function latestCheckpoint(runDir: string): CheckpointInfo | null {
  const ckptDir = path.join(runDir, CHECKPOINTS_DIR);
  let pointer: string | undefined;
  try {
    pointer = fs.readFileSync(path.join(ckptDir, LATEST_FILE), 'utf8').trim();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const all = listIn(ckptDir);
  const named = pointer !== undefined ? all.find((c) => path.basename(c.dir) === pointer) : undefined;
  return named ?? all[all.length - 1] ?? null;
}

/**
 * The tokenizer checkpoint `dir` records (tokenizer_config.json's pajama_tokenizer, with its tokenizer.json),
 * or a tokenizer.json alone (a Hugging Face directory); null when it records none. Errors name the file and key.
 */
export function checkpointTokenizer(dir: string): TokenizerSpec | null {
  const configFile = path.join(dir, TOKENIZER_CONFIG_FILE);
  const json = path.join(dir, TOKENIZER_FILE);
  if (!fs.existsSync(configFile)) return fs.existsSync(json) ? { kind: 'hf', path: json } : null;
  const c = readJson(configFile, 'the tokenizer', dir);
  const t = c.pajama_tokenizer as Record<string, unknown> | undefined;
  if (t === undefined) return fs.existsSync(json) ? { kind: 'hf', path: json } : null;
  const bad = (msg: string) => new CheckpointError(configFile, `'pajama_tokenizer' ${msg}`);
  if (t === null || typeof t !== 'object' || Array.isArray(t)) throw bad(`must be an object, got ${JSON.stringify(t)}`);
  if (t.kind === 'gpt2') return { kind: 'gpt2' };
  if (t.kind !== 'hf') throw bad(`kind must be 'gpt2' or 'hf', got ${JSON.stringify(t.kind)}`);
  if (typeof t.file !== 'string' || t.file === '' || path.basename(t.file) !== t.file) throw bad(`file must name a file in the checkpoint, got ${JSON.stringify(t.file)}`);
  const file = path.join(dir, t.file);
  if (!fs.existsSync(file)) throw new CheckpointError(dir, `${TOKENIZER_CONFIG_FILE} names ${t.file}, which the checkpoint lacks`);
  const spec: TokenizerSpec = { kind: 'hf', path: file };
  if (t.allowSpecial !== undefined) {
    if (typeof t.allowSpecial !== 'boolean') throw bad(`allowSpecial must be a boolean, got ${JSON.stringify(t.allowSpecial)}`);
    spec.allowSpecial = t.allowSpecial;
  }
  if (t.eosToken !== undefined) {
    if (typeof t.eosToken !== 'string') throw bad(`eosToken must be a string, got ${JSON.stringify(t.eosToken)}`);
    spec.eosToken = t.eosToken;
  }
  return spec;
}

/** A JSON object from a checkpoint file; problems are CheckpointErrors naming the checkpoint `where`. */
function readJson(file: string, what: string, where: string): Record<string, unknown> {
  return readJsonFile(file, {
    object: true,
    fail: (p) => {
      const name = path.basename(file);
      if (p.kind === 'unreadable') return (p.error as NodeJS.ErrnoException).code === 'ENOENT' ? new CheckpointError(where, `has no ${name} (${what})`) : p.error;
      if (p.kind === 'syntax') return new CheckpointError(where, `${name} is not valid JSON (${p.error.message})`);
      return new CheckpointError(where, `${name} must hold a JSON object`);
    },
  });
}

function requireFile(dir: string, name: string, what: string): string {
  const f = path.join(dir, name);
  if (!fs.existsSync(f)) throw new CheckpointError(dir, `has no ${name} (${what}); the checkpoint is incomplete or not a pajama-train checkpoint`);
  return f;
}

export interface LoadCheckpointOptions {
  /** Filled from model.safetensors (F32 or BF16 in the file). */
  params: Arena;
  /** Filled from optimizer.safetensors' 'm.*' entries; the layout of params. */
  m?: Arena;
  /** Filled from optimizer.safetensors' 'v.*' entries; the layout of params. */
  v?: Arena;
  /** Bytes read per piece. Defaults to 64 MiB. */
  chunkBytes?: number;
  /**
   * Load weights or moments holding NaN/Inf (e.g. to inspect a diverged run). Defaults to false: such a
   * checkpoint is refused with a NonFiniteCheckpointError naming the file and tensor.
   */
  allowNonFinite?: boolean;
}

export interface LoadedCheckpoint extends CheckpointInfo {
  config: Record<string, unknown>;
  trainerState: Record<string, unknown>;
}

/**
 * Restores a checkpoint directory into `params` (and the moments, when given), after checking that every
 * file is there and that config.json implies exactly the arena's entries and shapes. Extra tensors in a
 * file are errors. Returns the config and trainer state.
 */
export function loadCheckpoint(dir: string, options: LoadCheckpointOptions): LoadedCheckpoint {
  const where = 'loadCheckpoint';
  if (typeof dir !== 'string' || dir === '') throw invalidArg(`${where}: dir must be a non-empty path`);
  const params = checkLiveArena(options?.params, 'params', where);
  checkMoments(params, options.m, options.v, where);
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new CheckpointError(dir, 'is not a checkpoint directory');
  const configFile = requireFile(dir, CONFIG_FILE, 'the model config');
  const modelFile = requireFile(dir, MODEL_FILE, 'the parameters');
  const stateFile = requireFile(dir, TRAINER_STATE_FILE, 'the trainer state');
  const optimizerFile = options.m || options.v ? requireFile(dir, OPTIMIZER_FILE, 'the optimizer moments') : undefined;

  const config = readJson(configFile, 'the model config', dir);
  const trainerState = readJson(stateFile, 'the trainer state', dir);
  checkConfigFitsArena(config, params, CONFIG_FILE, (msg) => new CheckpointError(dir, msg));
  const nameStep = STEP_DIR.exec(path.basename(path.resolve(dir)));
  const step = nameStep ? Number(nameStep[1]) : trainerState.step;
  if (!Number.isSafeInteger(step)) {
    throw new CheckpointError(dir, `cannot tell the step: the directory is not named step-N and ${TRAINER_STATE_FILE} has no integer 'step'`);
  }
  if (trainerState.step !== undefined && trainerState.step !== step) {
    throw new CheckpointError(dir, `${TRAINER_STATE_FILE} says step ${JSON.stringify(trainerState.step)}, the directory says ${step}`);
  }

  loadArenasSafetensors(modelFile, [{ arena: params }], { strict: true, chunkBytes: options.chunkBytes });
  if (optimizerFile) {
    const targets: ArenaTarget[] = [];
    if (options.m) targets.push({ arena: options.m, prefix: 'm.' });
    if (options.v) targets.push({ arena: options.v, prefix: 'v.' });
    // Loading only one moment leaves the other's tensors unclaimed: not an error then.
    loadArenasSafetensors(optimizerFile, targets, { strict: targets.length === 2, chunkBytes: options.chunkBytes });
  }
  if (!options.allowNonFinite) {
    const bad = [
      ...nonFiniteEntries(params, MODEL_FILE),
      ...(options.m ? nonFiniteEntries(options.m, OPTIMIZER_FILE, 'm.') : []),
      ...(options.v ? nonFiniteEntries(options.v, OPTIMIZER_FILE, 'v.') : []),
    ];
    if (bad.length > 0) {
      throw new NonFiniteCheckpointError(
        dir,
        bad,
        `${describeNonFinite(bad)}; refusing to resume from non-finite weights or moments (resume from an earlier checkpoint, or pass allowNonFinite to inspect it)`,
      );
    }
  }
  return { step: step as number, dir, config, trainerState };
}

export interface LoadedWeights {
  /** The safetensors files read. */
  files: string[];
  /** config.json of the directory, when it has one. */
  config?: Record<string, unknown>;
}

/**
 * Initialises `params` from existing weights: a checkpoint or Hugging Face model directory (model.safetensors,
 * or the shards model.safetensors.index.json lists), or a .safetensors file. F32 or BF16 in the file. A
 * directory's config.json, when present, must imply the arena's shapes. `strict` (default true) makes tensors
 * the arena lacks an error.
 */
export function loadModelWeights(
  source: string,
  params: Arena,
  options: { strict?: boolean; chunkBytes?: number; allowNonFinite?: boolean } = {},
): LoadedWeights {
  const where = 'loadModelWeights';
  if (typeof source !== 'string' || source === '') throw invalidArg(`${where}: source must be a non-empty path`);
  checkLiveArena(params, 'params', where);
  let stat: fs.Stats;
  try {
    stat = fs.statSync(source);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new CheckpointError(source, 'no such file or directory');
    throw e;
  }
  const load = (files: string[]) => {
    loadArenasSafetensors(files, [{ arena: params }], { strict: options.strict, chunkBytes: options.chunkBytes });
    if (options.allowNonFinite) return;
    const bad = nonFiniteEntries(params, files.length === 1 ? path.basename(files[0]) : `${path.basename(source)} (${files.length} files)`);
    if (bad.length > 0) throw new NonFiniteCheckpointError(source, bad, `${describeNonFinite(bad)}; refusing to start from non-finite weights`);
  };
  if (!stat.isDirectory()) {
    load([source]);
    return { files: [source] };
  }

  let config: Record<string, unknown> | undefined;
  if (fs.existsSync(path.join(source, CONFIG_FILE))) {
    config = readJson(path.join(source, CONFIG_FILE), 'the model config', source);
    checkConfigFitsArena(config, params, CONFIG_FILE, (msg) => new CheckpointError(source, msg));
  }
  let files: string[];
  if (fs.existsSync(path.join(source, MODEL_FILE))) {
    files = [path.join(source, MODEL_FILE)];
  } else if (fs.existsSync(path.join(source, MODEL_INDEX_FILE))) {
    const index = readJson(path.join(source, MODEL_INDEX_FILE), 'the shard index', source);
    const map = index.weight_map;
    if (map === null || typeof map !== 'object' || Array.isArray(map)) {
      throw new CheckpointError(source, `${MODEL_INDEX_FILE} has no "weight_map" object`);
    }
    const shards = [...new Set(Object.values(map as Record<string, unknown>))];
    for (const s of shards) {
      if (typeof s !== 'string' || s === '' || path.basename(s) !== s) {
        throw new CheckpointError(source, `${MODEL_INDEX_FILE} names shard ${JSON.stringify(s)}, not a file name in this directory`);
      }
    }
    files = (shards as string[]).map((s) => path.join(source, s));
  } else {
    throw new CheckpointError(source, `has neither ${MODEL_FILE} nor ${MODEL_INDEX_FILE}`);
  }
  load(files);
  return { files, config };
}
