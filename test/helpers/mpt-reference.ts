// mpt-reference.ts: the whole MPT forward in float64, written straight from the math (explicit T x T ALiBi
// bias, naive softmax, erf GELU) over the op references of op-references.ts: the logits of every position
// over the real vocabulary. Shared by test/model/mpt_reference.test.ts and the scoring tests.
import type { MptModel } from '../../lib/model/mpt';
import type { MptConfig } from '../../lib/model/config';
import { alibiSlopes } from '../../lib/model/alibi';
import { attentionForwardRef, geluRef, layerNormForwardRef, matmulRef } from './op-references';

export type Weights = Map<string, Float64Array>;

/** x (N, C) -> LayerNorm without bias, biased variance. */
const layerNorm = (x: Float64Array, w: Float64Array, N: number, C: number, eps: number) => layerNormForwardRef(x, w, N, C, eps).out;

/** x (N, IC) @ W (OC, IC)^T -> (N, OC). */
const linear = (x: Float64Array, W: Float64Array, N: number, IC: number, OC: number) => matmulRef(x, W, N, OC, IC, false, true);

/** (B*T, realVocabSize) float64 logits of a (B, T) batch of ids. */
export function mptLogitsRef(cfg: MptConfig, w: Weights, ids: ArrayLike<number>, B: number, T: number): Float64Array {
  const { dModel: C, nHeads: H, nLayers: L, layerNormEps: eps, realVocabSize: V } = cfg;
  const F = cfg.expansionRatio * C;
  const D = C / H;
  const N = B * T;
  const slopes = alibiSlopes(H, cfg.alibiBiasMax);
  const get = (name: string) => w.get(name)!;
  const wte = get('transformer.wte.weight');
  let x = new Float64Array(N * C);
  for (let n = 0; n < N; n++) x.set(wte.subarray(ids[n] * C, ids[n] * C + C), n * C);
  for (let l = 0; l < L; l++) {
    const p = `transformer.blocks.${l}`;
    const qkv = linear(layerNorm(x, get(`${p}.norm_1.weight`), N, C, eps), get(`${p}.attn.Wqkv.weight`), N, C, 3 * C);
    const att = linear(attentionForwardRef(qkv, slopes, B, T, H, D).out, get(`${p}.attn.out_proj.weight`), N, C, C);
    const h = x.map((v, i) => v + att[i]);
    const fc = linear(layerNorm(h, get(`${p}.norm_2.weight`), N, C, eps), get(`${p}.ffn.up_proj.weight`), N, C, F);
    const mlp = linear(fc.map(geluRef), get(`${p}.ffn.down_proj.weight`), N, F, C);
    x = h.map((v, i) => v + mlp[i]);
  }
  const lnf = layerNorm(x, get('transformer.norm_f.weight'), N, C, eps);
  // Tied head over the real vocabulary only: padded rows of wte never become logits.
  const wteReal = wte.subarray(0, V * C);
  return linear(lnf, wteReal, N, C, V);
}

/** The model's f32 master weights as float64 (the exact values the native fp32 path computes with). */
export function weightsOf(model: MptModel): Weights {
  return new Map(model.params.entries.map((e) => [e.name, Float64Array.from(model.params.get(e.name).toFloat32())]));
}

/**
 * Perturbs a model's init for reference checks: LayerNorm weights away from 1 (so a kernel ignoring them is
 * caught), the padded wte rows filled with large values (so a kernel reading them is caught); then refreshes
 * the bf16 copy. `randn(n, std)` draws the perturbation.
 */
export function perturbForReference(model: MptModel, randn: (n: number, std: number) => Float64Array | number[]): MptModel {
  const cfg = model.config;
  for (const e of model.params.entries) {
    if (e.shape.length === 1) model.params.get(e.name).copyFrom(Float32Array.from(randn(e.numel, 0.2), (v) => 1 + v));
  }
  const wte = model.params.get('transformer.wte.weight');
  const w = wte.toFloat32();
  w.fill(50, cfg.realVocabSize * cfg.dModel);
  wte.copyFrom(w);
  model.syncComputeParams();
  return model;
}
