// loader.ts: training batches drawn at random from token shards, and sequential batches for validation.
//
// Sampling: a draw picks one window of seqLen + 1 tokens uniformly among all windows of all shards (so a
// shard is picked in proportion to its size, and a window may cross document boundaries, as in GPT-style
// pretraining); its first seqLen tokens are the inputs and its last seqLen the targets. Draws form one
// global stream, numbered from 0, fixed by the seed. Each batch consumes the next batchSize * worldSize
// draws of the stream and deals them round-robin over data-parallel ranks: rank r takes draws r, r + W,
// r + 2W, ..., so ranks never share a draw and together they see exactly the single-rank stream.
//
// Every rank generates the whole block (cheap: a few u32s per draw), so after each batch the RNG state is
// the same on every rank: state() is a rank-independent, JSON-serialisable checkpoint, and restore() resumes
// the stream exactly where it stopped. Restoring with another batchSize or worldSize continues the same
// global stream with the new dealing; seqLen and the shards (count and token counts) must match.
import { DisposedError, invalidArg } from '../core/errors';
import { PajamaDataError } from './errors';
import { Xoshiro128, type RngState } from './rng';
import { openShard, type ShardReader } from './shard';

export interface TokenLoaderOptions {
  /** Token shard paths. Every shard must hold at least seqLen + 1 tokens and share vocab and EOS. */
  shards: string[];
  /** Tokens per training sequence. */
  seqLen: number;
  /** Sequences per batch on this rank. */
  batchSize: number;
  /** Fixes the whole stream of draws. A safe integer. */
  seed: number;
  /** This process's data-parallel rank. Defaults to 0. */
  rank?: number;
  /** Data-parallel ranks. Defaults to 1. */
  worldSize?: number;
}

/** Where one sequence of a batch came from. */
export interface SequenceDraw {
  /** Its number in the global stream of draws. */
  index: number;
  /** Index into the loader's shards. */
  shard: number;
  /** Token offset of the window's first token in that shard. */
  offset: number;
}

export interface Batch {
  /** (batchSize, seqLen) token ids. */
  inputs: Int32Array;
  /** (batchSize, seqLen) the next token after each input. */
  targets: Int32Array;
}

export interface TrainBatch extends Batch {
  /** (batchSize) where each row came from. */
  draws: SequenceDraw[];
}

/** A TokenLoader's position: plain JSON. */
export interface TokenLoaderState {
  version: 1;
  seed: number;
  /** The RNG state after `draws` draws. */
  rng: RngState;
  /** Draws of the global stream consumed, by all ranks together. */
  draws: number;
  /** Batches this loader (or the one it was restored from) has produced. */
  batches: number;
  seqLen: number;
  /** Token count of each shard, to refuse resuming over other data. */
  shardTokens: number[];
}

function positiveInt(v: unknown, name: string, where: string): number {
  if (!Number.isSafeInteger(v) || (v as number) < 1) throw invalidArg(`${where}: ${name} must be a positive integer, got ${v}`);
  return v as number;
}

export class TokenLoader {
  readonly seqLen: number;
  readonly batchSize: number;
  readonly rank: number;
  readonly worldSize: number;
  readonly seed: number;
  readonly vocabSize: number;
  readonly eosId: number;
  #readers: ShardReader[];
  #windowsBefore: number[]; // (shards + 1): windows in the shards before each, then the total
  #rng: Xoshiro128;
  #draws = 0;
  #batches = 0;
  #window: Uint32Array;

  constructor(options: TokenLoaderOptions) {
    const where = 'TokenLoader';
    const { shards, seed } = options ?? ({} as TokenLoaderOptions);
    if (!Array.isArray(shards) || shards.length === 0) throw invalidArg(`${where}: shards must be a non-empty array of shard paths`);
    this.seqLen = positiveInt(options.seqLen, 'seqLen', where);
    this.batchSize = positiveInt(options.batchSize, 'batchSize', where);
    this.worldSize = positiveInt(options.worldSize ?? 1, 'worldSize', where);
    const rank = options.rank ?? 0;
    if (!Number.isSafeInteger(rank) || rank < 0 || rank >= this.worldSize) {
      throw invalidArg(`${where}: rank must be an integer in [0, worldSize = ${this.worldSize}), got ${rank}`);
    }
    this.rank = rank;
    if (!Number.isSafeInteger(seed)) throw invalidArg(`${where}: seed must be a safe integer, got ${seed}`);
    this.seed = seed;
    this.#rng = Xoshiro128.fromSeed(seed);
    this.#window = new Uint32Array(this.seqLen + 1);

    this.#readers = [];
    try {
      for (const p of shards) this.#readers.push(openShard(p));
      const first = this.#readers[0];
      this.#windowsBefore = [0];
      for (const r of this.#readers) {
        if (r.tokenCount < this.seqLen + 1) {
          throw new PajamaDataError(r.path, `holds ${r.tokenCount} tokens, fewer than one sequence of seqLen + 1 = ${this.seqLen + 1}`);
        }
        if (r.vocabSize !== first.vocabSize || r.eosId !== first.eosId) {
          throw new PajamaDataError(
            r.path,
            `vocab size ${r.vocabSize} and EOS ${r.eosId} differ from ${first.path}'s ${first.vocabSize} and ${first.eosId} (another tokenizer?)`,
          );
        }
        const windows = r.tokenCount - this.seqLen;
        this.#windowsBefore.push(this.#windowsBefore[this.#windowsBefore.length - 1] + windows);
      }
      if (this.#windowsBefore[this.#readers.length] > 2 ** 53) throw invalidArg(`${where}: more than 2^53 windows in all`);
      if (first.vocabSize > 2 ** 31) throw new PajamaDataError(first.path, `vocab size ${first.vocabSize} does not fit the Int32Array batches`);
      this.vocabSize = first.vocabSize;
      this.eosId = first.eosId;
    } catch (e) {
      this.close();
      throw e;
    }
  }

  /** The shard paths, resolved, in the order draws index them. */
  get shards(): string[] {
    return this.#readers.map((r) => r.path);
  }

  /** Draws of the global stream consumed so far, by all ranks together. */
  get draws(): number {
    return this.#draws;
  }

  /** Batches produced so far. */
  get batches(): number {
    return this.#batches;
  }

  /** The next batch for this rank. */
  next(): TrainBatch {
    if (this.#readers.length === 0) throw new DisposedError('TokenLoader.next: the loader is closed');
    const B = this.batchSize;
    const T = this.seqLen;
    const W = this.worldSize;
    const inputs = new Int32Array(B * T);
    const targets = new Int32Array(B * T);
    const draws: SequenceDraw[] = [];
    const window = this.#window;
    for (let i = 0; i < B * W; i++) {
      const index = this.#draws + i;
      const { shard, offset } = this.#draw();
      if (i % W !== this.rank) continue;
      const row = draws.length;
      this.#readers[shard].read(offset, T + 1, window);
      inputs.set(window.subarray(0, T), row * T);
      targets.set(window.subarray(1, T + 1), row * T);
      draws.push({ index, shard, offset });
    }
    this.#draws += B * W;
    this.#batches++;
    return { inputs, targets, draws };
  }

  /** One draw: a window chosen uniformly among all windows of all shards. */
  #draw(): { shard: number; offset: number } {
    const before = this.#windowsBefore;
    const u = this.#rng.below(before[before.length - 1]);
    let lo = 0;
    let hi = before.length - 2; // the last shard whose first window is at or below u
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (before[mid] <= u) lo = mid;
      else hi = mid - 1;
    }
    return { shard: lo, offset: u - before[lo] };
  }

  /** The position after the last batch: rank-independent, JSON-serialisable. */
  state(): TokenLoaderState {
    return {
      version: 1,
      seed: this.seed,
      rng: this.#rng.state(),
      draws: this.#draws,
      batches: this.#batches,
      seqLen: this.seqLen,
      shardTokens: this.#readers.map((r) => r.tokenCount),
    };
  }

  /** Continues from `state`: the next batch is the one the loader that saved it would have given next. */
  restore(state: TokenLoaderState): void {
    const where = 'TokenLoader.restore';
    if (state === null || typeof state !== 'object' || state.version !== 1) {
      throw invalidArg(`${where}: not a version 1 TokenLoader state: ${JSON.stringify(state)?.slice(0, 200)}`);
    }
    if (state.seqLen !== this.seqLen) throw invalidArg(`${where}: the state is for seqLen ${state.seqLen}, this loader has ${this.seqLen}`);
    const mine = this.#readers.map((r) => r.tokenCount);
    if (!Array.isArray(state.shardTokens) || state.shardTokens.length !== mine.length || state.shardTokens.some((n, i) => n !== mine[i])) {
      throw invalidArg(
        `${where}: the state is for shards of ${JSON.stringify(state.shardTokens)} tokens, this loader's hold ${JSON.stringify(mine)}`,
      );
    }
    if (!Number.isSafeInteger(state.draws) || state.draws < 0 || !Number.isSafeInteger(state.batches) || state.batches < 0) {
      throw invalidArg(`${where}: draws and batches must be non-negative integers, got ${state.draws} and ${state.batches}`);
    }
    this.#rng = Xoshiro128.fromState(state.rng);
    this.#draws = state.draws;
    this.#batches = state.batches;
  }

  /** Closes the shards. Idempotent. */
  close(): void {
    for (const r of this.#readers) r.close();
    this.#readers = [];
  }
}

export interface EvalBatch extends Batch {
  /** (batchSize) token offset of each row's window in the shard. */
  offsets: number[];
}

/** How many batches evalBatches yields for a shard of `tokenCount` tokens, before maxBatches. */
export function evalBatchCount(tokenCount: number, seqLen: number, batchSize: number): number {
  const windows = Math.floor((tokenCount - 1) / seqLen);
  return Math.floor(Math.max(0, windows) / batchSize);
}

/**
 * Validation batches, the same every time: windows of seqLen + 1 tokens at offsets 0, seqLen, 2 seqLen, ...
 * (each token is a target at most once), batchSize windows to a batch, full batches only, at most
 * maxBatches. Arguments and the shard are checked at once; the shard is read while iterating and closed
 * when the iteration ends or is left early.
 */
export function evalBatches(shardPath: string, seqLen: number, batchSize: number, maxBatches = Infinity): Generator<EvalBatch, void, undefined> {
  const where = 'evalBatches';
  positiveInt(seqLen, 'seqLen', where);
  positiveInt(batchSize, 'batchSize', where);
  if (maxBatches !== Infinity && (!Number.isSafeInteger(maxBatches) || maxBatches < 0)) {
    throw invalidArg(`${where}: maxBatches must be a non-negative integer or Infinity, got ${maxBatches}`);
  }
  const probe = openShard(shardPath);
  const tokens = probe.tokenCount;
  probe.close();
  const available = evalBatchCount(tokens, seqLen, batchSize);
  if (available === 0) {
    throw new PajamaDataError(
      probe.path,
      `holds ${tokens} tokens, fewer than one batch of ${batchSize} windows of seqLen + 1 = ${seqLen + 1} (non-overlapping)`,
    );
  }
  const count = Math.min(available, maxBatches);
  return (function* () {
    const reader = openShard(shardPath);
    const window = new Uint32Array(seqLen + 1);
    try {
      for (let b = 0; b < count; b++) {
        const inputs = new Int32Array(batchSize * seqLen);
        const targets = new Int32Array(batchSize * seqLen);
        const offsets: number[] = [];
        for (let row = 0; row < batchSize; row++) {
          const offset = (b * batchSize + row) * seqLen;
          reader.read(offset, seqLen + 1, window);
          inputs.set(window.subarray(0, seqLen), row * seqLen);
          targets.set(window.subarray(1, seqLen + 1), row * seqLen);
          offsets.push(offset);
        }
        yield { inputs, targets, offsets };
      }
    } finally {
      reader.close();
    }
  })();
}
