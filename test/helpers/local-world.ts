// local-world.ts: N communicators in one process whose collectives meet in JavaScript, for trainer tests of
// multi-rank behaviour without MPI: N trainers run concurrently (their ops share the addon's worker), each
// collective waits until every rank has made its k-th call, then computes the result for all of them in rank
// order (sums in float64, written back in the buffer's type, as MPI's sum of two f32 values is exact then
// rounded). `tamper` lets a test change one rank's contribution before the reduction (a NaN on one rank).
import { Tensor } from '../../lib/core/tensor';
import type { CommBuffer, Communicator, ReduceOp } from '../../lib/dist/communicator';

type Values = Float64Array;

function read(b: CommBuffer): Values {
  if (b instanceof Tensor) return Float64Array.from(b.toFloat32());
  if (b instanceof BigInt64Array) return Float64Array.from(b, Number);
  return Float64Array.from(b as ArrayLike<number>);
}

function write(b: CommBuffer, v: Values): void {
  if (b instanceof Tensor) b.copyFrom(Float32Array.from(v));
  else if (b instanceof BigInt64Array) b.set(Array.from(v, (x) => BigInt(x)));
  else (b as Float32Array).set(v);
}

export interface LocalCall {
  kind: 'allReduce' | 'reduceScatter' | 'allGather' | 'broadcast' | 'barrier';
  /** The k-th collective of the run (0-based, the same on every rank). */
  index: number;
  buffer?: CommBuffer;
}

export interface LocalWorldOptions {
  /** Called on each rank's buffer before an allReduce combines them; may change it. */
  tamper?: (rank: number, call: LocalCall, values: Values) => void;
}

/** `n` communicators that reduce among themselves in this process. */
export function localWorld(n: number, options: LocalWorldOptions = {}): Communicator[] & { calls: LocalCall[] } {
  const pending = new Map<number, { args: { a?: CommBuffer; b?: CommBuffer; op?: ReduceOp; root?: number }[]; kind: LocalCall['kind']; done: (() => void)[] }>();
  const counters = new Array<number>(n).fill(0);
  const calls: LocalCall[] = [];

  const join = (rank: number, kind: LocalCall['kind'], args: { a?: CommBuffer; b?: CommBuffer; op?: ReduceOp; root?: number }): Promise<void> => {
    const index = counters[rank]++;
    let slot = pending.get(index);
    if (!slot) pending.set(index, (slot = { args: [], kind, done: [] }));
    if (slot.kind !== kind) throw new Error(`local world: rank ${rank}'s collective #${index} is ${kind}, another rank's is ${slot.kind}`);
    slot.args[rank] = args;
    return new Promise<void>((resolve) => {
      slot!.done.push(resolve);
      if (slot!.done.length < n) return;
      pending.delete(index);
      calls.push({ kind, index, buffer: slot!.args[0].a });
      run(kind, index, slot!.args);
      for (const d of slot!.done) d();
    });
  };

  const run = (kind: LocalCall['kind'], index: number, args: { a?: CommBuffer; b?: CommBuffer; op?: ReduceOp; root?: number }[]) => {
    if (kind === 'barrier') return;
    if (kind === 'broadcast') {
      const v = read(args[args[0].root!].a!);
      for (const x of args) write(x.a!, v);
      return;
    }
    if (kind === 'allGather') {
      const parts = args.map((x) => read(x.b!));
      const all = new Float64Array(parts.reduce((s, p) => s + p.length, 0));
      let o = 0;
      for (const p of parts) {
        all.set(p, o);
        o += p.length;
      }
      for (const x of args) write(x.a!, all);
      return;
    }
    const src = kind === 'allReduce' ? args.map((x) => x.a!) : args.map((x) => x.b!);
    const values = src.map((b, rank) => {
      const v = read(b);
      options.tamper?.(rank, { kind, index, buffer: b }, v);
      return v;
    });
    const op = args[0].op!;
    const out = values[0].slice();
    for (let r = 1; r < n; r++) {
      for (let i = 0; i < out.length; i++) {
        const x = values[r][i];
        out[i] = op === 'max' ? Math.max(out[i], x) : op === 'min' ? Math.min(out[i], x) : out[i] + x;
      }
    }
    if (op === 'mean') for (let i = 0; i < out.length; i++) out[i] /= n;
    if (kind === 'allReduce') for (const x of args) write(x.a!, out);
    else args.forEach((x, r) => write(x.a!, out.subarray((r * out.length) / n, ((r + 1) * out.length) / n)));
  };

  const comms = Array.from({ length: n }, (_, rank): Communicator => ({
    rank,
    worldSize: n,
    localRank: rank,
    allReduce: (buf, op) => join(rank, 'allReduce', { a: buf, op }),
    reduceScatter: (out, inp, op) => join(rank, 'reduceScatter', { a: out, b: inp, op }),
    allGather: (out, inp) => join(rank, 'allGather', { a: out, b: inp }),
    broadcast: (buf, root) => join(rank, 'broadcast', { a: buf, root }),
    barrier: () => join(rank, 'barrier', {}),
    abort: (reason) => {
      throw new Error(`local world: rank ${rank} aborted: ${reason}`);
    },
  }));
  return Object.assign(comms, { calls });
}
