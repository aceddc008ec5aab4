// dedup-stage.ts: prepare's second stage, deciding what becomes of every document (doc-status.ts).
//
//   near-duplicates  documents that share an LSH band key are joined with union-find (dedup.ts; global:
//                    across sources, local: within each); every cluster keeps its first document
//   holdout          each source's kept documents go to validation or test by their split draw and the
//                    split ratios, then validation is topped up in draw order to split.minValidationDocuments
//                    and split.minValidationTokens (at VALIDATION_BYTES_PER_TOKEN bytes a token)
//   decontamination  training documents with the exact text hash of a holdout document are removed
//
// It writes work/status.bin (a status byte per document), duplicates.jsonl (a RemovalRecord per removed
// document, with the document it matched) and, last, work/dedup.json.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeAll, writeFileAtomic } from '../../../core/atomic';
import { LshIndex, UnionFind, verifyLshSample, type ClusterStats, type LshVerification } from '../dedup';
import type { MinHashOptions } from '../minhash';
import { DOC_RECORD_BYTES, decodeDocRecord, emptyDocRecord, forEachDocument } from '../doc-table';
import type { PrepareConfig } from './config';
import { ST_DECONTAMINATED, ST_DUPLICATE, ST_SHORT, ST_TEST, ST_TRAIN, ST_VALIDATION, VALIDATION_BYTES_PER_TOKEN } from './doc-status';
import {
  DUPLICATES_FILE,
  readExactly,
  readStageJson,
  writeJsonFile,
  type DedupOutput,
  type DocumentLocation,
  type RemovalRecord,
  type ScanOutput,
} from './stage-files';

/** Runs the dedup stage over the scan stage's outputs in the work folder `work`. */
export async function runDedup(config: PrepareConfig, work: string): Promise<void> {
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
  writeJsonFile(path.join(work, 'dedup.json'), out);
}

/** Writes DUPLICATES_FILE, streaming (a line per removed document), under a temporary name renamed when complete. */
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
  try {
    writeFileAtomic(file, (fd) => {
      let pending: string[] = [];
      let pendingChars = 0;
      const flush = (): void => {
        if (pending.length === 0) return;
        writeAll(fd, Buffer.from(pending.join(''), 'utf8'));
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
    });
  } finally {
    fs.closeSync(tableFd);
  }
}
