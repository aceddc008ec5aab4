// scan-stage.ts: prepare's first stage. Every input file goes to a worker thread (scan.ts), which reads its
// documents, NFC-normalises them, applies the short-document filter and computes the MinHash band keys of
// the rest; the results are then merged here in file order: documents get their global ids (file order,
// then line order) and their split draw, sources are numbered by first appearance, every document gets a
// record in the document table (work/documents.bin, doc-table.ts), the band keys go into the LSH index
// (spilled to work/lsh/), and the bottom-k documents by sample key are kept for dedup's check
// (work/sample.jsonl). work/scan.json is written last.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { invalidArg } from '../../../core/errors';
import { PajamaDataError } from '../../errors';
import { LshIndex } from '../dedup';
import type { MinHashOptions } from '../minhash';
import { emptyReadStats, mergeReadStats, scanFiles, type ScanFileTask, type ScanProgress } from '../scan';
import { DOC_RECORD_BYTES, DocTableWriter, decodeDocRecord, emptyDocRecord } from '../doc-table';
import type { PrepareConfig } from './config';
import { splitDraw } from './doc-status';
import type { PrepareEvents } from './progress';
import { readExactly, writeJsonFile, type ScanOutput } from './stage-files';

/** Runs the scan stage over `files` (in reading order) into the work folder `work`, which it empties first. */
export async function runScan(config: PrepareConfig, files: string[], work: string, options: PrepareEvents): Promise<void> {
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
  writeJsonFile(path.join(work, 'scan.json'), scan);
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
