// fsdp.ts: fully sharded data parallelism (dist.sharding 'full', FSDP's FULL_SHARD).
//
// Nothing of the model is whole on any rank between its uses: each unit of parameters (the embedding, each
// block, the final LayerNorm: parameterUnits) is split over the ranks as shardRange splits a flat buffer, and
// a rank keeps, for its slice of every unit, the f32 master weights, the bf16 compute copy (a bf16 model), the
// gradient summed over the ranks and the AdamW moments: shard arenas that are the units' slices one after
// another (each entry clipped to the slices, under its full name). The model (MptModel with this as its
// ParameterStore) enters each unit before its ops and leaves it after:
//   enter(u, 'forward'):   the unit's compute weights are all-gathered into a unit buffer;
//   enter(u, 'backward'):  gathered again (they were dropped after the forward) and the unit's gradient
//                          buffer zeroed (composes with activation checkpointing: the recompute reads them);
//   leave(u, 'backward'):  the unit's gradient is reduce-scattered and each rank adds its slice of the sum
//                          to its gradient shard (every micro-batch: the gradient is never whole).
// Units share buffers by kind: one for the embedding (gathered for the whole forward and backward: the tied
// LM head reads it last in the forward and the embedding backward writes it last), one for the final
// LayerNorm, one that every block takes in turn. So a rank holds 1/N of the model state plus the largest
// units whole. After AdamW updates the shard nothing is gathered: the next forward gathers what it reads.
// Checkpoints are the same full file set as the other modes (gatherFull on every rank before rank 0 writes);
// loading takes each rank's slices (takeShard), with any number of ranks.
import { invalidArg } from '../core/errors';
import { ops } from '../core/ops';
import { Arena, Tensor, type ArenaEntry, type DeviceSpec } from '../core/tensor';
import type { ParameterStore, Precision } from '../model/mpt';
import { parameterLayout, parameterUnits, type MptConfig, type ParameterUnit } from '../model/config';
import type { Communicator } from './communicator';
import { ShardCollectives, shardLayout, shardRange, type ShardRange, type TrainingShard } from './zero';

/** A unit with this rank's slice of it. */
export interface ShardedUnit extends ParameterUnit {
  /** This rank's slice of the unit (offsets within the unit). */
  range: ShardRange;
  /** Where the slice starts in the shard arenas. */
  shardOffset: number;
  /** Which gathered buffer the unit uses: 0 the embedding's, 1 the blocks', 2 the final LayerNorm's. */
  slot: number;
}

export interface FullShardOptions {
  precision: Precision;
  device?: DeviceSpec;
  /** Size in MiB of the reduce-scatter's buckets. Defaults to 25. */
  bucketMB?: number;
}

/** One rank's part of a fully sharded model: its ParameterStore and its optimizer's state. */
export class FullShard implements TrainingShard, ParameterStore {
  readonly mode = 'full' as const;
  readonly rank: number;
  readonly worldSize: number;
  readonly units: readonly ShardedUnit[];
  /** The model's full layout (names, shapes and offsets, as parameterLayout gives them). */
  readonly layout: readonly ArenaEntry[];
  readonly master: Arena;
  readonly grads: Arena;
  readonly computeCopy: Arena | null;
  readonly ownsMaster = true;
  readonly #coll: ShardCollectives;
  readonly #numel: number;
  /** Gathered compute weights and gradient buffers, one per slot. */
  readonly #weightBufs: Tensor[];
  readonly #gradBufs: Tensor[];
  /** The reduce-scatter's output before it is added to the gradient shard. */
  readonly #scratch: Tensor;
  /** Per entry name: its unit, and its views into the slot buffers. */
  readonly #entries = new Map<string, { unit: number; weight: Tensor; grad: Tensor }>();
  /** Per slot: the unit in it and the phase it was entered for, or null. */
  readonly #inSlot: ({ unit: number; phase: 'forward' | 'backward' } | null)[] = [null, null, null];
  #commSeconds = 0;
  #disposed = false;

  constructor(comm: Communicator, config: MptConfig, options: FullShardOptions) {
    const where = 'FullShard';
    if (options.precision !== 'fp32' && options.precision !== 'bf16') throw invalidArg(`${where}: precision must be 'fp32' or 'bf16', got ${String(options.precision)}`);
    const device = options.device ?? 'cpu';
    this.rank = comm.rank;
    this.worldSize = comm.worldSize;
    const fullArena = new Arena('f32', parameterLayout(config), device);
    this.layout = fullArena.entries;
    this.#numel = fullArena.numel;
    fullArena.dispose(); // only its layout was wanted
    let shardOffset = 0;
    this.units = parameterUnits(config).map((u, i, all) => {
      const range = shardRange(u.numel, this.rank, this.worldSize);
      const unit = { ...u, range, shardOffset, slot: i === 0 ? 0 : i === all.length - 1 ? 2 : 1 };
      shardOffset += range.count;
      return unit;
    });
    const layout = this.units.flatMap((u) => shardLayout(this.layout, { offset: u.offset + u.range.offset, count: u.range.count }));
    const maxBlock = Math.max(...this.units.map((u) => u.range.block));
    const slotSize = [0, 1, 2].map((k) => Math.max(0, ...this.units.filter((u) => u.slot === k).map((u) => u.numel)));
    const computeDtype = options.precision === 'bf16' ? 'bf16' : 'f32';
    const made: { dispose(): void }[] = [];
    const keep = <T extends { dispose(): void }>(x: T): T => (made.push(x), x);
    try {
      this.#coll = keep(new ShardCollectives(comm, maxBlock, options.bucketMB ?? 25, device));
      this.master = keep(new Arena('f32', layout, device));
      this.grads = keep(this.master.like('f32'));
      this.computeCopy = options.precision === 'bf16' ? keep(this.master.like('bf16')) : null;
      this.#weightBufs = slotSize.map((n) => keep(Tensor.zeros(computeDtype, [Math.max(1, n)], device)));
      this.#gradBufs = slotSize.map((n) => keep(Tensor.zeros('f32', [Math.max(1, n)], device)));
      this.#scratch = keep(Tensor.zeros('f32', [Math.max(1, ...this.units.map((u) => u.range.count))], device));
    } catch (e) {
      for (const x of made) x.dispose();
      throw e;
    }
    this.units.forEach((u, i) => {
      for (const e of this.layout) {
        if (e.offset < u.offset || e.offset >= u.offset + u.numel) continue;
        this.#entries.set(e.name, {
          unit: i,
          weight: this.#weightBufs[u.slot].view(e.offset - u.offset, e.shape),
          grad: this.#gradBufs[u.slot].view(e.offset - u.offset, e.shape),
        });
      }
    });
  }

  get disposed(): boolean {
    return this.#disposed;
  }

  /** The shard arenas, the gathered units' buffers and the staging bucket. */
  get bytes(): { weights: number; gradients: number; communication: number } {
    const sum = (ts: Tensor[]) => ts.reduce((n, t) => n + t.byteLength, 0);
    return {
      weights: this.master.buffer.byteLength + (this.computeCopy?.buffer.byteLength ?? 0) + sum(this.#weightBufs),
      gradients: this.grads.buffer.byteLength + sum(this.#gradBufs) + this.#scratch.byteLength,
      communication: this.#coll.stagingBytes,
    };
  }

  #check(where: string): void {
    if (this.#disposed) throw invalidArg(`FullShard.${where}: used after dispose()`);
  }

  /** After the whole master weights were loaded into `full`: this rank's slices of them, and their bf16 copy. */
  loadMaster(full: Arena): void {
    this.takeShard(full.buffer, this.master.buffer);
    this.syncComputeCopy();
  }

  /** Writes bf16(master) into the bf16 shard (after the master was loaded or initialised). */
  syncComputeCopy(): void {
    this.#check('syncComputeCopy');
    if (this.computeCopy) ops.cast(this.computeCopy.buffer, this.master.buffer);
  }

  /** Copies this rank's slice of every unit of a full-layout buffer `full` into the shard-layout buffer `shard`. */
  takeShard(full: Tensor, shard: Tensor): void {
    this.#check('takeShard');
    if (full.numel !== this.#numel || shard.numel !== this.master.numel || full.dtype !== shard.dtype) {
      throw invalidArg(`FullShard.takeShard: expected a full buffer of ${this.#numel} and a shard of ${this.master.numel} elements of one type, got ${full.describe()} and ${shard.describe()}`);
    }
    for (const u of this.units) {
      if (u.range.count === 0) continue;
      const src = full.view(u.offset + u.range.offset, [u.range.count]);
      const dst = shard.view(u.shardOffset, [u.range.count]);
      try {
        ops.copy(dst, src);
      } finally {
        src.dispose();
        dst.dispose();
      }
    }
  }

  /** Every rank's slices of a shard-layout arena into the full-layout arena `full`, on every rank. */
  async gatherFull(shard: Arena, full: Arena): Promise<void> {
    this.#check('gatherFull');
    if (shard.numel !== this.master.numel || full.numel !== this.#numel || shard.dtype !== full.dtype) {
      throw invalidArg(`FullShard.gatherFull: expected a shard of ${this.master.numel} and a full arena of ${this.#numel} elements of one type, got ${shard.buffer.describe()} and ${full.buffer.describe()}`);
    }
    const c = this.#coll;
    const jobs = this.units.flatMap((u) => c.allGather(c.view(full.buffer, u.offset, u.numel), c.view(shard.buffer, u.shardOffset, u.range.count), u.range, false));
    await c.settle(jobs);
  }

  /** The weight `name` of the unit entered now. */
  weight(name: string): Tensor {
    return this.#resident(name, 'weight').weight;
  }

  /** The gradient `name` of the unit entered now for the backward. */
  grad(name: string): Tensor {
    const e = this.#resident(name, 'grad');
    if (this.#inSlot[this.units[e.unit].slot]!.phase !== 'backward') throw invalidArg(`FullShard.grad: '${name}' is entered for the forward only`);
    return e.grad;
  }

  #resident(name: string, what: string): { unit: number; weight: Tensor; grad: Tensor } {
    const e = this.#entries.get(name);
    if (!e) throw invalidArg(`FullShard.${what}: no parameter '${name}'`);
    const inSlot = this.#inSlot[this.units[e.unit].slot];
    if (!inSlot || inSlot.unit !== e.unit) throw invalidArg(`FullShard.${what}: '${name}' is read outside its unit (${this.units[e.unit].name} is not entered)`);
    return e;
  }

  #unit(u: number, where: string): ShardedUnit {
    this.#check(where);
    const unit = this.units[u];
    if (!unit) throw invalidArg(`FullShard.${where}: no unit ${u} (the model has ${this.units.length})`);
    return unit;
  }

  async enter(u: number, phase: 'forward' | 'backward'): Promise<void> {
    const unit = this.#unit(u, 'enter');
    const held = this.#inSlot[unit.slot];
    if (held) throw invalidArg(`FullShard.enter: ${unit.name} needs the buffer ${this.units[held.unit].name} still holds (leave it first)`);
    const t0 = performance.now();
    const c = this.#coll;
    const weights = c.view(this.#weightBufs[unit.slot], 0, unit.numel);
    await c.settle(c.allGather(weights, c.view((this.computeCopy ?? this.master).buffer, unit.shardOffset, unit.range.count), unit.range, false));
    this.#commSeconds += (performance.now() - t0) / 1e3;
    if (phase === 'backward') {
      const g = this.#gradBufs[unit.slot].view(0, [unit.numel]);
      g.fill(0);
      g.dispose();
    }
    this.#inSlot[unit.slot] = { unit: u, phase };
  }

  async leave(u: number, phase: 'forward' | 'backward'): Promise<void> {
    const unit = this.#unit(u, 'leave');
    const held = this.#inSlot[unit.slot];
    if (!held || held.unit !== u || held.phase !== phase) throw invalidArg(`FullShard.leave: ${unit.name} was not entered for the ${phase}`);
    this.#inSlot[unit.slot] = null;
    if (phase === 'forward') return;
    const t0 = performance.now();
    const c = this.#coll;
    const sum = c.view(this.#scratch, 0, unit.range.count);
    const jobs = c.reduceScatter(c.view(this.#gradBufs[unit.slot], 0, unit.numel), sum, unit.range);
    // this micro-batch's sum over the ranks, added to the shard's gradient (queued after the reduce-scatter)
    if (unit.range.count > 0) {
      const acc = c.view(this.grads.buffer, unit.shardOffset, unit.range.count);
      jobs.push(ops.residualForwardAsync(acc, acc, sum));
    }
    await c.settle(jobs);
    this.#commSeconds += (performance.now() - t0) / 1e3;
  }

  /** Zeroes the gradient shard (before a step's micro-batches). */
  zeroGradients(): void {
    this.#check('zeroGradients');
    this.grads.zero();
  }

  /** The gradient shard is summed during the backward: returns the seconds the step's gathers and reductions took. */
  async reduceGradients(): Promise<number> {
    this.#check('reduceGradients');
    const s = this.#commSeconds;
    this.#commSeconds = 0;
    return s;
  }

  /** Nothing to gather after the update: the next forward gathers each unit as it reads it. */
  async gatherWeights(): Promise<number> {
    this.#check('gatherWeights');
    return 0;
  }

  /** Frees the shard arenas and the unit buffers. Idempotent. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const e of this.#entries.values()) {
      e.weight.dispose();
      e.grad.dispose();
    }
    this.#entries.clear();
    this.#coll.dispose();
    this.master.dispose();
    this.grads.dispose();
    this.computeCopy?.dispose();
    for (const t of [...this.#weightBufs, ...this.#gradBufs, this.#scratch]) t.dispose();
  }
}
