// communicator.ts: the ranks of a data-parallel run and the collectives between them.
//
// `initCommunicator()` is how a process finds its place: started by an MPI launcher (mpirun, mpiexec, or srun
// with PMI/PMIx), it starts MPI through the addon and returns an MpiCommunicator; started any other way, a
// WorldOfOne, which loads no MPI at all. Collectives on tensors and typed arrays run on the addon's worker
// thread in call order with every other op (native/src/dist/comm.cc), so a gradient reduction queued after the
// backward's last op runs after it and the event loop stays free. CUDA tensors go through NCCL where the
// build has it (native/src/dist/nccl.cc): queued on the communicator's stream in order with the device's
// compute stream, and the promise settles once queued, like any CUDA op's (a later op sees the result).
//
// Faults: a collective that does not complete within `timeoutMs` (a rank died, hangs, or never reached it)
// ends the whole run with MPI_Abort, after this rank says which collective it was waiting in; `abort()` does
// the same for a rank that fails on its own (the CLI calls it for any error on any rank), so no rank is left
// waiting for one that has gone.
import { native, type NativeAddon } from '../native';
import { fromNative, invalidArg } from '../core/errors';
import { ops } from '../core/ops';
import { Tensor } from '../core/tensor';

export type ReduceOp = 'sum' | 'mean' | 'max' | 'min';
/**
 * What collectives move: CPU tensors (f32 or i32; bf16 too in allGather and broadcast, which only move it) or
 * typed arrays over MPI, or CUDA tensors (f32, bf16 or i32, on the rank's device, cuda:localRank) over NCCL
 * where the build has it (backendInfo().mpi.nccl).
 */
export type CommBuffer = Tensor | Float32Array | Float64Array | Int32Array | Uint8Array | BigInt64Array;

export interface Communicator {
  /** This process's rank, in [0, worldSize). */
  readonly rank: number;
  /** Ranks in the run. */
  readonly worldSize: number;
  /** This process's rank among the ranks on its machine (the GPU it would use). */
  readonly localRank: number;
  /**
   * Replaces `buf` in place with its element-wise reduction over all ranks. Every rank calls every collective
   * with buffers of the same length and type, in the same order; each resolves once its result is in place.
   */
  allReduce(buf: CommBuffer, op: ReduceOp): Promise<void>;
  /** `out` gets this rank's block (out's length) of the reduction of `inp` (worldSize blocks, rank order). */
  reduceScatter(out: CommBuffer, inp: CommBuffer, op: ReduceOp): Promise<void>;
  /** `out` (worldSize blocks, rank order) gets every rank's `inp`. */
  allGather(out: CommBuffer, inp: CommBuffer): Promise<void>;
  /** Every rank's `buf` gets `root`'s. */
  broadcast(buf: CommBuffer, root: number): Promise<void>;
  /**
   * Resolves once every rank has called it. `timeoutMs` replaces the communicator's watchdog for this call
   * (a barrier that waits for rank 0's checkpoint write may need longer than a collective).
   */
  barrier(options?: { timeoutMs?: number }): Promise<void>;
  /** Ends every rank of the run now, saying why on this rank's stderr; the run exits with `exitCode` (default 1). Never returns. */
  abort(reason: string, exitCode?: number): never;
}

const REDUCE_OPS: readonly ReduceOp[] = ['sum', 'mean', 'max', 'min'];

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v === 'object') return (v as object).constructor?.name ?? 'an object';
  return typeof v;
}

function isBuffer(v: unknown): v is CommBuffer {
  return (
    v instanceof Tensor ||
    v instanceof Float32Array ||
    v instanceof Float64Array ||
    v instanceof Int32Array ||
    v instanceof Uint8Array ||
    v instanceof BigInt64Array
  );
}

/** Whether this build moves CUDA tensors with NCCL, and why not (backendInfo().mpi), asked once. */
let ncclSupport: { nccl: boolean; reason?: string } | undefined;
function nccl(): { nccl: boolean; reason?: string } {
  if (!ncclSupport) {
    const mpi = native().backendInfo().mpi;
    ncclSupport = { nccl: mpi.nccl, reason: mpi.ncclReason };
  }
  return ncclSupport;
}

/**
 * A buffer of a collective. GPU tensors are NCCL's: refused with the build's reason where it lacks NCCL, in a
 * world of one too (which moves nothing), so code that runs on one process runs on a cluster.
 */
function checkBuffer(v: unknown, what: string): CommBuffer {
  if (!isBuffer(v)) {
    throw invalidArg(`${what} must be a Tensor or a Float32Array, Float64Array, Int32Array, Uint8Array or BigInt64Array, got ${describe(v)}`);
  }
  if (v instanceof Tensor && v.device !== 'cpu' && !nccl().nccl) {
    throw invalidArg(`${what}: ${v.describe()} is not on the CPU; collectives on GPU tensors need NCCL, which this build lacks (${nccl().reason ?? 'no reason given'})`);
  }
  return v;
}

function checkOp(op: unknown, where: string): ReduceOp {
  if (!REDUCE_OPS.includes(op as ReduceOp)) throw invalidArg(`${where}: op must be 'sum', 'mean', 'max' or 'min', got ${JSON.stringify(op)}`);
  return op as ReduceOp;
}

function checkTimeout(ms: number, where: string): number {
  if (!(ms > 0) || !Number.isFinite(ms)) throw invalidArg(`${where}: timeoutMs must be a positive number, got ${ms}`);
  return ms;
}

function lengthOf(b: CommBuffer): number {
  return b instanceof Tensor ? b.numel : b.length;
}

function sameKind(a: CommBuffer, b: CommBuffer): boolean {
  if (a instanceof Tensor || b instanceof Tensor) return a instanceof Tensor && b instanceof Tensor && a.dtype === b.dtype;
  return a.constructor === b.constructor;
}

/** Divides every element by n (the 'mean' of a sum); integer buffers are refused before any communication. */
function divide(buf: CommBuffer, n: number): void {
  if (buf instanceof Tensor) ops.scaleInPlace(buf, 1 / n);
  else if (buf instanceof Float32Array || buf instanceof Float64Array) for (let i = 0; i < buf.length; i++) buf[i] /= n;
}

/**
 * A buffer a reduction adds up: MPI moves bf16 CPU tensors (allGather, broadcast) but does not add them (NCCL
 * adds bf16 CUDA tensors). Refused in a world of one too.
 */
function checkReducible(buf: CommBuffer, what: string): void {
  if (buf instanceof Tensor && buf.dtype === 'bf16' && buf.device === 'cpu') {
    throw invalidArg(`${what}: ${buf.describe()} is bf16 on the CPU; MPI reduces f32 or i32 CPU tensors (reduce gradients in f32; bf16 is only gathered or broadcast)`);
  }
}

function checkMean(buf: CommBuffer, op: ReduceOp, where: string): void {
  const float = buf instanceof Tensor ? buf.dtype === 'f32' || buf.dtype === 'bf16' : buf instanceof Float32Array || buf instanceof Float64Array;
  if (op === 'mean' && !float) throw invalidArg(`${where}: 'mean' needs a floating-point buffer, got ${buf instanceof Tensor ? buf.describe() : describe(buf)}`);
}

/** The communicator of a run of one process: rank 0 of 1, where every collective leaves or copies the data. */
export class WorldOfOne implements Communicator {
  readonly rank = 0;
  readonly worldSize = 1;
  readonly localRank = 0;

  // The arguments are checked all the same, so code written against a world of one fails here, not first on a
  // cluster.
  async allReduce(buf: CommBuffer, op: ReduceOp): Promise<void> {
    checkReducible(checkBuffer(buf, 'Communicator.allReduce: buf'), 'Communicator.allReduce: buf');
    checkMean(buf, checkOp(op, 'Communicator.allReduce'), 'Communicator.allReduce');
  }

  async reduceScatter(out: CommBuffer, inp: CommBuffer, op: ReduceOp): Promise<void> {
    checkOp(op, 'Communicator.reduceScatter');
    if (isBuffer(inp)) checkReducible(inp, 'Communicator.reduceScatter: inp');
    await this.allGather(out, inp, 'Communicator.reduceScatter');
  }

  async allGather(out: CommBuffer, inp: CommBuffer, where = 'Communicator.allGather'): Promise<void> {
    checkBuffer(out, `${where}: out`);
    checkBuffer(inp, `${where}: inp`);
    if (!sameKind(out, inp) || lengthOf(out) !== lengthOf(inp)) {
      throw invalidArg(`${where}: with one rank 'out' and 'inp' must be the same kind and length, got ${describe(out)}[${lengthOf(out)}] and ${describe(inp)}[${lengthOf(inp)}]`);
    }
    if (out instanceof Tensor && inp instanceof Tensor) ops.copy(out, inp);
    else if (out !== inp) (out as Float32Array).set(inp as Float32Array);
  }

  async broadcast(buf: CommBuffer, root: number): Promise<void> {
    checkBuffer(buf, 'Communicator.broadcast: buf');
    if (root !== 0) throw invalidArg(`Communicator.broadcast: root ${root} is not a rank in [0, 1)`);
  }

  async barrier(options: { timeoutMs?: number } = {}): Promise<void> {
    if (options.timeoutMs !== undefined) checkTimeout(options.timeoutMs, 'Communicator.barrier');
  }

  abort(reason: string, exitCode = 1): never {
    throw Object.assign(new Error(`pajama: aborting: ${reason}`), { exitCode });
  }
}

export interface MpiCommunicatorOptions {
  /** A collective that takes longer than this ends the run (MPI_Abort). Defaults to 60 s. */
  timeoutMs?: number;
}

/** A rank of a run started by an MPI launcher; made by initCommunicator(). */
export class MpiCommunicator implements Communicator {
  readonly rank: number;
  readonly worldSize: number;
  readonly localRank: number;
  /** The MPI library, e.g. 'Open MPI v4.1.4'. */
  readonly library: string;
  readonly timeoutMs: number;

  /** @internal use initCommunicator() */
  constructor(status: { rank: number; worldSize: number; localRank: number; library?: string }, options: MpiCommunicatorOptions = {}) {
    this.rank = status.rank;
    this.worldSize = status.worldSize;
    this.localRank = status.localRank;
    this.library = status.library ?? 'MPI';
    this.timeoutMs = checkTimeout(options.timeoutMs ?? 60_000, 'MpiCommunicator');
  }

  /**
   * Ends MPI in this process (MPI_Finalize) once every rank is done with collectives; call it before the
   * process exits, or the launcher reports the rank as ended abnormally. No collective works afterwards.
   */
  finalize(): void {
    native().commFinalize();
  }

  /** Runs one native collective under the watchdog (`timeoutMs`, default the communicator's). */
  async #run(what: string, call: () => Promise<void>, timeoutMs = this.timeoutMs): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const watchdog = new Promise<never>(() => {
      timer = setTimeout(() => {
        this.abort(`${what} did not complete within ${timeoutMs / 1000} s: another rank died, hangs, or never reached it`);
      }, timeoutMs);
    });
    try {
      await Promise.race([call(), watchdog]);
    } catch (e) {
      throw fromNative(e);
    } finally {
      clearTimeout(timer);
    }
  }

  #raw(b: CommBuffer): Parameters<NativeAddon['commBroadcastAsync']>[0] {
    return b instanceof Tensor ? b.handle : b;
  }

  async allReduce(buf: CommBuffer, op: ReduceOp): Promise<void> {
    checkReducible(checkBuffer(buf, 'Communicator.allReduce: buf'), 'Communicator.allReduce: buf');
    checkMean(buf, checkOp(op, 'Communicator.allReduce'), 'Communicator.allReduce');
    await this.#run('allReduce', () => native().commAllReduceAsync(this.#raw(buf), op === 'mean' ? 'sum' : op));
    if (op === 'mean') divide(buf, this.worldSize);
  }

  async reduceScatter(out: CommBuffer, inp: CommBuffer, op: ReduceOp): Promise<void> {
    checkBuffer(out, 'Communicator.reduceScatter: out');
    checkReducible(checkBuffer(inp, 'Communicator.reduceScatter: inp'), 'Communicator.reduceScatter: inp');
    checkMean(out, checkOp(op, 'Communicator.reduceScatter'), 'Communicator.reduceScatter');
    await this.#run('reduceScatter', () => native().commReduceScatterAsync(this.#raw(out), this.#raw(inp), op === 'mean' ? 'sum' : op));
    if (op === 'mean') divide(out, this.worldSize);
  }

  async allGather(out: CommBuffer, inp: CommBuffer): Promise<void> {
    checkBuffer(out, 'Communicator.allGather: out');
    checkBuffer(inp, 'Communicator.allGather: inp');
    await this.#run('allGather', () => native().commAllGatherAsync(this.#raw(out), this.#raw(inp)));
  }

  async broadcast(buf: CommBuffer, root: number): Promise<void> {
    checkBuffer(buf, 'Communicator.broadcast: buf');
    if (!Number.isInteger(root) || root < 0 || root >= this.worldSize) throw invalidArg(`Communicator.broadcast: root ${root} is not a rank in [0, ${this.worldSize})`);
    await this.#run('broadcast', () => native().commBroadcastAsync(this.#raw(buf), root));
  }

  async barrier(options: { timeoutMs?: number } = {}): Promise<void> {
    const timeoutMs = options.timeoutMs === undefined ? this.timeoutMs : checkTimeout(options.timeoutMs, 'Communicator.barrier');
    await this.#run('barrier', () => native().commBarrierAsync(), timeoutMs);
  }

  abort(reason: string, exitCode = 1): never {
    const code = Number.isInteger(exitCode) && exitCode > 0 && exitCode < 256 ? exitCode : 1;
    process.stderr.write(`pajama: rank ${this.rank} of ${this.worldSize}: ${reason}; aborting every rank\n`);
    native().commAbort(code);
    // MPI_Abort does not return; if the MPI library ever did, this rank still must not go on.
    process.exit(code);
  }
}

/**
 * This process's communicator: an MpiCommunicator when an MPI launcher started it (MPI is started now), else a
 * WorldOfOne. An MPI launch in a build without MPI, or whose pajama_mpi.so cannot load, is an error.
 */
export function initCommunicator(options: MpiCommunicatorOptions = {}): Communicator {
  let s: ReturnType<ReturnType<typeof native>['commInit']>;
  try {
    s = native().commInit();
  } catch (e) {
    throw fromNative(e);
  }
  return s.initialized ? new MpiCommunicator(s, options) : new WorldOfOne();
}

/** Checks a communicator handed to the trainer: an integer rank in [0, worldSize) and the collectives. */
export function checkCommunicator(c: Communicator, where: string): Communicator {
  if (c === null || typeof c !== 'object') throw invalidArg(`${where}: communicator must be an object with rank, worldSize and the collectives`);
  if (!Number.isSafeInteger(c.worldSize) || c.worldSize < 1) throw invalidArg(`${where}: communicator.worldSize must be a positive integer, got ${c.worldSize}`);
  if (!Number.isSafeInteger(c.rank) || c.rank < 0 || c.rank >= c.worldSize) {
    throw invalidArg(`${where}: communicator.rank must be an integer in [0, worldSize = ${c.worldSize}), got ${c.rank}`);
  }
  for (const k of ['allReduce', 'reduceScatter', 'allGather', 'broadcast', 'barrier', 'abort'] as const) {
    if (typeof c[k] !== 'function') throw invalidArg(`${where}: communicator.${k} must be a function`);
  }
  return c;
}
