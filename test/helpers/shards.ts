// shards.ts: token shards with reproducible contents for data-loader, mixture and trainer tests, and take().
// Each generator is fixed by its seed, so a test that writes a shard here asserts on the same tokens every run.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ShardWriter, openShard } from '../../lib/data/shard';
import type { TokenLoader, TrainBatch } from '../../lib/data/loader';

/** A u32 linear congruential generator (Numerical Recipes constants): each call returns the next state. */
export function lcg32(seed: number): () => number {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0);
}

/**
 * A shard of exactly `tokens` tokens: documents of 1..97 ids in [0, eosId) drawn from lcg32(seed), each
 * followed by EOS (the last one cut to fit). Returns every token of the shard, as read back.
 */
export function writeRandomShard(file: string, tokens: number, seed: number, vocabSize: number, eosId: number): Uint32Array {
  const next = lcg32(seed);
  const w = new ShardWriter(file, { vocabSize, eosId });
  while (w.tokens < tokens) {
    const len = Math.min(1 + (next() % 97), tokens - w.tokens - 1);
    w.appendDocument(Array.from({ length: len }, () => next() % eosId));
  }
  w.close();
  const r = openShard(file);
  const all = r.read(0, r.tokenCount);
  r.close();
  return all;
}

/**
 * A learnable shard: `docs` "sentences" of 40 tokens + EOS over a 200-token alphabet (vocab 256, EOS 255),
 * each counting up by `stride` from a start in [0, 20) drawn by seed. Creates missing folders; returns the
 * shard's token count.
 */
export function writeSentenceShard(file: string, docs: number, seed: number, stride = 3): number {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const w = new ShardWriter(file, { vocabSize: 256, eosId: 255 });
  let s = seed;
  for (let d = 0; d < docs; d++) {
    s = (s * 1103515245 + 12345) >>> 0;
    const start = s % 20;
    w.appendDocument(Array.from({ length: 40 }, (_, i) => (start + i * stride) % 200));
  }
  return w.close().tokenCount;
}

/** The loader's next `n` batches. */
export function take(loader: TokenLoader, n: number): TrainBatch[] {
  return Array.from({ length: n }, () => loader.next());
}

/**
 * `k` batches from each of `loaders` (one per data-parallel rank), taken in turn rank by rank; calls
 * `differ(batch)` whenever the loaders' states are not all equal after a batch. Returns each rank's batches.
 */
export function takeInLockstep(loaders: TokenLoader[], k: number, differ: (batch: number) => void): TrainBatch[][] {
  const perRank = loaders.map(() => [] as TrainBatch[]);
  for (let b = 0; b < k; b++) {
    loaders.forEach((l, r) => perRank[r].push(l.next()));
    const states = loaders.map((l) => JSON.stringify(l.state()));
    if (!states.every((s) => s === states[0])) differ(b);
  }
  return perRank;
}
