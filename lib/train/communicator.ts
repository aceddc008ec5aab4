// communicator.ts: what data-parallel training needs from the ranks of a run: who this process is, an
// element-wise reduction of a Float32Array across all ranks, and a barrier. The trainer is handed one
// (Trainer.create's `communicator`); the only implementation today is a world of one process, where every
// collective is the identity. Issue #12 adds MPI/NCCL communicators behind this interface; until then the
// trainer refuses a communicator of more than one rank rather than train each rank on its own.
import { invalidArg } from '../core/errors';

export type ReduceOp = 'sum' | 'mean';

export interface Communicator {
  /** This process's rank, in [0, worldSize). */
  readonly rank: number;
  /** Ranks in the run. */
  readonly worldSize: number;
  /**
   * Replaces `data` in place with its element-wise sum (or mean) over all ranks. Every rank calls it with an
   * array of the same length, in the same order of calls; it resolves once the result is in `data`.
   */
  allReduce(data: Float32Array, op: ReduceOp): Promise<void>;
  /** Resolves once every rank has called it. */
  barrier(): Promise<void>;
}

/** The communicator of a run of one process: rank 0 of 1, where a reduction leaves the data as it is. */
export class WorldOfOne implements Communicator {
  readonly rank = 0;
  readonly worldSize = 1;

  async allReduce(data: Float32Array, op: ReduceOp): Promise<void> {
    // The sum and the mean over one rank are the rank's own values; the arguments are checked all the same,
    // so code written against a world of one fails here, not first on a cluster.
    if (!(data instanceof Float32Array)) throw invalidArg(`Communicator.allReduce: data must be a Float32Array, got ${describe(data)}`);
    if (op !== 'sum' && op !== 'mean') throw invalidArg(`Communicator.allReduce: op must be 'sum' or 'mean', got ${JSON.stringify(op)}`);
  }

  async barrier(): Promise<void> {}
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v === 'object') return (v as object).constructor?.name ?? 'an object';
  return typeof v;
}

/** Checks a communicator handed to the trainer: an integer rank in [0, worldSize) and the two collectives. */
export function checkCommunicator(c: Communicator, where: string): Communicator {
  if (c === null || typeof c !== 'object') throw invalidArg(`${where}: communicator must be an object with rank, worldSize, allReduce and barrier`);
  if (!Number.isSafeInteger(c.worldSize) || c.worldSize < 1) throw invalidArg(`${where}: communicator.worldSize must be a positive integer, got ${c.worldSize}`);
  if (!Number.isSafeInteger(c.rank) || c.rank < 0 || c.rank >= c.worldSize) {
    throw invalidArg(`${where}: communicator.rank must be an integer in [0, worldSize = ${c.worldSize}), got ${c.rank}`);
  }
  for (const k of ['allReduce', 'barrier'] as const) {
    if (typeof c[k] !== 'function') throw invalidArg(`${where}: communicator.${k} must be a function`);
  }
  return c;
}
