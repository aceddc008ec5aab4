// Raw-corpus reader benchmark: MB/s (uncompressed) of JsonlDocumentReader over .jsonl and over the same
// files compressed with the zstd tool (with and without content-checksum verification), and of
// normalizeForDedup and cleanDocument over the documents' text.
//
// The corpus is synthetic but shaped like SlimPajama: JSON lines {"text", "meta": {"redpajama_set_name"}},
// documents of 50 to 20,000 characters (log-uniform) of Zipf-distributed words, some accented or CJK, split
// into lines and paragraphs, from the seven RedPajama sources. It is written to a temporary folder (removed
// afterwards) in four shards and compressed with `zstd -T0` at the given level.
//
// Every measurement is repeated (round-robin) and the median reported, in wall-clock MB/s and in MB per
// CPU-second of this process (user + system: less sensitive to other processes on a shared machine, though
// it counts the libuv threads' reads too).
//
//   npx tsc -p tsconfig.json && node dist/benchmarks/reader.js           table
//   node dist/benchmarks/reader.js --json                                JSON on stdout (the table on stderr)
//   options: --mb N (corpus size, default 100), --repeat R (default 3), --level L (zstd level, default 3),
//            --seed N (default 1), --out FILE (also write the JSON there)
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { JsonlDocumentReader, type JsonlReadOptions } from '../lib/data/corpus/jsonl';
import { cleanDocument, normalizeForDedup } from '../lib/data/corpus/clean';
import { Xoshiro128 } from '../lib/core/rng';
import { benchCli } from './cli';

const { args, intOpt, log, writeReport, usageError } = benchCli('bench:reader', { flags: [], options: ['--mb', '--repeat', '--level', '--seed'] });
const corpusMB = intOpt('--mb', 100, 1);
const repeat = intOpt('--repeat', 3, 1);
const level = intOpt('--level', 3, 1);
const seed = intOpt('--seed', 1, 0);

const SOURCES: [string, number][] = [
  ['RedPajamaCommonCrawl', 52],
  ['RedPajamaC4', 27],
  ['RedPajamaGithub', 5],
  ['RedPajamaBook', 2],
  ['RedPajamaArXiv', 5],
  ['RedPajamaWikipedia', 4],
  ['RedPajamaStackExchange', 5],
];
const SHARDS = 4;

/** A vocabulary of 6,000 made-up words, some with accents or CJK, most frequent first. */
function vocabulary(rng: Xoshiro128): string[] {
  const letters = 'etaoinshrdlcumwfgypbvkjxqz';
  const accented = 'éèàüöçñßø';
  const words: string[] = [];
  for (let i = 0; i < 6_000; i++) {
    const len = 1 + Math.min(rng.below(4) + rng.below(4) + rng.below(4), 11);
    let w = '';
    for (let k = 0; k < len; k++) w += letters[Math.min(rng.below(26), rng.below(26))];
    const r = rng.below(100);
    if (r < 4) w = w.slice(0, -1) + accented[rng.below(accented.length)];
    else if (r < 6) w = '日本語中文字'.slice(rng.below(3), 3 + rng.below(3));
    else if (r < 9) w = w[0].toUpperCase() + w.slice(1);
    words.push(w);
  }
  return words;
}

/** Writes the corpus; returns the shard paths and the total bytes. */
function writeCorpus(dir: string): { files: string[]; bytes: number; documents: number } {
  const rng = Xoshiro128.fromSeed(seed);
  const words = vocabulary(rng);
  const sourceTotal = SOURCES.reduce((n, [, w]) => n + w, 0);
  const pickSource = (): string => {
    let r = rng.below(sourceTotal);
    for (const [name, w] of SOURCES) if ((r -= w) < 0) return name;
    return SOURCES[0][0];
  };
  const target = corpusMB * 1e6;
  const files = Array.from({ length: SHARDS }, (_, i) => path.join(dir, `chunk${i}.jsonl`));
  const fds = files.map((f) => fs.openSync(f, 'w'));
  let bytes = 0;
  let documents = 0;
  let batch: string[] = [];
  let batchBytes = 0;
  let batchShard = 0;
  const flush = (): void => {
    fs.writeSync(fds[batchShard], batch.join(''));
    batch = [];
    batchBytes = 0;
  };
  while (bytes < target) {
    const shard = Math.min(SHARDS - 1, Math.floor((bytes / target) * SHARDS)); // equal shards, in order
    if (shard !== batchShard || batchBytes > 4 << 20) flush();
    batchShard = shard;
    const chars = Math.round(50 * Math.exp((rng.below(1 << 20) / (1 << 20)) * Math.log(400))); // 50 .. 20,000
    let text = '';
    while (text.length < chars) {
      const u = rng.below(1 << 20) / (1 << 20);
      text += words[Math.floor(words.length * u * u * u)]; // Zipf-like: low ranks most often
      const p = rng.below(100);
      text += p < 6 ? ', ' : p < 10 ? '. ' : p < 11 ? '.\n' : p < 12 ? '\n\n' : ' ';
    }
    const line = JSON.stringify({ text, meta: { redpajama_set_name: pickSource() } }) + '\n';
    batch.push(line);
    const n = Buffer.byteLength(line);
    batchBytes += n;
    bytes += n;
    documents++;
  }
  flush();
  for (const fd of fds) fs.closeSync(fd);
  return { files, bytes, documents };
}

interface Measurement {
  name: string;
  /** Uncompressed MB (1e6 bytes) processed per run. */
  mb: number;
  /** Median over the runs: MB per wall-clock second, and per CPU-second of this process. */
  mbPerSec: number;
  mbPerCpuSec: number;
  runs: { wallS: number; cpuS: number }[];
}

async function timeRun(fn: () => Promise<number> | number): Promise<{ wallS: number; cpuS: number; bytes: number }> {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const bytes = await fn();
  const wallS = (performance.now() - t0) / 1e3;
  const cpu = process.cpuUsage(cpu0);
  return { wallS, cpuS: (cpu.user + cpu.system) / 1e6, bytes };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function readAll(options: JsonlReadOptions): Promise<number> {
  const reader = new JsonlDocumentReader(options);
  for await (const d of reader) void d;
  if (reader.stats.malformed + reader.stats.corruptFiles > 0) throw new Error(`the corpus read with problems: ${JSON.stringify(reader.stats.malformedSamples)}`);
  return reader.stats.bytes;
}

async function main(): Promise<void> {
  const zstdVersion = spawnSync('zstd', ['--version'], { encoding: 'utf8' });
  if (zstdVersion.error) usageError('needs the zstd command-line tool (apt-get install zstd)');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pajama-bench-reader-'));
  try {
    log(`pajama-train reader benchmark: ${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.cpus().length} cores, node ${process.version}`);
    const t0 = performance.now();
    const corpus = writeCorpus(dir);
    log(`corpus: ${corpus.documents} documents, ${(corpus.bytes / 1e6).toFixed(1)} MB in ${SHARDS} shards (${((performance.now() - t0) / 1e3).toFixed(1)} s)`);
    const t1 = performance.now();
    const z = spawnSync('zstd', ['-q', '-f', '-T0', `-${level}`, ...corpus.files], { encoding: 'utf8' });
    if (z.status !== 0) throw new Error(`zstd failed: ${z.stderr}`);
    const zfiles = corpus.files.map((f) => f + '.zst');
    const compressed = zfiles.reduce((n, f) => n + fs.statSync(f).size, 0);
    log(`zstd -${level}: ${(compressed / 1e6).toFixed(1)} MB, ratio ${(corpus.bytes / compressed).toFixed(2)} (${((performance.now() - t1) / 1e3).toFixed(1)} s)`);

    // The documents' text for the cleaning measurements, read once.
    const textsForClean: string[] = [];
    for await (const d of new JsonlDocumentReader({ inputs: corpus.files })) textsForClean.push(d.text);
    const textBytes = textsForClean.reduce((n, s) => n + Buffer.byteLength(s), 0);

    const cases: { name: string; run: () => Promise<number> | number }[] = [
      { name: 'read .jsonl', run: () => readAll({ inputs: corpus.files }) },
      { name: 'read .jsonl.zst', run: () => readAll({ inputs: zfiles }) },
      { name: 'read .jsonl.zst, no checksum', run: () => readAll({ inputs: zfiles, verifyChecksums: false }) },
      {
        name: 'normalizeForDedup',
        run: () => {
          let n = 0;
          for (const s of textsForClean) n += normalizeForDedup(s).length;
          if (n === 0) throw new Error('nothing normalised');
          return textBytes;
        },
      },
      {
        name: 'cleanDocument',
        run: () => {
          let kept = 0;
          for (const s of textsForClean) if (cleanDocument(s).keep) kept++;
          if (kept === 0) throw new Error('nothing kept');
          return textBytes;
        },
      },
    ];
    const runs = new Map<string, { wallS: number; cpuS: number; bytes: number }[]>(cases.map((c) => [c.name, []]));
    for (const c of cases) await c.run(); // warm-up: JIT and page cache
    for (let r = 0; r < repeat; r++) for (const c of cases) runs.get(c.name)!.push(await timeRun(c.run));

    const results: Measurement[] = cases.map((c) => {
      const rs = runs.get(c.name)!;
      const mb = rs[0].bytes / 1e6;
      return {
        name: c.name,
        mb,
        mbPerSec: median(rs.map((x) => mb / x.wallS)),
        mbPerCpuSec: median(rs.map((x) => mb / x.cpuS)),
        runs: rs.map(({ wallS, cpuS }) => ({ wallS, cpuS })),
      };
    });
    log(`${'measurement'.padEnd(32)} ${'MB'.padStart(8)} ${'MB/s'.padStart(8)} ${'MB/cpu-s'.padStart(9)}   (median of ${repeat})`);
    for (const r of results) log(`${r.name.padEnd(32)} ${r.mb.toFixed(1).padStart(8)} ${r.mbPerSec.toFixed(1).padStart(8)} ${r.mbPerCpuSec.toFixed(1).padStart(9)}`);

    const report = {
      benchmark: 'reader',
      date: new Date().toISOString(),
      command: `node dist/benchmarks/reader.js ${args.join(' ')}`.trim(),
      machine: { cpu: os.cpus()[0]?.model, cores: os.cpus().length, node: process.version, loadAverage: os.loadavg() },
      zstd: zstdVersion.stdout.trim(),
      corpus: {
        shards: SHARDS,
        documents: corpus.documents,
        bytes: corpus.bytes,
        textBytes,
        compressedBytes: compressed,
        level,
        ratio: corpus.bytes / compressed,
        seed,
      },
      repeat,
      results,
    };
    writeReport(report);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  process.stderr.write(`bench:reader: ${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
