// zero.ts: sharded optimizer state for data-parallel training (dist.sharding 'optimizer': ZeRO-2, FSDP's
// SHARD_GRAD_OP).
//
// The parameter arena is one flat buffer of N elements; rank r of W owns the range [r * S, (r + 1) * S) with
// S = floor(N / W), and the last rank also owns the tail [W * S, N) (fewer than W elements). A rank updates
// only its range: its AdamW runs over shard arenas (the full layout's entries clipped to the range, under their
// full names): the f32 master weights of the range (the shard's own for a bf16 model, which then keeps no f32
// master of its own; a view of the model's weights for an fp32 model, which computes with them), the bf16
// copy (a view of the model's), the range's reduced gradient, and AdamW moments 1/W of DDP's. A step:
//   1. every rank accumulates the gradient of its micro-batches into the model's full f32 gradient arena;
//   2. reduceGradients(): a reduce-scatter of [0, W * S) gives each rank the sum of its block over the ranks
//      (in buckets of bucketMB: each bucket takes the same slice of every rank's block, copied side by side
//      into a staging buffer), the tail is all-reduced and the last rank keeps it;
//   3. the global gradient norm is the sum over ranks of each shard's sum of squares (Trainer), and AdamW
//      updates the range in place (writing its bf16 copy in the same pass);
//   4. gatherWeights(): the updated compute weights (the bf16 copy of a bf16 model, else the f32 master)
//      are all-gathered in place, so every rank runs the next forward with the same weights.
// Checkpoints stay one full HF-MPT file set: the master weights (of a bf16 model) and the moments are
// gathered (gatherFull) before rank 0 writes them, and a checkpoint loads into any world size, each rank
// taking its range (takeShard, loadMaster).
//
// Same results as DDP: every reduction adds the same per-rank gradients (only the order of the additions
// differs), AdamW is element-wise, and the clipping scale comes from the same global norm.
import { invalidArg } from '../core/errors';
import { ops } from '../core/ops';
import { Arena, Tensor, type ArenaEntry, type DeviceSpec } from '../core/tensor';
import type { Communicator } from './communicator';
import { parameterLayout, type MptConfig } from '../model/config';

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

/**
 * The collectives of a shard over flat buffers split as shardRange splits them, queued in order on the worker
 * (each returns its promises; settle() awaits them and releases the views it made). The reduce-scatter runs
 * in buckets through a staging buffer: one collective over a whole 7B gradient would need MPI temporaries of
 * its size, and on Open MPI 4.1 a single reduce-scatter of a 45M-element gradient took 6.5x as long as 25 MiB
 * buckets (1,038 against 158 ms on 2 ranks of the 2-core Zen 5, 2026-12-05).
 */
export class ShardCollectives {
  readonly comm: Communicator;
  /** The staging buffer: worldSize slices of one bucket (none in a world of one). */
  readonly #stage: Tensor | null;
  /** Elements of each rank's slice of a bucket. */
  readonly #slice: number;
  readonly #views: Tensor[] = [];

  /** For blocks of up to `maxBlock` elements per rank, in buckets of `bucketMB` MiB of f32 over all ranks. */
  constructor(comm: Communicator, maxBlock: number, bucketMB: number, device: DeviceSpec) {
    if (!(bucketMB > 0) || !Number.isFinite(bucketMB)) throw invalidArg(`the sharded state's bucketMB must be a positive number, got ${bucketMB}`);
    this.comm = comm;
    const W = comm.worldSize;
    this.#slice = Math.max(1, Math.min(maxBlock, Math.floor((bucketMB * 2 ** 20) / 4 / W)));
    this.#stage = W > 1 && maxBlock > 0 ? Tensor.zeros('f32', [W * this.#slice], device) : null;
  }

  /** Bytes of the staging buffer. */
  get stagingBytes(): number {
    return this.#stage?.byteLength ?? 0;
  }

  view(t: Tensor, offset: number, count: number): Tensor {
    const v = t.view(offset, [count]);
    this.#views.push(v);
    return v;
  }

  /**
   * Queues the sum over the ranks of the f32 buffer `full` (split as `r` says) into `out`: this rank's block,
   * then on the last rank the tail after it.
   */
  reduceScatter(full: Tensor, out: Tensor, r: ShardRange): Promise<void>[] {
    const { block, tail, worldSize } = r;
    const jobs: Promise<void>[] = [];
    if (block > 0 && this.#stage === null) jobs.push(this.comm.reduceScatter(this.view(out, 0, block), this.view(full, 0, block), 'sum')); // one rank: a copy
    for (let o = 0; this.#stage !== null && o < block; o += this.#slice) {
      // slice [o, o + n) of every rank's block, side by side, then its sum's slice to each rank; the next
      // bucket's copies wait for this reduce-scatter (one worker, in order)
      const n = Math.min(this.#slice, block - o);
      const stage = this.view(this.#stage, 0, worldSize * n);
      for (let q = 0; q < worldSize; q++) jobs.push(ops.copyAsync(this.view(stage, q * n, n), this.view(full, q * block + o, n)));
      jobs.push(this.comm.reduceScatter(this.view(out, o, n), stage, 'sum'));
    }
    if (tail > 0) {
      const fullTail = this.view(full, block * worldSize, tail);
      jobs.push(this.comm.allReduce(fullTail, 'sum'));
      // queued after the all-reduce, so it copies the sum
      if (r.count > block) jobs.push(ops.copyAsync(this.view(out, block, tail), fullTail));
    }
    return jobs;
  }

  /**
   * Queues every rank's `shard` (its block, plus the tail on the last rank) into `full`. `inPlace`: `shard` is
   * this rank's range of `full` itself (then nothing is copied).
   */
  allGather(full: Tensor, shard: Tensor, r: ShardRange, inPlace: boolean): Promise<void>[] {
    const { block, tail, worldSize, rank } = r;
    if (inPlace && worldSize === 1) return []; // the one rank's range is the whole buffer
    const jobs: Promise<void>[] = [];
    if (block > 0) jobs.push(this.comm.allGather(this.view(full, 0, block * worldSize), this.view(shard, 0, block)));
    if (tail > 0) {
      const fullTail = this.view(full, block * worldSize, tail);
      // the last rank puts its tail in place (unless it is there), then sends it to every rank
      if (rank === worldSize - 1 && !inPlace) jobs.push(ops.copyAsync(fullTail, this.view(shard, block, tail)));
      jobs.push(this.comm.broadcast(fullTail, worldSize - 1));
    }
    return jobs;
  }

  /** Awaits `jobs`, then releases the views made for them. */
  async settle(jobs: Promise<void>[]): Promise<void> {
    try {
      await Promise.all(jobs);
    } finally {
      for (const v of this.#views) v.dispose();
      this.#views.length = 0;
    }
  }

  dispose(): void {
    for (const v of this.#views) v.dispose();
    this.#views.length = 0;
    this.#stage?.dispose();
  }
}

/**
 * What the trainer needs of a rank's sharded state, in either sharded mode ('optimizer': OptimizerShard;
 * 'full': FullShard in fsdp.ts).
 */
export interface TrainingShard {
  readonly mode: 'optimizer' | 'full';
  readonly rank: number;
  readonly worldSize: number;
  /** f32 master weights of this rank's part (AdamW's params). */
  readonly master: Arena;
  /** Its gradient summed over the ranks (AdamW's grads). */
  readonly grads: Arena;
  /** Its bf16 compute copy (a bf16 model; AdamW writes it), else null. */
  readonly computeCopy: Arena | null;
  /** The master weights exist only in the shards (no rank holds them whole): loads and checkpoints go through full scratch arenas. */
  readonly ownsMaster: boolean;
  readonly disposed: boolean;
  /** Bytes the shard allocates itself, by kind (views of the model's arenas are not counted). */
  readonly bytes: { weights: number; gradients: number; communication: number };
  /** Copies this rank's part of a full-layout buffer into a shard-layout buffer (re-sharding at load). */
  takeShard(full: Tensor, shard: Tensor): void;
  /** ownsMaster: after the whole master weights were loaded into `full`: keeps this rank's part, refreshes the compute weights. */
  loadMaster(full: Arena): void;
  /** Every rank's part of a shard-layout arena into the full-layout arena `full`, on every rank. */
  gatherFull(shard: Arena, full: Arena): Promise<void>;
  /** Zeroes the gradients the micro-batches accumulate into (before a step). */
  zeroGradients(): void;
  /** After the micro-batches: makes `grads` the sum over the ranks; returns the seconds spent in collectives. */
  reduceGradients(): Promise<number>;
  /** After the update: the updated weights where the next forward reads them; returns the seconds it took. */
  gatherWeights(): Promise<number>;
  dispose(): void;
}

/**
 * Master weights that exist only in shards (shard.ownsMaster), set from a whole model's: `fill` writes them
 * into a full f32 scratch arena of `config`'s layout (an initialisation, a checkpoint's weights), of which
 * `shard` keeps this rank's part (loadMaster); the scratch is freed after.
 */
export function loadShardMaster(shard: TrainingShard, config: MptConfig, fill: (full: Arena) => void): void {
  const full = new Arena('f32', parameterLayout(config), shard.master.device);
  try {
    fill(full);
    shard.loadMaster(full);
  } finally {
    full.dispose();
  }
}

/** The model arenas a shard is cut from. */
export interface ShardedModel {
  /** f32 master weights (full layout), or null: a bf16 model without them (the shard keeps its range's). */
  readonly params: Arena | null;
  /** f32 gradients (full layout), accumulated by the backward. */
  readonly grads: Arena;
  /** The bf16 compute copy (full layout) of a bf16 model, else null. */
  readonly computeParams: Arena | null;
}

/** One rank's shard of the training state (see the file comment): made per run, disposed with it. */
export class OptimizerShard implements TrainingShard {
  readonly mode = 'optimizer' as const;
  readonly range: ShardRange;
  /** f32 master weights of the range: the shard's own (a bf16 model), or a view of the model's params (fp32). */
  readonly master: Arena;
  /** The range's gradient summed over the ranks (reduceGradients writes it): the shard's own memory. */
  readonly grads: Arena;
  /** The range's bf16 compute copy, a view of the model's (a bf16 model; AdamW writes it); else null. */
  readonly computeCopy: Arena | null;
  readonly ownsMaster: boolean;
  readonly #model: ShardedModel;
  readonly #coll: ShardCollectives;
  #disposed = false;

  /** This rank's shard of `model` over `comm`'s ranks; `bucketMB` (default 25) sizes the reduce-scatter's buckets. */
  constructor(comm: Communicator, model: ShardedModel, options: { bucketMB?: number } = {}) {
    const { params: p, grads: g, computeParams: c } = model;
    if (g.dtype !== 'f32' || (p && p.dtype !== 'f32')) throw invalidArg(`OptimizerShard: params and grads must be f32 arenas, got ${p?.dtype} and ${g.dtype}`);
    if (!p && !c) throw invalidArg('OptimizerShard: a model without master weights must have a bf16 compute copy');
    this.#model = model;
    this.range = shardRange(g.numel, comm.rank, comm.worldSize);
    const { offset, count } = this.range;
    const layout = shardLayout(g.entries, this.range);
    this.#coll = new ShardCollectives(comm, this.range.block, options.bucketMB ?? 25, g.device);
    this.ownsMaster = p === null;
    this.master = p ? new Arena('f32', layout, g.device, p.buffer.view(offset, [count])) : new Arena('f32', layout, g.device);
    this.grads = this.master.like('f32');
    this.computeCopy = c ? new Arena('bf16', layout, g.device, c.buffer.view(offset, [count])) : null;
  }

  get rank(): number {
    return this.range.rank;
  }

  get worldSize(): number {
    return this.range.worldSize;
  }

  get disposed(): boolean {
    return this.#disposed;
  }

  /** The reduced gradient, the staging bucket, and the master weights when they are the shard's own. */
  get bytes(): { weights: number; gradients: number; communication: number } {
    return { weights: this.ownsMaster ? this.master.buffer.byteLength : 0, gradients: this.grads.buffer.byteLength, communication: this.#coll.stagingBytes };
  }

  #check(where: string): void {
    if (this.#disposed) throw invalidArg(`OptimizerShard.${where}: used after dispose()`);
  }

  /** Copies this rank's range of a full-layout buffer `full` into the shard-layout buffer `shard` (re-sharding at load). */
  takeShard(full: Tensor, shard: Tensor): void {
    this.#check('takeShard');
    const { offset, count } = this.range;
    const n = this.#model.grads.numel;
    if (full.numel !== n || shard.numel !== count || full.dtype !== shard.dtype) {
      throw invalidArg(`OptimizerShard.takeShard: expected a full buffer of ${n} and a shard of ${count} elements of one type, got ${full.describe()} and ${shard.describe()}`);
    }
    if (count === 0) return;
    const v = full.view(offset, [count]);
    try {
      ops.copy(shard, v);
    } finally {
      v.dispose();
    }
  }

  #ownMaster(where: string): Arena {
    this.#check(where);
    if (!this.ownsMaster) throw invalidArg(`OptimizerShard.${where}: the model holds the master weights (initialise or load them there)`);
    return this.#model.computeParams!;
  }

  /** MPT's initialisation of `seed`: this rank's range of the master weights, and the whole bf16 copy. */
  /** After the whole master weights were loaded into `full`: this rank's range of them, and the whole bf16 copy. */
  loadMaster(full: Arena): void {
    const copy = this.#ownMaster('loadMaster');
    this.takeShard(full.buffer, this.master.buffer);
    ops.cast(copy.buffer, full.buffer);
  }

  /** Every rank's shard of a shard-layout arena (the master weights, an AdamW moment) into the full-layout arena `full`, on every rank. */
  async gatherFull(shard: Arena, full: Arena): Promise<void> {
    this.#check('gatherFull');
    const n = this.#model.grads.numel;
    if (shard.numel !== this.range.count || full.numel !== n || shard.dtype !== full.dtype) {
      throw invalidArg(`OptimizerShard.gatherFull: expected a shard of ${this.range.count} and a full arena of ${n} elements of one type, got ${shard.buffer.describe()} and ${full.buffer.describe()}`);
    }
    await this.#coll.settle(this.#coll.allGather(full.buffer, shard.buffer, this.range, false));
  }

  /** Zeroes the model's gradient arena, which the micro-batches accumulate into before it is reduce-scattered. */
  zeroGradients(): void {
    this.#check('zeroGradients');
    this.#model.grads.zero();
  }

  /** Sums the model's gradient over the ranks into `grads` (this rank's range only). Returns the seconds it took. */
  async reduceGradients(): Promise<number> {
    this.#check('reduceGradients');
    const t0 = performance.now();
    await this.#coll.settle(this.#coll.reduceScatter(this.#model.grads.buffer, this.grads.buffer, this.range));
    return (performance.now() - t0) / 1e3;
  }

  /**
   * Every rank's updated compute weights into every rank's model, in place: the bf16 copy (a bf16 model),
   * else the f32 master. Returns the seconds it took.
   */
  async gatherWeights(): Promise<number> {
    this.#check('gatherWeights');
    const t0 = performance.now();
    const full = (this.#model.computeParams ?? this.#model.params)!;
    await this.#coll.settle(this.#coll.allGather(full.buffer, (this.computeCopy ?? this.master).buffer, this.range, true));
    return (performance.now() - t0) / 1e3;
  }

  /** Frees the shard's gradient and staging buffer and releases its views of the model's arenas. Idempotent. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#coll.dispose();
    this.master.dispose();
    this.grads.dispose();
    this.computeCopy?.dispose();
  }
}
