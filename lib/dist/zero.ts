// zero.ts: sharded optimizer state for data-parallel training (dist.sharding 'optimizer': ZeRO-2, FSDP's
// SHARD_GRAD_OP).
//
// The parameter arena is one flat buffer of N elements; rank r of W owns the range [r * S, (r + 1) * S) with
// S = floor(N / W), and the last rank also owns the tail [W * S, N) (fewer than W elements). A rank updates
// only its range: its AdamW runs over shard arenas (the full layout's entries clipped to the range, under their
// full names) whose master weights and bf16 copy are views of the model's own arenas (no copy), whose
// gradients are the range's reduced gradient, and whose moments are 1/W of DDP's. A step:
//   1. every rank accumulates the gradient of its micro-batches into the model's full f32 gradient arena;
//   2. reduceGradients(): a reduce-scatter of [0, W * S) gives each rank the sum of its block over the ranks
//      (in buckets of bucketMB: each bucket takes the same slice of every rank's block, copied side by side
//      into a staging buffer), the tail is all-reduced and the last rank keeps it;
//   3. the global gradient norm is the sum over ranks of each shard's sum of squares (Trainer), and AdamW
//      updates the range in place (writing its bf16 copy in the same pass);
//   4. gatherWeights(): the updated compute weights (the bf16 copy of a bf16 model, else the f32 master)
//      are all-gathered in place, so every rank runs the next forward with the same weights.
// The model's f32 arena outside this rank's range is up to date only after gatherMaster() (checkpoints and
// generation call it): during training only the compute weights are gathered. Checkpoints stay one full
// HF-MPT file set: the moments are gathered (gatherFull) before rank 0 writes them, and a checkpoint loads
// into any world size, each rank taking its range of the moments (takeRange).
//
// Same results as DDP: every reduction adds the same per-rank gradients (only the order of the additions
// differs), AdamW is element-wise, and the clipping scale comes from the same global norm.
import { invalidArg } from '../core/errors';
import { ops } from '../core/ops';
import { Arena, Tensor, type ArenaEntry } from '../core/tensor';
import type { Communicator } from './communicator';

/** The part of a flat buffer of `numel` elements that one rank owns. */
export interface ShardRange {
  rank: number;
  worldSize: number;
  /** First element this rank owns. */
  offset: number;
  /** Elements it owns: block, plus the tail on the last rank. */
  count: number;
  /** Elements of each rank's block of the reduce-scatter and the all-gather: floor(numel / worldSize). */
  block: number;
  /** Elements after worldSize * block (fewer than worldSize), owned by the last rank. */
  tail: number;
}

/** Rank `rank`'s range of a flat buffer of `numel` elements over `worldSize` ranks. */
export function shardRange(numel: number, rank: number, worldSize: number): ShardRange {
  const where = 'shardRange';
  if (!Number.isSafeInteger(numel) || numel < 0) throw invalidArg(`${where}: numel must be a non-negative integer, got ${numel}`);
  if (!Number.isSafeInteger(worldSize) || worldSize < 1) throw invalidArg(`${where}: worldSize must be a positive integer, got ${worldSize}`);
  if (!Number.isSafeInteger(rank) || rank < 0 || rank >= worldSize) throw invalidArg(`${where}: rank must be an integer in [0, ${worldSize}), got ${rank}`);
  const block = Math.floor(numel / worldSize);
  const tail = numel - block * worldSize;
  return { rank, worldSize, offset: rank * block, count: block + (rank === worldSize - 1 ? tail : 0), block, tail };
}

/**
 * The layout of a shard: each entry of `entries` that meets [offset, offset + count), clipped to it, as a
 * flat piece under the entry's name, in order (so the pieces are contiguous, like the range).
 */
export function shardLayout(entries: readonly ArenaEntry[], range: Pick<ShardRange, 'offset' | 'count'>): [string, number[]][] {
  const lo = range.offset;
  const hi = range.offset + range.count;
  const out: [string, number[]][] = [];
  for (const e of entries) {
    const a = Math.max(lo, e.offset);
    const b = Math.min(hi, e.offset + e.numel);
    if (a < b) out.push([e.name, [b - a]]);
  }
  return out;
}

/** The model arenas a shard is cut from. */
export interface ShardedModel {
  /** f32 master weights (full layout). */
  readonly params: Arena;
  /** f32 gradients (full layout), accumulated by the backward. */
  readonly grads: Arena;
  /** The bf16 compute copy (full layout) of a bf16 model, else null. */
  readonly computeParams: Arena | null;
}

/** One rank's shard of the training state (see the file comment): made per run, disposed with it. */
export class OptimizerShard {
  readonly range: ShardRange;
  /** f32 master weights of the range: a view of the model's params arena. */
  readonly master: Arena;
  /** The range's gradient summed over the ranks (reduceGradients writes it): the shard's own memory. */
  readonly grads: Arena;
  /** The range's bf16 compute copy, a view of the model's (a bf16 model; AdamW writes it); else null. */
  readonly computeCopy: Arena | null;
  readonly #comm: Communicator;
  readonly #model: ShardedModel;
  readonly #views: Tensor[] = [];
  /** The reduce-scatter's staging buffer: worldSize slices of one bucket (none in a world of one). */
  readonly #stage: Tensor | null;
  /** Elements of each rank's slice of a bucket. */
  readonly #slice: number;
  #disposed = false;

  /**
   * This rank's shard of `model` over `comm`'s ranks. `bucketMB` (default 25) sizes the reduce-scatter's
   * buckets: one collective over a whole 7B gradient would need MPI's temporaries of its size, and on
   * Open MPI 4.1 a single reduce-scatter of a 45M-element gradient takes 6.5x as long as 25 MiB buckets
   * (1,038 against 158 ms on 2 ranks of the 2-core Zen 5, 2026-12-05).
   */
  constructor(comm: Communicator, model: ShardedModel, options: { bucketMB?: number } = {}) {
    const p = model.params;
    if (p.dtype !== 'f32' || model.grads.dtype !== 'f32') throw invalidArg(`OptimizerShard: params and grads must be f32 arenas, got ${p.dtype} and ${model.grads.dtype}`);
    this.#comm = comm;
    this.#model = model;
    this.range = shardRange(p.numel, comm.rank, comm.worldSize);
    const { offset, count } = this.range;
    const layout = shardLayout(p.entries, this.range);
    this.master = new Arena('f32', layout, p.device, p.buffer.view(offset, [count]));
    this.grads = this.master.like('f32');
    this.computeCopy = model.computeParams ? new Arena('bf16', layout, p.device, model.computeParams.buffer.view(offset, [count])) : null;
    const bucketMB = options.bucketMB ?? 25;
    if (!(bucketMB > 0) || !Number.isFinite(bucketMB)) throw invalidArg(`OptimizerShard: bucketMB must be a positive number, got ${bucketMB}`);
    const W = comm.worldSize;
    this.#slice = Math.max(1, Math.min(this.range.block, Math.floor((bucketMB * 2 ** 20) / 4 / W)));
    this.#stage = W > 1 && this.range.block > 0 ? Tensor.zeros('f32', [W * this.#slice], p.device) : null;
  }

  get disposed(): boolean {
    return this.#disposed;
  }

  /** Bytes the shard allocates itself for its reduced gradient (the master and the bf16 copy are views). */
  get ownedBytes(): number {
    return this.grads.buffer.byteLength;
  }

  /** Bytes of the reduce-scatter's staging buffer (0 in a world of one). */
  get stagingBytes(): number {
    return this.#stage?.byteLength ?? 0;
  }

  #view(t: Tensor, offset: number, count: number): Tensor {
    const v = t.view(offset, [count]);
    this.#views.push(v);
    return v;
  }

  #check(where: string): void {
    if (this.#disposed) throw invalidArg(`OptimizerShard.${where}: used after dispose()`);
  }

  /** Copies this rank's range of a full-layout buffer `full` into the shard-layout buffer `shard` (re-sharding at load). */
  takeRange(full: Tensor, shard: Tensor): void {
    this.#check('takeRange');
    const { offset, count } = this.range;
    if (full.numel !== this.#model.params.numel || shard.numel !== count || full.dtype !== shard.dtype) {
      throw invalidArg(`OptimizerShard.takeRange: expected a full buffer of ${this.#model.params.numel} and a shard of ${count} elements of one type, got ${full.describe()} and ${shard.describe()}`);
    }
    if (count === 0) return;
    const v = full.view(offset, [count]);
    try {
      ops.copy(shard, v);
    } finally {
      v.dispose();
    }
  }

  async #all(jobs: Promise<void>[]): Promise<void> {
    try {
      await Promise.all(jobs);
    } finally {
      for (const v of this.#views) v.dispose();
      this.#views.length = 0;
    }
  }

  /** Sums the model's gradient over the ranks into `grads` (this rank's range only). Returns the seconds it took. */
  async reduceGradients(): Promise<number> {
    this.#check('reduceGradients');
    const t0 = performance.now();
    const { block, tail, worldSize, count } = this.range;
    const full = this.#model.grads.buffer;
    const jobs: Promise<void>[] = [];
    if (block > 0 && this.#stage === null) jobs.push(this.#comm.reduceScatter(this.grads.buffer, full, 'sum')); // one rank: a copy
    for (let o = 0; this.#stage !== null && o < block; o += this.#slice) {
      // slice [o, o + n) of every rank's block, side by side, then its sum's slice to each rank; queued in
      // order on the worker, so the next bucket's copies wait for this reduce-scatter
      const n = Math.min(this.#slice, block - o);
      const stage = this.#view(this.#stage, 0, worldSize * n);
      for (let r = 0; r < worldSize; r++) jobs.push(ops.copyAsync(this.#view(stage, r * n, n), this.#view(full, r * block + o, n)));
      jobs.push(this.#comm.reduceScatter(this.#view(this.grads.buffer, o, n), stage, 'sum'));
    }
    if (tail > 0) {
      const fullTail = this.#view(full, block * worldSize, tail);
      jobs.push(this.#comm.allReduce(fullTail, 'sum'));
      // queued after the all-reduce, so it copies the sum
      if (count > block) jobs.push(ops.copyAsync(this.#view(this.grads.buffer, block, tail), fullTail));
    }
    await this.#all(jobs);
    return (performance.now() - t0) / 1e3;
  }

  /**
   * Every rank's updated compute weights into every rank's model, in place: the bf16 copy (a bf16 model),
   * else the f32 master. Returns the seconds it took.
   */
  async gatherWeights(): Promise<number> {
    const t0 = performance.now();
    await this.#gatherInPlace(this.#model.computeParams ?? this.#model.params);
    return (performance.now() - t0) / 1e3;
  }

  /** Every rank's f32 master weights into model.params (before a checkpoint is written or the model is used alone). */
  async gatherMaster(): Promise<void> {
    // an fp32 model's master weights are its compute weights: gatherWeights() gathered them after the update
    if (this.#model.computeParams) await this.#gatherInPlace(this.#model.params);
  }

  // Each rank's range of `full` (the shard's master or bf16 copy is a view of it) to every rank.
  async #gatherInPlace(full: Arena): Promise<void> {
    this.#check('gatherWeights');
    const { block, tail, worldSize } = this.range;
    if (worldSize === 1) return; // the one rank's range is the whole arena
    const jobs: Promise<void>[] = [];
    if (block > 0) jobs.push(this.#comm.allGather(this.#view(full.buffer, 0, block * worldSize), this.#view(full.buffer, this.range.offset, block)));
    // the last rank's tail is in place already: it sends it to every rank
    if (tail > 0) jobs.push(this.#comm.broadcast(this.#view(full.buffer, block * worldSize, tail), worldSize - 1));
    await this.#all(jobs);
  }

  /** Every rank's shard of a shard-layout arena (e.g. an AdamW moment) into the full-layout arena `full`, on every rank. */
  async gatherFull(shard: Arena, full: Arena): Promise<void> {
    this.#check('gatherFull');
    const { block, tail, worldSize, rank } = this.range;
    if (shard.numel !== this.range.count || full.numel !== this.#model.params.numel || shard.dtype !== full.dtype) {
      throw invalidArg(`OptimizerShard.gatherFull: expected a shard of ${this.range.count} and a full arena of ${this.#model.params.numel} elements of one type, got ${shard.buffer.describe()} and ${full.buffer.describe()}`);
    }
    const jobs: Promise<void>[] = [];
    if (block > 0) jobs.push(this.#comm.allGather(this.#view(full.buffer, 0, block * worldSize), this.#view(shard.buffer, 0, block)));
    if (tail > 0) {
      const fullTail = this.#view(full.buffer, block * worldSize, tail);
      // the last rank puts its tail in place, then sends it to every rank (queued in this order)
      if (rank === worldSize - 1) jobs.push(ops.copyAsync(fullTail, this.#view(shard.buffer, block, tail)));
      jobs.push(this.#comm.broadcast(fullTail, worldSize - 1));
    }
    await this.#all(jobs);
  }

  /** Frees the shard's gradient and releases its views of the model's arenas. Idempotent. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const v of this.#views) v.dispose();
    this.#views.length = 0;
    this.master.dispose();
    this.grads.dispose();
    this.computeCopy?.dispose();
    this.#stage?.dispose();
  }
}
