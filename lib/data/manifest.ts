// manifest.ts: the data manifest, the file that data preparation (`pajama prepare`) writes next to its token
// shards and the trainer reads (config data.manifest). One JSON object:
//
//   {
//     "version": 1,
//     "kind": "pajama-data-manifest",
//     "tokenizer": { "name": "gpt2", "vocabSize": 50257, "eosId": 50256, ...more keys, free-form },
//     "sources": {
//       "<source name>": {
//         "train": ["shards/<name>.train.00000.bin", ...],   token shards, relative to the manifest's folder
//         "validation": "shards/<name>.validation.bin" | null,
//         "test": "shards/<name>.test.bin" | null,
//         "documents": { "train": 9000, "validation": 50, ... },   counts, keys free-form
//         "tokens": { "train": 123456, "validation": 789, "test": 790 },   tokens in those shards, EOS included
//         "bytes": { "train": 456789, ... },   counts, keys free-form
//         "stats": { ... }   optional, free-form
//       }, ...
//     },
//     "created": "2024-05-01T12:00:00.000Z",   ISO 8601
//     "config": { ... }   free-form: what produced the data
//   }
//
// Unknown keys at the top level and in a source are errors (a typo must not pass silently); `tokenizer`
// beyond its three keys, `documents`, `bytes`, `stats` and `config` are open. readDataManifest checks every
// field (errors name the manifest and the JSON key), resolves shard paths against the manifest's folder, and
// opens every shard's header: it must exist, be a valid shard of the manifest's tokenizer (vocab size, EOS),
// and hold the token counts the manifest states, so a manifest never silently describes other shards.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { invalidArg } from '../core/errors';
import { writeTextAtomic } from '../core/atomic';
import { PajamaDataError } from './errors';
import { openShard } from './shard';

export const DATA_MANIFEST_KIND = 'pajama-data-manifest';
export const DATA_MANIFEST_VERSION = 1;

export interface DataManifestTokenizer {
  /**
   * The tokenizer's name; `spec` (written by pajama prepare) says how to rebuild it: 'gpt2', or a
   * tokenizer.json file relative to the manifest's folder (prepare copies it there as tokenizer.json).
   */
  name: string;
  /** Every token id is below it. */
  vocabSize: number;
  /** The document separator of every shard. */
  eosId: number;
  [key: string]: unknown;
}

export interface DataManifestSource {
  /** Training shards (may be empty when every document was held out). */
  train: string[];
  validation: string | null;
  test: string | null;
  /** Document counts (train, validation, test, and whatever else preparation counted). */
  documents: Record<string, number>;
  /** Tokens in the train shards together, the validation shard and the test shard; 0 where there is none. */
  tokens: { train: number; validation: number; test: number };
  /** Byte counts, keys as preparation chose. */
  bytes: Record<string, number>;
  /** Anything else about the source. */
  stats?: Record<string, unknown>;
}

export interface DataManifest {
  version: typeof DATA_MANIFEST_VERSION;
  kind: typeof DATA_MANIFEST_KIND;
  tokenizer: DataManifestTokenizer;
  sources: Record<string, DataManifestSource>;
  /** When it was written, ISO 8601. */
  created: string;
  /** How the data was made. */
  config: Record<string, unknown>;
}

/** A manifest as readDataManifest returns it: every shard path absolute. */
export interface LoadedDataManifest extends DataManifest {
  /** The manifest's absolute path. */
  file: string;
}

const TOP_KEYS = ['version', 'kind', 'tokenizer', 'sources', 'created', 'config'];
const SOURCE_KEYS = ['train', 'validation', 'test', 'documents', 'tokens', 'bytes', 'stats'];
const SPLITS = ['train', 'validation', 'test'] as const;
const ISO_8601 = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/;

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** `sources.<name>` when the name reads as a key, `sources["a.b"]` when it does not. */
function sourceKey(name: string): string {
  return /^[A-Za-z_$][\w$-]*$/.test(name) ? `sources.${name}` : `sources[${JSON.stringify(name)}]`;
}

type Fail = (key: string, message: string) => never;

/** Checks the shape and values of a manifest, not its files. */
function checkManifest(v: unknown, fail: Fail): DataManifest {
  if (!isPlainObject(v)) fail('(root)', `must be an object, got ${JSON.stringify(v)?.slice(0, 100)}`);
  const m = v as Record<string, unknown>;
  for (const k of Object.keys(m)) if (!TOP_KEYS.includes(k)) fail(k, `unknown key (known: ${TOP_KEYS.join(', ')})`);
  for (const k of TOP_KEYS) if (!(k in m)) fail(k, 'is missing');
  if (m.kind !== DATA_MANIFEST_KIND) fail('kind', `must be "${DATA_MANIFEST_KIND}", got ${JSON.stringify(m.kind)} (not a data manifest?)`);
  if (m.version !== DATA_MANIFEST_VERSION) {
    fail('version', `unsupported manifest version ${JSON.stringify(m.version)}; this reader reads version ${DATA_MANIFEST_VERSION}`);
  }

  const tok = m.tokenizer;
  if (!isPlainObject(tok)) fail('tokenizer', `must be an object, got ${JSON.stringify(tok)}`);
  const t = tok as Record<string, unknown>;
  if (typeof t.name !== 'string' || t.name === '') fail('tokenizer.name', `must be a non-empty string, got ${JSON.stringify(t.name)}`);
  const vocab = t.vocabSize;
  if (!Number.isSafeInteger(vocab) || (vocab as number) < 1 || (vocab as number) > 2 ** 32) {
    fail('tokenizer.vocabSize', `must be an integer in [1, 2^32], got ${JSON.stringify(vocab)}`);
  }
  if (!Number.isSafeInteger(t.eosId) || (t.eosId as number) < 0 || (t.eosId as number) >= (vocab as number)) {
    fail('tokenizer.eosId', `must be an integer in [0, vocabSize = ${vocab}), got ${JSON.stringify(t.eosId)}`);
  }

  if (!isPlainObject(m.sources)) fail('sources', `must be an object of sources by name, got ${JSON.stringify(m.sources)?.slice(0, 100)}`);
  const sources = m.sources as Record<string, unknown>;
  if (Object.keys(sources).length === 0) fail('sources', 'names no sources');
  for (const [name, s] of Object.entries(sources)) checkSource(name, s, fail);

  if (typeof m.created !== 'string' || !ISO_8601.test(m.created) || Number.isNaN(Date.parse(m.created))) {
    fail('created', `must be an ISO 8601 date such as "2024-05-01T12:00:00.000Z", got ${JSON.stringify(m.created)}`);
  }
  if (!isPlainObject(m.config)) fail('config', `must be an object, got ${JSON.stringify(m.config)?.slice(0, 100)}`);
  return m as unknown as DataManifest;
}

function checkSource(name: string, v: unknown, fail: Fail): void {
  const key = sourceKey(name);
  if (name === '') fail(key, 'a source needs a non-empty name');
  if (!isPlainObject(v)) fail(key, `must be an object, got ${JSON.stringify(v)?.slice(0, 100)}`);
  const s = v as Record<string, unknown>;
  for (const k of Object.keys(s)) if (!SOURCE_KEYS.includes(k)) fail(`${key}.${k}`, `unknown key (known: ${SOURCE_KEYS.join(', ')})`);
  for (const k of SOURCE_KEYS) if (k !== 'stats' && !(k in s)) fail(`${key}.${k}`, 'is missing');

  const relativePath = (p: unknown, k: string): void => {
    if (typeof p !== 'string' || p === '') fail(k, `must be a shard path, got ${JSON.stringify(p)}`);
    if (path.isAbsolute(p as string) || path.win32.isAbsolute(p as string)) {
      fail(k, `${JSON.stringify(p)} must be relative to the manifest's folder (the manifest and its shards move together)`);
    }
  };
  if (!Array.isArray(s.train)) fail(`${key}.train`, `must be an array of shard paths, got ${JSON.stringify(s.train)?.slice(0, 100)}`);
  const train = s.train as unknown[];
  train.forEach((p, i) => relativePath(p, `${key}.train[${i}]`));
  const dup = train.find((p, i) => train.indexOf(p) !== i);
  if (dup !== undefined) fail(`${key}.train`, `lists ${JSON.stringify(dup)} twice`);
  for (const split of ['validation', 'test'] as const) if (s[split] !== null) relativePath(s[split], `${key}.${split}`);

  for (const k of ['documents', 'bytes'] as const) {
    if (!isPlainObject(s[k])) fail(`${key}.${k}`, `must be an object of counts, got ${JSON.stringify(s[k])?.slice(0, 100)}`);
    for (const [c, n] of Object.entries(s[k] as Record<string, unknown>)) {
      if (!Number.isSafeInteger(n) || (n as number) < 0) fail(`${key}.${k}.${c}`, `must be a non-negative integer, got ${JSON.stringify(n)}`);
    }
  }
  if (!isPlainObject(s.tokens)) fail(`${key}.tokens`, `must be an object { train, validation, test }, got ${JSON.stringify(s.tokens)}`);
  const tokens = s.tokens as Record<string, unknown>;
  for (const k of Object.keys(tokens)) if (!(SPLITS as readonly string[]).includes(k)) fail(`${key}.tokens.${k}`, 'unknown key (known: train, validation, test)');
  for (const split of SPLITS) {
    const n = tokens[split];
    if (!Number.isSafeInteger(n) || (n as number) < 0) fail(`${key}.tokens.${split}`, `must be a non-negative integer, got ${JSON.stringify(n)}`);
  }
  if (train.length === 0 && tokens.train !== 0) fail(`${key}.tokens.train`, `is ${tokens.train} but the source lists no train shards`);
  for (const split of ['validation', 'test'] as const) {
    if (s[split] === null && tokens[split] !== 0) fail(`${key}.tokens.${split}`, `is ${tokens[split]} but ${key}.${split} is null`);
  }
  if (s.stats !== undefined && !isPlainObject(s.stats)) fail(`${key}.stats`, `must be an object, got ${JSON.stringify(s.stats)?.slice(0, 100)}`);
}

/**
 * Writes `manifest` to `file` atomically (a temporary file, fsync, rename), after checking its shape and
 * values as readDataManifest does (the shards are not opened: they are checked when it is read).
 */
export function writeDataManifest(file: string, manifest: DataManifest): void {
  if (typeof file !== 'string' || file === '') throw invalidArg('writeDataManifest: file must be a non-empty path');
  checkManifest(manifest, (key, message) => {
    throw invalidArg(`writeDataManifest: ${file}: ${key} ${message}`);
  });
  writeTextAtomic(file, JSON.stringify(manifest, null, 2) + '\n');
}

/**
 * Reads and checks a data manifest: every field, then every shard (it exists, has the manifest's vocab size
 * and EOS, and the source's token counts add up). Shard paths come back absolute, resolved against the
 * manifest's folder. Errors are PajamaDataErrors naming the manifest and the JSON key.
 */
export function readDataManifest(file: string): LoadedDataManifest {
  if (typeof file !== 'string' || file === '') throw invalidArg('readDataManifest: file must be a non-empty path');
  const abs = path.resolve(file);
  const fail: Fail = (key, message) => {
    throw new PajamaDataError(abs, `${key} ${message}`);
  };
  let text: string;
  try {
    text = fs.readFileSync(abs, 'utf8');
  } catch (e) {
    throw new PajamaDataError(abs, `cannot read the data manifest: ${(e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new PajamaDataError(abs, `the data manifest is not valid JSON: ${(e as Error).message}`);
  }
  const m = checkManifest(json, fail);
  const dir = path.dirname(abs);
  const { vocabSize, eosId } = m.tokenizer;

  /** Opens the shard at `rel` (for `key`) and returns its absolute path and token count. */
  const shardAt = (rel: string, key: string): { path: string; tokens: number } => {
    const p = path.resolve(dir, rel);
    let stat: fs.Stats;
    try {
      stat = fs.statSync(p);
    } catch {
      fail(key, `names ${JSON.stringify(rel)}, but ${p} does not exist`);
    }
    if (!stat!.isFile()) fail(key, `names ${JSON.stringify(rel)}, but ${p} is not a file`);
    let tokens: number;
    try {
      const r = openShard(p);
      tokens = r.tokenCount;
      const mismatch = r.vocabSize !== vocabSize || r.eosId !== eosId;
      const got = `vocab size ${r.vocabSize} and EOS ${r.eosId}`;
      r.close();
      if (mismatch) fail(key, `names ${p}, whose ${got} differ from the manifest's tokenizer (${vocabSize}, ${eosId})`);
    } catch (e) {
      if (e instanceof PajamaDataError && e.file === abs) throw e;
      fail(key, `names ${JSON.stringify(rel)}, which is not a readable token shard: ${(e as Error).message}`);
    }
    return { path: p, tokens: tokens! };
  };

  const sources: Record<string, DataManifestSource> = {};
  for (const [name, s] of Object.entries(m.sources)) {
    const key = sourceKey(name);
    const train = s.train.map((rel, i) => shardAt(rel, `${key}.train[${i}]`));
    const trainTokens = train.reduce((a, b) => a + b.tokens, 0);
    if (trainTokens !== s.tokens.train) fail(`${key}.tokens.train`, `is ${s.tokens.train}, but the train shards hold ${trainTokens} tokens`);
    const split = (which: 'validation' | 'test'): string | null => {
      const rel = s[which];
      if (rel === null) return null;
      const shard = shardAt(rel, `${key}.${which}`);
      if (shard.tokens !== s.tokens[which]) fail(`${key}.tokens.${which}`, `is ${s.tokens[which]}, but the ${which} shard holds ${shard.tokens} tokens`);
      return shard.path;
    };
    sources[name] = { ...s, train: train.map((x) => x.path), validation: split('validation'), test: split('test') };
  }
  return { ...m, sources, file: abs };
}
