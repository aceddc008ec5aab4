// tiny-run.ts: a learnable token shard and a tiny training config for trainer tests that need a real run
// (divergence, locks, signals, kills, resume checks), in-process or through the CLI in a child process.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeSentenceShard } from './shards';

/** Repeated short "sentences" over a 200-token alphabet (vocab 256), `docs` documents of 40 tokens. */
export function writeTinyShard(file: string, docs: number, seed: number): string {
  writeSentenceShard(file, docs, seed);
  return file;
}

/** A 1-layer fp32 run of 64-token steps on `train` (one thread, fixed peak: no GEMM measurement at start). */
export function tinyConfig(runDir: string, train: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    model: { preset: 'tiny', precision: 'fp32', overrides: { nLayers: 1 } },
    batch: { seqLen: 16, microBatchSize: 2, globalBatchTokens: 64 },
    optimizer: { lr: 3e-3, warmupSteps: 1 },
    steps: 12,
    data: { train: [train] },
    checkpoint: { every: 0, keepLast: 2 },
    runDir,
    seed: 7,
    threads: 1,
    peakFlops: 1e11,
    ...extra,
  };
}

export const REPO = path.resolve(__dirname, '../..');
export const CLI = path.join(REPO, 'dist/lib/cli/main.js');

/**
 * Why the compiled CLI cannot be used for child-process tests, or null. `npm ci` (and `npm run build:ts`)
 * compile it; a dist older than the trainer's sources would test old code, so that is reported too.
 */
export function cliProblem(): string | null {
  if (!fs.existsSync(CLI)) return `${CLI} is missing: run npx tsc -p tsconfig.json`;
  const built = fs.statSync(CLI).mtimeMs;
  for (const dir of ['lib/train', 'lib/cli']) {
    for (const f of fs.readdirSync(path.join(REPO, dir))) {
      if (f.endsWith('.ts') && fs.statSync(path.join(REPO, dir, f)).mtimeMs > built + 1000) {
        return `dist is older than ${dir}/${f}: run npx tsc -p tsconfig.json`;
      }
    }
  }
  return null;
}
