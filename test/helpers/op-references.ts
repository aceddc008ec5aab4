// op-references.ts: straightforward float64 references of the tensor ops (the math of each op's contract in
// native/src/launch.h, written as plainly as possible). This is the one copy of each: the op tests
// (test/ops/<op>.test.ts), the whole-model reference (test/model/mpt_reference.test.ts) and the CUDA checks
// (benchmarks/gpu-checks.ts) import them. Test plumbing (seeds, random inputs, bf16 rounding, erf, relative
// error, bounds) is in reference.ts. Layouts are row-major; every array is float64.
import { erf } from './reference';

/** out = x * Phi(x) (exact GELU) and its derivative Phi(x) + x * phi(x). */
export function geluRef(x: number): number {
  return 0.5 * x * (1 + erf(x / Math.SQRT2));
}

export function dgeluRef(x: number): number {
  return 0.5 * (1 + erf(x / Math.SQRT2)) + (x * Math.exp(-0.5 * x * x)) / Math.sqrt(2 * Math.PI);
}

/** out[i, :] = wte[ids[i], :] for ids (N), wte (V, C). */
export function gatherRef(ids: Int32Array, wte: Float64Array, c: number): Float64Array {
  const out = new Float64Array(ids.length * c);
  ids.forEach((id, i) => out.set(wte.subarray(id * c, (id + 1) * c), i * c));
  return out;
}

/** dwte[ids[i], :] += dout[i, :], in place. */
export function scatterAddRef(dwte: Float64Array, ids: Int32Array, dout: Float64Array, c: number): void {
  ids.forEach((id, i) => {
    for (let j = 0; j < c; j++) dwte[id * c + j] += dout[i * c + j];
  });
}

/** LayerNorm without bias over rows of C (biased variance): out, mean and rstd per row. */
export function layerNormForwardRef(x: Float64Array, w: Float64Array, n: number, c: number, eps: number) {
  const out = new Float64Array(n * c);
  const mean = new Float64Array(n);
  const rstd = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let m = 0;
    for (let j = 0; j < c; j++) m += x[i * c + j];
    m /= c;
    let v = 0;
    for (let j = 0; j < c; j++) v += (x[i * c + j] - m) ** 2;
    v /= c;
    const r = 1 / Math.sqrt(v + eps);
    for (let j = 0; j < c; j++) out[i * c + j] = (x[i * c + j] - m) * r * w[j];
    mean[i] = m;
    rstd[i] = r;
  }
  return { out, mean, rstd };
}

/** dinp = rstd * (dnorm - mean(dnorm) - norm * mean(dnorm * norm)) with dnorm = g * w; dweight = sum_rows g * norm. */
export function layerNormBackwardRef(g: Float64Array, x: Float64Array, w: Float64Array, n: number, c: number, eps: number) {
  const { mean, rstd } = layerNormForwardRef(x, w, n, c, eps);
  const dinp = new Float64Array(n * c);
  const dweight = new Float64Array(c);
  for (let i = 0; i < n; i++) {
    let a = 0;
    let b = 0;
    for (let j = 0; j < c; j++) {
      const norm = (x[i * c + j] - mean[i]) * rstd[i];
      const dnorm = g[i * c + j] * w[j];
      a += dnorm;
      b += dnorm * norm;
      dweight[j] += g[i * c + j] * norm;
    }
    a /= c;
    b /= c;
    for (let j = 0; j < c; j++) {
      const norm = (x[i * c + j] - mean[i]) * rstd[i];
      dinp[i * c + j] = (g[i * c + j] * w[j] - a - norm * b) * rstd[i];
    }
  }
  return { dinp, dweight };
}

/** op(a) (m, k) @ op(b) (k, n); a is stored (k, m) when transA, b is stored (n, k) when transB. */
export function matmulRef(a: Float64Array, b: Float64Array, m: number, n: number, k: number, transA: boolean, transB: boolean): Float64Array {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += (transA ? a[p * m + i] : a[i * k + p]) * (transB ? b[j * k + p] : b[p * n + j]);
      out[i * n + j] = s;
    }
  }
  return out;
}

export interface AttentionRef {
  out: Float64Array; // (B, T, H, D)
  lse: Float64Array; // (B, H, T)
  dqkv: Float64Array; // (B, T, 3, H, D)
}

/** The offset of qkv[b, t, s, h, 0] in qkv (B, T, 3, H, D). */
const qkvOffset = (T: number, H: number, D: number) => (b: number, t: number, s: number, h: number) => ((b * T + t) * 3 + s) * H * D + h * D;

/** Head h of sequence b: its rows of out and lse, and its softmax probabilities P (T, T), 0 above the diagonal. */
function attentionHeadForward(
  qkv: Float64Array,
  slopes: ArrayLike<number>,
  b: number,
  h: number,
  T: number,
  H: number,
  D: number,
  out: Float64Array,
  lse: Float64Array,
): Float64Array {
  const C = H * D;
  const at = qkvOffset(T, H, D);
  const scale = 1 / Math.sqrt(D);
  const P = new Float64Array(T * T);
  for (let i = 0; i < T; i++) {
    let mx = -Infinity;
    for (let j = 0; j <= i; j++) {
      let s = 0;
      for (let d = 0; d < D; d++) s += qkv[at(b, i, 0, h) + d] * qkv[at(b, j, 1, h) + d];
      P[i * T + j] = s * scale + slopes[h] * (j - i);
      mx = Math.max(mx, P[i * T + j]);
    }
    let sum = 0;
    for (let j = 0; j <= i; j++) sum += Math.exp(P[i * T + j] - mx);
    const l = mx + Math.log(sum);
    lse[(b * H + h) * T + i] = l;
    for (let j = 0; j <= i; j++) P[i * T + j] = Math.exp(P[i * T + j] - l);
    for (let d = 0; d < D; d++) {
      let o = 0;
      for (let j = 0; j <= i; j++) o += P[i * T + j] * qkv[at(b, j, 2, h) + d];
      out[(b * T + i) * C + h * D + d] = o;
    }
  }
  return P;
}

/**
 * Causal attention with ALiBi from the explicit T x T scores (scale 1/sqrt(D), bias slope[h] * (key - query))
 * and a naive softmax; qkv (B, T, 3, H, D), slopes (H).
 */
export function attentionForwardRef(qkv: Float64Array, slopes: ArrayLike<number>, B: number, T: number, H: number, D: number) {
  const out = new Float64Array(B * T * H * D);
  const lse = new Float64Array(B * H * T);
  for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) attentionHeadForward(qkv, slopes, b, h, T, H, D, out, lse);
  return { out, lse };
}

/** attentionForwardRef's out and lse, and dqkv (B, T, 3, H, D) for dout (B, T, H, D). */
export function attentionRef(qkv: Float64Array, dout: Float64Array, slopes: ArrayLike<number>, B: number, T: number, H: number, D: number): AttentionRef {
  const C = H * D;
  const out = new Float64Array(B * T * C);
  const lse = new Float64Array(B * H * T);
  const dqkv = new Float64Array(B * T * 3 * C);
  const at = qkvOffset(T, H, D);
  const scale = 1 / Math.sqrt(D);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const P = attentionHeadForward(qkv, slopes, b, h, T, H, D, out, lse);
      // dS = P * (dout v^T - rowsum(dout * out)); dq = dS k / sqrt(D); dk = dS^T q / sqrt(D); dv = P^T dout.
      for (let i = 0; i < T; i++) {
        const go = (b * T + i) * C + h * D;
        let di = 0;
        for (let d = 0; d < D; d++) di += dout[go + d] * out[go + d];
        for (let j = 0; j <= i; j++) {
          let dp = 0;
          for (let d = 0; d < D; d++) dp += dout[go + d] * qkv[at(b, j, 2, h) + d];
          const p = P[i * T + j];
          const ds = p * (dp - di) * scale;
          for (let d = 0; d < D; d++) {
            dqkv[at(b, i, 0, h) + d] += ds * qkv[at(b, j, 1, h) + d];
            dqkv[at(b, j, 1, h) + d] += ds * qkv[at(b, i, 0, h) + d];
            dqkv[at(b, j, 2, h) + d] += p * dout[go + d];
          }
        }
      }
    }
  }
  return { out, lse, dqkv };
}

export interface CrossEntropyRef {
  losses: Float64Array; // (N)
  total: number;
  dinp: Float64Array; // (N, C)
  dwte: Float64Array; // (Vp, C); rows >= V are 0
}

/** The LM head and cross-entropy over the first V rows of w (Vp, C); dlogits scaled by gradScale. */
export function crossEntropyRef(
  x: Float64Array,
  w: Float64Array,
  targets: Int32Array,
  C: number,
  V: number,
  Vp: number,
  ignoreIndex: number,
  gradScale: number,
): CrossEntropyRef {
  const N = targets.length;
  const losses = new Float64Array(N);
  const dinp = new Float64Array(N * C);
  const dwte = new Float64Array(Vp * C);
  const logits = new Float64Array(V);
  let total = 0;
  for (let i = 0; i < N; i++) {
    if (targets[i] === ignoreIndex) continue;
    let max = -Infinity;
    for (let j = 0; j < V; j++) {
      let s = 0;
      for (let k = 0; k < C; k++) s += x[i * C + k] * w[j * C + k];
      logits[j] = s;
      max = Math.max(max, s);
    }
    let sum = 0;
    for (let j = 0; j < V; j++) sum += Math.exp(logits[j] - max);
    losses[i] = Math.log(sum) + max - logits[targets[i]];
    total += losses[i];
    for (let j = 0; j < V; j++) {
      const d = (Math.exp(logits[j] - max) / sum - (j === targets[i] ? 1 : 0)) * gradScale;
      for (let k = 0; k < C; k++) {
        dinp[i * C + k] += d * w[j * C + k];
        dwte[j * C + k] += d * x[i * C + k];
      }
    }
  }
  return { losses, total, dinp, dwte };
}

export interface AdamWHyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

/** One AdamW step (torch.optim.AdamW semantics) on p, m, v in place; decay[i] says whether element i decays. */
export function adamwRef(
  p: Float64Array,
  g: Float64Array,
  m: Float64Array,
  v: Float64Array,
  decay: Uint8Array,
  h: AdamWHyper,
  step: number,
  gradScale: number,
): void {
  const bc1 = 1 - h.beta1 ** step;
  const bc2 = 1 - h.beta2 ** step;
  for (let i = 0; i < p.length; i++) {
    const gi = g[i] * gradScale;
    m[i] = h.beta1 * m[i] + (1 - h.beta1) * gi;
    v[i] = h.beta2 * v[i] + (1 - h.beta2) * gi * gi;
    if (decay[i]) p[i] -= h.lr * h.weightDecay * p[i];
    p[i] -= (h.lr * (m[i] / bc1)) / (Math.sqrt(v[i] / bc2) + h.eps);
  }
}

/**
 * The arena both AdamW checks run on (test/ops/adamw.test.ts, benchmarks/gpu-checks.ts): [offset, length,
 * decay] segments tiling ADAMW_ARENA_SIZE elements; the middle ones straddle the kernel's 65536-element blocks,
 * the last ones are tiny.
 */
export const ADAMW_LAYOUT: readonly (readonly [offset: number, length: number, decay: number])[] = [
  [0, 37, 1],
  [37, 5, 0],
  [42, 65500, 1],
  [65542, 3, 0],
  [65545, 70000, 1],
  [135545, 1, 0],
  [135546, 129, 1],
];
export const ADAMW_ARENA_SIZE = 135675;
