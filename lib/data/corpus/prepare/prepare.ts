// prepare.ts: raw SlimPajama/RedPajama shards -> per-source token shards and a manifest, as SlimPajama did:
//
//   scan      read every document (jsonl.zst reader), NFC-normalise, drop short documents, compute the
//             MinHash band keys of the rest (native): one file per worker thread (scan.ts), merged in file
//             order into the LSH index (spilled to disk) and a 24-byte table of every document (doc-table.ts):
//             source, short or not, split draw, bytes, line, exact hash
//   dedup     join candidates with union-find (global: across sources, local: within each), keep the first
//             document of every cluster, carve validation/test documents per source by ratio and seed, and
//             remove training documents whose exact hash matches a holdout document (decontamination)
//   tokenize  read the corpus again and write the kept documents' tokens into per-source shards (worker
//             threads), then the manifest (manifest.ts) and the report
//
// Every stage ends by writing its outputs and then its entry in prepare-state.json, keyed by a hash of the
// configuration it depends on and of the input files (paths, sizes, mtimes): an interrupted run resumes at
// the first stage that did not finish, and changing an option re-runs the stages it affects.
//
// Document ids are ordinals in the reader's order (sorted files, then lines), so every decision is a pure
// function of the input files and the config.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { invalidArg } from '../../../core/errors';
import { explainSystemError, isSystemError } from '../../../core/fs-errors';
import { readJsonFile } from '../../../core/json-file';
import { PajamaDataError } from '../../errors';
import { JsonlDocumentReader, type JsonlReadStats } from '../jsonl';
import { listShardFiles } from '../files';
import { LshIndex, UnionFind, verifyLshSample, type ClusterStats, type DedupMode, type LshVerification } from '../dedup';
import { DEFAULT_MINHASH, type MinHashOptions } from '../minhash';
import { emptyReadStats, exactHash, mergeReadStats, mix32, scanFiles, type ScanFileTask, type ScanProgress } from '../scan';
import { DOC_RECORD_BYTES, DocTableWriter, decodeDocRecord, emptyDocRecord, forEachDocument } from '../doc-table';
import { ShardWriter } from '../../shard';
import { TokenizerPool } from '../../tokenizers/pool';
import { createTokenizer } from '../../tokenizers/create';
import { readDataManifest, writeDataManifest, type DataManifest } from '../../manifest';
import { checkInputsOutsideFolder, checkOutputsAreNotInputs, removeStaleTempFiles } from '../../../core/outputs';
import { tmpPathFor } from '../../../core/atomic';
import { PREPARE_STAGES, tokenizerSpecOf, type PrepareConfig, type PrepareStage } from './config';

export { DEFAULT_PREPARE_CONFIG, PREPARE_STAGES, resolvePrepareConfig, tokenizerSpecOf, type PrepareConfig, type PrepareStage } from './config';

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

// ---------------------------------------------------------------------------------------------------------
// The document table: 16 bytes per document, in reading order.

/**
 * Bytes of text per token assumed when split.minValidationTokens is turned into bytes before tokenising.
 * GPT-2 and GPT-NeoX BPE average about 4 bytes a token on English prose and 3 on code; 6 over-estimates
 * both, so the validation set reaches the minimum after tokenising (the tokenize stage logs any that do not).
 */
export const VALIDATION_BYTES_PER_TOKEN = 6;

/** What became of a document. */
export const DOC_STATUS = ['train', 'validation', 'test', 'short', 'duplicate', 'decontaminated'] as const;
export type DocStatus = (typeof DOC_STATUS)[number];
const ST_TRAIN = 0;
const ST_VALIDATION = 1;
const ST_TEST = 2;
const ST_SHORT = 3;
const ST_DUPLICATE = 4;
const ST_DECONTAMINATED = 5;

/** A u32 draw for the holdout split, fixed by (seed, document id). */
export function splitDraw(seed: number, id: number): number {
  return mix32(seed, id >>> 0, Math.floor(id / 2 ** 32));
}

export { exactHash };

// ---------------------------------------------------------------------------------------------------------
// Statistics and the report

export interface SourceReport {
  /** Documents read (malformed lines excluded). */
  documents: number;
  /** UTF-8 bytes of the NFC text read. */
  bytes: number;
  /** Dropped by the short-document filter. */
  short: { documents: number; bytes: number; rate: number };
  /** Removed as near-duplicates, and their share of the documents that passed the filter. */
  duplicates: { documents: number; bytes: number; rate: number; byteRate: number };
  /** Training documents removed because a holdout document has the same text. */
  decontaminated: { documents: number; bytes: number };
  train: { documents: number; bytes: number; tokens: number };
  validation: { documents: number; bytes: number; tokens: number };
  test: { documents: number; bytes: number; tokens: number };
}

export interface PrepareReport {
  version: 1;
  output: string;
  reader: JsonlReadStats;
  sources: Record<string, SourceReport>;
  totals: SourceReport;
  dedup: { mode: DedupMode; minhash: MinHashOptions; clusters: number; cluster: ClusterStats | null; verification: LshVerification | null };
  tokenizer: { name: string; vocabSize: number; eosId: number };
  seconds: Partial<Record<PrepareStage, number>>;
}

function emptySourceReport(): SourceReport {
  return {
    documents: 0,
    bytes: 0,
    short: { documents: 0, bytes: 0, rate: 0 },
    duplicates: { documents: 0, bytes: 0, rate: 0, byteRate: 0 },
    decontaminated: { documents: 0, bytes: 0 },
    train: { documents: 0, bytes: 0, tokens: 0 },
    validation: { documents: 0, bytes: 0, tokens: 0 },
    test: { documents: 0, bytes: 0, tokens: 0 },
  };
}

function finishRates(r: SourceReport): void {
  r.short.rate = r.documents > 0 ? r.short.documents / r.documents : 0;
  const passed = r.documents - r.short.documents;
  const passedBytes = r.bytes - r.short.bytes;
  r.duplicates.rate = passed > 0 ? r.duplicates.documents / passed : 0;
  r.duplicates.byteRate = passedBytes > 0 ? r.duplicates.bytes / passedBytes : 0;
}

function addInto(total: SourceReport, r: SourceReport): void {
  total.documents += r.documents;
  total.bytes += r.bytes;
  for (const k of ['short', 'duplicates', 'decontaminated'] as const) {
    total[k].documents += r[k].documents;
    total[k].bytes += r[k].bytes;
  }
  for (const k of ['train', 'validation', 'test'] as const) {
    total[k].documents += r[k].documents;
    total[k].bytes += r[k].bytes;
    total[k].tokens += r[k].tokens;
  }
}

/** The report as a plain-text table, one row per source and a total. */
export function formatPrepareReport(report: PrepareReport): string {
  const pct = (x: number) => `${(100 * x).toFixed(2)}%`;
  const mb = (b: number) => (b / 1e6).toFixed(1);
  const head = ['source', 'docs', 'MB', 'short', 'dup (docs)', 'dup (bytes)', 'decontam', 'train docs', 'train tokens', 'val tokens', 'test tokens'];
  const rows: string[][] = [];
  const row = (name: string, r: SourceReport) =>
    rows.push([
      name,
      String(r.documents),
      mb(r.bytes),
      pct(r.short.rate),
      pct(r.duplicates.rate),
      pct(r.duplicates.byteRate),
      String(r.decontaminated.documents),
      String(r.train.documents),
      String(r.train.tokens),
      String(r.validation.tokens),
      String(r.test.tokens),
    ]);
  for (const [name, r] of Object.entries(report.sources)) row(name, r);
  row('total', report.totals);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  const out = [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(0, -1).map(line), widths.map((w) => '-'.repeat(w)).join('  '), line(rows[rows.length - 1])];
  const v = report.dedup.verification;
  out.push(
    `dedup: ${report.dedup.mode}, ${report.dedup.minhash.numPerm} permutations, ${report.dedup.minhash.bands} bands x ${report.dedup.minhash.rows} rows, ` +
      `${report.dedup.minhash.shingleChars}-character shingles; ${report.dedup.clusters} clusters with duplicates`,
  );
  if (v) {
    out.push(
      `dedup check on ${v.documents} sampled documents (${v.pairs} pairs, exact Jaccard by brute force): ` +
        `${v.pairsAbove} pairs >= ${v.threshold}, recall ${v.recall === null ? 'n/a' : pct(v.recall)}; ` +
        `${v.candidates} LSH candidate pairs, ${v.falseCandidates} below ${v.threshold} (false-positive rate ${v.falsePositiveRate === null ? 'n/a' : pct(v.falsePositiveRate)})`,
    );
  }
  const removed = report.totals.duplicates.documents + report.totals.decontaminated.documents;
  out.push(`removed documents (near-duplicates with the kept document each matched, decontaminated): ${removed}, listed in ${path.join(report.output, DUPLICATES_FILE)}`);
  if (report.reader.malformed > 0) out.push(`malformed lines skipped: ${report.reader.malformed} (see report.json)`);
  return out.join('\n');
}

// ---------------------------------------------------------------------------------------------------------
// Progress

export interface PrepareProgress {
  stage: PrepareStage;
  /** Documents read in this stage so far. */
  documents: number;
  /** Uncompressed bytes read so far. */
  bytes: number;
  /** Files done and in all. */
  files: number;
  totalFiles: number;
  /** Bytes read from disk (compressed for .zst) and the size of all input files. */
  diskBytes: number;
  diskBytesTotal: number;
}

export interface PrepareOptions {
  /** Start over: remove the state of an earlier run in the output folder. */
  force?: boolean;
  /** Stop after this stage (`pajama dedup` stops after 'dedup'). */
  until?: PrepareStage;
  onProgress?: (p: PrepareProgress) => void;
  /** A line of news: a stage skipped because it is done, started, or finished. */
  onLog?: (line: string) => void;
}

export interface PrepareResult {
  report: PrepareReport;
  /** The manifest path (null when stopped before tokenize). */
  manifest: string | null;
  /** Stages run now, and stages found done. */
  ran: PrepareStage[];
  skipped: PrepareStage[];
}

// ---------------------------------------------------------------------------------------------------------
// Stage state

interface StageEntry {
  key: string;
  finished: string;
  seconds: number;
}

interface PrepareState {
  version: 1;
  stages: Partial<Record<PrepareStage, StageEntry>>;
}

function readState(file: string): PrepareState {
  if (!fs.existsSync(file)) return { version: 1, stages: {} };
  try {
    const s = JSON.parse(fs.readFileSync(file, 'utf8')) as PrepareState;
    if (s.version !== 1 || !isObject(s.stages)) throw new Error('not a version 1 state');
    return s;
  } catch (e) {
    throw new PajamaDataError(file, `is not a readable prepare state (${(e as Error).message}); rerun with --force to start over`);
  }
}

function writeJsonAtomic(file: string, value: unknown): void {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, JSON.stringify(value, null, 2) + '\n');
  fs.renameSync(tmp, file);
}

/** What each stage depends on: the input files and the config sections it reads, chained. */
function stageKeys(config: PrepareConfig, files: string[]): Record<PrepareStage, string> {
  const inputs = files.map((f) => {
    const st = fs.statSync(f);
    return [f, st.size, st.mtimeMs];
  });
  const h = (v: unknown) => createHash('sha256').update(JSON.stringify(v)).digest('hex').slice(0, 32);
  const scan = h({ table: 2, inputs, sources: config.sources, defaultSource: config.defaultSource, strict: config.strict, filter: config.filter, dedup: config.dedup, split: config.split.seed });
  const dedup = h({ scan, split: config.split, decontaminate: config.decontaminate, mode: config.dedup.mode });
  const tokenize = h({ dedup, tokenizer: config.tokenizer, tokenizerFile: config.tokenizer === 'gpt2' ? null : fileStamp(config.tokenizer), shardTokens: config.shardTokens });
  return { scan, dedup, tokenize };
}

function fileStamp(file: string): [number, number] | null {
  try {
    const st = fs.statSync(file);
    return [st.size, st.mtimeMs];
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------------------
// The pipeline

interface ScanOutput {
  version: 1;
  documents: number;
  sources: string[];
  reader: JsonlReadStats;
  perSource: Record<string, { documents: number; bytes: number; short: number; shortBytes: number }>;
  /** The input files in reading order, and the id of each one's first document. */
  files: string[];
  fileOffsets: number[];
  /** Exact-hash low bits of the documents drawn for validation/test, by id (filled in by dedup). */
  lsh: { runs: number; records: number };
}

/** Runs the pipeline (or resumes it); see the file header. */
export async function prepareData(config: PrepareConfig, options: PrepareOptions = {}): Promise<PrepareResult> {
  const log = options.onLog ?? (() => undefined);
  const out = config.output;
  const work = path.join(out, 'work');
  const stateFile = path.join(out, 'prepare-state.json');
  const files = listShardFiles(config.inputs);
  // Nothing this run writes or clears may be an input (the output folder may hold or be inside the inputs).
  const outputFiles = ['manifest.json', 'report.json', 'dedup-report.json', 'prepare-state.json', DUPLICATES_FILE].map((f) => path.join(out, f));
  checkOutputsAreNotInputs('prepare', outputFiles, files);
  for (const sub of ['shards', 'work']) checkInputsOutsideFolder('prepare', path.join(out, sub), files, 'output');
  for (const f of outputFiles) removeStaleTempFiles(f); // left by a run killed while writing them
  if (options.force) {
    fs.rmSync(work, { recursive: true, force: true });
    fs.rmSync(stateFile, { force: true });
  }
  fs.mkdirSync(work, { recursive: true });
  const until = options.until ?? 'tokenize';
  // A bad tokenizer file fails now, not after hours of scanning.
  if (until === 'tokenize') createTokenizer(tokenizerSpecOf(config));
  const keys = stageKeys(config, files);
  const state = readState(stateFile);
  const ran: PrepareStage[] = [];
  const skipped: PrepareStage[] = [];
  const seconds: Partial<Record<PrepareStage, number>> = {};
  let upstreamRan = false;
  for (const stage of PREPARE_STAGES) {
    const entry = state.stages[stage];
    if (!upstreamRan && entry && entry.key === keys[stage] && stageOutputsExist(stage, out)) {
      skipped.push(stage);
      seconds[stage] = entry.seconds;
      log(`${stage}: done on ${entry.finished}, skipped`);
    } else {
      upstreamRan = true;
      delete state.stages[stage];
      for (const later of PREPARE_STAGES.slice(PREPARE_STAGES.indexOf(stage) + 1)) delete state.stages[later];
      writeJsonAtomic(stateFile, state);
      log(`${stage}: running`);
      const t0 = performance.now();
      if (stage === 'scan') await runScan(config, files, work, options);
      else if (stage === 'dedup') await runDedup(config, work);
      else await runTokenize(config, files, out, work, options);
      const s = (performance.now() - t0) / 1000;
      seconds[stage] = s;
      state.stages[stage] = { key: keys[stage], finished: new Date().toISOString(), seconds: s };
      writeJsonAtomic(stateFile, state);
      ran.push(stage);
      log(`${stage}: finished in ${s.toFixed(1)} s`);
    }
    if (stage === until) break;
  }
  const report = buildReport(config, out, work, until, seconds);
  writeJsonAtomic(path.join(out, until === 'tokenize' ? 'report.json' : 'dedup-report.json'), report);
  return { report, manifest: until === 'tokenize' ? path.join(out, 'manifest.json') : null, ran, skipped };
}

function stageOutputsExist(stage: PrepareStage, out: string): boolean {
  const work = path.join(out, 'work');
  if (stage === 'scan') return fs.existsSync(path.join(work, 'scan.json')) && fs.existsSync(path.join(work, 'documents.bin'));
  if (stage === 'dedup') return fs.existsSync(path.join(work, 'dedup.json')) && fs.existsSync(path.join(work, 'status.bin')) && fs.existsSync(path.join(out, DUPLICATES_FILE));
  if (!fs.existsSync(path.join(work, 'tokenize.json'))) return false;
  try {
    readDataManifest(path.join(out, 'manifest.json')); // checks every shard's header and token count
    return true;
  } catch {
    return false;
  }
}

async function runScan(config: PrepareConfig, files: string[], work: string, options: PrepareOptions): Promise<void> {
  for (const f of fs.readdirSync(work)) fs.rmSync(path.join(work, f), { recursive: true, force: true });
  const dedupOn = config.dedup.mode !== 'none';
  const mh: MinHashOptions = {
    numPerm: config.dedup.numPerm,
    shingleChars: config.dedup.shingleChars,
    bands: config.dedup.bands,
    rows: config.dedup.rows,
    seed: config.dedup.seed,
  };
  const filesDir = path.join(work, 'files');
  fs.mkdirSync(filesDir, { recursive: true });
  const tasks: ScanFileTask[] = files.map((file, index) => ({
    index,
    file,
    outPrefix: path.join(filesDir, String(index).padStart(6, '0')),
    sources: config.sources,
    defaultSource: config.defaultSource,
    strict: config.strict,
    minChars: config.filter.minChars,
    minhash: dedupOn ? mh : null,
    local: config.dedup.mode === 'local',
    sampleSize: dedupOn ? config.dedup.verifySample : 0,
    sampleSeed: config.dedup.seed,
  }));
  // Progress: the latest of each file, summed.
  const sizes = files.map((f) => fs.statSync(f).size);
  const totalDisk = sizes.reduce((a, b) => a + b, 0);
  const latest = new Map<number, ScanProgress>();
  const onFileProgress = (p: ScanProgress): void => {
    latest.set(p.index, p);
    if (!options.onProgress) return;
    let diskBytes = 0;
    let bytes = 0;
    let documents = 0;
    let done = 0;
    for (const q of latest.values()) {
      diskBytes += q.diskBytes;
      bytes += q.bytes;
      documents += q.documents;
      if (q.done) done++;
    }
    options.onProgress({ stage: 'scan', documents, bytes, files: done, totalFiles: files.length, diskBytes, diskBytesTotal: totalDisk });
  };
  const workers = config.workers === 0 ? os.availableParallelism() : config.workers;
  const results = await scanFiles(tasks, workers, onFileProgress);

  // Merge in file order: global ids, source numbering by first appearance, split draws, LSH records.
  const index = dedupOn ? new LshIndex({ bands: mh.bands, dir: path.join(work, 'lsh'), memoryBytes: config.dedup.memoryMiB * 2 ** 20 }) : null;
  const table = new DocTableWriter(path.join(work, 'documents.bin'));
  const sourceIds = new Map<string, number>();
  const perSource: ScanOutput['perSource'] = {};
  let reader = emptyReadStats();
  const samples: { key: number; id: number; normalized: string }[] = [];
  const fileOffsets: number[] = [];
  try {
    for (const r of results) {
      const offset = table.count;
      fileOffsets.push(offset);
      if (offset + r.documents >= 2 ** 32 - 1) throw invalidArg(`prepare: more than 2^32 - 2 documents; split the corpus`);
      const toGlobal = r.sources.map((name) => {
        let g = sourceIds.get(name);
        if (g === undefined) {
          g = sourceIds.size;
          if (g > 0xffff) throw new PajamaDataError(files[r.index], 'more than 65,536 distinct sources in the corpus');
          sourceIds.set(name, g);
          perSource[name] = { documents: 0, bytes: 0, short: 0, shortBytes: 0 };
        }
        const ps = perSource[name];
        const fs_ = r.perSource[name];
        ps.documents += fs_.documents;
        ps.bytes += fs_.bytes;
        ps.short += fs_.short;
        ps.shortBytes += fs_.shortBytes;
        return g;
      });
      const prefix = tasks[r.index].outPrefix;
      const docs = fs.readFileSync(`${prefix}.docs`);
      if (docs.length !== r.documents * DOC_RECORD_BYTES) throw new PajamaDataError(`${prefix}.docs`, `holds ${docs.length} bytes for ${r.documents} documents`);
      const d = emptyDocRecord();
      for (let i = 0, o = 0; i < r.documents; i++, o += DOC_RECORD_BYTES) {
        decodeDocRecord(docs, o, d);
        table.push(toGlobal[d.source], d.short, splitDraw(config.split.seed, offset + i), d.bytes, d.line, d.hash);
      }
      if (index && r.hashed > 0) await addFileKeys(index, prefix, r.hashed, offset);
      for (const s of r.sample) samples.push({ key: s.key, id: offset + s.local, normalized: s.normalized });
      reader = mergeReadStats(reader, r.reader);
      for (const ext of ['.docs', '.ids', '.keys']) fs.rmSync(`${prefix}${ext}`, { force: true });
    }
    if (index) await index.spill();
  } finally {
    table.close();
  }
  fs.rmSync(filesDir, { recursive: true, force: true });
  const scan: ScanOutput = {
    version: 1,
    documents: table.count,
    sources: [...sourceIds.keys()],
    reader,
    perSource,
    files,
    fileOffsets,
    lsh: { runs: index?.runCount ?? 0, records: (index?.documents ?? 0) * mh.bands },
  };
  // The corpus's bottom-k by sample key, in id order.
  samples.sort((a, b) => a.key - b.key || a.id - b.id);
  const sample = samples.slice(0, config.dedup.verifySample).sort((a, b) => a.id - b.id);
  fs.writeFileSync(path.join(work, 'sample.jsonl'), sample.map((s) => JSON.stringify({ id: s.id, normalized: s.normalized })).join('\n') + (sample.length ? '\n' : ''));
  writeJsonAtomic(path.join(work, 'scan.json'), scan);
}

/** Adds one file's band keys to the index, a chunk at a time, with ids shifted by the file's offset. */
async function addFileKeys(index: LshIndex, prefix: string, count: number, offset: number): Promise<void> {
  const bands = index.bands;
  const chunk = 1 << 15;
  const idsFd = fs.openSync(`${prefix}.ids`, 'r');
  const keysFd = fs.openSync(`${prefix}.keys`, 'r');
  try {
    for (let done = 0; done < count; done += chunk) {
      const n = Math.min(chunk, count - done);
      const ids = new Uint32Array(n);
      const keys = new BigUint64Array(n * bands);
      readExactly(idsFd, new Uint8Array(ids.buffer), done * 4, `${prefix}.ids`);
      readExactly(keysFd, new Uint8Array(keys.buffer), done * bands * 8, `${prefix}.keys`);
      for (let i = 0; i < n; i++) ids[i] += offset;
      await index.add(ids, keys);
    }
  } finally {
    fs.closeSync(idsFd);
    fs.closeSync(keysFd);
  }
}

function readExactly(fd: number, into: Uint8Array, position: number, file: string): void {
  let at = 0;
  while (at < into.length) {
    const got = fs.readSync(fd, into, at, into.length - at, position + at);
    if (got === 0) throw new PajamaDataError(file, `ended at byte ${position + at}, expected ${position + into.length}`);
    at += got;
  }
}

/** A stage's output (scan.json, ...) from the work folder; one that cannot be read asks for a rerun. */
function readStageJson<T>(file: string): T {
  return readJsonFile(file, {
    fail: (p) => {
      const e = p.kind === 'not-object' ? new Error('not a JSON object') : p.error;
      const why = isSystemError(e) ? `${e.code}: ${explainSystemError(e, file)}` : (e as Error).message;
      return new PajamaDataError(file, `cannot be read (${why}); rerun prepare with --force`);
    },
  }) as T;
}

interface DedupOutput {
  version: 1;
  clusters: number;
  cluster: ClusterStats | null;
  verification: LshVerification | null;
  perSource: Record<string, { duplicates: number; duplicateBytes: number; decontaminated: number; decontaminatedBytes: number; validation: number; test: number; train: number }>;
}

async function runDedup(config: PrepareConfig, work: string): Promise<void> {
  const scan = readStageJson<ScanOutput>(path.join(work, 'scan.json'));
  const n = scan.documents;
  const tableFile = path.join(work, 'documents.bin');
  const uf = new UnionFind(Math.max(1, n));
  uf.grow(n);
  let cluster: ClusterStats | null = null;
  let agreement: { shared: Uint16Array; via: Uint32Array } | null = null;
  const mh: MinHashOptions = { numPerm: config.dedup.numPerm, shingleChars: config.dedup.shingleChars, bands: config.dedup.bands, rows: config.dedup.rows, seed: config.dedup.seed };
  if (config.dedup.mode !== 'none') {
    const index = LshIndex.open({ bands: mh.bands, dir: path.join(work, 'lsh'), memoryBytes: config.dedup.memoryMiB * 2 ** 20, documents: n });
    cluster = await index.cluster(uf);
    agreement = await index.agreementWithRoots(uf);
  }
  const status = new Uint8Array(n);
  const perSource: DedupOutput['perSource'] = {};
  for (const s of scan.sources) perSource[s] = { duplicates: 0, duplicateBytes: 0, decontaminated: 0, decontaminatedBytes: 0, validation: 0, test: 0, train: 0 };
  const vLimit = Math.floor(config.split.validation * 2 ** 32);
  const tLimit = Math.floor((config.split.validation + config.split.test) * 2 ** 32);
  // Per source: the documents with the smallest draws, enough to reach minValidationDocuments and the bytes
  // of minValidationTokens.
  const m = config.split.minValidationDocuments;
  const minBytes = config.split.minValidationTokens * VALIDATION_BYTES_PER_TOKEN;
  const smallest: { draw: number; id: number; bytes: number }[][] = scan.sources.map(() => []);
  const smallestBytes = new Array<number>(scan.sources.length).fill(0);
  const keptPerSource = new Array<number>(scan.sources.length).fill(0);
  const hasDuplicates = new Uint8Array(Math.ceil(n / 8));
  let clusters = 0;
  forEachDocument(tableFile, (id, r) => {
    if (r.short) {
      status[id] = ST_SHORT;
      return;
    }
    const root = uf.find(id);
    if (root !== id) {
      status[id] = ST_DUPLICATE;
      if ((hasDuplicates[root >> 3] & (1 << (root & 7))) === 0) {
        hasDuplicates[root >> 3] |= 1 << (root & 7);
        clusters++;
      }
      const ps = perSource[scan.sources[r.source]];
      ps.duplicates++;
      ps.duplicateBytes += r.bytes;
      return;
    }
    keptPerSource[r.source]++;
    status[id] = r.splitDraw < vLimit ? ST_VALIDATION : r.splitDraw < tLimit ? ST_TEST : ST_TRAIN;
    if (m > 0 || minBytes > 0) {
      const list = smallest[r.source];
      const full = () => list.length >= m && smallestBytes[r.source] >= minBytes;
      if (!full() || r.splitDraw < list[list.length - 1].draw) {
        let at = list.length;
        while (at > 0 && (list[at - 1].draw > r.splitDraw || (list[at - 1].draw === r.splitDraw && list[at - 1].id > id))) at--;
        list.splice(at, 0, { draw: r.splitDraw, id, bytes: r.bytes });
        smallestBytes[r.source] += r.bytes;
        // Drop the largest draws the minimums do not need.
        while (list.length > m && smallestBytes[r.source] - list[list.length - 1].bytes >= minBytes) smallestBytes[r.source] -= list.pop()!.bytes;
      }
    }
  });
  // Top up validation to the minimums in draw order: minValidationDocuments never takes a source's last
  // training document, minValidationTokens never more than half of its kept documents.
  for (let s = 0; s < scan.sources.length; s++) {
    let have = 0;
    let haveBytes = 0;
    for (const { id, bytes } of smallest[s]) {
      if (status[id] === ST_VALIDATION) {
        have++;
        haveBytes += bytes;
      }
    }
    for (const { id, bytes } of smallest[s]) {
      if (have >= m && haveBytes >= minBytes) break;
      if (status[id] !== ST_TRAIN) continue;
      if (have >= m ? have + 1 > keptPerSource[s] / 2 : keptPerSource[s] - have <= 1) break;
      status[id] = ST_VALIDATION;
      have++;
      haveBytes += bytes;
    }
  }
  // Decontamination: training documents with the exact text of a kept holdout document.
  const holdout = new Map<number, number>(); // exact hash -> the first holdout document with it
  forEachDocument(tableFile, (id, r) => {
    if ((status[id] === ST_VALIDATION || status[id] === ST_TEST) && !holdout.has(r.hash)) holdout.set(r.hash, id);
  });
  if (config.decontaminate && holdout.size > 0) {
    forEachDocument(tableFile, (id, r) => {
      if (status[id] === ST_TRAIN && holdout.has(r.hash)) status[id] = ST_DECONTAMINATED;
    });
  }
  forEachDocument(tableFile, (id, r) => {
    const ps = perSource[scan.sources[r.source]];
    const st = status[id];
    if (st === ST_DECONTAMINATED) {
      ps.decontaminated++;
      ps.decontaminatedBytes += r.bytes;
    } else if (st === ST_VALIDATION) ps.validation++;
    else if (st === ST_TEST) ps.test++;
    else if (st === ST_TRAIN) ps.train++;
  });
  let verification: LshVerification | null = null;
  if (config.dedup.mode !== 'none' && config.dedup.verifySample > 0) {
    const text = fs.readFileSync(path.join(work, 'sample.jsonl'), 'utf8');
    const sample = text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { id: number; normalized: string });
    verification = await verifyLshSample(sample.map((s) => s.normalized), mh);
  }
  writeRemovals(path.join(config.output, DUPLICATES_FILE), tableFile, scan, status, uf, agreement, holdout, mh);
  fs.writeFileSync(path.join(work, 'status.bin'), status);
  const out: DedupOutput = { version: 1, clusters, cluster, verification, perSource };
  writeJsonAtomic(path.join(work, 'dedup.json'), out);
}

/**
 * The documents dedup removed, one JSON object a line, in id order (SlimPajama's tools write the duplicate
 * pairs too): near-duplicates with the kept document of their cluster and the MinHash-LSH evidence, and
 * training documents removed by decontamination with the holdout document of the same text.
 */
export const DUPLICATES_FILE = 'duplicates.jsonl';

/** Where a document came from: its id in the reading order, source, file and 1-based line. */
export interface DocumentLocation {
  id: number;
  source: string;
  file: string;
  line: number;
}

/** One line of duplicates.jsonl. */
export interface RemovalRecord {
  reason: 'near-duplicate' | 'decontaminated';
  removed: DocumentLocation;
  /** The document kept in its place: its cluster's first document, or the holdout document with the same text. */
  kept: DocumentLocation;
  /** near-duplicate: the LSH bands whose keys agree between removed and kept, of `bands`. */
  bandsShared?: number;
  bands?: number;
  /**
   * near-duplicate: the Jaccard similarity of their shingle sets estimated from the band agreement,
   * (bandsShared / bands)^(1 / rows); 0 when they share no band (the document joined the cluster through
   * others: `via` is the document it shares a band key with). decontaminated: 1 (the same normalised text).
   */
  estimatedJaccard: number;
  via?: DocumentLocation;
}

/** Writes DUPLICATES_FILE under a temporary name, streaming (a line per removed document), then renames it. */
function writeRemovals(
  file: string,
  tableFile: string,
  scan: ScanOutput,
  status: Uint8Array,
  uf: UnionFind,
  agreement: { shared: Uint16Array; via: Uint32Array } | null,
  holdout: Map<number, number>,
  mh: MinHashOptions,
): void {
  const tableFd = fs.openSync(tableFile, 'r');
  const rec = Buffer.alloc(DOC_RECORD_BYTES);
  const d = emptyDocRecord();
  const locate = (id: number, source?: number, line?: number): DocumentLocation => {
    if (source === undefined || line === undefined) {
      readExactly(tableFd, rec, id * DOC_RECORD_BYTES, tableFile);
      ({ source, line } = decodeDocRecord(rec, 0, d));
    }
    let lo = 0;
    let hi = scan.fileOffsets.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (scan.fileOffsets[mid] <= id) lo = mid;
      else hi = mid - 1;
    }
    return { id, source: scan.sources[source], file: scan.files[lo], line };
  };
  const tmp = tmpPathFor(file);
  const fd = fs.openSync(tmp, 'w');
  let ok = false;
  try {
    let pending: string[] = [];
    let pendingChars = 0;
    const flush = (): void => {
      if (pending.length === 0) return;
      const buf = Buffer.from(pending.join(''), 'utf8');
      for (let at = 0; at < buf.length; ) at += fs.writeSync(fd, buf, at, buf.length - at);
      pending = [];
      pendingChars = 0;
    };
    forEachDocument(tableFile, (id, r) => {
      const st = status[id];
      let record: RemovalRecord;
      if (st === ST_DUPLICATE) {
        const root = uf.find(id);
        const shared = agreement ? agreement.shared[id] : 0;
        record = {
          reason: 'near-duplicate',
          removed: locate(id, r.source, r.line),
          kept: locate(root),
          bandsShared: shared,
          bands: mh.bands,
          estimatedJaccard: Number(Math.pow(shared / mh.bands, 1 / mh.rows).toFixed(4)),
        };
        if (shared === 0 && agreement && agreement.via[id] !== 0xffffffff) record.via = locate(agreement.via[id]);
      } else if (st === ST_DECONTAMINATED) {
        record = { reason: 'decontaminated', removed: locate(id, r.source, r.line), kept: locate(holdout.get(r.hash)!), estimatedJaccard: 1 };
      } else return;
      const line = JSON.stringify(record) + '\n';
      pending.push(line);
      pendingChars += line.length;
      if (pendingChars >= 1 << 20) flush();
    });
    flush();
    fs.fsyncSync(fd);
    ok = true;
  } finally {
    fs.closeSync(fd);
    fs.closeSync(tableFd);
    if (!ok) fs.rmSync(tmp, { force: true });
  }
  fs.renameSync(tmp, file);
}

interface TokenizeOutput {
  version: 1;
  tokenizer: { name: string; vocabSize: number; eosId: number };
  perSource: Record<string, Record<'train' | 'validation' | 'test', { documents: number; bytes: number; tokens: number; files: string[] }>>;
}

/** A file-name-safe form of a source name. */
function sourceFileName(source: string): string {
  return source.replace(/[^A-Za-z0-9._-]/g, '_');
}

const TOKENIZE_BATCH_BYTES = 1 << 20;

async function runTokenize(config: PrepareConfig, files: string[], out: string, work: string, options: PrepareOptions): Promise<void> {
  const scan = readStageJson<ScanOutput>(path.join(work, 'scan.json'));
  const status = fs.readFileSync(path.join(work, 'status.bin'));
  if (status.length !== scan.documents) throw new PajamaDataError(path.join(work, 'status.bin'), `holds ${status.length} documents, the scan found ${scan.documents}; rerun with --force`);
  const fileNames = new Map<string, string>();
  for (const s of scan.sources) {
    const f = sourceFileName(s);
    const other = fileNames.get(f);
    if (other !== undefined) throw invalidArg(`prepare: sources '${other}' and '${s}' would share the shard name '${f}'; rename one in 'sources'`);
    fileNames.set(f, s);
  }
  const shardsDir = path.join(out, 'shards');
  fs.rmSync(shardsDir, { recursive: true, force: true });
  fs.mkdirSync(shardsDir, { recursive: true });
  const spec = tokenizerSpecOf(config);
  const tokenizer = createTokenizer(spec);
  const result: TokenizeOutput = { version: 1, tokenizer: { name: tokenizer.name, vocabSize: tokenizer.vocabSize, eosId: tokenizer.eosId }, perSource: {} };
  const writers = new Map<string, ShardWriter>();
  const entry = (source: string, split: 'train' | 'validation' | 'test') => {
    let ps = result.perSource[source];
    if (!ps) {
      const e = () => ({ documents: 0, bytes: 0, tokens: 0, files: [] as string[] });
      ps = result.perSource[source] = { train: e(), validation: e(), test: e() };
    }
    return ps[split];
  };
  for (const s of scan.sources) for (const sp of ['train', 'validation', 'test'] as const) entry(s, sp);
  const writerFor = (source: string, split: 'train' | 'validation' | 'test'): ShardWriter => {
    const key = `${split}\u0000${source}`;
    let w = writers.get(key);
    const e = entry(source, split);
    if (w && split === 'train' && w.tokens >= config.shardTokens) {
      w.close();
      writers.delete(key);
      w = undefined;
    }
    if (!w) {
      const name = split === 'train' ? `${sourceFileName(source)}.train.${String(e.files.length).padStart(5, '0')}.bin` : `${sourceFileName(source)}.${split}.bin`;
      w = new ShardWriter(path.join(shardsDir, name), { vocabSize: tokenizer.vocabSize, eosId: tokenizer.eosId });
      writers.set(key, w);
      e.files.push(`shards/${name}`);
    }
    return w;
  };

  const pool = config.workers === 1 ? null : await TokenizerPool.create(spec, config.workers === 0 ? undefined : config.workers);
  type Pending = { docs: { source: string; split: 'train' | 'validation' | 'test'; bytes: number }[]; ids: Promise<ArrayLike<number>[]> };
  const queue: Pending[] = [];
  const maxQueue = Math.max(2, 2 * (pool?.size ?? 1));
  let batch: { texts: string[]; docs: Pending['docs']; bytes: number } = { texts: [], docs: [], bytes: 0 };
  const submit = (): void => {
    if (batch.texts.length === 0) return;
    const texts = batch.texts;
    const ids = pool ? pool.encodeBatch(texts) : Promise.resolve().then(() => texts.map((t) => tokenizer.encode(t)));
    ids.catch(() => undefined); // awaited in order by drainOne; an earlier failure must not leave this one unhandled
    queue.push({ docs: batch.docs, ids });
    batch = { texts: [], docs: [], bytes: 0 };
  };
  const drainOne = async (): Promise<void> => {
    const p = queue.shift()!;
    const ids = await p.ids;
    for (let i = 0; i < p.docs.length; i++) {
      const d = p.docs[i];
      const w = writerFor(d.source, d.split);
      const before = w.tokens;
      w.appendDocument(ids[i]);
      const e = entry(d.source, d.split);
      e.documents++;
      e.bytes += d.bytes;
      e.tokens += w.tokens - before;
    }
  };
  const reader = new JsonlDocumentReader({
    inputs: files,
    sources: config.sources,
    defaultSource: config.defaultSource ?? undefined,
    strict: config.strict,
    onProgress: options.onProgress
      ? (p) => options.onProgress!({ stage: 'tokenize', documents: p.documents, bytes: p.bytes, files: p.filesDone, totalFiles: p.files, diskBytes: p.diskBytes, diskBytesTotal: p.diskBytesTotal })
      : undefined,
  });
  let id = 0;
  try {
    for await (const doc of reader) {
      if (id >= status.length) throw new PajamaDataError(doc.file, `line ${doc.line}: more documents than the scan found (${scan.documents}); the input changed, rerun with --force`);
      const st = status[id++];
      if (st > ST_TEST) continue;
      const text = doc.text.normalize('NFC');
      const split = st === ST_TRAIN ? 'train' : st === ST_VALIDATION ? 'validation' : 'test';
      batch.texts.push(text);
      batch.docs.push({ source: doc.source, split, bytes: Buffer.byteLength(text, 'utf8') });
      batch.bytes += text.length;
      if (batch.bytes >= TOKENIZE_BATCH_BYTES) {
        submit();
        while (queue.length >= maxQueue) await drainOne();
      }
    }
    submit();
    while (queue.length > 0) await drainOne();
    if (id !== scan.documents) throw new PajamaDataError(files[files.length - 1] ?? config.output, `the corpus now holds ${id} documents, the scan found ${scan.documents}; rerun with --force`);
    for (const w of writers.values()) w.close();
    writers.clear();
  } finally {
    for (const w of writers.values()) w.abort();
    await pool?.close();
  }
  const dedup = readStageJson<DedupOutput>(path.join(work, 'dedup.json'));
  const manifest: DataManifest = {
    version: 1,
    kind: 'pajama-data-manifest',
    tokenizer: { ...result.tokenizer, spec: config.tokenizer === 'gpt2' ? 'gpt2' : path.basename(config.tokenizer) },
    sources: {},
    created: new Date().toISOString(),
    config: { ...config, inputs: config.inputs, output: config.output } as unknown as Record<string, unknown>,
  };
  for (const s of scan.sources) {
    const ps = result.perSource[s];
    const sc = scan.perSource[s];
    const dd = dedup.perSource[s];
    manifest.sources[s] = {
      train: ps.train.files,
      validation: ps.validation.files[0] ?? null,
      test: ps.test.files[0] ?? null,
      documents: { read: sc.documents, short: sc.short, duplicates: dd.duplicates, decontaminated: dd.decontaminated, train: ps.train.documents, validation: ps.validation.documents, test: ps.test.documents },
      tokens: { train: ps.train.tokens, validation: ps.validation.tokens, test: ps.test.tokens },
      bytes: { read: sc.bytes, short: sc.shortBytes, duplicates: dd.duplicateBytes, train: ps.train.bytes, validation: ps.validation.bytes, test: ps.test.bytes },
      stats: {},
    };
  }
  writeDataManifest(path.join(out, 'manifest.json'), manifest);
  writeJsonAtomic(path.join(work, 'tokenize.json'), result);
  for (const s of scan.sources) {
    const v = result.perSource[s].validation.tokens;
    if (v < config.split.minValidationTokens) {
      options.onLog?.(
        `tokenize: source '${s}' has ${v} validation tokens, fewer than split.minValidationTokens (${config.split.minValidationTokens}): ` +
          `it has too few documents to give more without holding out over half of them (or its text averages over ` +
          `${VALIDATION_BYTES_PER_TOKEN} bytes a token); trainers skip a source with less than one evaluation batch`,
      );
    }
  }
}

function buildReport(config: PrepareConfig, out: string, work: string, until: PrepareStage, seconds: PrepareReport['seconds']): PrepareReport {
  const scan = readStageJson<ScanOutput>(path.join(work, 'scan.json'));
  const dedup = readStageJson<DedupOutput>(path.join(work, 'dedup.json'));
  const tok = until === 'tokenize' ? readStageJson<TokenizeOutput>(path.join(work, 'tokenize.json')) : null;
  const sources: Record<string, SourceReport> = {};
  const totals = emptySourceReport();
  for (const s of scan.sources) {
    const r = emptySourceReport();
    const sc = scan.perSource[s];
    const dd = dedup.perSource[s];
    r.documents = sc.documents;
    r.bytes = sc.bytes;
    r.short.documents = sc.short;
    r.short.bytes = sc.shortBytes;
    r.duplicates.documents = dd.duplicates;
    r.duplicates.bytes = dd.duplicateBytes;
    r.decontaminated.documents = dd.decontaminated;
    r.decontaminated.bytes = dd.decontaminatedBytes;
    r.train.documents = dd.train;
    r.validation.documents = dd.validation;
    r.test.documents = dd.test;
    if (tok) {
      for (const k of ['train', 'validation', 'test'] as const) {
        r[k].bytes = tok.perSource[s][k].bytes;
        r[k].tokens = tok.perSource[s][k].tokens;
      }
    }
    finishRates(r);
    sources[s] = r;
    addInto(totals, r);
  }
  finishRates(totals);
  const tokenizer = tok ? tok.tokenizer : (() => {
    const t = createTokenizer(tokenizerSpecOf(config));
    return { name: t.name, vocabSize: t.vocabSize, eosId: t.eosId };
  })();
  return {
    version: 1,
    output: out,
    reader: scan.reader,
    sources,
    totals,
    dedup: {
      mode: config.dedup.mode,
      minhash: { ...DEFAULT_MINHASH, numPerm: config.dedup.numPerm, shingleChars: config.dedup.shingleChars, bands: config.dedup.bands, rows: config.dedup.rows, seed: config.dedup.seed },
      clusters: dedup.clusters,
      cluster: dedup.cluster,
      verification: dedup.verification,
    },
    tokenizer,
    seconds,
  };
}
