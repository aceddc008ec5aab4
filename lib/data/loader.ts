// loader.ts: training batches drawn at random from token shards, and sequential batches for validation.
//
// Sampling: a draw picks one window of seqLen + 1 tokens uniformly among all windows of all shards (so a
// shard is picked in proportion to its size, and a window may cross document boundaries, as in GPT-style
// pretraining); its first seqLen tokens are the inputs and its last seqLen the targets. Draws form one
// global stream, numbered from 0, fixed by the seed. Each batch consumes the next batchSize * worldSize
// draws of the stream and deals them in blocks over data-parallel ranks: rank r takes the r-th block of
// batchSize draws, so ranks never share a draw and together they see exactly the single-rank stream. Blocks
// (not round-robin) make rank r's batch k the very batch k * worldSize + r of one rank with the same
// batchSize: N ranks x A accumulation steps run the micro-batches of 1 rank x N*A, each bit for bit.
//
// Mixture: given `sources` (named groups of shards with weights) instead of `shards`, a draw first picks a
// source with probability weight / sum of weights (one u32 of the RNG against integer thresholds, so the
// probabilities are exact to 2^-32 and the same on every machine), then a window uniformly among that
// source's windows. Every draw is seqLen + 1 tokens, so a source's share of draws is its share of tokens; a
// source smaller than its share is upsampled (its windows repeat), one with weight 0 is never drawn.
// Draws per source are counted for the report of tokens drawn and epochs (see mixture.ts for plans).
//
// Every rank generates the whole block (cheap: a few u32s per draw), so after each batch the RNG state is
// the same on every rank: state() is a rank-independent, JSON-serialisable checkpoint, and restore() resumes
// the stream exactly where it stopped. Restoring with another batchSize or worldSize continues the same
// global stream with the new dealing; seqLen and the shards (count and token counts) must match, and for a
// mixture (state version 2) also the sources' names, order and normalised weights.
import { DisposedError, invalidArg } from '../core/errors';
import { PajamaDataError } from './errors';
import { normaliseWeights, planMixture, type MixturePlan } from './mixture';
import { Xoshiro128, type RngState } from '../core/rng';
import { openShard, type ShardReader } from './shard';

/** One source of a mixture. */
export interface MixtureSource {
  /** Unique among the loader's sources. */
  name: string;
  /** Its token shard paths, drawn among in proportion to their size. */
  shards: string[];
  /** Any non-negative finite number; weights are divided by their sum. 0: never drawn. */
  weight: number;
}

export interface TokenLoaderOptions {
  /** Token shard paths, drawn in proportion to their size. Give this or `sources`, not both. */
  shards?: string[];
  /**
   * Sources drawn by weight (a mixture). Give this or `shards`. Every shard of every source must hold at
   * least seqLen + 1 tokens and all must share vocab and EOS.
   */
  sources?: MixtureSource[];
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
  /** Index into the loader's shards (all sources' shards in order, for a mixture). */
  shard: number;
  /** Token offset of the window's first token in that shard. */
  offset: number;
  /** Index into the loader's sources; present for a mixture only. */
  source?: number;
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

/** A TokenLoader's position, for a loader over `shards`: plain JSON. */
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

/** A TokenLoader's position, for a loader over `sources` (a mixture): plain JSON. */
export interface TokenLoaderMixtureState {
  version: 2;
  seed: number;
  /** The RNG state after `draws` draws. */
  rng: RngState;
  /** Draws of the global stream consumed, by all ranks together. */
  draws: number;
  /** Batches this loader (or the one it was restored from) has produced. */
  batches: number;
  seqLen: number;
  /** The sources in order, to refuse resuming over other data or another mixture. */
  sources: {
    name: string;
    /** Normalised weight. */
    weight: number;
    /** Token count of each of its shards. */
    shardTokens: number[];
    /** Draws from it so far, by all ranks together. */
    draws: number;
  }[];
}

/** How much of one source a loader has drawn. */
export interface SourceDrawReport {
  name: string;
  /** Normalised weight. */
  weight: number;
  /** Tokens its shards hold. */
  tokens: number;
  /** Draws from it so far, by all ranks together. */
  draws: number;
  /** draws * seqLen: the tokens trained on (targets) from it so far. */
  tokensDrawn: number;
  /** tokensDrawn / tokens. */
  epochs: number;
}

/** The name under which a loader over `shards` (not a mixture) reports its one source. */
export const ALL_SHARDS_SOURCE = 'all';

/** A source's shards within the loader's readers, and its share of the source-picking u32. */
interface SourceSpan {
  name: string;
  weight: number;
  /** Index of its first shard in #readers, and its shard count. */
  first: number;
  count: number;
  /** (count + 1): windows in its shards before each, then its total. */
  windowsBefore: number[];
  tokens: number;
  /** A draw's u32 below this (and not below the previous source's) picks this source. */
  ticketsEnd: number;
}

function positiveInt(v: unknown, name: string, where: string): number {
  if (!Number.isSafeInteger(v) || (v as number) < 1) throw invalidArg(`${where}: ${name} must be a positive integer, got ${v}`);
  return v as number;
}

const U32_RANGE = 2 ** 32;

const sameNumbers = (a: unknown, b: readonly number[]): boolean =>
  Array.isArray(a) && a.length === b.length && a.every((n, i) => n === b[i]);

export class TokenLoader {
  readonly seqLen: number;
  readonly batchSize: number;
  readonly rank: number;
  readonly worldSize: number;
  readonly seed: number;
  readonly vocabSize: number;
  readonly eosId: number;
  /** True when built from `sources`. */
  readonly isMixture: boolean;
  #readers: ShardReader[];
  #spans: SourceSpan[];
  #spanDraws: number[];
  #rng: Xoshiro128;
  #draws = 0;
  #batches = 0;
  #window: Uint32Array;

  constructor(options: TokenLoaderOptions) {
    const where = 'TokenLoader';
    const { shards, sources, seed } = options ?? ({} as TokenLoaderOptions);
    if (shards !== undefined && sources !== undefined) throw invalidArg(`${where}: give shards or sources (a mixture), not both`);
    this.isMixture = sources !== undefined;
    const groups: { name: string; shards: string[]; weight: number }[] = [];
    if (!this.isMixture) {
      if (!Array.isArray(shards) || shards.length === 0) throw invalidArg(`${where}: shards must be a non-empty array of shard paths`);
      groups.push({ name: ALL_SHARDS_SOURCE, shards, weight: 1 });
    } else {
      if (!Array.isArray(sources) || sources.length === 0) throw invalidArg(`${where}: sources must be a non-empty array of { name, shards, weight }`);
      const seen = new Set<string>();
      for (const s of sources) {
        if (s === null || typeof s !== 'object' || typeof s.name !== 'string' || s.name === '') {
          throw invalidArg(`${where}: every source needs a non-empty name, got ${JSON.stringify(s)?.slice(0, 200)}`);
        }
        if (seen.has(s.name)) throw invalidArg(`${where}: source '${s.name}' is given twice`);
        seen.add(s.name);
        if (!Array.isArray(s.shards) || s.shards.length === 0 || !s.shards.every((p) => typeof p === 'string')) {
          throw invalidArg(`${where}: source '${s.name}': shards must be a non-empty array of shard paths`);
        }
      }
      const names = sources.map((s) => s.name);
      const weights = normaliseWeights(sources.map((s) => s.weight), names, where);
      sources.forEach((s, i) => groups.push({ name: s.name, shards: s.shards, weight: weights[i] }));
    }
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
    this.#spans = [];
    try {
      let weightBefore = 0;
      let ticketsBefore = 0;
      for (const [g, group] of groups.entries()) {
        const span: SourceSpan = { name: group.name, weight: group.weight, first: this.#readers.length, count: 0, windowsBefore: [0], tokens: 0, ticketsEnd: 0 };
        for (const p of group.shards) {
          const r = openShard(p);
          this.#readers.push(r);
          const first = this.#readers[0];
          if (r.tokenCount < this.seqLen + 1) {
            throw new PajamaDataError(r.path, `holds ${r.tokenCount} tokens, fewer than one sequence of seqLen + 1 = ${this.seqLen + 1}`);
          }
          if (r.vocabSize !== first.vocabSize || r.eosId !== first.eosId) {
            throw new PajamaDataError(
              r.path,
              `vocab size ${r.vocabSize} and EOS ${r.eosId} differ from ${first.path}'s ${first.vocabSize} and ${first.eosId} (another tokenizer?)`,
            );
          }
          span.count++;
          span.tokens += r.tokenCount;
          span.windowsBefore.push(span.windowsBefore[span.windowsBefore.length - 1] + r.tokenCount - this.seqLen);
        }
        const windows = span.windowsBefore[span.count];
        if (windows > 2 ** 53) throw invalidArg(`${where}: more than 2^53 windows in ${this.isMixture ? `source '${span.name}'` : 'all'}`);
        // Integer thresholds from the running sum of weights: the last source ends at 2^32 exactly.
        weightBefore += group.weight;
        span.ticketsEnd = g === groups.length - 1 ? U32_RANGE : Math.min(U32_RANGE, Math.round(weightBefore * U32_RANGE));
        if (group.weight > 0 && span.ticketsEnd === ticketsBefore) {
          throw invalidArg(`${where}: the weight of source '${span.name}' is below 2^-32 of the total and could never be drawn; give it 0 or more`);
        }
        ticketsBefore = span.ticketsEnd;
        this.#spans.push(span);
      }
      const first = this.#readers[0];
      if (first.vocabSize > 2 ** 31) throw new PajamaDataError(first.path, `vocab size ${first.vocabSize} does not fit the Int32Array batches`);
      this.vocabSize = first.vocabSize;
      this.eosId = first.eosId;
    } catch (e) {
      this.close();
      throw e;
    }
    this.#spanDraws = this.#spans.map(() => 0);
  }

  /** The shard paths, resolved, in the order draws index them (a mixture's sources one after another). */
  get shards(): string[] {
    return this.#readers.map((r) => r.path);
  }

  /** The sources' names, in the order draws index them; [ALL_SHARDS_SOURCE] for a loader over `shards`. */
  get sourceNames(): string[] {
    return this.#spans.map((s) => s.name);
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
      const { source, shard, offset } = this.#draw();
      if (Math.floor(i / B) !== this.rank) continue;
      const row = draws.length;
      this.#readers[shard].read(offset, T + 1, window);
      inputs.set(window.subarray(0, T), row * T);
      targets.set(window.subarray(1, T + 1), row * T);
      draws.push(this.isMixture ? { index, shard, offset, source } : { index, shard, offset });
    }
    this.#draws += B * W;
    this.#batches++;
    return { inputs, targets, draws };
  }

  /** One draw: a source by weight (mixture only), then a window uniformly among that source's windows. */
  #draw(): { source: number; shard: number; offset: number } {
    let source = 0;
    if (this.isMixture) {
      const x = this.#rng.nextU32();
      while (x >= this.#spans[source].ticketsEnd) source++;
    }
    const span = this.#spans[source];
    const before = span.windowsBefore;
    const u = this.#rng.below(before[span.count]);
    let lo = 0;
    let hi = span.count - 1; // the last shard whose first window is at or below u
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (before[mid] <= u) lo = mid;
      else hi = mid - 1;
    }
    this.#spanDraws[source]++;
    return { source, shard: span.first + lo, offset: u - before[lo] };
  }

  /** Per source: weight, tokens held, draws and tokens drawn so far, epochs. */
  sourceReport(): SourceDrawReport[] {
    return this.#spans.map((s, i) => {
      const draws = this.#spanDraws[i];
      const tokensDrawn = draws * this.seqLen;
      return { name: s.name, weight: s.weight, tokens: s.tokens, draws, tokensDrawn, epochs: tokensDrawn / s.tokens };
    });
  }

  /** Expected tokens and epochs per source over a whole run of `totalSequences` draws (all ranks). */
  plan(totalSequences: number): MixturePlan {
    return planMixture(this.#spans, totalSequences, this.seqLen);
  }

  /** The position after the last batch: rank-independent, JSON-serialisable. */
  state(): TokenLoaderState | TokenLoaderMixtureState {
    const common = { seed: this.seed, rng: this.#rng.state(), draws: this.#draws, batches: this.#batches, seqLen: this.seqLen };
    if (!this.isMixture) return { version: 1, ...common, shardTokens: this.#shardTokens(this.#spans[0]) };
    return {
      version: 2,
      ...common,
      sources: this.#spans.map((s, i) => ({ name: s.name, weight: s.weight, shardTokens: this.#shardTokens(s), draws: this.#spanDraws[i] })),
    };
  }

  #shardTokens(span: SourceSpan): number[] {
    return this.#readers.slice(span.first, span.first + span.count).map((r) => r.tokenCount);
  }

  /** Continues from `state`: the next batch is the one the loader that saved it would have given next. */
  restore(state: TokenLoaderState | TokenLoaderMixtureState): void {
    const where = 'TokenLoader.restore';
    const version = state !== null && typeof state === 'object' ? state.version : undefined;
    const mine = this.isMixture ? 2 : 1;
    if (version !== mine) {
      const what = this.isMixture ? `a mixture of sources ${this.sourceNames.join(', ')}` : 'a list of shards (not a mixture)';
      const theirs =
        version === 2 && Array.isArray((state as TokenLoaderMixtureState).sources)
          ? `: it is a version 2 state of a mixture of sources ${(state as TokenLoaderMixtureState).sources.map((s) => s?.name).join(', ')}`
          : version === 1
            ? ': it is a version 1 state of a loader over a list of shards, not a mixture'
            : `: ${JSON.stringify(state)?.slice(0, 200)}`;
      throw invalidArg(`${where}: not a version ${mine} TokenLoader state, which this loader over ${what} needs${theirs}`);
    }
    if (state.seqLen !== this.seqLen) throw invalidArg(`${where}: the state is for seqLen ${state.seqLen}, this loader has ${this.seqLen}`);
    if (!Number.isSafeInteger(state.draws) || state.draws < 0 || !Number.isSafeInteger(state.batches) || state.batches < 0) {
      throw invalidArg(`${where}: draws and batches must be non-negative integers, got ${state.draws} and ${state.batches}`);
    }
    let spanDraws: number[];
    if (state.version === 1) {
      const tokens = this.#shardTokens(this.#spans[0]);
      if (!sameNumbers(state.shardTokens, tokens)) {
        throw invalidArg(
          `${where}: the state is for shards of ${JSON.stringify(state.shardTokens)} tokens, this loader's hold ${JSON.stringify(tokens)}`,
        );
      }
      spanDraws = [state.draws];
    } else {
      spanDraws = this.#checkMixture(state, where);
    }
    this.#rng = Xoshiro128.fromState(state.rng);
    this.#draws = state.draws;
    this.#batches = state.batches;
    this.#spanDraws = spanDraws;
  }

  /** Checks a mixture state against this loader's sources; returns its draws per source. */
  #checkMixture(state: TokenLoaderMixtureState, where: string): number[] {
    const theirs = Array.isArray(state.sources) ? state.sources : [];
    const theirNames = theirs.map((s) => s?.name);
    const names = this.sourceNames;
    if (theirNames.length !== names.length || theirNames.some((n, i) => n !== names[i])) {
      throw invalidArg(
        `${where}: the state is for sources [${theirNames.join(', ')}], this loader has [${names.join(', ')}] (names and order must match)`,
      );
    }
    const theirWeights = theirs.map((s) => s.weight);
    const weights = this.#spans.map((s) => s.weight);
    if (!sameNumbers(theirWeights, weights)) {
      const show = (ws: unknown[]) => names.map((n, i) => `${n} ${typeof ws[i] === 'number' ? (ws[i] as number).toPrecision(6) : JSON.stringify(ws[i])}`).join(', ');
      throw invalidArg(
        `${where}: the state's mixture weights (${show(theirWeights)}) differ from this loader's (${show(weights)}); ` +
          'resuming would change the mixture mid-run',
      );
    }
    this.#spans.forEach((span, i) => {
      const tokens = this.#shardTokens(span);
      if (!sameNumbers(theirs[i].shardTokens, tokens)) {
        throw invalidArg(
          `${where}: source '${span.name}': the state is for shards of ${JSON.stringify(theirs[i].shardTokens)} tokens, ` +
            `this loader's hold ${JSON.stringify(tokens)}`,
        );
      }
    });
    const draws = theirs.map((s) => s.draws);
    if (!draws.every((d) => Number.isSafeInteger(d) && d >= 0) || draws.reduce((a, b) => a + b, 0) !== state.draws) {
      throw invalidArg(`${where}: the sources' draws ${JSON.stringify(draws)} must be non-negative integers summing to draws ${state.draws}`);
    }
    return draws;
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
