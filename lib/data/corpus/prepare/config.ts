// prepare-config.ts: the configuration of `pajama prepare` (PrepareConfig), its defaults and its validation:
// unknown keys, wrong types and out-of-range values are errors naming the key; relative paths resolve
// against the config file's folder.
import * as path from 'node:path';
import { invalidArg } from '../../../core/errors';
import { DEDUP_MODES, type DedupMode } from '../dedup';
import type { TokenizerSpec } from '../../tokenizers/gpt2';

export interface PrepareConfig {
  /** Raw shards: .jsonl / .jsonl.zst files, folders, globs. Relative to the config file's folder. */
  inputs: string[];
  /** Path (glob or folder) -> source name, for corpora without meta.redpajama_set_name; wins over meta. */
  sources: Record<string, string>;
  /** The source of documents that neither meta nor `sources` names. Defaults to null (they are malformed). */
  defaultSource: string | null;
  /** Output folder (shards/, manifest.json, report.json, work/). Relative to the config file's folder. */
  output: string;
  /** Fail on the first malformed line instead of counting and skipping it. Defaults to false. */
  strict: boolean;
  filter: {
    /** Drop documents shorter than this many characters after normalisation. Defaults to 200 (SlimPajama). */
    minChars: number;
  };
  dedup: {
    /** 'global' (across sources, SlimPajama's), 'local' (within each source) or 'none'. Defaults to 'global'. */
    mode: DedupMode;
    /** MinHash permutations. Defaults to 128. */
    numPerm: number;
    /** Shingle length in characters. Defaults to 13. */
    shingleChars: number;
    /** LSH bands x rows. Defaults to 9 x 13 (a threshold near Jaccard 0.8). */
    bands: number;
    rows: number;
    /** MinHash seed. Defaults to 1. */
    seed: number;
    /** Memory for LSH records before they spill to disk, MiB. Defaults to 512. */
    memoryMiB: number;
    /** Documents sampled for the brute-force Jaccard check of the report (0: none). Defaults to 500. */
    verifySample: number;
  };
  split: {
    /** Share of each source's kept documents held out for validation. Defaults to 0.001. */
    validation: number;
    /** Share held out for test. Defaults to 0. */
    test: number;
    /** At least this many validation documents per source (when it has more). Defaults to 1. */
    minValidationDocuments: number;
    /**
     * At least this many validation tokens per source, so that every source is evaluated on several full
     * batches: documents are added in draw order until their text reaches this many tokens at
     * VALIDATION_BYTES_PER_TOKEN bytes each (an over-estimate for BPE on text, so the minimum is met), never
     * taking more than half of a source's kept documents. Defaults to 65,537: the trainer's default
     * evaluation, eval.batches 4 x batch.microBatchSize 8 windows of 2,048 + 1 tokens (the mpt presets'
     * maxSeqLen). 0 turns it off.
     */
    minValidationTokens: number;
    /** Seed of the holdout draw. Defaults to 1234. */
    seed: number;
  };
  /** Remove training documents whose exact (normalised) text hash matches a holdout document. Defaults to true. */
  decontaminate: boolean;
  /** 'gpt2' (the default) or a Hugging Face tokenizer.json path (byte-level BPE, e.g. GPT-NeoX-20B). */
  tokenizer: string;
  /** Most tokens in one training shard file before the next one starts. Defaults to 2^28. */
  shardTokens: number;
  /** Worker threads for the scan (a file each) and for tokenising (0: all cores; 1: no workers). Defaults to 0. */
  workers: number;
}

export const DEFAULT_PREPARE_CONFIG: PrepareConfig = {
  inputs: [],
  sources: {},
  defaultSource: null,
  output: 'data/prepared',
  strict: false,
  filter: { minChars: 200 },
  dedup: { mode: 'global', numPerm: 128, shingleChars: 13, bands: 9, rows: 13, seed: 1, memoryMiB: 512, verifySample: 500 },
  split: { validation: 0.001, test: 0, minValidationDocuments: 1, minValidationTokens: 4 * 8 * 2048 + 1, seed: 1234 },
  decontaminate: true,
  tokenizer: 'gpt2',
  shardTokens: 2 ** 28,
  workers: 0,
};

export const PREPARE_STAGES = ['scan', 'dedup', 'tokenize'] as const;
export type PrepareStage = (typeof PREPARE_STAGES)[number];


function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkKeys(input: Record<string, unknown>, defaults: object, where: string): void {
  for (const k of Object.keys(input)) {
    // hasOwnProperty, not `in`, which also finds the keys every object inherits ('constructor', '__proto__')
    if (!Object.prototype.hasOwnProperty.call(defaults, k)) throw invalidArg(`prepare config: unknown key '${where}${k}' (known: ${Object.keys(defaults).join(', ')})`);
  }
}

function num(v: unknown, key: string, check: (n: number) => boolean, want: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || !check(v)) throw invalidArg(`prepare config: '${key}' must be ${want}, got ${JSON.stringify(v)}`);
  return v;
}

const int = (lo: number) => (n: number) => Number.isInteger(n) && n >= lo;

/**
 * Validates `input` over the defaults: unknown keys, wrong types and out-of-range values are errors naming
 * the key. Relative paths are resolved against `baseDir` (the config file's folder).
 */
export function resolvePrepareConfig(input: unknown, baseDir = process.cwd()): PrepareConfig {
  if (!isObject(input)) throw invalidArg(`prepare config: must be an object, got ${JSON.stringify(input)?.slice(0, 80)}`);
  const d = DEFAULT_PREPARE_CONFIG;
  checkKeys(input, d, '');
  const c: PrepareConfig = structuredClone(d);
  const section = <K extends 'filter' | 'dedup' | 'split'>(k: K): Record<string, unknown> => {
    const v = input[k];
    if (v === undefined) return {};
    if (!isObject(v)) throw invalidArg(`prepare config: '${k}' must be an object, got ${JSON.stringify(v)}`);
    checkKeys(v, d[k], `${k}.`);
    return v;
  };
  if (input.inputs !== undefined) {
    if (!Array.isArray(input.inputs) || input.inputs.some((s) => typeof s !== 'string' || s === '')) {
      throw invalidArg(`prepare config: 'inputs' must be an array of paths or globs, got ${JSON.stringify(input.inputs)}`);
    }
    c.inputs = (input.inputs as string[]).map((p) => (path.isAbsolute(p) ? p : path.join(baseDir, p)));
  }
  if (c.inputs.length === 0) throw invalidArg(`prepare config: 'inputs' must name at least one file, folder or glob`);
  if (input.sources !== undefined) {
    if (!isObject(input.sources) || Object.values(input.sources).some((s) => typeof s !== 'string' || s === '')) {
      throw invalidArg(`prepare config: 'sources' must map paths or globs to source names, got ${JSON.stringify(input.sources)}`);
    }
    c.sources = {};
    for (const [p, s] of Object.entries(input.sources as Record<string, string>)) c.sources[path.isAbsolute(p) ? p : path.join(baseDir, p)] = s;
  }
  if (input.defaultSource !== undefined) {
    if (input.defaultSource !== null && (typeof input.defaultSource !== 'string' || input.defaultSource === '')) {
      throw invalidArg(`prepare config: 'defaultSource' must be a source name or null, got ${JSON.stringify(input.defaultSource)}`);
    }
    c.defaultSource = input.defaultSource as string | null;
  }
  if (input.output !== undefined) {
    if (typeof input.output !== 'string' || input.output === '') throw invalidArg(`prepare config: 'output' must be a folder path, got ${JSON.stringify(input.output)}`);
    c.output = input.output;
  }
  c.output = path.isAbsolute(c.output) ? c.output : path.join(baseDir, c.output);
  for (const k of ['strict', 'decontaminate'] as const) {
    if (input[k] !== undefined) {
      if (typeof input[k] !== 'boolean') throw invalidArg(`prepare config: '${k}' must be true or false, got ${JSON.stringify(input[k])}`);
      c[k] = input[k] as boolean;
    }
  }
  const f = section('filter');
  if (f.minChars !== undefined) c.filter.minChars = num(f.minChars, 'filter.minChars', int(0), 'a non-negative integer');
  const dd = section('dedup');
  if (dd.mode !== undefined) {
    if (!DEDUP_MODES.includes(dd.mode as DedupMode)) throw invalidArg(`prepare config: 'dedup.mode' must be one of ${DEDUP_MODES.join(', ')}, got ${JSON.stringify(dd.mode)}`);
    c.dedup.mode = dd.mode as DedupMode;
  }
  for (const k of ['numPerm', 'shingleChars', 'bands', 'rows'] as const) {
    if (dd[k] !== undefined) c.dedup[k] = num(dd[k], `dedup.${k}`, int(1), 'a positive integer');
  }
  if (dd.seed !== undefined) c.dedup.seed = num(dd.seed, 'dedup.seed', (n) => Number.isInteger(n) && n >= 0 && n < 2 ** 32, 'an integer in [0, 2^32)');
  if (dd.memoryMiB !== undefined) c.dedup.memoryMiB = num(dd.memoryMiB, 'dedup.memoryMiB', (n) => n >= 1, 'at least 1');
  if (dd.verifySample !== undefined) c.dedup.verifySample = num(dd.verifySample, 'dedup.verifySample', int(0), 'a non-negative integer');
  if (c.dedup.bands * c.dedup.rows > c.dedup.numPerm) {
    throw invalidArg(`prepare config: dedup.bands * dedup.rows (${c.dedup.bands} * ${c.dedup.rows}) must not exceed dedup.numPerm (${c.dedup.numPerm})`);
  }
  const sp = section('split');
  for (const k of ['validation', 'test'] as const) {
    if (sp[k] !== undefined) c.split[k] = num(sp[k], `split.${k}`, (n) => n >= 0 && n < 1, 'a share in [0, 1)');
  }
  if (c.split.validation + c.split.test >= 1) throw invalidArg(`prepare config: split.validation + split.test must be below 1, got ${c.split.validation + c.split.test}`);
  if (sp.minValidationDocuments !== undefined) c.split.minValidationDocuments = num(sp.minValidationDocuments, 'split.minValidationDocuments', int(0), 'a non-negative integer');
  if (sp.minValidationTokens !== undefined) c.split.minValidationTokens = num(sp.minValidationTokens, 'split.minValidationTokens', int(0), 'a non-negative integer');
  if (sp.seed !== undefined) c.split.seed = num(sp.seed, 'split.seed', (n) => Number.isInteger(n) && n >= 0 && n < 2 ** 32, 'an integer in [0, 2^32)');
  if (input.tokenizer !== undefined) {
    if (typeof input.tokenizer !== 'string' || input.tokenizer === '') throw invalidArg(`prepare config: 'tokenizer' must be 'gpt2' or a tokenizer.json path, got ${JSON.stringify(input.tokenizer)}`);
    c.tokenizer = input.tokenizer === 'gpt2' || path.isAbsolute(input.tokenizer) ? input.tokenizer : path.join(baseDir, input.tokenizer);
  }
  if (input.shardTokens !== undefined) c.shardTokens = num(input.shardTokens, 'shardTokens', int(1024), 'an integer >= 1024');
  if (input.workers !== undefined) c.workers = num(input.workers, 'workers', int(0), 'a non-negative integer');
  return c;
}

export function tokenizerSpecOf(config: PrepareConfig): TokenizerSpec {
  return config.tokenizer === 'gpt2' ? { kind: 'gpt2' } : { kind: 'hf', path: config.tokenizer };
}

