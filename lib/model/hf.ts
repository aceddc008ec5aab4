// hf.ts: both directions of the mapping between this project's MPT and Hugging Face transformers' MptConfig /
// MptForCausalLM. Writing: mptHfConfig (the config.json a checkpoint holds). Reading: mptConfigFromHf (an
// MptConfig from a config.json, each key checked). Names: mptParamLayout (the HF parameter names and shapes a
// config implies, e.g. transformer.blocks.{i}.attn.Wqkv.weight; the list itself is model/config.ts's
// parameterLayout) and checkConfigFitsArena. Errors go through the caller's `fail` so that each caller names
// its own file (a checkpoint directory, a config.json) and error class; this module knows nothing of
// checkpoints or the CLI.
import { invalidArg, showValue } from '../core/errors';
import type { Arena } from '../core/tensor';
import { mptConfig, parameterLayout, type MptConfig } from './config';

// ---------------------------------------------------------------------------------------------------------
// Writing: config.json

/** The model shape mptHfConfig needs: the model config, with ALiBi's and LayerNorm's settings optional. */
export type MptShape = Omit<MptConfig, 'alibiBiasMax' | 'layerNormEps' | 'realVocabSize'> &
  Partial<Pick<MptConfig, 'alibiBiasMax' | 'layerNormEps' | 'realVocabSize'>>;

export interface MptHfConfigOptions {
  /** The dtype model.safetensors holds. Defaults to 'float32' (master weights). */
  torchDtype?: 'float32' | 'bfloat16';
  /**
   * attn_config.attn_impl: the attention implementation a loader of this directory should use. Defaults to
   * 'torch', which runs anywhere; transformers' own MPT ignores it, llm-foundry's needs flash-attn for 'flash'.
   */
  attnImpl?: 'torch' | 'flash' | 'triton';
}

/** transformers' MptConfig as config.json holds it. */
export interface MptHfConfig {
  architectures: ['MptForCausalLM'];
  model_type: 'mpt';
  d_model: number;
  n_heads: number;
  n_layers: number;
  expansion_ratio: number;
  max_seq_len: number;
  vocab_size: number;
  resid_pdrop: number;
  emb_pdrop: number;
  layer_norm_epsilon: number;
  learned_pos_emb: boolean;
  no_bias: boolean;
  attn_config: {
    attn_type: 'multihead_attention';
    attn_pdrop: number;
    attn_impl: string;
    clip_qkv: number | null;
    softmax_scale: number | null;
    prefix_lm: boolean;
    qk_ln: boolean;
    attn_uses_sequence_id: boolean;
    alibi: boolean;
    alibi_bias_max: number;
  };
  init_device: string;
  logit_scale: number | null;
  norm_type: string;
  embedding_fraction: number;
  verbose: number;
  use_cache: boolean;
  torch_dtype: 'float32' | 'bfloat16';
  tie_word_embeddings: boolean;
}

function positiveInt(v: unknown): v is number {
  return Number.isSafeInteger(v) && (v as number) > 0;
}

/** The config.json of this project's MPT: ALiBi, no biases, no dropout, tied embeddings, low-precision LayerNorm. */
export function mptHfConfig(model: MptShape, options: MptHfConfigOptions = {}): MptHfConfig {
  for (const k of ['dModel', 'nHeads', 'nLayers', 'maxSeqLen', 'vocabSize'] as const) {
    if (!positiveInt(model?.[k])) throw invalidArg(`mptHfConfig: ${k} must be a positive integer, got ${model?.[k]}`);
  }
  const { dModel, nHeads, expansionRatio, alibiBiasMax = 8, layerNormEps = 1e-5 } = model;
  if (dModel % nHeads !== 0) throw invalidArg(`mptHfConfig: dModel ${dModel} is not a multiple of nHeads ${nHeads}`);
  if (!positiveInt(expansionRatio)) {
    // transformers builds the FFN as Linear(d_model, expansion_ratio * d_model): the ratio must be an integer.
    throw invalidArg(`mptHfConfig: expansionRatio must be a positive integer, got ${expansionRatio}`);
  }
  if (!(alibiBiasMax > 0)) throw invalidArg(`mptHfConfig: alibiBiasMax must be positive, got ${alibiBiasMax}`);
  if (!(layerNormEps > 0)) throw invalidArg(`mptHfConfig: layerNormEps must be positive, got ${layerNormEps}`);
  const torchDtype = options.torchDtype ?? 'float32';
  if (torchDtype !== 'float32' && torchDtype !== 'bfloat16') {
    throw invalidArg(`mptHfConfig: torchDtype must be 'float32' or 'bfloat16', got ${JSON.stringify(torchDtype)}`);
  }
  return {
    architectures: ['MptForCausalLM'],
    model_type: 'mpt',
    d_model: dModel,
    n_heads: nHeads,
    n_layers: model.nLayers,
    expansion_ratio: expansionRatio,
    max_seq_len: model.maxSeqLen,
    vocab_size: model.vocabSize,
    resid_pdrop: 0,
    emb_pdrop: 0,
    layer_norm_epsilon: layerNormEps,
    learned_pos_emb: false,
    no_bias: true,
    attn_config: {
      attn_type: 'multihead_attention',
      attn_pdrop: 0,
      attn_impl: options.attnImpl ?? 'torch',
      clip_qkv: null,
      softmax_scale: null,
      prefix_lm: false,
      qk_ln: false,
      attn_uses_sequence_id: false,
      alibi: true,
      alibi_bias_max: alibiBiasMax,
    },
    init_device: 'cpu',
    logit_scale: null,
    norm_type: 'low_precision_layernorm',
    embedding_fraction: 1.0,
    verbose: 0,
    use_cache: false,
    torch_dtype: torchDtype,
    tie_word_embeddings: true,
  };
}

// ---------------------------------------------------------------------------------------------------------
// Reading: config.json

/**
 * The architecture in a config.json (transformers' MptConfig, `hf` its parsed object): the keys this MPT has,
 * each checked, `fail(message)` naming the key (the caller's error names the file). Absent optional keys take
 * transformers' defaults. `realVocabSize` caps the vocabulary the tokenizer really uses.
 */
export function mptConfigFromHf(hf: Record<string, unknown>, realVocabSize: number, fail: (msg: string) => Error): MptConfig {
  const positiveInt = (key: string, v: unknown = hf[key]): number => {
    if (!Number.isSafeInteger(v) || (v as number) < 1) throw fail(`'${key}' must be a positive integer, got ${showValue(v)}`);
    return v as number;
  };
  const positiveNumber = (key: string, v: unknown, fallback: number): number => {
    if (v === undefined) return fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw fail(`'${key}' must be a positive number, got ${showValue(v)}`);
    return v;
  };
  const attn = hf.attn_config;
  if (attn !== undefined && (typeof attn !== 'object' || attn === null || Array.isArray(attn))) {
    throw fail(`'attn_config' must be an object, got ${showValue(attn)}`);
  }
  const vocabSize = positiveInt('vocab_size');
  const fields: Partial<MptConfig> = {
    dModel: positiveInt('d_model'),
    nHeads: positiveInt('n_heads'),
    nLayers: positiveInt('n_layers'),
    expansionRatio: hf.expansion_ratio === undefined ? 4 : positiveInt('expansion_ratio'),
    maxSeqLen: positiveInt('max_seq_len'),
    vocabSize,
    realVocabSize: Math.min(realVocabSize, vocabSize),
    alibiBiasMax: positiveNumber('attn_config.alibi_bias_max', (attn as Record<string, unknown> | undefined)?.alibi_bias_max, 8),
    layerNormEps: positiveNumber('layer_norm_epsilon', hf.layer_norm_epsilon, 1e-5),
  };
  try {
    return mptConfig(fields);
  } catch (e) {
    throw fail(`the architecture is not a valid MPT: ${(e as Error).message}`);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Names: the parameters a config.json implies

/**
 * The parameters an MPT config implies, under their HF names and in module order:
 * wte (V, C); per block norm_1 (C), attn.Wqkv (3C, C), attn.out_proj (C, C), norm_2 (C), ffn.up_proj (E*C, C),
 * ffn.down_proj (C, E*C); norm_f (C). Throws a TypeError naming the field when the config lacks one.
 */
export function mptParamLayout(config: {
  d_model: number;
  n_layers: number;
  expansion_ratio: number;
  vocab_size: number;
}): [string, number[]][] {
  for (const k of ['d_model', 'n_layers', 'expansion_ratio', 'vocab_size'] as const) {
    if (!positiveInt(config?.[k])) throw invalidArg(`mptParamLayout: ${k} must be a positive integer, got ${JSON.stringify(config?.[k])}`);
  }
  // The one definition of MPT's parameter list lives with the model config.
  return parameterLayout({
    dModel: config.d_model,
    nLayers: config.n_layers,
    expansionRatio: config.expansion_ratio,
    vocabSize: config.vocab_size,
  } as MptConfig);
}

/**
 * Throws `fail(message)` unless the MPT `config` (config.json's object) implies exactly the entries and shapes
 * of `params`; `where` names the config in the message.
 */
export function checkConfigFitsArena(config: Record<string, unknown>, params: Arena, where: string, fail: (msg: string) => Error): void {
  if (config.model_type !== 'mpt') {
    throw fail(`model_type is ${JSON.stringify(config.model_type)}; only 'mpt' is supported`);
  }
  let layout: [string, number[]][];
  try {
    layout = mptParamLayout(config as Parameters<typeof mptParamLayout>[0]);
  } catch (e) {
    throw fail((e as Error).message.replace(/^mptParamLayout: /, ''));
  }
  const expected = new Map(layout);
  const problems: string[] = [];
  for (const e of params.entries) {
    const want = expected.get(e.name);
    if (!want) problems.push(`arena entry '${e.name}' is not a parameter of this config`);
    else if (want.length !== e.shape.length || want.some((d, i) => d !== e.shape[i])) {
      problems.push(`'${e.name}' is [${e.shape.join(', ')}] in the arena, the config implies [${want.join(', ')}]`);
    }
  }
  const have = new Set(params.entries.map((e) => e.name));
  for (const [name, shape] of layout) if (!have.has(name)) problems.push(`'${name}' [${shape.join(', ')}] is missing from the arena`);
  if (problems.length > 0) {
    const summary = `d_model ${config.d_model}, n_layers ${config.n_layers}, expansion_ratio ${config.expansion_ratio}, vocab_size ${config.vocab_size}`;
    const shown = problems.slice(0, 5).join('; ') + (problems.length > 5 ? `; and ${problems.length - 5} more` : '');
    throw fail(`${where} (${summary}) does not match the parameter arena: ${shown}`);
  }
}
