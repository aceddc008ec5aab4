// config.ts: the MPT model configuration, its presets, and the counts derived from it (parameters, FLOPs).
import { invalidArg } from '../core/errors';

export interface MptConfig {
  /** Width of the residual stream. */
  dModel: number;
  /** Attention heads; dModel must divide evenly. Head dim = dModel / nHeads (32 to 256). */
  nHeads: number;
  /** Transformer blocks. */
  nLayers: number;
  /** MLP hidden width = expansionRatio * dModel. Defaults to 4. */
  expansionRatio: number;
  /** Longest sequence the model trains on (ALiBi itself has no limit). */
  maxSeqLen: number;
  /** Rows of the (tied) embedding: the tokenizer's vocabulary padded up to a multiple of 128. */
  vocabSize: number;
  /** The tokenizer's real vocabulary (ids >= this are padding and are never predicted). Defaults to vocabSize. */
  realVocabSize: number;
  /** ALiBi's alibi_bias_max. Defaults to 8. */
  alibiBiasMax: number;
  /** LayerNorm epsilon. Defaults to 1e-5. */
  layerNormEps: number;
}

/**
 * Rounds a tokenizer's vocabulary up to a multiple (GPT-2 50,257 -> 50,304). GPT-NeoX (and MPT after it) pads
 * 50,277 to a multiple of 256 (128 per tensor-parallel rank, 2 ranks): 50,432.
 */
export function padVocab(vocab: number, multiple = 128): number {
  if (!Number.isInteger(vocab) || vocab < 1) throw invalidArg(`padVocab: vocab must be a positive integer, got ${vocab}`);
  return Math.ceil(vocab / multiple) * multiple;
}

export const GPT2_VOCAB = 50257;
export const GPT_NEOX_VOCAB = 50277;

type Preset = Omit<MptConfig, 'expansionRatio' | 'alibiBiasMax' | 'layerNormEps' | 'realVocabSize'> & {
  realVocabSize?: number;
};

/** Presets: `tiny` for tests, `bench-45m` for the benchmark, and the MPT sizes (mpt-7b is the paper's Table 11). */
export const PRESETS: Record<string, Preset> = {
  tiny: { dModel: 64, nHeads: 2, nLayers: 2, maxSeqLen: 64, vocabSize: 256 },
  'bench-45m': { dModel: 512, nHeads: 8, nLayers: 6, maxSeqLen: 512, vocabSize: padVocab(GPT2_VOCAB), realVocabSize: GPT2_VOCAB },
  'mpt-125m': { dModel: 768, nHeads: 12, nLayers: 12, maxSeqLen: 2048, vocabSize: padVocab(GPT_NEOX_VOCAB, 256), realVocabSize: GPT_NEOX_VOCAB },
  'mpt-1b': { dModel: 2048, nHeads: 16, nLayers: 24, maxSeqLen: 2048, vocabSize: padVocab(GPT_NEOX_VOCAB, 256), realVocabSize: GPT_NEOX_VOCAB },
  'mpt-7b': { dModel: 4096, nHeads: 32, nLayers: 32, maxSeqLen: 2048, vocabSize: padVocab(GPT_NEOX_VOCAB, 256), realVocabSize: GPT_NEOX_VOCAB },
};

/** A full config from a preset name and/or explicit fields, validated. */
export function mptConfig(base: string | Partial<MptConfig>, overrides: Partial<MptConfig> = {}): MptConfig {
  let start: Partial<MptConfig>;
  if (typeof base === 'string') {
    const p = PRESETS[base];
    if (!p) throw invalidArg(`model preset '${base}' is unknown (presets: ${Object.keys(PRESETS).join(', ')})`);
    start = p;
  } else {
    start = base;
  }
  const merged = { ...start, ...overrides };
  // Checked here, not only in validateConfig: cfg below is built from the known keys, so a misspelt one
  // (nLayer: 4) would otherwise vanish and leave the preset's value in force.
  for (const k of Object.keys(merged)) if (!KNOWN_KEYS.has(k)) throw invalidArg(`model config: unknown key '${k}' (keys: ${[...KNOWN_KEYS].join(', ')})`);
  const cfg: MptConfig = {
    dModel: merged.dModel as number,
    nHeads: merged.nHeads as number,
    nLayers: merged.nLayers as number,
    expansionRatio: merged.expansionRatio ?? 4,
    maxSeqLen: merged.maxSeqLen as number,
    vocabSize: merged.vocabSize as number,
    realVocabSize: merged.realVocabSize ?? (merged.vocabSize as number),
    alibiBiasMax: merged.alibiBiasMax ?? 8,
    layerNormEps: merged.layerNormEps ?? 1e-5,
  };
  validateConfig(cfg);
  return cfg;
}

const KNOWN_KEYS = new Set(['dModel', 'nHeads', 'nLayers', 'expansionRatio', 'maxSeqLen', 'vocabSize', 'realVocabSize', 'alibiBiasMax', 'layerNormEps']);

export function validateConfig(cfg: MptConfig): void {
  for (const k of Object.keys(cfg)) if (!KNOWN_KEYS.has(k)) throw invalidArg(`model config: unknown key '${k}'`);
  const posInt = (k: keyof MptConfig) => {
    const v = cfg[k];
    if (!Number.isInteger(v) || (v as number) < 1) throw invalidArg(`model config: ${k} must be a positive integer, got ${JSON.stringify(v)}`);
  };
  (['dModel', 'nHeads', 'nLayers', 'expansionRatio', 'maxSeqLen', 'vocabSize', 'realVocabSize'] as const).forEach(posInt);
  if (cfg.dModel % cfg.nHeads !== 0) throw invalidArg(`model config: dModel ${cfg.dModel} is not divisible by nHeads ${cfg.nHeads}`);
  const hd = cfg.dModel / cfg.nHeads;
  if (hd > 256) throw invalidArg(`model config: head dim ${hd} (dModel / nHeads) is above 256`);
  if (cfg.realVocabSize > cfg.vocabSize) throw invalidArg(`model config: realVocabSize ${cfg.realVocabSize} exceeds vocabSize ${cfg.vocabSize}`);
  if (!(cfg.alibiBiasMax > 0)) throw invalidArg(`model config: alibiBiasMax must be positive, got ${cfg.alibiBiasMax}`);
  if (!(cfg.layerNormEps > 0)) throw invalidArg(`model config: layerNormEps must be positive, got ${cfg.layerNormEps}`);
}

/** Parameter tensors under transformers' MptForCausalLM names, in arena order. */
export function parameterLayout(cfg: MptConfig): [string, number[]][] {
  const C = cfg.dModel;
  const F = cfg.expansionRatio * C;
  const out: [string, number[]][] = [['transformer.wte.weight', [cfg.vocabSize, C]]];
  for (let i = 0; i < cfg.nLayers; i++) {
    const p = `transformer.blocks.${i}`;
    out.push([`${p}.norm_1.weight`, [C]]);
    out.push([`${p}.attn.Wqkv.weight`, [3 * C, C]]);
    out.push([`${p}.attn.out_proj.weight`, [C, C]]);
    out.push([`${p}.norm_2.weight`, [C]]);
    out.push([`${p}.ffn.up_proj.weight`, [F, C]]);
    out.push([`${p}.ffn.down_proj.weight`, [C, F]]);
  }
  out.push(['transformer.norm_f.weight', [C]]);
  return out;
}

/** A unit of parameters that data-parallel full sharding gathers before use and reduces after: a contiguous range of the arena. */
export interface ParameterUnit {
  /** 'embedding', 'block.<l>' or 'final'. */
  name: string;
  /** First element of the unit in parameterLayout's arena. */
  offset: number;
  numel: number;
}

/**
 * parameterLayout's arena as units, in order: 0 the embedding (wte), 1 + l block l (its six tensors), then
 * nLayers + 1 the final LayerNorm. MptModel enters and leaves them by these numbers.
 */
export function parameterUnits(cfg: MptConfig): ParameterUnit[] {
  const units: ParameterUnit[] = [];
  let offset = 0;
  for (const [name, shape] of parameterLayout(cfg)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const unit = name === 'transformer.wte.weight' ? 'embedding' : name === 'transformer.norm_f.weight' ? 'final' : `block.${name.split('.')[2]}`;
    const last = units[units.length - 1];
    if (last && last.name === unit) last.numel += n;
    else units.push({ name: unit, offset, numel: n });
    offset += n;
  }
  return units;
}

export function parameterCount(cfg: MptConfig): number {
  return parameterLayout(cfg).reduce((n, [, s]) => n + s.reduce((a, b) => a * b, 1), 0);
}

/**
 * Training FLOPs per token as llm-foundry counts them for MFU: 6 N (forward + backward through every
 * parameter, embeddings included) plus attention's score and value products, 12 * nLayers * dModel * seqLen
 * (forward 4 * L * d * T, times 3 for the backward), without the causal halving.
 */
export function flopsPerToken(cfg: MptConfig, seqLen = cfg.maxSeqLen): number {
  return 6 * parameterCount(cfg) + 12 * cfg.nLayers * cfg.dModel * seqLen;
}
