// stage-files.ts: the files each prepare stage leaves in the output folder, for the stages after it, for
// the report and for resuming: their names, their JSON shapes, and how they are read and written.
//
//   <output>/work/scan.json       ScanOutput: document count, sources, reader statistics, input files   scan
//   <output>/work/documents.bin   the document table, a 24-byte record per document (doc-table.ts)       scan
//   <output>/work/sample.jsonl    the documents sampled for the dedup check (id, normalised text)        scan
//   <output>/work/lsh/            the LSH index's sorted runs of band keys (dedup.ts)                    scan
//   <output>/work/dedup.json      DedupOutput: clusters, the LSH check, counts per source               dedup
//   <output>/work/status.bin      a status byte per document (doc-status.ts)                            dedup
//   <output>/duplicates.jsonl     DUPLICATES_FILE: a RemovalRecord per removed document                 dedup
//   <output>/work/tokenize.json   TokenizeOutput: the tokenizer, shard files and counts per source     tokenize
//   <output>/shards/, manifest.json                                                                  tokenize
//
// JSON files are written under a temporary name and renamed (core/atomic.ts), so a stage killed midway never
// leaves a complete-looking file; a file that cannot be read asks for a rerun with --force.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { explainSystemError, isSystemError } from '../../../core/fs-errors';
import { readJsonFile } from '../../../core/json-file';
import { writeTextAtomic } from '../../../core/atomic';
import { PajamaDataError } from '../../errors';
import { readDataManifest } from '../../manifest';
import type { JsonlReadStats } from '../jsonl';
import type { ClusterStats, LshVerification } from '../dedup';
import type { PrepareStage } from './config';

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

/** work/scan.json. */
export interface ScanOutput {
  version: 1;
  documents: number;
  sources: string[];
  reader: JsonlReadStats;
  perSource: Record<string, { documents: number; bytes: number; short: number; shortBytes: number }>;
  /** The input files in reading order, and the id of each one's first document. */
  files: string[];
  fileOffsets: number[];
  /** The LSH index on disk: its sorted runs and the band-key records they hold. */
  lsh: { runs: number; records: number };
}

/** work/dedup.json. */
export interface DedupOutput {
  version: 1;
  clusters: number;
  cluster: ClusterStats | null;
  verification: LshVerification | null;
  perSource: Record<string, { duplicates: number; duplicateBytes: number; decontaminated: number; decontaminatedBytes: number; validation: number; test: number; train: number }>;
}

export type SplitName = 'train' | 'validation' | 'test';

/** work/tokenize.json. */
export interface TokenizeOutput {
  version: 1;
  tokenizer: { name: string; vocabSize: number; eosId: number };
  perSource: Record<string, Record<SplitName, { documents: number; bytes: number; tokens: number; files: string[] }>>;
}

/** A stage's output (scan.json, ...) from the work folder; one that cannot be read asks for a rerun. */
export function readStageJson<T>(file: string): T {
  return readJsonFile(file, {
    fail: (p) => {
      const e = p.kind === 'not-object' ? new Error('not a JSON object') : p.error;
      const why = isSystemError(e) ? `${e.code}: ${explainSystemError(e, file)}` : (e as Error).message;
      return new PajamaDataError(file, `cannot be read (${why}); rerun prepare with --force`);
    },
  }) as T;
}

/** Writes `value` as indented JSON with a final newline, atomically. */
export function writeJsonFile(file: string, value: unknown): void {
  writeTextAtomic(file, JSON.stringify(value, null, 2) + '\n');
}

/** Fills `into` from byte `position` of `fd`; a file that ends first is a PajamaDataError naming `file`. */
export function readExactly(fd: number, into: Uint8Array, position: number, file: string): void {
  let at = 0;
  while (at < into.length) {
    const got = fs.readSync(fd, into, at, into.length - at, position + at);
    if (got === 0) throw new PajamaDataError(file, `ended at byte ${position + at}, expected ${position + into.length}`);
    at += got;
  }
}

/** Whether the files `stage` leaves in `out` are all there (tokenize: and the manifest's shards check out). */
export function stageOutputsExist(stage: PrepareStage, out: string): boolean {
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
