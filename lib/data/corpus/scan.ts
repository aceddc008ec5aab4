// scan.ts: the per-file half of prepare's scan stage, run on worker threads (scan-worker.ts), one input file
// per task. A task reads its file, NFC-normalises and filters each document, hashes the normalised text of
// the kept ones (exact hash, and MinHash band keys with the native op) and writes, next to `outPrefix`:
//
//   .docs   24 bytes per document, in the file's order (doc-table.ts's record layout, with the file's own source
//           numbering and no split draw yet: only the whole-corpus merge knows the global ids)
//   .ids    u32 per document that has band keys: its index in the file
//   .keys   u64 x bands per such document
//
// prepare.ts merges the files in order, so ids, source numbering and every decision are the same whatever
// the number of workers. Local mode folds a hash of the source *name* into the keys, which a file can do
// alone. The verification sample is a bottom-k sample by a hash of (seed, file, index): the union's bottom k
// is a uniform sample of the corpus, again independent of the workers.
import * as fs from 'node:fs';
import * as os from 'node:os';
import { createHash } from 'node:crypto';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { invalidArg } from '../../core/errors';
import { PajamaDataError } from '../errors';
import { DOC_RECORD_BYTES, encodeDocRecord } from './doc-table';
import { cleanDocument } from './clean';
import { JsonlDocumentReader, type JsonlReadStats, type MalformedInput } from './jsonl';
import { foldSourceIntoKeys } from './dedup';
import { minhashDocuments, type MinHashOptions } from './minhash';

export interface ScanFileTask {
  /** The file's position in the corpus's sorted file list. */
  index: number;
  file: string;
  /** Output path prefix (.docs, .ids, .keys are appended). */
  outPrefix: string;
  sources: Record<string, string>;
  defaultSource: string | null;
  strict: boolean;
  minChars: number;
  /** MinHash parameters, null without dedup. */
  minhash: MinHashOptions | null;
  /** Local dedup: fold the source name into the band keys. */
  local: boolean;
  /** Bottom-k sample size for the LSH check (0: none) and the seed of its hash. */
  sampleSize: number;
  sampleSeed: number;
}

export interface ScanSourceCounts {
  documents: number;
  bytes: number;
  short: number;
  shortBytes: number;
}

export interface ScanFileResult {
  index: number;
  documents: number;
  /** Documents with band keys. */
  hashed: number;
  /** Source names in order of first appearance in the file (the .docs numbering). */
  sources: string[];
  reader: JsonlReadStats;
  perSource: Record<string, ScanSourceCounts>;
  /** The file's bottom-k sample: hash key, index in the file, normalised text. */
  sample: { key: number; local: number; normalized: string }[];
}

export interface ScanProgress {
  index: number;
  diskBytes: number;
  bytes: number;
  documents: number;
  /** The file is finished (this is its last report). */
  done: boolean;
}

/** Records per .docs write, and normalised text per MinHash call. */
const FLUSH_DOCS = 1 << 14;
const MINHASH_BATCH_BYTES = 8 * 2 ** 20;

/** 32-bit FNV-1a of a source name: its salt in local mode, the same in every file and worker. */
export function sourceNameHash(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** A u32 mix of (seed, a, b): the split draw of prepare.ts and the sample keys here. */
export function mix32(seed: number, a: number, b = 0): number {
  let h = (Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ a ^ Math.imul(b, 0x27d4eb2f)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/** 53 bits of the SHA-1 of `normalized`: the exact-duplicate key of decontamination (a safe integer). */
export function exactHash(normalized: string): number {
  const d = createHash('sha1').update(normalized).digest();
  return (d.readUInt32LE(4) & 0x1fffff) * 2 ** 32 + d.readUInt32LE(0);
}

function appendAll(fd: number, bytes: Uint8Array): void {
  let at = 0;
  while (at < bytes.length) at += fs.writeSync(fd, bytes, at, bytes.length - at);
}

/** Scans one file (see the file header). */
export async function scanFile(task: ScanFileTask, onProgress?: (p: ScanProgress) => void): Promise<ScanFileResult> {
  const docsFd = fs.openSync(`${task.outPrefix}.docs`, 'w');
  const idsFd = fs.openSync(`${task.outPrefix}.ids`, 'w');
  const keysFd = fs.openSync(`${task.outPrefix}.keys`, 'w');
  const docBuf = Buffer.alloc(DOC_RECORD_BYTES * FLUSH_DOCS);
  let docN = 0;
  const flushDocs = () => {
    appendAll(docsFd, docBuf.subarray(0, docN * DOC_RECORD_BYTES));
    docN = 0;
  };
  const sources = new Map<string, number>();
  const perSource: Record<string, ScanSourceCounts> = {};
  const sample: ScanFileResult['sample'] = []; // sorted by key, at most sampleSize long
  let texts: string[] = [];
  let locals: number[] = [];
  let salts: number[] = [];
  let batchBytes = 0;
  let hashed = 0;
  const hashBatch = () => {
    if (texts.length === 0 || !task.minhash) return;
    const { bandKeys } = minhashDocuments(texts, task.minhash);
    if (task.local) foldSourceIntoKeys(bandKeys, salts, task.minhash.bands);
    appendAll(idsFd, new Uint8Array(Uint32Array.from(locals).buffer));
    appendAll(keysFd, new Uint8Array(bandKeys.buffer, bandKeys.byteOffset, bandKeys.byteLength));
    hashed += texts.length;
    texts = [];
    locals = [];
    salts = [];
    batchBytes = 0;
  };
  const reader = new JsonlDocumentReader({
    inputs: [task.file],
    sources: task.sources,
    ...(task.defaultSource !== null ? { defaultSource: task.defaultSource } : {}),
    strict: task.strict,
    onProgress: onProgress ? (p) => onProgress({ index: task.index, diskBytes: p.diskBytes, bytes: p.bytes, documents: p.documents, done: false }) : undefined,
  });
  let local = 0;
  try {
    for await (const doc of reader) {
      let src = sources.get(doc.source);
      if (src === undefined) {
        src = sources.size;
        if (src > 0xffff) throw new PajamaDataError(doc.file, `line ${doc.line}: more than 65,536 distinct sources`);
        sources.set(doc.source, src);
        perSource[doc.source] = { documents: 0, bytes: 0, short: 0, shortBytes: 0 };
      }
      const c = cleanDocument(doc.text, { minChars: task.minChars });
      const bytes = Buffer.byteLength(c.text, 'utf8');
      const ps = perSource[doc.source];
      ps.documents++;
      ps.bytes += bytes;
      let hash = 0;
      if (c.keep) {
        hash = exactHash(c.normalized);
        if (task.minhash && c.normalized.length > 0) {
          texts.push(c.normalized);
          locals.push(local);
          salts.push(sourceNameHash(doc.source));
          batchBytes += c.normalized.length;
          if (batchBytes >= MINHASH_BATCH_BYTES) hashBatch();
          if (task.sampleSize > 0) {
            const key = mix32(task.sampleSeed, task.index, local);
            if (sample.length < task.sampleSize || key < sample[sample.length - 1].key) {
              let at = sample.length;
              while (at > 0 && sample[at - 1].key > key) at--;
              sample.splice(at, 0, { key, local, normalized: c.normalized });
              if (sample.length > task.sampleSize) sample.pop();
            }
          }
        }
      } else {
        ps.short++;
        ps.shortBytes += bytes;
      }
      // No split draw yet (only the merge knows global ids); the line is for the duplicates list.
      encodeDocRecord(docBuf, docN * DOC_RECORD_BYTES, src, !c.keep, 0, bytes, doc.line, hash);
      if (++docN === FLUSH_DOCS) flushDocs();
      local++;
    }
    hashBatch();
    flushDocs();
  } finally {
    for (const fd of [docsFd, idsFd, keysFd]) fs.closeSync(fd);
  }
  onProgress?.({ index: task.index, diskBytes: fs.statSync(task.file).size, bytes: reader.stats.bytes, documents: local, done: true });
  return { index: task.index, documents: local, hashed, sources: [...sources.keys()], reader: reader.stats, perSource, sample };
}

/** An error as it crosses from a worker, and back into the class it was. */
interface SerializedError {
  name: string;
  message: string;
  file?: string;
}

export function serializeError(e: unknown): SerializedError {
  if (!(e instanceof Error)) return { name: 'Error', message: String(e) };
  const file = (e as { file?: unknown }).file;
  return { name: e.name, message: e.message, ...(typeof file === 'string' ? { file } : {}) };
}

function reviveError(s: SerializedError): Error {
  if (s.name === 'PajamaDataError' && s.file !== undefined) {
    const prefix = `${s.file}: `;
    return new PajamaDataError(s.file, s.message.startsWith(prefix) ? s.message.slice(prefix.length) : s.message);
  }
  if (s.name === 'TypeError') return invalidArg(s.message);
  const e = new Error(s.message);
  e.name = s.name;
  return e;
}

export type ScanWorkerMessage =
  | { kind: 'progress'; progress: ScanProgress }
  | { kind: 'done'; result: ScanFileResult }
  | { kind: 'error'; error: SerializedError };

// Next to this file: .js when compiled, .ts under a TypeScript loader (tap), inherited through execArgv.
const WORKER_ENTRY = path.join(__dirname, `scan-worker${path.extname(__filename)}`);

/**
 * Runs every task, `workers` at a time on worker threads (1: in this thread), and returns the results in
 * task order. The first failure stops the others and rejects with the task's error.
 */
export async function scanFiles(tasks: ScanFileTask[], workers: number, onProgress?: (p: ScanProgress) => void): Promise<ScanFileResult[]> {
  const results: ScanFileResult[] = new Array(tasks.length);
  if (workers <= 1 || tasks.length <= 1) {
    for (const t of tasks) results[t.index] = await scanFile(t, onProgress);
    return results;
  }
  const n = Math.min(workers, tasks.length, os.availableParallelism());
  let next = 0;
  const pool: Worker[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      let running = 0;
      let failed = false;
      const fail = (e: Error) => {
        if (failed) return;
        failed = true;
        reject(e);
      };
      const start = (w: Worker) => {
        if (failed) return;
        if (next >= tasks.length) {
          if (running === 0) resolve();
          return;
        }
        running++;
        w.postMessage(tasks[next++]);
      };
      for (let i = 0; i < n; i++) {
        const w = new Worker(WORKER_ENTRY);
        pool.push(w);
        w.on('message', (m: ScanWorkerMessage) => {
          if (m.kind === 'progress') onProgress?.(m.progress);
          else if (m.kind === 'error') fail(reviveError(m.error));
          else {
            results[m.result.index] = m.result;
            running--;
            start(w);
            if (next >= tasks.length && running === 0) resolve();
          }
        });
        w.on('error', (e) => fail(e));
        w.on('exit', (code) => {
          if (code !== 0) fail(new Error(`prepare: a scan worker exited with code ${code}`));
        });
        start(w);
      }
    });
  } finally {
    await Promise.all(pool.map((w) => w.terminate()));
  }
  return results;
}

/** Adds b's counts into a (reader statistics of consecutive files), keeping the first `maxSamples` samples. */
export function mergeReadStats(a: JsonlReadStats, b: JsonlReadStats, maxSamples = 20): JsonlReadStats {
  const samples: MalformedInput[] = [...a.malformedSamples, ...b.malformedSamples].slice(0, maxSamples);
  const sources: JsonlReadStats['sources'] = { ...a.sources };
  for (const [k, v] of Object.entries(b.sources)) {
    const s = sources[k] ?? { documents: 0, bytes: 0 };
    sources[k] = { documents: s.documents + v.documents, bytes: s.bytes + v.bytes };
  }
  return {
    files: a.files + b.files,
    lines: a.lines + b.lines,
    blankLines: a.blankLines + b.blankLines,
    documents: a.documents + b.documents,
    bytes: a.bytes + b.bytes,
    compressedBytes: a.compressedBytes + b.compressedBytes,
    malformed: a.malformed + b.malformed,
    corruptFiles: a.corruptFiles + b.corruptFiles,
    malformedSamples: samples,
    sources,
  };
}

export function emptyReadStats(): JsonlReadStats {
  return { files: 0, lines: 0, blankLines: 0, documents: 0, bytes: 0, compressedBytes: 0, malformed: 0, corruptFiles: 0, malformedSamples: [], sources: {} };
}
