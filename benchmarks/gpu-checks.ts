// gpu-checks.ts: the CUDA backend's checks, as a list of named async functions. Each op runs forward and
// backward on the GPU against the same op on the CPU and against the float64 references (test/helpers), on
// fresh seeded random inputs with odd sizes (T not a multiple of 64, vocabularies not a multiple of 128, 3 and
// 5 heads, head dims 40, 64 and 128, attention up to T 600), at the bounds of test/ops/*.test.ts (bf16 2e-2,
// f32 1e-5, exact where the CPU op is exact). Then bad ids and targets (the CPU op's very error), mixed-device
// arguments (the one-device TypeError), memory (allocated back to the start after dispose, the caching
// allocator reused, no cudaMalloc in steady-state training), and training through the public Trainer on CUDA
// against the CPU, checkpoints resumed across devices included.
//
// Two runners share the list: test/cuda/ops.test.ts (tap: one subtest per check, skipped with the reason
// where there is no GPU) and this file's main (plain node, for GPU machines without tap; scripts/gpu-check.sh):
//
//   node dist/benchmarks/gpu-checks.js                 a line per check, exit 1 when any fails
//   node dist/benchmarks/gpu-checks.js --json          the JSON report on stdout (lines on stderr)
//   options: --out FILE (also write the JSON there), --only NAME,NAME (substrings of check names), --list
//   PAJAMA_TEST_SEED=N replays a run's random inputs (its seed is printed and in the report).
// Without a usable GPU it exits 2 with the reason.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  AdamW,
  MptModel,
  OP_NAMES,
  Tensor,
  Trainer,
  WorldOfOne,
  alibiSlopes,
  backendInfo,
  clipGradNormAsync,
  cudaMemoryStats,
  emptyCudaCache,
  mptConfig,
  ops,
  synchronize,
  type DType,
  type DeviceSpec,
  type StepMetrics,
} from '../lib/index';
import { bf16Bits, quantize, randInt, randn, relErr, roundBf16, seed, tensorOf, toF64, TOL } from '../test/helpers/reference';
import * as ref from '../test/helpers/op-references';
import { tinyConfig, writeTinyShard } from '../test/helpers/tiny-run';
import { benchCli } from './cli';

/** Where the checks' assertions go: tap's t, or the plain runner's collector. */
export interface CheckLog {
  ok(condition: boolean, message: string): void;
  comment(message: string): void;
}

export interface GpuCheck {
  name: string;
  run(log: CheckLog): Promise<void>;
}

/** The device every check runs on. */
export const DEVICE: DeviceSpec = 'cuda';

/** Why the CUDA checks cannot run here (no CUDA build, no driver, no GPU), or null when they can. */
export function cudaUnavailable(): string | null {
  const cuda = backendInfo().cuda;
  if (cuda.available) return null;
  return cuda.reason ?? (cuda.compiled ? 'no usable CUDA device' : 'this build of the addon has no CUDA backend');
}

// ---- helpers ----

type FloatType = 'f32' | 'bf16';

const fmt = (e: number) => e.toExponential(2);

/** The tensors a check makes, disposed when it ends (also when it fails), so checks never leak into each other. */
class Tensors {
  #all: Tensor[] = [];
  keep<T extends Tensor>(t: T): T {
    this.#all.push(t);
    return t;
  }
  zeros(dtype: DType, shape: number[], device: DeviceSpec = 'cpu', fill?: number): Tensor {
    const t = this.keep(Tensor.zeros(dtype, shape, device));
    if (fill !== undefined) t.fill(fill);
    return t;
  }
  /** x rounded to dtype as a CPU tensor and its CUDA copy, and the float64 values they hold. */
  pair(x: Float64Array, shape: number[], dtype: DType): { cpu: Tensor; gpu: Tensor; x: Float64Array } {
    const { t, x: q } = tensorOf(x, shape, dtype);
    this.keep(t);
    return { cpu: t, gpu: this.keep(t.to(DEVICE)), x: q };
  }
  /** The same zeros (or fill) on both devices. */
  zerosPair(dtype: DType, shape: number[], fill?: number): { cpu: Tensor; gpu: Tensor } {
    return { cpu: this.zeros(dtype, shape, 'cpu', fill), gpu: this.zeros(dtype, shape, DEVICE, fill) };
  }
  ints(v: Int32Array, shape?: number[]): { cpu: Tensor; gpu: Tensor } {
    const cpu = this.keep(Tensor.from(v, shape ?? [v.length]));
    return { cpu, gpu: this.keep(cpu.to(DEVICE)) };
  }
  dispose(): void {
    for (const t of this.#all.reverse()) t.dispose();
    this.#all = [];
  }
}

async function withTensors(fn: (ts: Tensors) => Promise<void>): Promise<void> {
  const ts = new Tensors();
  try {
    await fn(ts);
  } finally {
    ts.dispose();
  }
}

/** The GPU result against the float64 reference and against the CPU op's result, each within `bound`. */
function agree(log: CheckLog, what: string, gpu: Tensor, cpu: Tensor, want: Float64Array, bound: number): void {
  const g = toF64(gpu);
  const eRef = relErr(g, want);
  const eCpu = relErr(g, toF64(cpu));
  log.ok(eRef <= bound, `${what}: CUDA vs float64 rel err ${fmt(eRef)} (bound ${bound})`);
  log.ok(eCpu <= bound, `${what}: CUDA vs CPU rel err ${fmt(eCpu)} (bound ${bound})`);
}

/** The raw bits of a tensor (any dtype), for exact comparisons (NaN payloads and -0 included). */
function bitsOf(t: Tensor): Uint32Array | Uint16Array {
  if (t.dtype === 'bf16') return t.toBf16Bits();
  if (t.dtype === 'i32') return new Uint32Array(t.toInt32().buffer);
  return new Uint32Array(t.toFloat32().buffer);
}

function mismatches(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Math.max(a.length, b.length);
  let n = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) n++;
  return n;
}

function sameBits(log: CheckLog, what: string, gpu: Tensor, cpu: Tensor): void {
  const n = mismatches(bitsOf(gpu), bitsOf(cpu));
  log.ok(n === 0, `${what}: CUDA equals CPU bit for bit (${n} of ${gpu.numel} elements differ)`);
}

/** The error `fn` throws (or the rejection of the promise it returns), or null. */
async function errorOf(fn: () => unknown): Promise<(Error & { code?: string }) | null> {
  try {
    await fn();
    return null;
  } catch (e) {
    return e as Error & { code?: string };
  }
}

/** The CUDA call fails exactly as the CPU call does: same class, code and message. */
async function sameError(log: CheckLog, what: string, gpuCall: () => unknown, cpuCall: () => unknown): Promise<void> {
  const c = await errorOf(cpuCall);
  const g = await errorOf(gpuCall);
  if (!c) {
    log.ok(false, `${what}: the CPU op was expected to fail and did not`);
    return;
  }
  log.ok(
    g !== null && g.name === c.name && g.code === c.code && g.message === c.message,
    `${what}: CUDA fails like the CPU (${c.name} ${c.code ?? ''} "${c.message}")` + (g ? `; CUDA: ${g.name} ${g.code ?? ''} "${g.message}"` : '; CUDA did not fail'),
  );
}

// ---- op checks ----

function geluCheck(dtype: FloatType): GpuCheck {
  return {
    name: `gelu ${dtype}`,
    run: (log) =>
      withTensors(async (ts) => {
        for (const n of [1, 7, 130, 4099, (1 << 20) + 3]) {
          const inp = ts.pair(randn(n, 2), [n], dtype);
          const dout = ts.pair(randn(n), [n], dtype);
          const out = ts.zerosPair(dtype, [n]);
          const dinp = ts.zerosPair(dtype, [n], 7);
          for (const d of ['cpu', 'gpu'] as const) {
            ops.geluForward(out[d], inp[d]);
            await ops.geluBackwardAsync(dinp[d], inp[d], dout[d]);
          }
          agree(log, `n=${n} forward`, out.gpu, out.cpu, inp.x.map(ref.geluRef), TOL[dtype]);
          agree(log, `n=${n} backward`, dinp.gpu, dinp.cpu, inp.x.map((v, i) => dout.x[i] * ref.dgeluRef(v)), TOL[dtype]);
          // in place (out may be inp)
          const inPlace = ts.keep(inp.gpu.to(DEVICE));
          ops.geluForward(inPlace, inPlace);
          agree(log, `n=${n} forward in place`, inPlace, out.cpu, inp.x.map(ref.geluRef), TOL[dtype]);
        }
      }),
  };
}

function embeddingCheck(dtype: FloatType): GpuCheck {
  return {
    name: `embedding ${dtype}`,
    run: (log) =>
      withTensors(async (ts) => {
        const sizes: [n: number, c: number, v: number, limit: number][] = [
          [1, 32, 37, 37],
          [7, 48, 37, 30], // vocabLimit below V
          [129, 96, 37, 37], // many repeated ids
          [130, 130, 1001, 1001],
          [4099, 64, 5, 5], // thousands of rows onto 5: the backward's accumulation under contention
        ];
        for (const [n, c, v, limit] of sizes) {
          const at = `N=${n} C=${c} V=${v} vocabLimit=${limit}`;
          const wte = ts.pair(randn(v * c), [v, c], dtype);
          const dout = ts.pair(randn(n * c), [n, c], dtype);
          const dwte = ts.pair(randn(v * c), [v, c], 'f32');
          const idsArr = randInt(n, limit);
          const ids = ts.ints(idsArr);
          const out = ts.zerosPair(dtype, [n, c], 7);
          ops.embeddingForward(out.cpu, ids.cpu, wte.cpu, limit);
          await ops.embeddingForwardAsync(out.gpu, ids.gpu, wte.gpu, limit);
          const e = relErr(toF64(out.gpu), ref.gatherRef(idsArr, wte.x, c));
          log.ok(e === 0, `${at} forward is an exact copy of the rows (rel err ${fmt(e)})`);
          sameBits(log, `${at} forward`, out.gpu, out.cpu);
          // += twice (once async): dwte = d0 + 2 * scatter(dout)
          for (const d of ['cpu', 'gpu'] as const) {
            ops.embeddingBackward(dwte[d], ids[d], dout[d]);
            await ops.embeddingBackwardAsync(dwte[d], ids[d], dout[d]);
          }
          const want = Float64Array.from(dwte.x);
          ref.scatterAddRef(want, idsArr, dout.x, c);
          ref.scatterAddRef(want, idsArr, dout.x, c);
          agree(log, `${at} backward (accumulated twice)`, dwte.gpu, dwte.cpu, want, TOL.f32);
        }
      }),
  };
}

const embeddingBadIds: GpuCheck = {
  name: 'embedding bad ids',
  run: (log) =>
    withTensors(async (ts) => {
      const [n, c, v] = [9, 32, 37];
      const wte = ts.pair(randn(v * c), [v, c], 'f32');
      const idsArr = randInt(n, 30);
      idsArr[4] = 33; // a row of wte, but at or above vocabLimit 30
      const ids = ts.ints(idsArr);
      const out = ts.zerosPair('f32', [n, c], -1);
      await sameError(log, 'forward, id above vocabLimit', () => ops.embeddingForward(out.gpu, ids.gpu, wte.gpu, 30), () => ops.embeddingForward(out.cpu, ids.cpu, wte.cpu, 30));
      await sameError(log, 'forward async', () => ops.embeddingForwardAsync(out.gpu, ids.gpu, wte.gpu, 30), () => ops.embeddingForwardAsync(out.cpu, ids.cpu, wte.cpu, 30));
      log.ok(out.gpu.toFloat32().every((x) => x === -1), 'forward: out untouched after the refusal');
      const bad = Int32Array.from(idsArr);
      bad[4] = 2;
      bad[7] = -3;
      const ids2 = ts.ints(bad);
      const dwte = ts.zerosPair('f32', [v, c]);
      const dout = ts.zerosPair('f32', [n, c], 1);
      await sameError(log, 'backward, negative id', () => ops.embeddingBackward(dwte.gpu, ids2.gpu, dout.gpu), () => ops.embeddingBackward(dwte.cpu, ids2.cpu, dout.cpu));
      log.ok(dwte.gpu.toFloat32().every((x) => x === 0), 'backward: dwte untouched after the refusal');
      bad[7] = v;
      const ids3 = ts.ints(bad);
      await sameError(log, 'backward async, id == V', () => ops.embeddingBackwardAsync(dwte.gpu, ids3.gpu, dout.gpu), () => ops.embeddingBackwardAsync(dwte.cpu, ids3.cpu, dout.cpu));
      // the device still works after refusals
      const good = ts.ints(randInt(n, 30));
      ops.embeddingForward(out.cpu, good.cpu, wte.cpu, 30);
      ops.embeddingForward(out.gpu, good.gpu, wte.gpu, 30);
      sameBits(log, 'a valid call after the refusals', out.gpu, out.cpu);
    }),
};

function layerNormCheck(dtype: FloatType): GpuCheck {
  return {
    name: `layernorm ${dtype}`,
    run: (log) =>
      withTensors(async (ts) => {
        const eps = 1e-5;
        for (const [n, c] of [
          [1, 40],
          [7, 96],
          [130, 40],
          [130, 1000],
          [33, 2048],
          [5, 4099],
        ]) {
          const at = `N=${n} C=${c}`;
          const inp = ts.pair(randn(n * c).map((v) => v + 0.5), [n, c], dtype);
          const weight = ts.pair(randn(c).map((v) => 1 + 0.5 * v), [c], dtype);
          const dout = ts.pair(randn(n * c), [n, c], dtype);
          const dweight = ts.pair(randn(c), [c], 'f32');
          const out = ts.zerosPair(dtype, [n, c]);
          const mean = ts.zerosPair('f32', [n]);
          const rstd = ts.zerosPair('f32', [n]);
          const dinp = ts.zerosPair(dtype, [n, c], 123); // overwritten, never read
          for (const d of ['cpu', 'gpu'] as const) {
            await ops.layerNormForwardAsync(out[d], mean[d], rstd[d], inp[d], weight[d], eps);
            ops.layerNormBackward(dinp[d], dweight[d], dout[d], inp[d], weight[d], mean[d], rstd[d]);
            await ops.layerNormBackwardAsync(dinp[d], dweight[d], dout[d], inp[d], weight[d], mean[d], rstd[d]);
          }
          const f = ref.layerNormForwardRef(inp.x, weight.x, n, c, eps);
          const b = ref.layerNormBackwardRef(dout.x, inp.x, weight.x, n, c, eps);
          agree(log, `${at} out`, out.gpu, out.cpu, f.out, TOL[dtype]);
          agree(log, `${at} mean`, mean.gpu, mean.cpu, f.mean, TOL.f32);
          agree(log, `${at} rstd`, rstd.gpu, rstd.cpu, f.rstd, TOL.f32);
          agree(log, `${at} dinp (overwritten: called twice)`, dinp.gpu, dinp.cpu, b.dinp, TOL[dtype]);
          agree(log, `${at} dweight (accumulated twice)`, dweight.gpu, dweight.cpu, dweight.x.map((v, j) => v + 2 * b.dweight[j]), TOL.f32);
        }
      }),
  };
}

function matmulCheck(dtype: FloatType): GpuCheck {
  return {
    name: `matmul ${dtype}`,
    run: (log) =>
      withTensors(async (ts) => {
        const sizes: [lead: number[], c: number, oc: number][] = [
          [[1], 32, 37],
          [[7], 48, 96],
          [[130], 96, 130],
          [[3, 5], 200, 1000],
          [[257], 2048, 129],
        ];
        for (const [lead, c, oc] of sizes) {
          const n = lead.reduce((a, b) => a * b, 1);
          const at = `[${lead}] C=${c} OC=${oc}`;
          const inp = ts.pair(randn(n * c), [...lead, c], dtype);
          const weight = ts.pair(randn(oc * c, 1 / Math.sqrt(c)), [oc, c], dtype);
          const dout = ts.pair(randn(n * oc), [...lead, oc], dtype);
          const dweight = ts.pair(randn(oc * c), [oc, c], 'f32');
          const out = ts.zerosPair(dtype, [...lead, oc], Number.NaN); // overwritten, never read
          const dinp = ts.zerosPair(dtype, [...lead, c], Number.NaN);
          for (const d of ['cpu', 'gpu'] as const) {
            await ops.matmulForwardAsync(out[d], inp[d], weight[d]);
            ops.matmulBackward(dinp[d], dweight[d], dout[d], inp[d], weight[d]);
            await ops.matmulBackwardAsync(dinp[d], dweight[d], dout[d], inp[d], weight[d]);
          }
          agree(log, `${at} forward`, out.gpu, out.cpu, ref.matmulRef(inp.x, weight.x, n, oc, c, false, true), TOL[dtype]);
          agree(log, `${at} dinp`, dinp.gpu, dinp.cpu, ref.matmulRef(dout.x, weight.x, n, c, oc, false, false), TOL[dtype]);
          const dw = ref.matmulRef(dout.x, inp.x, oc, c, n, true, false).map((v, i) => dweight.x[i] + 2 * v);
          agree(log, `${at} dweight (accumulated twice)`, dweight.gpu, dweight.cpu, dw, TOL.f32);
        }
        // a null output is skipped
        const [n, c, oc] = [5, 40, 24];
        const inp = ts.pair(randn(n * c), [n, c], dtype);
        const weight = ts.pair(randn(oc * c), [oc, c], dtype);
        const dout = ts.pair(randn(n * oc), [n, oc], dtype);
        const dweight = ts.zerosPair('f32', [oc, c]);
        const dinp = ts.zerosPair(dtype, [n, c]);
        ops.matmulBackward(null, dweight.gpu, dout.gpu, inp.gpu, weight.gpu);
        ops.matmulBackward(null, dweight.cpu, dout.cpu, inp.cpu, weight.cpu);
        agree(log, 'dweight only (dinp null)', dweight.gpu, dweight.cpu, ref.matmulRef(dout.x, inp.x, oc, c, n, true, false), TOL.f32);
        dweight.gpu.fill(0);
        await ops.matmulBackwardAsync(dinp.gpu, null, dout.gpu, inp.gpu, weight.gpu);
        ops.matmulBackward(dinp.cpu, null, dout.cpu, inp.cpu, weight.cpu);
        agree(log, 'dinp only (dweight null)', dinp.gpu, dinp.cpu, ref.matmulRef(dout.x, weight.x, n, c, oc, false, false), TOL[dtype]);
        log.ok(dweight.gpu.toFloat32().every((v) => v === 0), 'dweight untouched when null');
      }),
  };
}

function norm(x: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i] * x[i];
  return Math.sqrt(s);
}

const gemmCheck: GpuCheck = {
  name: 'gemm (every transpose, dtype mix, alpha and beta)',
  run: (log) =>
    withTensors(async (ts) => {
      const sizes: [m: number, n: number, k: number][] = [
        [7, 37, 48],
        [1, 1, 1],
        [100, 530, 260],
      ];
      for (const [m, n, k] of sizes) {
        for (const abType of ['f32', 'bf16'] as const) {
          for (const cType of ['f32', 'bf16'] as const) {
            const bound = TOL[cType === 'bf16' || abType === 'bf16' ? 'bf16' : 'f32'];
            for (const transA of [false, true]) {
              for (const transB of [false, true]) {
                const at = `${abType}->${cType} M=${m} N=${n} K=${k} transA=${transA} transB=${transB}`;
                const a = ts.pair(randn(m * k), transA ? [k, m] : [m, k], abType);
                const b = ts.pair(randn(k * n), transB ? [n, k] : [k, n], abType);
                const c = ts.pair(randn(m * n), [m, n], cType);
                const [alpha, beta] = [0.5, -1.5];
                await ops.gemmAsync(c.gpu, a.gpu, b.gpu, transA, transB, alpha, beta);
                ops.gemm(c.cpu, a.cpu, b.cpu, transA, transB, alpha, beta);
                const ab = ref.matmulRef(a.x, b.x, m, n, k, transA, transB);
                const want = ab.map((v, i) => alpha * v + beta * c.x[i]);
                // error relative to the size of the two terms: alpha AB and beta C may cancel (M = N = K = 1)
                const scale = norm(want) / norm(ab.map((v, i) => Math.abs(alpha * v) + Math.abs(beta * c.x[i])));
                const eRef = relErr(toF64(c.gpu), want) * scale;
                const eCpu = relErr(toF64(c.gpu), toF64(c.cpu)) * scale;
                log.ok(eRef <= bound && eCpu <= bound, `${at}: vs float64 ${fmt(eRef)}, vs CPU ${fmt(eCpu)} (bound ${bound})`);
                c.gpu.fill(Number.NaN); // beta = 0 ignores C, even NaN
                ops.gemm(c.gpu, a.gpu, b.gpu, transA, transB, 1, 0);
                const e0 = relErr(toF64(c.gpu), ab);
                log.ok(e0 <= bound, `${at} beta=0 over NaN: rel err ${fmt(e0)}`);
              }
            }
          }
        }
      }
      for (const abType of ['f32', 'bf16'] as const) {
        for (const cType of ['f32', 'bf16'] as const) {
          const a = ts.zeros(abType, [5, 0], DEVICE);
          const b = ts.zeros(abType, [0, 7], DEVICE);
          const c = ts.pair(randn(35), [5, 7], cType);
          ops.gemm(c.gpu, a, b, false, false, 2, 0.5);
          log.ok(mismatches(toF64(c.gpu), c.x.map((v) => 0.5 * v)) === 0, `${abType}->${cType} K=0: C = beta * C`);
        }
      }
    }),
};

const residualCheck: GpuCheck = {
  name: 'residual (every dtype mix, bit for bit)',
  run: (log) =>
    withTensors(async (ts) => {
      const dtypes = ['f32', 'bf16'] as const;
      for (const outType of dtypes) {
        for (const aType of dtypes) {
          for (const bType of dtypes) {
            for (const n of [5, 33, 1000, 65537]) {
              const a = ts.pair(randn(n, 4), [n], aType);
              const b = ts.pair(randn(n), [n], bType);
              const out = ts.zerosPair(outType, [n], Number.NaN);
              await ops.residualForwardAsync(out.gpu, a.gpu, b.gpu);
              ops.residualForward(out.cpu, a.cpu, b.cpu);
              // added in f32, rounded once to the output dtype
              const want = quantize(quantize(a.x.map((v, i) => v + b.x[i]), 'f32'), outType);
              log.ok(mismatches(toF64(out.gpu), want) === 0, `${aType} + ${bType} -> ${outType} n=${n}: the f32 sum rounded once`);
            }
          }
        }
      }
      for (const dtype of dtypes) {
        const n = 3 * 5 * 48;
        const a = ts.pair(randn(n), [3, 5, 48], dtype);
        const b = ts.pair(randn(n), [n], 'f32');
        ops.residualForward(a.gpu, a.gpu, b.gpu); // a += b
        ops.residualForward(a.cpu, a.cpu, b.cpu);
        sameBits(log, `${dtype} in place (out = a)`, a.gpu, a.cpu);
      }
    }),
};

/** attentionCachedForward: a prefill (past 0: attention.cu's forward) then new positions over the cache (its own kernel). */
function attentionCachedCheck(dtype: FloatType): GpuCheck {
  return {
    name: `attention over a KV cache ${dtype}`,
    run: (log) =>
      withTensors(async (ts) => {
        // [B, past, Tq, H, D, maxLen]: decode steps, several new positions, odd head dims, a prefill alone.
        const cases: [number, number, number, number, number, number][] = [
          [1, 5, 1, 3, 64, 8],
          [2, 130, 1, 4, 64, 140],
          [2, 37, 5, 3, 40, 50],
          [1, 70, 9, 2, 128, 79],
          [1, 0, 70, 5, 64, 80],
        ];
        for (const [B, past, Tq, H, D, L] of cases) {
          const at = `B=${B} past=${past} Tq=${Tq} H=${H} D=${D} maxLen=${L}`;
          const C = H * D;
          const T = past + Tq;
          const slopes = alibiSlopes(H);
          const full = ts.pair(randn(B * T * 3 * C), [B, T, 3 * C], dtype);
          const rowsOf = (t0: number, t1: number) => {
            const x = new Float64Array(B * (t1 - t0) * 3 * C);
            for (let b = 0; b < B; b++) x.set(full.x.subarray((b * T + t0) * 3 * C, (b * T + t1) * 3 * C), b * (t1 - t0) * 3 * C);
            return x;
          };
          const s = ts.keep(Tensor.from(slopes, [H], 'f32'));
          const sl = { cpu: s, gpu: ts.keep(s.to(DEVICE)) };
          const k = ts.zerosPair(dtype, [B, H, L, D]);
          const v = ts.zerosPair(dtype, [B, H, L, D]);
          const out = ts.zerosPair(dtype, [B, Tq, C], 7);
          const head = past > 0 ? ts.pair(rowsOf(0, past), [B, past, 3 * C], dtype) : null;
          const tail = ts.pair(rowsOf(past, T), [B, Tq, 3 * C], dtype);
          for (const d of ['cpu', 'gpu'] as const) {
            if (head) ops.attentionCachedForward(ts.zeros(dtype, [B, past, C], d === 'gpu' ? DEVICE : 'cpu'), k[d], v[d], head[d], sl[d], H, 0);
            await ops.attentionCachedForwardAsync(out[d], k[d], v[d], tail[d], sl[d], H, past);
          }
          const r = ref.attentionForwardRef(full.x, slopes, B, T, H, D);
          const want = new Float64Array(B * Tq * C);
          for (let b = 0; b < B; b++) want.set(r.out.subarray((b * T + past) * C, (b * T + T) * C), b * Tq * C);
          agree(log, `${at} out`, out.gpu, out.cpu, want, TOL[dtype]);
          const same = (a: Uint32Array | Uint16Array, b: Uint32Array | Uint16Array) => a.length === b.length && a.every((x, i) => x === b[i]);
          log.ok(same(bitsOf(k.gpu), bitsOf(k.cpu)) && same(bitsOf(v.gpu), bitsOf(v.cpu)), `${at}: the caches hold the CPU's bits`);
        }
      }),
  };
}

function attentionCheck(dtype: FloatType): GpuCheck {
  return {
    name: `attention ${dtype}`,
    run: (log) =>
      withTensors(async (ts) => {
        // [B, T, H, D, misaligned]: T 1, 7, 130 (two 64-row tiles and a row), 257, 600; heads 3, 5, 16; head
        // dims 40, 64, 128. Misaligned: every GPU tensor is a view one element into its buffer (bf16 D 64 then
        // leaves the tensor-core path for the FMA one, which PAJAMA_CUDA_ATTENTION=fma also forces).
        const cases: [number, number, number, number, boolean][] = [
          [2, 1, 3, 64, false],
          [2, 7, 5, 64, false],
          [1, 130, 3, 64, false],
          [2, 130, 5, 40, false],
          [1, 130, 3, 128, false],
          [1, 257, 16, 64, false],
          [1, 600, 3, 128, false],
          [1, 600, 5, 40, false],
          [1, 130, 3, 64, true],
        ];
        /** A GPU tensor of `shape` one element into a larger buffer, holding `from` (a CPU tensor) or `fill`. */
        const offsetView = (dt: DType, shape: number[], from: Tensor | null, fill = 0): Tensor => {
          const n = shape.reduce((a, b) => a * b, 1);
          const buf = ts.zeros(dt, [n + 1], DEVICE, fill);
          const v = ts.keep(buf.view(1, shape));
          if (from) ops.copy(v, from);
          return v;
        };
        for (const [B, T, H, D, misaligned] of cases) {
          const at = `B=${B} T=${T} H=${H} D=${D}${misaligned ? ' (views 1 element into their buffers)' : ''}`;
          const C = H * D;
          const slopes = alibiSlopes(H);
          const qkv = ts.pair(randn(B * T * 3 * C), [B, T, 3 * C], dtype);
          const dout = ts.pair(randn(B * T * C), [B, T, C], dtype);
          const s = ts.keep(Tensor.from(slopes, [H], 'f32'));
          const sl = { cpu: s, gpu: ts.keep(s.to(DEVICE)) };
          const out = ts.zerosPair(dtype, [B, T, C]);
          const lse = ts.zerosPair('f32', [B, H, T]);
          const dqkv = ts.zerosPair(dtype, [B, T, 3 * C], 1); // overwritten, never accumulated
          if (misaligned) {
            qkv.gpu = offsetView(dtype, [B, T, 3 * C], qkv.cpu);
            dout.gpu = offsetView(dtype, [B, T, C], dout.cpu);
            out.gpu = offsetView(dtype, [B, T, C], null);
            lse.gpu = offsetView('f32', [B, H, T], null);
            dqkv.gpu = offsetView(dtype, [B, T, 3 * C], null, 1);
          }
          for (const d of ['cpu', 'gpu'] as const) {
            ops.attentionForward(out[d], lse[d], qkv[d], sl[d], H);
            await ops.attentionBackwardAsync(dqkv[d], dout[d], qkv[d], out[d], lse[d], sl[d], H);
          }
          const r = ref.attentionRef(qkv.x, dout.x, slopes, B, T, H, D);
          agree(log, `${at} out`, out.gpu, out.cpu, r.out, TOL[dtype]);
          agree(log, `${at} lse`, lse.gpu, lse.cpu, r.lse, TOL[dtype]);
          agree(log, `${at} dqkv`, dqkv.gpu, dqkv.cpu, r.dqkv, TOL[dtype]);
        }
      }),
  };
}

const IGNORE = -100;

function crossEntropyCheck(dtype: FloatType): GpuCheck {
  return {
    name: `crossEntropy ${dtype}`,
    run: (log) =>
      withTensors(async (ts) => {
        // [N, C, V, Vp]: vocabularies 33, 1000 and 5003 (none a multiple of 128), padded rows that must
        // never take part, several row chunks
        const cases: [number, number, number, number][] = [
          [1, 32, 33, 40],
          [7, 64, 33, 40],
          [130, 64, 1000, 1024],
          [1100, 48, 1000, 1024],
          [300, 64, 5003, 5120],
        ];
        for (const [N, C, V, Vp] of cases) {
          const at = `N=${N} C=${C} V=${V} Vp=${Vp}`;
          const gradScale = 1 / (N + 1);
          const wRaw = randn(Vp * C, 0.3);
          // padded rows are large: if they took part in the softmax they would dominate it
          for (let j = V; j < Vp; j++) for (let k = 0; k < C; k++) wRaw[j * C + k] = 25 * Math.sign(wRaw[j * C + k] || 1);
          const inp = ts.pair(randn(N * C), [N, C], dtype);
          const wte = ts.pair(wRaw, [Vp, C], dtype);
          const tg = randInt(N, V);
          for (let i = 3; i < N; i += 5) tg[i] = IGNORE;
          tg[0] = V - 1;
          const targets = ts.ints(tg);
          const r = ref.crossEntropyRef(inp.x, wte.x, tg, C, V, Vp, IGNORE, gradScale);
          const losses = ts.zerosPair('f32', [N]);
          const totals = { cpu: 0, gpu: 0 };
          for (const d of ['cpu', 'gpu'] as const) totals[d] = ops.crossEntropyForward(losses[d], inp[d], wte[d], targets[d], V, IGNORE);
          agree(log, `${at} forward losses`, losses.gpu, losses.cpu, r.losses, TOL.f32);
          const eTotal = Math.abs(totals.gpu - r.total) / r.total;
          log.ok(eTotal <= TOL.f32, `${at} forward total ${totals.gpu} vs float64 ${r.total} (rel err ${fmt(eTotal)})`);

          const losses2 = ts.zerosPair('f32', [N]);
          const dinp = ts.zerosPair(dtype, [N, C], 7); // overwritten, not accumulated
          const dwte = ts.zerosPair('f32', [Vp, C], 0.5); // accumulated into
          const totals2 = { cpu: 0, gpu: 0 };
          for (const d of ['cpu', 'gpu'] as const) {
            totals2[d] = await ops.crossEntropyForwardBackwardAsync(losses2[d], dinp[d], dwte[d], inp[d], wte[d], targets[d], V, IGNORE, gradScale);
          }
          log.ok(Math.abs(totals2.gpu - totals.gpu) <= 1e-6 * Math.abs(totals.gpu), `${at} forward+backward total ${totals2.gpu} equals forward's ${totals.gpu}`);
          agree(log, `${at} forward+backward losses`, losses2.gpu, losses2.cpu, r.losses, TOL.f32);
          agree(log, `${at} dinp`, dinp.gpu, dinp.cpu, r.dinp, TOL[dtype]);
          const dwteWant = r.dwte.map((v, i) => (i < V * C ? v + 0.5 : 0.5));
          agree(log, `${at} dwte (+= onto 0.5)`, dwte.gpu, dwte.cpu, dwteWant, TOL[dtype]);
          const dw = dwte.gpu.toFloat32();
          log.ok(dw.subarray(V * C).every((v) => v === 0.5), `${at} padded rows of dwte untouched`);
          const di = dinp.gpu.toFloat32();
          const l2 = losses2.gpu.toFloat32();
          const ignored = [...tg.keys()].filter((i) => tg[i] === IGNORE);
          log.ok(ignored.every((i) => l2[i] === 0 && di.subarray(i * C, (i + 1) * C).every((v) => v === 0)), `${at} ignored rows: loss 0 and dinp 0`);
          // a second call overwrites dinp and accumulates dwte again
          ops.crossEntropyForwardBackward(losses2.gpu, dinp.gpu, dwte.gpu, inp.gpu, wte.gpu, targets.gpu, V, IGNORE, gradScale);
          const e2 = relErr(toF64(dinp.gpu), r.dinp);
          log.ok(e2 <= TOL[dtype], `${at} dinp after a second call (overwritten) rel err ${fmt(e2)}`);
          const eAcc = relErr(toF64(dwte.gpu), r.dwte.map((v, i) => (i < V * C ? 2 * v + 0.5 : 0.5)));
          log.ok(eAcc <= TOL[dtype], `${at} dwte after a second call (accumulated) rel err ${fmt(eAcc)}`);
        }
      }),
  };
}

const crossEntropyBadTargets: GpuCheck = {
  name: 'crossEntropy bad targets',
  run: (log) =>
    withTensors(async (ts) => {
      const [N, C, V, Vp] = [4, 32, 33, 40];
      const inp = ts.pair(randn(N * C), [N, C], 'f32');
      const wte = ts.pair(randn(Vp * C), [Vp, C], 'f32');
      const losses = ts.zerosPair('f32', [N], 5);
      const dinp = ts.zerosPair('f32', [N, C]);
      const dwte = ts.zerosPair('f32', [Vp, C], 5);
      const over = ts.ints(Int32Array.from([0, 1, 33, 2]));
      const neg = ts.ints(Int32Array.from([0, -7, 1, 2]));
      await sameError(log, 'forward, target == V', () => ops.crossEntropyForward(losses.gpu, inp.gpu, wte.gpu, over.gpu, V, IGNORE), () => ops.crossEntropyForward(losses.cpu, inp.cpu, wte.cpu, over.cpu, V, IGNORE));
      await sameError(
        log,
        'forward+backward, target == V',
        () => ops.crossEntropyForwardBackward(losses.gpu, dinp.gpu, dwte.gpu, inp.gpu, wte.gpu, over.gpu, V, IGNORE, 1),
        () => ops.crossEntropyForwardBackward(losses.cpu, dinp.cpu, dwte.cpu, inp.cpu, wte.cpu, over.cpu, V, IGNORE, 1),
      );
      await sameError(
        log,
        'forward+backward async, negative target',
        () => ops.crossEntropyForwardBackwardAsync(losses.gpu, dinp.gpu, dwte.gpu, inp.gpu, wte.gpu, neg.gpu, V, IGNORE, 1),
        () => ops.crossEntropyForwardBackwardAsync(losses.cpu, dinp.cpu, dwte.cpu, inp.cpu, wte.cpu, neg.cpu, V, IGNORE, 1),
      );
      log.ok(losses.gpu.toFloat32().every((v) => v === 5) && dwte.gpu.toFloat32().every((v) => v === 5), 'nothing written before the refusal');
      // -100 is an ordinary (out of range) target when ignoreIndex is -1
      const hundred = ts.ints(Int32Array.from([0, 1, -100, 2]));
      await sameError(log, 'ignoreIndex -1, target -100', () => ops.crossEntropyForward(losses.gpu, inp.gpu, wte.gpu, hundred.gpu, V, -1), () => ops.crossEntropyForward(losses.cpu, inp.cpu, wte.cpu, hundred.cpu, V, -1));
    }),
};

const adamwCheck: GpuCheck = {
  name: 'adamw (five steps, decay mask, gradScale, bf16 copy)',
  run: (log) =>
    withTensors(async (ts) => {
      const h: ref.AdamWHyper = { lr: 1e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };
      const P = ref.ADAMW_ARENA_SIZE;
      const decay = new Uint8Array(P);
      for (const [o, n, d] of ref.ADAMW_LAYOUT) decay.fill(d, o, o + n);
      const segments = Int32Array.from([...ref.ADAMW_LAYOUT].reverse().flat()); // out of order: only coverage matters
      const p0 = Float64Array.from(Float32Array.from(randn(P, 0.1)));
      const pRef = Float64Array.from(p0);
      const mRef = new Float64Array(P);
      const vRef = new Float64Array(P);
      const params = ts.pair(p0, [P], 'f32');
      const grads = ts.zerosPair('f32', [P]);
      const m = ts.zerosPair('f32', [P]);
      const v = ts.zerosPair('f32', [P]);
      const pb = ts.zerosPair('bf16', [P]);
      const scales = [1, 0.5, 1, 0.25, 1];
      for (let step = 1; step <= 5; step++) {
        const g = Float64Array.from(Float32Array.from(randn(P, step === 3 ? 10 : 0.01)));
        grads.cpu.copyFrom(Float32Array.from(g));
        ops.copy(grads.gpu, grads.cpu);
        const gradScale = scales[step - 1];
        ref.adamwRef(pRef, g, mRef, vRef, decay, h, step, gradScale);
        for (const d of ['cpu', 'gpu'] as const) {
          const args = [params[d], grads[d], m[d], v[d], pb[d], segments, h.lr, h.beta1, h.beta2, h.eps, h.weightDecay, step, gradScale] as const;
          if (step === 4) await ops.adamwUpdateAsync(...args);
          else ops.adamwUpdate(...args);
        }
        // the displacement from the start (the params themselves would hide an error in the update)
        const got = toF64(params.gpu).map((x, i) => x - p0[i]);
        const eRef = relErr(got, pRef.map((x, i) => x - p0[i]));
        const eCpu = relErr(got, toF64(params.cpu).map((x, i) => x - p0[i]));
        log.ok(eRef <= TOL.f32 && eCpu <= TOL.f32, `step ${step}: params displacement vs float64 ${fmt(eRef)}, vs CPU ${fmt(eCpu)}`);
        const em = relErr(toF64(m.gpu), mRef);
        const ev = relErr(toF64(v.gpu), vRef);
        log.ok(em <= TOL.f32 && ev <= TOL.f32, `step ${step}: m rel err ${fmt(em)}, v rel err ${fmt(ev)}`);
        const pg = params.gpu.toFloat32();
        const bits = pb.gpu.toBf16Bits();
        let bad = 0;
        for (let i = 0; i < P; i++) if (bits[i] !== bf16Bits(pg[i])) bad++;
        log.ok(bad === 0, `step ${step}: paramsBf16 is bf16(params) bit for bit (${bad} differ)`);
      }
      // zero gradients: only the decoupled decay, exactly where decay = 1
      const h2: ref.AdamWHyper = { lr: 0.5, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.2 };
      const fresh = ts.pair(randn(P), [P], 'f32');
      const zero = ts.zeros('f32', [P], DEVICE);
      const m2 = ts.zeros('f32', [P], DEVICE);
      const v2 = ts.zeros('f32', [P], DEVICE);
      ops.adamwUpdate(fresh.gpu, zero, m2, v2, null, segments, h2.lr, h2.beta1, h2.beta2, h2.eps, h2.weightDecay, 1, 1);
      const after = fresh.gpu.toFloat32();
      const factor = Math.fround(1 - h2.lr * h2.weightDecay);
      let bad = 0;
      for (let i = 0; i < P; i++) if (after[i] !== (decay[i] ? Math.fround(fresh.x[i] * factor) : fresh.x[i])) bad++;
      log.ok(bad === 0, `zero gradients: p * (1 - lr wd) where decayed, unchanged elsewhere (${bad} differ)`);
    }),
};

const reduceCheck: GpuCheck = {
  name: 'sumSquares and scaleInPlace',
  run: (log) =>
    withTensors(async (ts) => {
      for (const dtype of ['f32', 'bf16'] as const) {
        for (const n of [1, 7, 129, 100003, 3000001]) {
          const x = ts.pair(randn(n, 3), [n], dtype);
          let want = 0;
          for (const v of x.x) want += v * v;
          const [sum, nonFinite] = ops.sumSquares(x.gpu);
          const e = Math.abs(sum - want) / want;
          log.ok(e <= 1e-12 && nonFinite === 0, `sumSquares ${dtype} n=${n}: ${sum} vs ${want} (rel err ${fmt(e)}), nonFinite ${nonFinite}`);
          const [asyncSum, asyncBad] = await ops.sumSquaresAsync(x.gpu);
          log.ok(Math.abs(asyncSum - want) / want <= 1e-12 && asyncBad === 0, `sumSquaresAsync ${dtype} n=${n} agrees`);
          const factor = 0.3712;
          ops.scaleInPlace(x.gpu, factor);
          ops.scaleInPlace(x.cpu, factor);
          const fr = Math.fround(factor);
          const exact = x.x.map((v) => (dtype === 'bf16' ? roundBf16(Math.fround(v * fr)) : Math.fround(v * fr)));
          log.ok(mismatches(toF64(x.gpu), exact) === 0, `scaleInPlace ${dtype} n=${n}: x * f32(factor) rounded once, bit for bit`);
        }
        const n = 40000;
        const raw = randn(n);
        raw[5] = NaN;
        raw[17000] = Infinity;
        raw[n - 1] = -Infinity;
        raw[33000] = 3.4e38; // finite in f32, Inf in bf16
        const x = ts.pair(raw, [n], dtype);
        let want = 0;
        let bad = 0;
        for (const v of x.x) {
          if (Number.isFinite(v)) want += v * v;
          else bad++;
        }
        const [sum, nonFinite] = ops.sumSquares(x.gpu);
        log.ok(nonFinite === bad && Math.abs(sum - want) / want <= 1e-12, `sumSquares ${dtype}: ${nonFinite} non-finite counted (want ${bad}), finite part ${sum} vs ${want}`);
      }
    }),
};

const castCheck: GpuCheck = {
  name: 'cast (round to nearest even, NaN and Inf, copies)',
  run: (log) =>
    withTensors(async (ts) => {
      // f32 bits -> the bf16 bits round-to-nearest-even gives
      const edge: [number, number][] = [
        [0x3f808000, 0x3f80], // tie to even (down)
        [0x3f818000, 0x3f82], // tie to even (up)
        [0x3f808001, 0x3f81],
        [0x3f807fff, 0x3f80],
        [0xbf818000, 0xbf82],
        [0x80000000, 0x8000],
        [0x00018000, 0x0002], // subnormal tie
        [0x7f800000, 0x7f80],
        [0xff800000, 0xff80],
        [0x7f7fffff, 0x7f80], // overflow to Inf
        [0x7f7f7fff, 0x7f7f],
        [0x7fc00000, 0x7fc0],
        [0x7f800001, 0x7fc0], // signalling NaN stays NaN (truncation would make it Inf)
        [0xffc00001, 0xffc0],
      ];
      const n = 17 * edge.length + 100003;
      const x = Float32Array.from(randn(n, 50));
      const bits = new Uint32Array(x.buffer);
      edge.forEach(([f], i) => (bits[17 * i] = f));
      const src = ts.keep(Tensor.from(x, [n], 'f32', DEVICE));
      const half = ts.zeros('bf16', [n], DEVICE);
      await ops.castAsync(half, src);
      const got = half.toBf16Bits();
      const byCase = new Map(edge);
      let bad = 0;
      for (let i = 0; i < n; i++) {
        const want = byCase.get(bits[i]) ?? bf16Bits(x[i]);
        if (got[i] !== want) bad++;
      }
      log.ok(bad === 0, `f32 -> bf16 rounds to nearest even, NaN stays NaN (${bad} of ${n} differ)`);
      const back = ts.zeros('f32', [n], DEVICE);
      ops.cast(back, half);
      const widened = new Uint32Array(back.toFloat32().buffer);
      bad = 0;
      for (let i = 0; i < n; i++) if (widened[i] !== (got[i] << 16) >>> 0) bad++;
      log.ok(bad === 0, `bf16 -> f32 is exact (${bad} differ)`);
      const copy = ts.zeros('f32', [n], DEVICE);
      ops.cast(copy, src);
      log.ok(mismatches(new Uint32Array(copy.toFloat32().buffer), bits) === 0, 'f32 -> f32 copies');
      const copyHalf = ts.zeros('bf16', [n], DEVICE);
      ops.cast(copyHalf, half);
      log.ok(mismatches(copyHalf.toBf16Bits(), got) === 0, 'bf16 -> bf16 copies');
    }),
};

const transfersCheck: GpuCheck = {
  name: 'transfers (to, copy, views, fill)',
  run: (log) =>
    withTensors(async (ts) => {
      for (const dtype of ['f32', 'bf16', 'i32'] as const) {
        const n = 100003;
        const host = ts.keep(dtype === 'i32' ? Tensor.from(randInt(n, 1 << 30), [n]) : tensorOf(randn(n), [n], dtype).t);
        const gpu = ts.keep(host.to(DEVICE));
        log.ok(gpu.device === 'cuda:0' && host.device === 'cpu', `${dtype}: devices reported as 'cuda:0' and 'cpu' (got ${gpu.device}, ${host.device})`);
        sameBits(log, `${dtype} to('cuda'), read back through copyTo`, gpu, host);
        sameBits(log, `${dtype} to('cpu')`, ts.keep(gpu.to('cpu')), host);
        const gpu2 = ts.zeros(dtype, [n], 'cuda:0');
        await ops.copyAsync(gpu2, gpu); // device to device
        sameBits(log, `${dtype} copy CUDA -> CUDA`, gpu2, host);
        const host2 = ts.zeros(dtype, [n]);
        ops.copy(host2, gpu2); // device to host
        sameBits(log, `${dtype} copy CUDA -> CPU`, host2, host);
        const gpu3 = ts.zeros(dtype, [n], DEVICE);
        ops.copy(gpu3, host2); // host to device
        sameBits(log, `${dtype} copy CPU -> CUDA`, gpu3, host);
        // a view at an odd offset: reads and fills touch exactly its bytes
        const [off, len] = [4097, 3001];
        const view = ts.keep(gpu2.view(off, [len]));
        sameBits(log, `${dtype} view at offset ${off}`, view, ts.keep(host.view(off, [len])));
        const fillValue = dtype === 'i32' ? -5 : 2.5;
        view.fill(fillValue);
        const fillBits = bitsOf(ts.keep(dtype === 'i32' ? Tensor.from(Int32Array.of(fillValue)) : Tensor.from(Float32Array.of(fillValue), [1], dtype)))[0];
        const all = bitsOf(gpu2);
        const orig = bitsOf(host);
        let bad = 0;
        for (let i = 0; i < n; i++) if (all[i] !== (i >= off && i < off + len ? fillBits : orig[i])) bad++;
        log.ok(bad === 0, `${dtype} fill of the view writes exactly its ${len} elements (${bad} of ${n} differ)`);
      }
      const f = ts.keep(Tensor.from(Float32Array.from([1, 2, 3]), [3], 'f32', DEVICE));
      const h = ts.zeros('bf16', [3]);
      const e = await errorOf(() => ops.copy(h, f));
      log.ok(e !== null && e.name === 'TypeError', `copy refuses a dtype mismatch (${e?.message})`);
    }),
};

// ---- mixed devices ----

type AnyOp = (...a: unknown[]) => unknown;

/** Valid CUDA arguments for every tensor op of two or more tensors (shapes tiny, values zero). */
function opArgs(ts: Tensors): Record<string, unknown[]> {
  const z = (dtype: DType, shape: number[]) => ts.zeros(dtype, shape, DEVICE);
  const [N, C, OC, V, H, D, T] = [3, 16, 8, 10, 2, 64, 4];
  return {
    geluForward: [z('f32', [8]), z('f32', [8])],
    geluBackward: [z('f32', [8]), z('f32', [8]), z('f32', [8])],
    embeddingForward: [z('f32', [N, C]), z('i32', [N]), z('f32', [V, C]), V],
    embeddingBackward: [z('f32', [V, C]), z('i32', [N]), z('f32', [N, C])],
    layerNormForward: [z('f32', [N, C]), z('f32', [N]), z('f32', [N]), z('f32', [N, C]), z('f32', [C]), 1e-5],
    layerNormBackward: [z('f32', [N, C]), z('f32', [C]), z('f32', [N, C]), z('f32', [N, C]), z('f32', [C]), z('f32', [N]), z('f32', [N])],
    matmulForward: [z('f32', [N, OC]), z('f32', [N, C]), z('f32', [OC, C])],
    matmulBackward: [z('f32', [N, C]), z('f32', [OC, C]), z('f32', [N, OC]), z('f32', [N, C]), z('f32', [OC, C])],
    gemm: [z('f32', [N, OC]), z('f32', [N, C]), z('f32', [OC, C]), false, true, 1, 0],
    residualForward: [z('f32', [8]), z('f32', [8]), z('bf16', [8])],
    attentionForward: [z('bf16', [1, T, H * D]), z('f32', [1, H, T]), z('bf16', [1, T, 3 * H * D]), z('f32', [H]), H],
    attentionBackward: [z('bf16', [1, T, 3 * H * D]), z('bf16', [1, T, H * D]), z('bf16', [1, T, 3 * H * D]), z('bf16', [1, T, H * D]), z('f32', [1, H, T]), z('f32', [H]), H],
    attentionCachedForward: [z('bf16', [1, 1, H * D]), z('bf16', [1, H, T, D]), z('bf16', [1, H, T, D]), z('bf16', [1, 1, 3 * H * D]), z('f32', [H]), H, 2],
    crossEntropyForward: [z('f32', [N]), z('f32', [N, C]), z('f32', [V, C]), z('i32', [N]), V, IGNORE],
    crossEntropyForwardBackward: [z('f32', [N]), z('f32', [N, C]), z('f32', [V, C]), z('f32', [N, C]), z('f32', [V, C]), z('i32', [N]), V, IGNORE, 1],
    adamwUpdate: [z('f32', [V]), z('f32', [V]), z('f32', [V]), z('f32', [V]), z('bf16', [V]), Int32Array.from([0, V, 1]), 1e-3, 0.9, 0.95, 1e-8, 0.1, 1, 1],
    cast: [z('bf16', [8]), z('f32', [8])],
  };
}

const mixedDevices: GpuCheck = {
  name: 'mixed-device arguments',
  run: (log) =>
    withTensors(async (ts) => {
      const table = ops as unknown as Record<string, AnyOp>;
      const cases = opArgs(ts);
      // every op of two or more tensors is covered (copy moves data between devices; the others take one
      // tensor or none)
      const exempt = ['copy', 'sumSquares', 'scaleInPlace', 'minhashSignatures', 'sortKeyIds'];
      const missing = OP_NAMES.filter((op) => !exempt.includes(op) && !(op in cases));
      log.ok(missing.length === 0, `every op of two or more tensors is checked${missing.length ? `; missing: ${missing.join(', ')} (add them to opArgs)` : ''}`);
      for (const [op, args] of Object.entries(cases)) {
        // the CUDA arguments are valid: the op runs
        const ok = await errorOf(() => table[op](...args));
        log.ok(ok === null, `${op}: all arguments on CUDA runs${ok ? ` (failed: ${ok.message})` : ''}`);
        for (let i = 0; i < args.length; i++) {
          const a = args[i];
          if (!(a instanceof Tensor)) continue;
          const mixed = [...args];
          mixed[i] = ts.zeros(a.dtype, [...a.shape]); // its CPU twin
          for (const form of [op, `${op}Async`]) {
            const e = await errorOf(() => table[form](...mixed));
            log.ok(
              e !== null && e.name === 'TypeError' && e.code === 'ERR_PAJAMA_INVALID_ARG' && e.message.includes('must be on one device') && e.message.includes(op),
              `${form} with argument #${i} on the CPU: ${e ? `${e.name} ${e.code}: ${e.message}` : 'no error'}`,
            );
          }
        }
      }
    }),
};

// ---- memory ----

const MiB = 2 ** 20;

/** What a training step touches (products, attention, the LM head with its scratch, views), plus 256 MiB. */
async function memoryWorkload(ts: Tensors): Promise<void> {
  const qkv = ts.pair(randn(2 * 130 * 3 * 192), [2, 130, 576], 'bf16');
  const out = ts.zeros('bf16', [2, 130, 192], DEVICE);
  const lse = ts.zeros('f32', [2, 3, 130], DEVICE);
  const slopes = ts.keep(Tensor.from(alibiSlopes(3), [3], 'f32', DEVICE));
  ops.attentionForward(out, lse, qkv.gpu, slopes, 3);
  const w = ts.pair(randn(1000 * 192, 0.1), [1000, 192], 'bf16');
  const rows = ts.keep(out.view(0, [260, 192]));
  const losses = ts.zeros('f32', [260], DEVICE);
  const dinp = ts.zeros('bf16', [260, 192], DEVICE);
  const dwte = ts.zeros('f32', [1000, 192], DEVICE);
  const tg = ts.ints(randInt(260, 999));
  await ops.crossEntropyForwardBackwardAsync(losses, dinp, dwte, rows, w.gpu, tg.gpu, 999, IGNORE, 1);
  const fc = ts.zeros('bf16', [260, 512], DEVICE);
  ops.matmulForward(fc, rows, ts.keep(w.gpu.view(0, [512, 192])));
  ts.zeros('f32', [64 * MiB], DEVICE, 1); // 256 MiB
  synchronize(DEVICE);
}

const memoryDispose: GpuCheck = {
  name: 'memory returned after dispose',
  run: async (log) => {
    // once first, so that whatever the backend creates on first use and keeps (handles, workspaces) exists
    await withTensors(memoryWorkload);
    synchronize(DEVICE);
    const start = cudaMemoryStats(DEVICE);
    await withTensors(async (ts) => {
      await memoryWorkload(ts);
      const mid = cudaMemoryStats(DEVICE);
      log.ok(mid.allocated >= start.allocated + 256 * MiB, `allocated grew by ${((mid.allocated - start.allocated) / MiB).toFixed(1)} MiB while the tensors live`);
    });
    synchronize(DEVICE);
    const end = cudaMemoryStats(DEVICE);
    log.ok(end.allocated === start.allocated, `allocated back to its start value after dispose: ${start.allocated} -> ${end.allocated} bytes`);
    log.ok(end.driverAllocs === start.driverAllocs, `the second round came from the cache: cudaMalloc calls ${start.driverAllocs} -> ${end.driverAllocs}`);
    log.ok(end.peak >= start.allocated + 256 * MiB, `peak ${(end.peak / MiB).toFixed(1)} MiB counts the 256 MiB tensor`);
    log.comment(`stats at the end: ${JSON.stringify(end)}`);
  },
};

const memoryCache: GpuCheck = {
  name: 'caching allocator (reuse, emptyCudaCache)',
  run: async (log) => {
    const bytes = 96 * MiB;
    let t = Tensor.zeros('f32', [bytes / 4], DEVICE);
    t.dispose();
    const a = cudaMemoryStats(DEVICE);
    log.ok(a.cached >= bytes, `a freed 96 MiB block is kept for reuse (cached ${(a.cached / MiB).toFixed(1)} MiB)`);
    t = Tensor.zeros('f32', [bytes / 4], DEVICE);
    const b = cudaMemoryStats(DEVICE);
    log.ok(b.driverAllocs === a.driverAllocs, `the same size again comes from the cache (cudaMalloc calls ${a.driverAllocs} -> ${b.driverAllocs})`);
    t.dispose();
    emptyCudaCache(DEVICE);
    const c = cudaMemoryStats(DEVICE);
    log.ok(c.cached === 0 && c.allocated === b.allocated - bytes, `emptyCudaCache returns every cached block (cached ${c.cached}, allocated ${c.allocated})`);
    t = Tensor.zeros('f32', [bytes / 4], DEVICE);
    const d = cudaMemoryStats(DEVICE);
    log.ok(d.driverAllocs > c.driverAllocs, `after emptyCudaCache the same size needs cudaMalloc again (${c.driverAllocs} -> ${d.driverAllocs})`);
    t.dispose();
  },
};

/** A small MPT with 3 heads of 64, T not a multiple of 64 and a vocabulary of 320 (not a multiple of 128). */
const SMALL_MPT = { dModel: 192, nHeads: 3, nLayers: 2, maxSeqLen: 96, vocabSize: 320, realVocabSize: 301 };

const memorySteadyState: GpuCheck = {
  name: 'no cudaMalloc in steady-state training',
  run: async (log) => {
    const cfg = mptConfig(SMALL_MPT);
    const [B, T] = [3, 90];
    const ids = randInt(B * T, cfg.realVocabSize);
    const targets = randInt(B * T, cfg.realVocabSize);
    const step = async (model: MptModel, optimizer: AdamW) => {
      model.grads.zero();
      const r = await model.forwardBackward(ids, targets, B, T, 1 / (B * T));
      const clip = await clipGradNormAsync(model.grads, 1.0);
      await optimizer.stepAsync({ lr: 1e-3, weightDecay: 0.1, gradScale: clip.scale });
      synchronize(DEVICE);
      return r.lossSum / r.tokens;
    };
    const make = () => {
      const model = new MptModel(cfg, { precision: 'bf16', checkpointEvery: 1, seed: 3, device: DEVICE });
      return { model, optimizer: new AdamW(model.params, model.grads, { computeCopy: model.computeParams ?? false }) };
    };
    // a first model, one step, disposed: what the backend creates on first use and keeps exists before `start`
    const first = make();
    try {
      await step(first.model, first.optimizer);
    } finally {
      first.optimizer.dispose();
      first.model.dispose();
    }
    synchronize(DEVICE);
    const start = cudaMemoryStats(DEVICE);
    const { model, optimizer } = make();
    try {
      const losses = [await step(model, optimizer), await step(model, optimizer)];
      const warm = cudaMemoryStats(DEVICE);
      for (let i = 0; i < 4; i++) losses.push(await step(model, optimizer));
      const after = cudaMemoryStats(DEVICE);
      log.ok(after.driverAllocs === warm.driverAllocs, `cudaMalloc calls over 4 steady-state steps: ${after.driverAllocs - warm.driverAllocs}`);
      log.ok(after.allocated === warm.allocated, `allocated unchanged over those steps (${warm.allocated} -> ${after.allocated} bytes)`);
      log.ok(losses.every(Number.isFinite) && losses[losses.length - 1] < losses[0], `losses finite and falling: ${losses.map((l) => l.toFixed(3)).join(', ')}`);
    } finally {
      optimizer.dispose();
      model.dispose();
    }
    synchronize(DEVICE);
    const end = cudaMemoryStats(DEVICE);
    log.ok(end.allocated === start.allocated, `allocated back to its start value after the model's dispose (${start.allocated} -> ${end.allocated})`);
  },
};

// ---- training through the Trainer: CUDA against CPU ----

let dataDir: string | null = null;

/** A learnable token shard (vocabulary 256) in a temporary folder, made once per process. */
function trainShard(): string {
  if (!dataDir) {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pajama-gpu-checks-'));
    process.once('exit', () => fs.rmSync(dataDir!, { recursive: true, force: true }));
  }
  const file = path.join(dataDir, 'train.bin');
  if (!fs.existsSync(file)) writeTinyShard(file, 300, 1);
  return file;
}

function trainConfig(runDir: string, device: DeviceSpec, precision: 'fp32' | 'bf16', checkpointEvery: number, steps: number) {
  return tinyConfig(runDir, trainShard(), {
    // 3 heads of 64, T 40 (not a multiple of 64), two micro-batches per step
    model: { preset: 'tiny', precision, checkpointEvery, device, overrides: { dModel: 192, nHeads: 3, nLayers: 2 } },
    batch: { seqLen: 40, microBatchSize: 2, globalBatchTokens: 160 },
    optimizer: { lr: 3e-3, warmupSteps: 2 },
    steps,
    threads: 0,
  });
}

async function trainSteps(runDir: string, device: DeviceSpec, precision: 'fp32' | 'bf16', checkpointEvery: number, steps: number, count = steps): Promise<StepMetrics[]> {
  const tr = await Trainer.create(trainConfig(runDir, device, precision, checkpointEvery, steps), { progress: false });
  try {
    const out: StepMetrics[] = [];
    for (let i = 0; i < count && !tr.done; i++) out.push(await tr.step());
    if (count < steps) tr.saveCheckpoint();
    return out;
  } finally {
    tr.dispose();
  }
}

/** Per-step losses (and gradient norms) of two runs agree: `first` at step 1, `all` at every step. */
function sameTraining(log: CheckLog, what: string, a: StepMetrics[], b: StepMetrics[], first: number, all: number): void {
  log.ok(a.length === b.length && a.length > 0, `${what}: ${a.length} and ${b.length} steps`);
  a.forEach((m, i) => {
    const o = b[i];
    if (!o) return;
    const bound = i === 0 ? first : all;
    const eLoss = Math.abs(m.loss - o.loss) / Math.abs(o.loss);
    const eNorm = Math.abs(m.gradNorm - o.gradNorm) / Math.abs(o.gradNorm);
    log.ok(
      eLoss <= bound && eNorm <= bound && !m.skipped && !o.skipped,
      `${what} step ${m.step}: loss ${m.loss.toFixed(5)} vs ${o.loss.toFixed(5)} (rel ${fmt(eLoss)}), grad norm ${m.gradNorm.toFixed(4)} vs ${o.gradNorm.toFixed(4)} (rel ${fmt(eNorm)}), bound ${bound}`,
    );
  });
}

function trainCheck(precision: 'fp32' | 'bf16', checkpointEvery: number): GpuCheck {
  // fp32: the first step's forward and backward agree to f32 rounding; later steps drift a little through
  // AdamW's normalised updates of near-zero gradients. bf16: the kernels' bf16 bound.
  const [first, all] = precision === 'fp32' ? [1e-4, 1e-3] : [TOL.bf16, TOL.bf16];
  return {
    name: `training on CUDA matches CPU (${precision}${checkpointEvery ? ', checkpointing' : ''})`,
    run: async (log) => {
      const root = fs.mkdtempSync(path.join(os.tmpdir(), 'pajama-gpu-train-'));
      try {
        const steps = 6;
        const cpu = await trainSteps(path.join(root, 'cpu'), 'cpu', precision, checkpointEvery, steps);
        const gpu = await trainSteps(path.join(root, 'cuda'), DEVICE, precision, checkpointEvery, steps);
        sameTraining(log, 'CUDA vs CPU', gpu, cpu, first, all);
        log.ok(gpu[gpu.length - 1].loss < gpu[0].loss, `CUDA loss falls: ${gpu[0].loss.toFixed(4)} -> ${gpu[gpu.length - 1].loss.toFixed(4)}`);
      } finally {
        fs.rmSync(root, { recursive: true, force: true });
      }
    },
  };
}

const checkpointAcrossDevices: GpuCheck = {
  name: 'checkpoints resume across devices',
  run: async (log) => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'pajama-gpu-resume-'));
    try {
      const steps = 6;
      const straight = await trainSteps(path.join(root, 'straight'), DEVICE, 'fp32', 0, steps);
      for (const [from, to] of [
        [DEVICE, 'cpu'],
        ['cpu', DEVICE],
      ] as [DeviceSpec, DeviceSpec][]) {
        const dir = path.join(root, `${from.replace(':', '')}-then-${to.replace(':', '')}-${fs.readdirSync(root).length}`);
        const before = await trainSteps(dir, from, 'fp32', 0, steps, 3);
        const tr = await Trainer.create(trainConfig(dir, to, 'fp32', 0, steps), { progress: false });
        const after: StepMetrics[] = [];
        try {
          log.ok(tr.stepsDone === 3, `${from} -> ${to}: resumed at step ${tr.stepsDone} (want 3)`);
          log.ok(tr.model.params.buffer.device === (to === 'cpu' ? 'cpu' : 'cuda:0'), `${from} -> ${to}: the model lives on ${tr.model.params.buffer.device}`);
          while (!tr.done) after.push(await tr.step());
        } finally {
          tr.dispose();
        }
        sameTraining(log, `${from} 3 steps, then ${to} 3 steps, vs CUDA straight`, [...before, ...after], straight, 1e-4, 1e-3);
      }
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  },
};

// ---- NCCL: collectives on CUDA tensors (native/src/dist/nccl.cc) ----

/**
 * A world of one on CUDA tensors in this process (the identity and a copy; refused with the reason in a build
 * without NCCL), then one MPI rank started with `mpirun -np 1` running benchmarks/nccl-child.ts: a process not started by an
 * MPI launcher is a WorldOfOne and never reaches NCCL, and one GPU cannot host two NCCL ranks. In a build with
 * NCCL the child runs every collective on f32, bf16 and i32 CUDA tensors against the CPU/MPI result, with ops
 * queued before and after it (the stream ordering); in a build without it, the refusal with the reason. Where
 * this build has no MPI or mpirun is missing, that part is a comment saying so.
 */
const ncclCollectives: GpuCheck = {
  name: 'nccl collectives, one rank (mpirun -np 1)',
  run: async (log) => {
    const mpi = backendInfo().mpi;
    log.comment(mpi.nccl ? 'this build has NCCL' : `this build has no NCCL: ${mpi.ncclReason}`);
    // A world of one checks its buffers as a cluster would: CUDA tensors where the build has NCCL, else refused.
    const one = new WorldOfOne();
    const x = Float32Array.from({ length: 1001 }, (_, i) => (i % 37) - 18.5);
    const a = Tensor.from(x, undefined, 'f32', DEVICE);
    const b = Tensor.zeros('f32', [x.length], DEVICE);
    try {
      if (mpi.nccl) {
        await one.allReduce(a, 'mean');
        await one.allGather(b, a);
        log.ok(a.toFloat32().every((v, i) => v === x[i]) && b.toFloat32().every((v, i) => v === x[i]), 'a world of one on CUDA tensors: allReduce leaves them, allGather copies');
      } else {
        const m = await one.allReduce(a, 'sum').then(() => 'accepted', (e: Error) => e.message);
        log.ok(m.includes(`need NCCL, which this build lacks (${mpi.ncclReason})`), `a world of one refuses CUDA tensors in a build without NCCL, with the reason: ${m}`);
      }
    } finally {
      a.dispose();
      b.dispose();
    }

    const mpirun = spawnSync('mpirun', ['--version'], { encoding: 'utf8' });
    if (!mpi.built || mpirun.status !== 0) {
      log.comment(`the one-rank NCCL run is skipped: ${!mpi.built ? `this build has no MPI (${mpi.reason})` : 'mpirun is not installed (apt-get install openmpi-bin)'}`);
      return;
    }
    // From the sources (tap) the child is a .ts file run with this process's loader flags; compiled, a .js file.
    const child = path.join(__dirname, `nccl-child${path.extname(__filename)}`);
    const root = process.getuid?.() === 0 ? ['--allow-run-as-root'] : [];
    const forward = ['PAJAMA_ADDON', 'CUDA_VISIBLE_DEVICES'].filter((k) => process.env[k] !== undefined).flatMap((k) => ['-x', k]);
    const args = [...root, '--oversubscribe', '-np', '1', ...forward, process.execPath, ...process.execArgv, child];
    const run = await new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
      const p = spawn('mpirun', args, { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      p.stdout.on('data', (d) => (out += d));
      p.stderr.on('data', (d) => (err += d));
      const timer = setTimeout(() => p.kill('SIGKILL'), 300_000);
      p.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code, out, err });
      });
    });
    const results = run.out
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .flatMap((l) => (JSON.parse(l) as { results: { ok: boolean; message: string }[] }).results);
    log.ok(run.code === 0, `mpirun -np 1 ${path.basename(child)} exits 0 (got ${run.code})${run.code === 0 ? '' : `: ${run.err.slice(-2000)}`}`);
    log.ok(results.length > 0, `the rank reported its results (${results.length})`);
    for (const r of results) log.ok(r.ok, r.message);
  },
};

/** Every check, in the order they run (cheap op checks first, training last). */
export const GPU_CHECKS: readonly GpuCheck[] = [
  transfersCheck,
  geluCheck('f32'),
  geluCheck('bf16'),
  embeddingCheck('f32'),
  embeddingCheck('bf16'),
  embeddingBadIds,
  layerNormCheck('f32'),
  layerNormCheck('bf16'),
  matmulCheck('f32'),
  matmulCheck('bf16'),
  gemmCheck,
  residualCheck,
  attentionCheck('f32'),
  attentionCheck('bf16'),
  attentionCachedCheck('f32'),
  attentionCachedCheck('bf16'),
  crossEntropyCheck('f32'),
  crossEntropyCheck('bf16'),
  crossEntropyBadTargets,
  adamwCheck,
  reduceCheck,
  castCheck,
  mixedDevices,
  memoryDispose,
  memoryCache,
  memorySteadyState,
  trainCheck('fp32', 0),
  trainCheck('bf16', 1),
  checkpointAcrossDevices,
  ncclCollectives,
];

// ---- the plain runner ----

export interface CheckResult {
  name: string;
  pass: boolean;
  ms: number;
  assertions: number;
  failures: string[];
  /** The passing assertions' messages (their measured errors) and comments. */
  notes: string[];
  error?: string;
}

export async function runCheck(check: GpuCheck): Promise<CheckResult> {
  const failures: string[] = [];
  const notes: string[] = [];
  let assertions = 0;
  const log: CheckLog = {
    ok(condition, message) {
      assertions++;
      (condition ? notes : failures).push(message);
    },
    comment: (m) => void notes.push(`# ${m}`),
  };
  const t0 = performance.now();
  let error: string | undefined;
  try {
    await check.run(log);
    synchronize(DEVICE); // a failure of a queued kernel surfaces here, inside its check
  } catch (e) {
    error = e instanceof Error ? (e.stack ?? e.message) : String(e);
  }
  const pass = error === undefined && failures.length === 0 && assertions > 0;
  return { name: check.name, pass, ms: performance.now() - t0, assertions, failures, notes, ...(error !== undefined ? { error } : {}) };
}

async function main(): Promise<void> {
  const cli = benchCli('gpu-checks', { flags: ['--list'], options: ['--only'] });
  const only = cli.opt('--only')?.split(',');
  const selected = GPU_CHECKS.filter((c) => !only || only.some((o) => c.name.includes(o)));
  if (cli.flag('--list')) {
    for (const c of GPU_CHECKS) cli.log(c.name);
    return;
  }
  if (selected.length === 0) cli.usageError(`--only: no check matches '${cli.opt('--only')}' (see --list)`);
  const unavailable = cudaUnavailable();
  if (unavailable) {
    process.stderr.write(`gpu-checks: CUDA is not available here: ${unavailable}\n`);
    process.exit(2);
  }
  const info = backendInfo();
  cli.log(`gpu-checks: ${info.cuda.devices.map((d) => `${d.name} (sm ${d.computeCapability})`).join(', ')}; seed ${seed} (PAJAMA_TEST_SEED replays it)`);
  const results: CheckResult[] = [];
  const report = (complete: boolean) => {
    const failed = results.filter((r) => !r.pass).length;
    return { benchmark: 'gpu-checks', date: new Date().toISOString(), seed, cuda: info.cuda, complete, passed: results.length - failed, failed, results };
  };
  const out = cli.opt('--out');
  for (const c of selected) {
    const r = await runCheck(c);
    results.push(r);
    // what has run so far, in case a later check hangs and the process is stopped
    if (out) {
      fs.mkdirSync(path.dirname(path.resolve(out)), { recursive: true });
      fs.writeFileSync(out, JSON.stringify(report(false), null, 2) + '\n');
    }
    cli.log(`${r.pass ? 'pass' : 'FAIL'} ${c.name} (${r.assertions} assertions, ${(r.ms / 1e3).toFixed(1)} s)`);
    for (const f of r.failures) cli.log(`     not ok: ${f}`);
    if (r.error) cli.log(`     error: ${r.error.split('\n').join('\n     ')}`);
  }
  const failed = results.filter((r) => !r.pass).length;
  cli.log(`gpu-checks: ${results.length - failed} passed, ${failed} failed`);
  cli.writeReport(report(true));
  process.exitCode = failed ? 1 : 0;
}

if (require.main === module) {
  main().catch((e) => {
    process.stderr.write(`gpu-checks: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = 1;
  });
}
