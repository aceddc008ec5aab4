// report.ts: the report of a prepare run (report.json, or dedup-report.json when it stops after dedup): per
// source and in total, the documents read, dropped as short, removed as near-duplicates or by
// decontamination, and held in each split with their tokens; the dedup settings and the LSH check; the
// tokenizer; each stage's seconds. buildReport assembles it from the stages' work files (stage-files.ts);
// formatPrepareReport prints it as the table `pajama prepare` shows.
import * as path from 'node:path';
import type { JsonlReadStats } from '../jsonl';
import type { ClusterStats, DedupMode, LshVerification } from '../dedup';
import { DEFAULT_MINHASH, type MinHashOptions } from '../minhash';
import { createTokenizer } from '../../tokenizers/create';
import { tokenizerSpecOf, type PrepareConfig, type PrepareStage } from './config';
import { DUPLICATES_FILE, readStageJson, type DedupOutput, type ScanOutput, type TokenizeOutput } from './stage-files';

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

/** The report of a run that ran (or found done) every stage up to `until`, from the work files in `work`. */
export function buildReport(config: PrepareConfig, out: string, work: string, until: PrepareStage, seconds: PrepareReport['seconds']): PrepareReport {
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
