// data.ts: a run's training data: the TokenLoader that draws its batches and the validation shards it is
// evaluated on, with where they came from (for the plan logged at start). TrainingData.fromConfig resolves
// the config's data keys:
//   - data.train (a list of shards, drawn in proportion to size) with data.validation as given;
//   - or data.manifest (lib/data/manifest.ts) with data.mixture: the loader draws per source by the
//     mixture's weights (lib/data/mixture.ts), and every manifest source with a validation shard is evaluated.
//   - or data.chat (instruction tuning): ShareGPT conversations rendered with the chat template and packed by
//     a ChatLoader (lib/data/chat-loader.ts), validated on data.chat.validation or a held-out share of the
//     conversations (source 'chat'); the tokenizer is data.chat.tokenizer, else the one model.init records.
// The validation policy: a shard must hold one evaluation batch; one named in data.validation that does not
// is an error, a manifest source's is left out with a warning (PAJAMA_VALIDATION_TOO_SMALL); and eval.every
// needs at least one shard left.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { invalidArg } from '../core/errors';
import { GPT2_VOCAB, type MptConfig } from '../model/config';
import { openShard } from '../data/shard';
import { TokenLoader, evalBatchCount, evalBatches, type Batch, type MixtureSource, type TokenLoaderMixtureState, type TokenLoaderState } from '../data/loader';
import { readDataManifest, type LoadedDataManifest } from '../data/manifest';
import { createTokenizer, type TokenizerSpec } from '../data/tokenizers/create';
import { readConversationsSync, type ChatTurn } from '../data/chat';
import { CHAT_SOURCE, ChatLoader, chatEvalBatches, chatItems, type ChatItem, type ChatItemStats, type ChatLoaderState } from '../data/chat-loader';
import { Xoshiro128 } from '../core/rng';
import { checkpointTokenizer } from './checkpoint';
import { resolveMixture, type MixturePlan } from '../data/mixture';
import type { BatchPlan, TrainConfig } from './config';

/** What draws a run's batches: token shards (pretraining) or chat conversations (instruction tuning). */
export type TrainingLoader = TokenLoader | ChatLoader;

/** A training loader's position, as checkpoints hold it. */
export type TrainingLoaderState = TokenLoaderState | TokenLoaderMixtureState | ChatLoaderState;

/** What instruction-tuning data became: conversations fitted to rows (see ChatItemStats). */
export interface ChatDataStats {
  train: ChatItemStats;
  /** The validation conversations' items, or null without validation. */
  validation: ChatItemStats | null;
}

/** What the run is expected to draw from each source, reported at start. */
export interface DataPlan extends MixturePlan {
  /** The manifest the data comes from (absolute), or null for data.train. */
  manifest: string | null;
  /** The mixture preset, or null (weights given in the config, or proportional to size). */
  preset: string | null;
  /** Where the preset's proportions come from, or null. */
  citation: string | null;
  /** Instruction tuning: the conversations, items, splits, truncations and drops. */
  chat?: ChatDataStats;
}

export interface TrainingDataOptions {
  /** Draws the training batches; the TrainingData owns it from then on (close() closes it). */
  loader: TrainingLoader;
  /**
   * With a ChatLoader: the validation items (evaluated as source 'chat' when `validation` names it) and the
   * statistics of the data. Defaults to none.
   */
  chat?: { validation: ChatItem[]; stats: ChatDataStats };
  /**
   * Validation shards by source name, each evaluated with the loader's seqLen and batch size, so each must
   * hold at least one batch of windows of seqLen + 1 tokens. Defaults to none.
   */
  validation?: Record<string, string>;
  /** The manifest the sources come from (for the plan), or null. Defaults to null. */
  manifest?: string | null;
  /** The mixture preset and its citation (for the plan). Default to null. */
  preset?: string | null;
  citation?: string | null;
  /** Sources of the data that the loader leaves out (weight 0, or no training shards). Defaults to none. */
  notInLoader?: string[];
  /** Sources the mixture named that the data lacks, with their weights. Defaults to none. */
  missing?: { name: string; weight: number }[];
  /** The tokenizer the shards were made with (checkpoints record it), or null when unknown. Defaults to null. */
  tokenizer?: TokenizerSpec | null;
}

export class TrainingData {
  readonly loader: TrainingLoader;
  /** Validation shards by source name. */
  readonly validation: Readonly<Record<string, string>>;
  /** The manifest the data comes from (absolute), or null. */
  readonly manifest: string | null;
  /**
   * The tokenizer the shards were made with, which checkpoints record: the manifest's (GPT-2, or the
   * tokenizer.json prepare copied next to it); for data.train, GPT-2 when the shards have its vocabulary
   * (50,257); else null.
   */
  readonly tokenizer: TokenizerSpec | null;
  readonly #preset: string | null;
  readonly #citation: string | null;
  readonly #notInLoader: readonly string[];
  readonly #missing: readonly { name: string; weight: number }[];
  readonly #chat: { validation: ChatItem[]; stats: ChatDataStats } | null;

  constructor(options: TrainingDataOptions) {
    if (!(options?.loader instanceof TokenLoader) && !(options?.loader instanceof ChatLoader)) throw invalidArg('TrainingData: loader must be a TokenLoader or a ChatLoader');
    if (options.loader instanceof ChatLoader && Object.keys(options.validation ?? {}).some((k) => k !== CHAT_SOURCE)) {
      throw invalidArg(`TrainingData: a ChatLoader's validation set is '${CHAT_SOURCE}' (options.chat.validation), not shards`);
    }
    if (options.loader instanceof ChatLoader && options.validation?.[CHAT_SOURCE] !== undefined && (options.chat?.validation.length ?? 0) === 0) {
      throw invalidArg(`TrainingData: validation names '${CHAT_SOURCE}' but options.chat.validation holds no items`);
    }
    const validation = options.validation ?? {};
    for (const [name, shard] of Object.entries(validation)) {
      if (typeof shard !== 'string' || shard === '') throw invalidArg(`TrainingData: validation '${name}' must be a shard path, got ${JSON.stringify(shard)}`);
    }
    this.loader = options.loader;
    this.validation = Object.freeze({ ...validation });
    this.manifest = options.manifest ?? null;
    this.tokenizer = options.tokenizer ?? null;
    this.#preset = options.preset ?? null;
    this.#citation = options.citation ?? null;
    this.#notInLoader = [...(options.notInLoader ?? [])];
    this.#missing = (options.missing ?? []).map((m) => ({ ...m }));
    this.#chat = options.loader instanceof ChatLoader ? { validation: options.chat?.validation ?? [], stats: options.chat?.stats ?? { train: emptyStats(), validation: null } } : null;
  }

  /** True for instruction tuning (a ChatLoader): targets outside assistant replies are ignored. */
  get isChat(): boolean {
    return this.#chat !== null;
  }

  /**
   * The evaluation batches of validation source `name` at the loader's seqLen and batch size, at most
   * maxBatches: sequential windows of its shard (evalBatches), or the chat validation items packed in order.
   */
  evalBatches(name: string, maxBatches: number): Batch[] {
    const { seqLen, batchSize } = this.loader;
    if (!Object.hasOwn(this.validation, name)) throw invalidArg(`TrainingData.evalBatches: no validation source '${name}' (have: ${Object.keys(this.validation).join(', ') || 'none'})`);
    if (this.#chat) return chatEvalBatches(this.#chat.validation, seqLen, batchSize, this.loader.eosId, { pack: (this.loader as ChatLoader).pack, maxBatches });
    return [...evalBatches(this.validation[name], seqLen, batchSize, maxBatches)];
  }

  /** Continues the loader from a checkpoint's state (each loader refuses another's state, naming it). */
  restoreLoader(state: TrainingLoaderState): void {
    if (this.loader instanceof ChatLoader) this.loader.restore(state);
    else this.loader.restore(state as TokenLoaderState | TokenLoaderMixtureState);
  }

  /**
   * Opens the data a config names, for batches of `batch` (seqLen, microBatchSize; worldSize ranks, default 1)
   * drawn by `rank`, and a model of `model.vocabSize`. Errors name the config key; nothing stays open when it throws.
   */
  static fromConfig(
    config: TrainConfig,
    batch: Pick<BatchPlan, 'seqLen' | 'microBatchSize'> & Partial<Pick<BatchPlan, 'worldSize'>>,
    model: Pick<MptConfig, 'vocabSize'>,
    rank = 0,
  ): TrainingData {
    if (config.data.chat.train.length > 0) return chatTrainingData(config, batch, model, rank);
    const data = resolveTrainingData(config);
    const validation = usableValidation(data, batch.seqLen, batch.microBatchSize);
    checkEvalPolicy(config, validation, data.manifest);
    // This rank's share of every global batch (the loader's rank split).
    const common = { seqLen: batch.seqLen, batchSize: batch.microBatchSize, seed: config.seed, rank, worldSize: batch.worldSize ?? 1 };
    const loader = new TokenLoader(data.sources ? { ...common, sources: data.sources } : { ...common, shards: config.data.train });
    try {
      checkVocab(loader, model.vocabSize);
    } catch (e) {
      loader.close();
      throw e;
    }
    // data.train shards record only their vocabulary size and EOS: GPT-2's are taken as GPT-2
    const tokenizer = data.tokenizer !== undefined ? data.tokenizer : loader.vocabSize === GPT2_VOCAB ? ({ kind: 'gpt2' } as const) : null;
    return new TrainingData({ ...data, loader, validation, tokenizer });
  }

  /** Expected tokens and epochs per source over a run of `totalSequences` draws, with where they come from. */
  plan(totalSequences: number): DataPlan {
    const p = this.loader.plan(totalSequences);
    return {
      ...p,
      notDrawn: [...p.notDrawn, ...this.#notInLoader],
      manifest: this.manifest,
      preset: this.#preset,
      citation: this.#citation,
      missing: this.#missing.map((m) => ({ ...m })),
      ...(this.#chat ? { chat: structuredClone(this.#chat.stats) } : {}),
    };
  }

  /** Closes the loader's shards. Idempotent. */
  close(): void {
    this.loader.close();
  }
}

/** eval.every needs something to evaluate. */
export function checkEvalPolicy(config: Pick<TrainConfig, 'eval'>, validation: Readonly<Record<string, string>>, manifest: string | null): void {
  if (config.eval.every > 0 && Object.keys(validation).length === 0) {
    throw invalidArg(`config: 'eval.every' is ${config.eval.every} but no source of ${manifest} has a usable validation shard; set 'eval.every' to 0 or hold out validation data`);
  }
}

/** The model must have an embedding row for every token the shards hold. */
export function checkVocab(loader: Pick<TrainingLoader, 'vocabSize'>, modelVocabSize: number): void {
  if (loader.vocabSize > modelVocabSize) {
    if (loader instanceof ChatLoader) throw invalidArg(`config: the chat tokenizer's vocab size ${loader.vocabSize} exceeds the model's vocabSize ${modelVocabSize} (another tokenizer?)`);
    throw invalidArg(`config: the training shards' vocab size ${loader.vocabSize} exceeds the model's vocabSize ${modelVocabSize} (another tokenizer?)`);
  }
}

/** Where the training and validation shards come from, per the config's data keys. */
interface ResolvedData {
  /** The loader's sources, or null to use data.train as a list of shards. */
  sources: MixtureSource[] | null;
  validation: Record<string, string>;
  /** Manifest sources the loader leaves out (weight 0, or no training shards). */
  notInLoader: string[];
  manifest: string | null;
  preset: string | null;
  citation: string | null;
  /** The manifest's tokenizer (null: it names none that can be rebuilt); undefined for data.train. */
  tokenizer?: TokenizerSpec | null;
  /** Sources the mixture names that the manifest lacks (data.mixtureMissing 'renormalize'). */
  missing?: { name: string; weight: number }[];
}

/**
 * data.train + data.validation as they are, or the manifest's sources (sorted by name, so rewriting the
 * manifest in another key order keeps resume working) weighed by data.mixture, by default in proportion to
 * their training tokens.
 */
function resolveTrainingData(config: TrainConfig): ResolvedData {
  const d = config.data;
  if (d.manifest === null) {
    if (d.train.length === 0) throw invalidArg("config: 'data.train' lists no token shards and 'data.manifest' is not set");
    return { sources: null, validation: { ...d.validation }, notInLoader: [], manifest: null, preset: null, citation: null };
  }
  const manifest = readDataManifest(d.manifest);
  const names = Object.keys(manifest.sources).sort();
  const bySize = Object.fromEntries(names.map((n) => [n, manifest.sources[n].tokens.train]));
  const mixture = resolveMixture(d.mixture ?? bySize, names, { missing: d.mixtureMissing });
  const empty = names.filter((n) => mixture.weights[n] > 0 && manifest.sources[n].train.length === 0);
  if (empty.length > 0) {
    throw invalidArg(`config: the mixture draws from ${empty.join(', ')}, which ${manifest.file} lists without training shards`);
  }
  const drawn = names.filter((n) => mixture.weights[n] > 0);
  const validation: Record<string, string> = {};
  for (const n of names) {
    const v = manifest.sources[n].validation;
    if (v !== null) validation[n] = v;
  }
  return {
    sources: drawn.map((n) => ({ name: n, shards: manifest.sources[n].train, weight: mixture.weights[n] })),
    validation,
    notInLoader: names.filter((n) => !drawn.includes(n)),
    manifest: manifest.file,
    preset: mixture.preset,
    citation: mixture.citation,
    missing: mixture.missing,
    tokenizer: manifestTokenizer(manifest),
  };
}

/**
 * The validation shards that hold at least one evaluation batch. A shard named in data.validation that is
 * too small is an error (the user asked for it); a manifest source's is left out with a warning, so one
 * tiny source does not stop a run, and the loss table says which sources are missing.
 */
function usableValidation(data: ResolvedData, seqLen: number, batchSize: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, shard] of Object.entries(data.validation)) {
    const r = openShard(shard);
    const tokens = r.tokenCount;
    r.close();
    if (evalBatchCount(tokens, seqLen, batchSize) > 0) {
      out[name] = shard;
      continue;
    }
    const why = `the validation shard of '${name}' (${shard}) holds ${tokens} tokens, fewer than one evaluation batch of ${batchSize} windows of ${seqLen} + 1`;
    if (data.manifest === null) throw invalidArg(`config: ${why}; use a smaller batch.microBatchSize or batch.seqLen, or a larger shard`);
    process.emitWarning(`pajama train: ${why}; '${name}' is not evaluated (hold out more of it: split.validation or split.minValidationDocuments)`, {
      code: 'PAJAMA_VALIDATION_TOO_SMALL',
    });
  }
  return out;
}

/**
 * The tokenizer a manifest's shards were made with, when it can be rebuilt: GPT-2, or the tokenizer.json its
 * `tokenizer.spec` names next to the manifest (pajama prepare copies it there). Null when it names neither
 * (manifests of older prepare runs recorded only the original file's name, without a copy).
 */
export function manifestTokenizer(m: LoadedDataManifest): TokenizerSpec | null {
  const spec = m.tokenizer.spec;
  if (spec === 'gpt2') return { kind: 'gpt2' };
  if (typeof spec !== 'string' || spec === '') return null;
  const file = path.resolve(path.dirname(m.file), spec);
  return fs.existsSync(file) ? { kind: 'hf', path: file } : null;
}

function emptyStats(): ChatItemStats {
  return { conversations: 0, items: 0, split: 0, truncated: 0, dropped: 0, tokens: 0, trainedTokens: 0 };
}

/** The seed of the held-out split of data.chat.validationFraction: fixed, so runs of any seed hold out the same conversations. */
const CHAT_VALIDATION_SPLIT_SEED = 0x5eed;

/**
 * `fraction` of the conversations held out, drawn by a fixed seed (at least one when fraction > 0, at least
 * one left to train on); both parts keep file order.
 */
export function splitChatValidation<T>(conversations: readonly T[], fraction: number): { train: T[]; validation: T[] } {
  const n = conversations.length;
  if (fraction <= 0) return { train: [...conversations], validation: [] };
  const k = Math.min(n - 1, Math.max(1, Math.round(fraction * n)));
  const order = Array.from({ length: n }, (_, i) => i);
  const rng = Xoshiro128.fromSeed(CHAT_VALIDATION_SPLIT_SEED);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.below(i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  const held = new Set(order.slice(0, k));
  return { train: conversations.filter((_, i) => !held.has(i)), validation: conversations.filter((_, i) => held.has(i)) };
}

/** The tokenizer of data.chat: its own key, else the one model.init's checkpoint records. */
export function chatTokenizerSpec(config: TrainConfig): TokenizerSpec {
  const t = config.data.chat.tokenizer;
  if (t === 'gpt2') return { kind: 'gpt2' };
  if (t !== null) return { kind: 'hf', path: t };
  const init = config.model.init;
  if (init === null) {
    throw invalidArg("config: 'data.chat' needs a tokenizer for its template: set 'data.chat.tokenizer' ('gpt2' or a tokenizer.json), or 'model.init' to a checkpoint that records one");
  }
  const dir = fs.existsSync(init) && fs.statSync(init).isDirectory() ? init : path.dirname(init);
  const spec = checkpointTokenizer(dir);
  if (spec === null) {
    throw invalidArg(`config: 'model.init' (${init}) records no tokenizer; set 'data.chat.tokenizer' ('gpt2' or a tokenizer.json) to the one it was trained with`);
  }
  return spec;
}

/** data.chat: the conversations read, split for validation, rendered, fitted to rows and loaded (see the file header). */
function chatTrainingData(
  config: TrainConfig,
  batch: Pick<BatchPlan, 'seqLen' | 'microBatchSize'> & Partial<Pick<BatchPlan, 'worldSize'>>,
  model: Pick<MptConfig, 'vocabSize'>,
  rank: number,
): TrainingData {
  const chat = config.data.chat;
  const spec = chatTokenizerSpec(config);
  const tokenizer = createTokenizer(spec);
  if (tokenizer.vocabSize > model.vocabSize) {
    throw invalidArg(`config: the chat tokenizer's vocab size ${tokenizer.vocabSize} exceeds the model's vocabSize ${model.vocabSize} (another tokenizer?)`);
  }
  const read = (files: string[]) => files.flatMap((f) => readConversationsSync(f));
  const all: ChatTurn[][] = read(chat.train);
  const split = chat.validation !== null ? { train: all, validation: read([chat.validation]) } : splitChatValidation(all, chat.validationFraction);
  if (split.train.length === 0) throw invalidArg(`config: 'data.chat.train' holds no conversations to train on`);
  const options = { maxTokens: batch.seqLen + 1, overflow: chat.overflow, system: chat.system };
  const train = chatItems(tokenizer, split.train, options);
  if (train.items.length === 0) {
    throw invalidArg(`config: none of the ${split.train.length} conversations of 'data.chat.train' has an assistant token within ${batch.seqLen + 1} tokens (batch.seqLen + 1); use a longer batch.seqLen or 'data.chat.overflow' 'split'`);
  }
  const validation = split.validation.length > 0 ? chatItems(tokenizer, split.validation, options) : null;
  const stats: ChatDataStats = { train: train.stats, validation: validation?.stats ?? null };
  const hasValidation = validation !== null && validation.items.length > 0;
  if (config.eval.every > 0 && !hasValidation) {
    throw invalidArg(`config: 'eval.every' is ${config.eval.every} but the chat validation set is empty (no conversation with an assistant token within batch.seqLen + 1); set 'eval.every' to 0`);
  }
  if (rank === 0) {
    for (const [what, s] of [['training', train.stats], ['validation', validation?.stats]] as const) {
      if (s && s.dropped > 0) {
        process.emitWarning(`pajama sft: ${s.dropped} ${what} piece(s) of conversations had no assistant token within ${batch.seqLen + 1} tokens and are left out`, { code: 'PAJAMA_CHAT_DROPPED' });
      }
    }
  }
  const loader = new ChatLoader({
    items: train.items,
    seqLen: batch.seqLen,
    batchSize: batch.microBatchSize,
    seed: config.seed,
    vocabSize: tokenizer.vocabSize,
    eosId: tokenizer.eosId,
    pack: chat.pack,
    rank,
    worldSize: batch.worldSize ?? 1,
    files: [...chat.train],
  });
  return new TrainingData({
    loader,
    validation: hasValidation ? { [CHAT_SOURCE]: chat.validation ?? chat.train[0] } : {},
    tokenizer: spec,
    chat: { validation: validation?.items ?? [], stats },
  });
}
