// config.ts: the configuration of `pajama prepare` (PrepareConfig), described once by PREPARE_CONFIG_SCHEMA
// (core/config-schema.ts: each key's kind, range, default and doc), and its validation by that schema:
// unknown keys, wrong types and out-of-range values are errors naming the key; relative paths resolve
// against the config file's folder. The "Defaults to" of PrepareConfig's comments and the README's table are
// checked against the schema by test/core/config-docs.test.ts.
import { invalidArg } from '../../../core/errors';
import * as schema from '../../../core/config-schema';
import { defaultsOf, resolveConfig, type ConfigDialect, type ObjectField } from '../../../core/config-schema';
import { DEDUP_MODES, type DedupMode } from '../dedup';
import type { TokenizerSpec } from '../../tokenizers/create';

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

/** The prepare config's dialect: `prepare config: 'dedup.rows' must be a positive integer, got 0`. */
const PREPARE_DIALECT: ConfigDialect = {
  mismatch: (key, must, value) => `prepare config: '${key}' must ${must}, got ${JSON.stringify(value)}`,
  unknownKey: (key, _parent, known) => `prepare config: unknown key '${key}' (known: ${known.join(', ')})`,
  notObject: (key, value) =>
    key ? `prepare config: '${key}' must be an object, got ${JSON.stringify(value)}` : `prepare config: must be an object, got ${JSON.stringify(value)?.slice(0, 80)}`,
  fail: (message) => `prepare config: ${message}`,
};

const seed32 = (o: { default: number; doc: string }) => schema.integer({ min: 0, max: 2 ** 32, maxOpen: true, expected: 'an integer in [0, 2^32)', ...o });

/**
 * The prepare config: every key's kind, range, default and meaning, stated once. DEFAULT_PREPARE_CONFIG, the
 * validation of resolvePrepareConfig and the README's table all come from it. Paths are relative to the
 * config file's folder.
 */
export const PREPARE_CONFIG_SCHEMA: ObjectField<PrepareConfig> = schema.object<PrepareConfig>(
  {
    inputs: schema.array(schema.pathField({ nonEmpty: true }), {
      default: [],
      defaultDoc: 'required',
      expected: 'an array of paths or globs',
      doc: 'Raw shards: .jsonl / .jsonl.zst files, folders (searched recursively) and globs.',
      check: (inputs, ctx) => {
        if (inputs.length === 0) ctx.fail(`'inputs' must name at least one file, folder or glob`);
      },
    }),
    sources: schema.record(schema.string({ nonEmpty: true }), {
      pathKeys: true,
      each: false,
      default: {},
      must: 'map paths or globs to source names',
      doc: 'Path, glob or folder -> source name, for corpora without meta.redpajama_set_name; wins over meta.',
    }),
    defaultSource: schema.nullable(schema.string({ nonEmpty: true }), {
      default: null,
      expected: 'a source name or null',
      doc: 'The source of documents that neither meta nor `sources` names (null: they are malformed).',
    }),
    output: schema.pathField({ nonEmpty: true, default: 'data/prepared', expected: 'a folder path', doc: 'Output folder: shards/, manifest.json, report.json, work/.' }),
    strict: schema.boolean({ default: false, expected: 'true or false', doc: 'Fail on the first malformed line instead of counting and skipping it.' }),
    filter: schema.object(
      {
        minChars: schema.integer({ min: 0, default: 200, doc: "Drop documents shorter than this many characters after normalisation (SlimPajama's 200)." }),
      },
      { doc: 'The short-document filter.' },
    ),
    dedup: schema.object(
      {
        mode: schema.oneOf(DEDUP_MODES, { default: 'global', doc: "'global' (across sources, SlimPajama's), 'local' (within each source) or 'none'." }),
        numPerm: schema.integer({ min: 1, default: 128, doc: 'MinHash permutations.' }),
        shingleChars: schema.integer({ min: 1, default: 13, doc: 'Shingle length in characters.' }),
        bands: schema.integer({ min: 1, default: 9, doc: 'LSH bands (9 x 13 rows: a threshold near Jaccard 0.8).' }),
        rows: schema.integer({ min: 1, default: 13, doc: 'LSH rows per band; bands x rows <= numPerm.' }),
        seed: seed32({ default: 1, doc: 'MinHash seed.' }),
        memoryMiB: schema.number({ min: 1, default: 512, expected: 'at least 1', doc: 'Memory for LSH records before they spill to disk, MiB.' }),
        verifySample: schema.integer({ min: 0, default: 500, doc: "Documents sampled for the report's brute-force Jaccard check (0: none)." }),
      },
      {
        doc: 'MinHash LSH deduplication.',
        check: (d, ctx) => {
          if (d.bands * d.rows > d.numPerm) ctx.fail(`dedup.bands * dedup.rows (${d.bands} * ${d.rows}) must not exceed dedup.numPerm (${d.numPerm})`);
        },
      },
    ),
    split: schema.object(
      {
        validation: schema.number({ min: 0, max: 1, maxOpen: true, default: 0.001, expected: 'a share in [0, 1)', doc: "Share of each source's kept documents held out for validation." }),
        test: schema.number({
          min: 0,
          max: 1,
          maxOpen: true,
          default: 0,
          expected: 'a share in [0, 1)',
          doc: 'Share held out for test.',
          check: (test, ctx) => {
            const sum = (ctx.parent.validation as number) + test;
            if (sum >= 1) ctx.fail(`split.validation + split.test must be below 1, got ${sum}`);
          },
        }),
        minValidationDocuments: schema.integer({ min: 0, default: 1, doc: 'At least this many validation documents per source (when it has more).' }),
        // The trainer's default evaluation: eval.batches 4 x batch.microBatchSize 8 windows of 2,048 + 1
        // tokens (the mpt presets' maxSeqLen); test/core/config-schema.test.ts checks it against the trainer's.
        minValidationTokens: schema.integer({
          min: 0,
          default: 4 * 8 * 2048 + 1,
          doc: "About this many validation tokens per source (never over half its documents): the trainer's default evaluation. 0: off.",
        }),
        seed: seed32({ default: 1234, doc: 'Seed of the holdout draw.' }),
      },
      { doc: 'The validation and test holdout.' },
    ),
    decontaminate: schema.boolean({ default: true, expected: 'true or false', doc: "Remove training documents whose exact normalised text matches a holdout document's." }),
    tokenizer: schema.pathField({
      nonEmpty: true,
      literals: ['gpt2'],
      default: 'gpt2',
      expected: "'gpt2' or a tokenizer.json path",
      doc: "'gpt2', or a Hugging Face tokenizer.json (byte-level BPE, e.g. GPT-NeoX-20B's).",
    }),
    shardTokens: schema.integer({ min: 1024, default: 2 ** 28, doc: 'Most tokens in one training shard file before the next one starts.' }),
    workers: schema.integer({ min: 0, default: 0, doc: 'Worker threads for the scan and for tokenising (0: all cores; 1: no workers).' }),
  },
  {
    doc: 'The prepare config.',
    // Checked in the order this validator always used; the resolved object keeps PrepareConfig's key order.
    order: ['inputs', 'sources', 'defaultSource', 'output', 'strict', 'decontaminate', 'filter', 'dedup', 'split', 'tokenizer', 'shardTokens', 'workers'],
  },
);

/** Every default, from the schema (`inputs` has none worth the name: it must be given). */
export const DEFAULT_PREPARE_CONFIG: PrepareConfig = defaultsOf(PREPARE_CONFIG_SCHEMA);

export const PREPARE_STAGES = ['scan', 'dedup', 'tokenize'] as const;
export type PrepareStage = (typeof PREPARE_STAGES)[number];

/**
 * Validates `input` over the defaults: unknown keys, wrong types and out-of-range values are errors naming
 * the key. Relative paths are resolved against `baseDir` (the config file's folder).
 */
export function resolvePrepareConfig(input: unknown, baseDir = process.cwd()): PrepareConfig {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw invalidArg(PREPARE_DIALECT.notObject('', input));
  // Each section's keys are checked when its turn comes (shapeFirst: false), as this validator always did.
  return resolveConfig(PREPARE_CONFIG_SCHEMA, input, { dialect: PREPARE_DIALECT, baseDir, shapeFirst: false });
}

export function tokenizerSpecOf(config: PrepareConfig): TokenizerSpec {
  return config.tokenizer === 'gpt2' ? { kind: 'gpt2' } : { kind: 'hf', path: config.tokenizer };
}

