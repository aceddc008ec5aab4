// nccl-child.ts: the one rank of gpu-checks.ts's NCCL check, started by `mpirun -np 1` (a world of one MPI
// rank, so its collectives really go through MpiCommunicator and, on CUDA tensors, NCCL: one GPU cannot host
// two NCCL ranks). It prints one JSON line, {"results": [{"ok": boolean, "message": string}, ...]}, that the
// check relays. In a build with NCCL: every collective on CUDA tensors (f32, bf16, i32) against the same
// collective on CPU tensors through MPI, with ops queued before and after each one without awaiting in between
// (so the NCCL stream's ordering with the compute stream is what makes the numbers right); in a build
// without it: the refusal with the build's reason.
import { MpiCommunicator, Tensor, backendInfo, initCommunicator, ops, synchronize, type DType, type DeviceSpec } from '../lib/index';
import type { Communicator } from '../lib/index';
import { native } from '../lib/native';

interface Result {
  ok: boolean;
  message: string;
}

const N = (1 << 22) + 3; // large enough that a collective racing the compute stream would show, odd on purpose

/** Values exact in bf16 and after scaling by 8 (k/16, |k| < 256), deterministic. */
function values(n: number, salt: number): Float32Array {
  const a = new Float32Array(n);
  let s = (0x9e3779b9 ^ salt) >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = ((s >>> 8) % 511 - 255) / 16;
  }
  return a;
}

function tensorOf(data: Float32Array, dtype: DType, device: DeviceSpec): Tensor {
  return dtype === 'i32' ? Tensor.from(Int32Array.from(data, (v) => v * 16), undefined, 'i32', device) : Tensor.from(data, undefined, dtype, device);
}

function read(t: Tensor): Float64Array {
  return Float64Array.from(t.dtype === 'i32' ? t.toInt32() : t.toFloat32());
}

function firstDifference(a: Float64Array, b: Float64Array): string {
  if (a.length !== b.length) return `lengths ${a.length} and ${b.length}`;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return `element ${i}: ${a[i]} vs ${b[i]}`;
  return '';
}

type Collective = 'allReduce sum' | 'allReduce max' | 'allReduce min' | 'allReduce mean' | 'reduceScatter' | 'allGather' | 'broadcast';
const COLLECTIVES: Collective[] = ['allReduce sum', 'allReduce max', 'allReduce min', 'allReduce mean', 'reduceScatter', 'allGather', 'broadcast'];

/**
 * Runs one collective on `device` with a scale by 2 queued before it and a scale by 4 after it (floats; the
 * i32 ops have no scale), nothing awaited in between, and returns what the result buffer holds.
 */
async function run(comm: Communicator, c: Collective, dtype: DType, device: DeviceSpec, data: Float32Array): Promise<Float64Array> {
  const inp = tensorOf(data, dtype, device);
  const out = c === 'reduceScatter' || c === 'allGather' ? Tensor.zeros(dtype, [N], device) : inp;
  const scale = dtype !== 'i32';
  try {
    const queued: Promise<unknown>[] = [];
    if (scale) queued.push(ops.scaleInPlaceAsync(inp, 2));
    if (c === 'reduceScatter') queued.push(comm.reduceScatter(out, inp, 'sum'));
    else if (c === 'allGather') queued.push(comm.allGather(out, inp));
    else if (c === 'broadcast') queued.push(comm.broadcast(out, 0));
    else queued.push(comm.allReduce(out, c.slice('allReduce '.length) as 'sum' | 'max' | 'min' | 'mean'));
    if (scale) queued.push(ops.scaleInPlaceAsync(out, 4));
    await Promise.all(queued);
    return read(out);
  } finally {
    if (out !== inp) out.dispose();
    inp.dispose();
  }
}

async function main(): Promise<void> {
  const results: Result[] = [];
  const ok = (condition: boolean, message: string) => results.push({ ok: condition, message });
  const comm = initCommunicator({ timeoutMs: 120_000 });
  ok(comm instanceof MpiCommunicator && comm.worldSize === 1, `an MPI world of one (worldSize ${comm.worldSize}, ${comm.constructor.name})`);
  const device: DeviceSpec = `cuda:${comm.localRank}`;
  const mpi = backendInfo().mpi;
  try {
    if (!mpi.nccl) {
      const t = Tensor.zeros('f32', [4], device);
      try {
        await comm.allReduce(t, 'sum');
        ok(false, 'a build without NCCL refuses CUDA tensors (it accepted one)');
      } catch (e) {
        const m = (e as Error).message;
        ok(m.includes('need NCCL, which this build lacks') && m.includes(mpi.ncclReason ?? '?'), `a build without NCCL refuses CUDA tensors with its reason: ${m}`);
      } finally {
        t.dispose();
      }
      return;
    }
    for (const dtype of ['f32', 'bf16', 'i32'] as DType[]) {
      for (const c of COLLECTIVES) {
        if (dtype === 'i32' && c === 'allReduce mean') continue; // refused for integers, before any communication
        const data = values(N, COLLECTIVES.indexOf(c));
        const gpu = await run(comm, c, dtype, device, data);
        synchronize(device);
        // The CPU reference: MPI moves f32 and i32 CPU tensors; a bf16 result is the f32 one rounded, and exact here.
        const cpu = await run(comm, c, dtype === 'bf16' ? 'f32' : dtype, 'cpu', data);
        const diff = firstDifference(gpu, cpu);
        ok(diff === '', `${c} on ${dtype} ${device} tensors (${N} elements, scaled before and after) equals the CPU/MPI result${diff ? `: ${diff}` : ''}`);
      }
    }
    const t = Tensor.zeros('f32', [6], device);
    try {
      await comm.allGather(new Float32Array(6), t);
      ok(false, 'a typed array beside a CUDA tensor is refused (it was accepted)');
    } catch (e) {
      const m = (e as Error).message;
      ok(/all CUDA tensors \(NCCL\) or all host memory \(MPI\)/.test(m), `a typed array beside a CUDA tensor is refused: ${m}`);
    } finally {
      t.dispose();
    }
  } finally {
    process.stdout.write(JSON.stringify({ results }) + '\n');
  }
}

main()
  .then(() => native().commFinalize()) // destroys the NCCL communicator, then MPI_Finalize
  .catch((e) => {
    process.stdout.write(JSON.stringify({ results: [{ ok: false, message: `nccl-child: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}` }] }) + '\n');
    process.exitCode = 1;
  });
