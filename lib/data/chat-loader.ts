// chat-loader.ts: training and validation batches of chat conversations for instruction tuning: each
// conversation rendered with the chat template (chat.ts), fitted to the sequence, packed into rows, and
// served with the batch shapes, the rank split and the resumable, seeded order of the pretraining loader.
//
// Items. A row holds seqLen + 1 tokens (its inputs are the first seqLen, its targets the last seqLen), so a
// rendered conversation of up to seqLen + 1 tokens is one item. A longer one follows `overflow`:
//   - 'split' (the default): cut at exchange boundaries (a user turn and its reply), as FastChat split
//     ShareGPT for Vicuna: each piece is the system line and as many whole exchanges as fit, rendered as a
//     conversation of its own, so every reply keeps its question and the template's layout. A single
//     exchange that does not fit with the system line is truncated to seqLen + 1 tokens. Nothing of a long
//     conversation's replies is lost except what one over-long exchange cannot hold.
//   - 'truncate': the first seqLen + 1 tokens of the conversation; the rest is not trained on.
// An item with no trained target (every reply beyond the cut) is dropped and counted.
//
// Targets. Position t of an item predicts token t + 1 of the same item, and carries a loss only when that
// token is trained (an assistant reply token or the EOS ending it): targets[t] = ids[t + 1] if
// trained[t + 1], else IGNORE_INDEX (-100). Only assistant tokens carry loss; the system line, user turns,
// role prefixes, padding, and the step from one packed item to the next carry none.
//
// Rows. With `pack` (the default) whole items are packed greedily in order: an item that does not fit in what
// is left of the row starts the next row, and the rest of the row is padded with EOS (inputs) whose targets
// are ignored. Packing keeps the CPU's work on real tokens (ShareGPT conversations range from a few dozen to
// thousands of tokens: one per row would be mostly padding at a short seqLen); an item never spans two rows,
// so no reply loses the context it was written for. Items packed together share a causal window (the
// model has no per-document attention mask), as documents do in pretraining windows; each item starts with
// its system line and every reply ends with EOS, which the model knows as a document boundary. Without
// `pack` every item is its own row, padded (the FastChat layout, at the cost of padding).
//
// Order. The training items are shuffled once per epoch (Fisher-Yates with the Xoshiro128 stream of the
// seed); epochs follow each other in one stream of items, cut into one stream of rows. Each batch takes the
// next batchSize * worldSize rows and deals them in blocks over the ranks, as TokenLoader deals draws: rank r
// takes the r-th block of batchSize rows, so N ranks x A accumulation steps see the rows of 1 rank x N*A.
// Every rank packs every row of the block (it needs only item lengths), so each batch also reports the
// trained tokens of the whole block: the trainer normalises the loss by the trained tokens of the global
// batch without a collective. state() holds the RNG state at the start of the current epoch, the position in
// it and a digest of the items, so restore() continues exactly and refuses other conversations or settings.
import { createHash } from 'node:crypto';
import { DisposedError, invalidArg } from '../core/errors';
import { Xoshiro128, type RngState } from '../core/rng';
import { planMixture, type MixturePlan } from './mixture';
import type { Batch, SourceDrawReport, TokenLoaderMixtureState, TokenLoaderState } from './loader';
import { renderExchanges, type ChatTemplateOptions, type ChatTokenizer, type ChatTurn, type RenderedConversation } from './chat';

/** The target of a position that carries no loss (the model's default ignoreIndex). */
export const IGNORE_INDEX = -100;

/** What becomes of a conversation longer than a row (seqLen + 1 tokens). */
export const CHAT_OVERFLOW_RULES = ['split', 'truncate'] as const;
export type ChatOverflow = (typeof CHAT_OVERFLOW_RULES)[number];

/** The name under which chat data is reported (its one source, its validation set). */
export const CHAT_SOURCE = 'chat';

/** One conversation, or one piece of it, fitted to a row. */
export interface ChatItem {
  ids: Int32Array;
  /** 1 where the token is trained. */
  trained: Uint8Array;
  /** Positions whose target carries a loss: t in [1, length) with trained[t]. */
  trainedTargets: number;
}

export interface ChatItemOptions extends ChatTemplateOptions {
  /** Tokens an item may hold: seqLen + 1. */
  maxTokens: number;
  /** Defaults to 'split'. */
  overflow?: ChatOverflow;
}

/** What fitting conversations to rows did. */
export interface ChatItemStats {
  conversations: number;
  items: number;
  /** Conversations longer than a row that were split (overflow 'split'). */
  split: number;
  /** Items cut at maxTokens (a conversation under 'truncate', an over-long exchange under 'split'). */
  truncated: number;
  /** Items left with no trained target after the cut, and left out. */
  dropped: number;
  /** Tokens of the items. */
  tokens: number;
  /** Of which trained. */
  trainedTokens: number;
}

function countTargets(trained: Uint8Array): number {
  let n = 0;
  for (let t = 1; t < trained.length; t++) n += trained[t];
  return n;
}

function item(ids: Int32Array, trained: Uint8Array): ChatItem {
  return { ids, trained, trainedTargets: countTargets(trained) };
}

function concat(parts: RenderedConversation[], limit: number): { ids: Int32Array; trained: Uint8Array; cut: boolean } {
  const n = parts.reduce((a, p) => a + p.ids.length, 0);
  const len = Math.min(n, limit);
  const ids = new Int32Array(len);
  const trained = new Uint8Array(len);
  let at = 0;
  for (const p of parts) {
    const k = Math.min(p.ids.length, len - at);
    ids.set(p.ids.subarray(0, k), at);
    trained.set(p.trained.subarray(0, k), at);
    at += k;
    if (at === len) break;
  }
  return { ids, trained, cut: n > len };
}

/** The items of conversations (see the file header), with what was split, truncated and dropped. */
export function chatItems(tokenizer: ChatTokenizer, conversations: readonly (readonly ChatTurn[])[], options: ChatItemOptions): { items: ChatItem[]; stats: ChatItemStats } {
  const where = 'chatItems';
  const max = options?.maxTokens;
  if (!Number.isSafeInteger(max) || max < 2) throw invalidArg(`${where}: maxTokens must be an integer >= 2 (seqLen + 1), got ${max}`);
  const overflow = options.overflow ?? 'split';
  if (!CHAT_OVERFLOW_RULES.includes(overflow)) throw invalidArg(`${where}: overflow must be 'split' or 'truncate', got ${JSON.stringify(overflow)}`);
  const template: ChatTemplateOptions = options.system !== undefined ? { system: options.system } : {};
  const stats: ChatItemStats = { conversations: conversations.length, items: 0, split: 0, truncated: 0, dropped: 0, tokens: 0, trainedTokens: 0 };
  const items: ChatItem[] = [];
  const keep = (parts: RenderedConversation[]) => {
    const c = concat(parts, max);
    if (c.cut) stats.truncated++;
    const it = item(c.ids, c.trained);
    if (it.trainedTargets === 0) {
      stats.dropped++;
      return;
    }
    items.push(it);
    stats.tokens += it.ids.length;
    stats.trainedTokens += it.trainedTargets;
  };
  conversations.forEach((turns, i) => {
    let ex: ReturnType<typeof renderExchanges>;
    try {
      ex = renderExchanges(tokenizer, turns, template);
    } catch (e) {
      throw invalidArg(`${where}: conversation ${i}: ${(e as Error).message}`);
    }
    const total = ex.header.ids.length + ex.exchanges.reduce((a, e) => a + e.ids.length, 0);
    if (total <= max || overflow === 'truncate') {
      keep([ex.header, ...ex.exchanges]);
      return;
    }
    stats.split++;
    let piece: RenderedConversation[] = [];
    let length = ex.header.ids.length;
    for (const e of ex.exchanges) {
      if (piece.length > 0 && length + e.ids.length > max) {
        keep([ex.header, ...piece]);
        piece = [];
        length = ex.header.ids.length;
      }
      piece.push(e);
      length += e.ids.length;
    }
    keep([ex.header, ...piece]);
  });
  stats.items = items.length;
  return { items, stats };
}

/** A digest of items (ids and masks, in order): a resumed loader must serve the very same items. */
export function chatItemsDigest(items: readonly ChatItem[]): string {
  const h = createHash('sha256');
  const len = new Uint32Array(1);
  for (const it of items) {
    len[0] = it.ids.length;
    h.update(new Uint8Array(len.buffer));
    h.update(new Uint8Array(it.ids.buffer, it.ids.byteOffset, it.ids.byteLength));
    h.update(it.trained);
  }
  return h.digest('hex');
}

/** Writes `items` into one row: ids (seqLen + 1, EOS-padded) and targets (seqLen, ignored where no loss). */
function fillRow(items: readonly ChatItem[], ids: Int32Array, targets: Int32Array, eosId: number): void {
  ids.fill(eosId);
  targets.fill(IGNORE_INDEX);
  let at = 0;
  for (const it of items) {
    ids.set(it.ids, at);
    for (let t = 0; t + 1 < it.ids.length; t++) if (it.trained[t + 1]) targets[at + t] = it.ids[t + 1];
    at += it.ids.length;
  }
}

/** Rows of items packed in order (one item a row without `pack`), each at most `capacity` tokens. */
function packInOrder(items: readonly ChatItem[], capacity: number, pack: boolean): ChatItem[][] {
  const rows: ChatItem[][] = [];
  let row: ChatItem[] = [];
  let used = 0;
  for (const it of items) {
    if (row.length > 0 && (!pack || used + it.ids.length > capacity)) {
      rows.push(row);
      row = [];
      used = 0;
    }
    row.push(it);
    used += it.ids.length;
  }
  if (row.length > 0) rows.push(row);
  return rows;
}

/**
 * Validation batches of chat items, the same every time: the items in order, packed as training packs them,
 * batchSize rows to a batch; the last batch is completed with rows of padding whose targets are all ignored
 * (they add no loss and no tokens). At most maxBatches.
 */
export function chatEvalBatches(items: readonly ChatItem[], seqLen: number, batchSize: number, eosId: number, options: { pack?: boolean; maxBatches?: number } = {}): Batch[] {
  const where = 'chatEvalBatches';
  if (!Number.isSafeInteger(seqLen) || seqLen < 1) throw invalidArg(`${where}: seqLen must be a positive integer, got ${seqLen}`);
  if (!Number.isSafeInteger(batchSize) || batchSize < 1) throw invalidArg(`${where}: batchSize must be a positive integer, got ${batchSize}`);
  for (const [i, it] of items.entries()) {
    if (it.ids.length > seqLen + 1) throw invalidArg(`${where}: item ${i} holds ${it.ids.length} tokens, more than a row of seqLen + 1 = ${seqLen + 1}`);
  }
  const rows = packInOrder(items, seqLen + 1, options.pack ?? true);
  const count = Math.min(Math.ceil(rows.length / batchSize), options.maxBatches ?? Infinity);
  const out: Batch[] = [];
  const rowIds = new Int32Array(seqLen + 1);
  const rowTargets = new Int32Array(seqLen);
  for (let b = 0; b < count; b++) {
    const inputs = new Int32Array(batchSize * seqLen);
    const targets = new Int32Array(batchSize * seqLen);
    for (let r = 0; r < batchSize; r++) {
      fillRow(rows[b * batchSize + r] ?? [], rowIds, rowTargets, eosId);
      inputs.set(rowIds.subarray(0, seqLen), r * seqLen);
      targets.set(rowTargets, r * seqLen);
    }
    out.push({ inputs, targets });
  }
  return out;
}

export interface ChatLoaderOptions {
  /** The training items (chatItems), each at most seqLen + 1 tokens with a trained target. */
  items: ChatItem[];
  /** Tokens per training sequence. */
  seqLen: number;
  /** Rows per batch on this rank. */
  batchSize: number;
  /** Fixes the order of the items. A safe integer. */
  seed: number;
  /** The tokenizer's vocabulary size and end-of-text id (the padding). */
  vocabSize: number;
  eosId: number;
  /** Pack items greedily into rows (else one item a row). Defaults to true. */
  pack?: boolean;
  /** This process's data-parallel rank. Defaults to 0. */
  rank?: number;
  /** Data-parallel ranks. Defaults to 1. */
  worldSize?: number;
  /** The conversation files the items come from (reported, and compared across ranks). Defaults to none. */
  files?: string[];
}

/** One row of a chat batch: its number in the global stream of rows and the items it holds. */
export interface ChatRow {
  index: number;
  /** Indices into the loader's items. */
  items: number[];
}

export interface ChatBatch extends Batch {
  /** (batchSize) what each row holds. */
  rows: ChatRow[];
  /** Targets of this rank's rows that carry a loss. */
  trainedTokens: number;
  /** Targets that carry a loss in the rows of every rank for this batch (the whole block). */
  blockTrainedTokens: number;
}

/** A ChatLoader's position: plain JSON. */
export interface ChatLoaderState {
  version: 3;
  kind: 'chat';
  seed: number;
  /** The RNG state before the current epoch's shuffle. */
  rng: RngState;
  /** Epochs completed. */
  epoch: number;
  /** Items of the current epoch already placed in rows. */
  position: number;
  /** Rows of the global stream consumed, by all ranks together. */
  rows: number;
  batches: number;
  seqLen: number;
  pack: boolean;
  /** The items, to refuse resuming over other conversations or another template, overflow rule or tokenizer. */
  items: number;
  tokens: number;
  digest: string;
}

export class ChatLoader {
  readonly seqLen: number;
  readonly batchSize: number;
  readonly rank: number;
  readonly worldSize: number;
  readonly seed: number;
  readonly vocabSize: number;
  readonly eosId: number;
  readonly pack: boolean;
  /** Never a mixture: one source, CHAT_SOURCE. */
  readonly isMixture = false;
  readonly #items: ChatItem[];
  readonly #files: string[];
  readonly #tokens: number;
  readonly #digest: string;
  #rng: Xoshiro128;
  #epochRng: RngState;
  #order: Uint32Array;
  #epoch = 0;
  #position = 0;
  #rows = 0;
  #batches = 0;
  #closed = false;
  #rowIds: Int32Array;
  #rowTargets: Int32Array;

  constructor(options: ChatLoaderOptions) {
    const where = 'ChatLoader';
    const o = options ?? ({} as ChatLoaderOptions);
    const positive = (v: unknown, name: string) => {
      if (!Number.isSafeInteger(v) || (v as number) < 1) throw invalidArg(`${where}: ${name} must be a positive integer, got ${v}`);
      return v as number;
    };
    this.seqLen = positive(o.seqLen, 'seqLen');
    this.batchSize = positive(o.batchSize, 'batchSize');
    this.worldSize = positive(o.worldSize ?? 1, 'worldSize');
    const rank = o.rank ?? 0;
    if (!Number.isSafeInteger(rank) || rank < 0 || rank >= this.worldSize) throw invalidArg(`${where}: rank must be an integer in [0, worldSize = ${this.worldSize}), got ${rank}`);
    this.rank = rank;
    if (!Number.isSafeInteger(o.seed)) throw invalidArg(`${where}: seed must be a safe integer, got ${o.seed}`);
    this.seed = o.seed;
    this.vocabSize = positive(o.vocabSize, 'vocabSize');
    if (!Number.isInteger(o.eosId) || o.eosId < 0 || o.eosId >= this.vocabSize) throw invalidArg(`${where}: eosId must be a token id in [0, ${this.vocabSize}), got ${o.eosId}`);
    this.eosId = o.eosId;
    this.pack = o.pack ?? true;
    if (!Array.isArray(o.items) || o.items.length === 0) throw invalidArg(`${where}: items must be a non-empty array of chat items`);
    o.items.forEach((it, i) => {
      if (!(it?.ids instanceof Int32Array) || !(it.trained instanceof Uint8Array) || it.trained.length !== it.ids.length) {
        throw invalidArg(`${where}: items[${i}] must be { ids: Int32Array, trained: Uint8Array of the same length }`);
      }
      if (it.ids.length > this.seqLen + 1) throw invalidArg(`${where}: items[${i}] holds ${it.ids.length} tokens, more than a row of seqLen + 1 = ${this.seqLen + 1}`);
      if (countTargets(it.trained) === 0) throw invalidArg(`${where}: items[${i}] has no trained target`);
      for (const id of it.ids) if (id < 0 || id >= this.vocabSize) throw invalidArg(`${where}: items[${i}] holds token ${id}, outside the vocabulary [0, ${this.vocabSize})`);
    });
    this.#items = o.items.map((it) => item(it.ids, it.trained));
    this.#files = [...(o.files ?? [])];
    this.#tokens = this.#items.reduce((a, it) => a + it.ids.length, 0);
    this.#digest = chatItemsDigest(this.#items);
    this.#rng = Xoshiro128.fromSeed(this.seed);
    this.#epochRng = this.#rng.state();
    this.#order = this.#shuffle();
    this.#rowIds = new Int32Array(this.seqLen + 1);
    this.#rowTargets = new Int32Array(this.seqLen);
  }

  /** The next epoch's order of the items, from the RNG. */
  #shuffle(): Uint32Array {
    const n = this.#items.length;
    const order = new Uint32Array(n);
    for (let i = 0; i < n; i++) order[i] = i;
    for (let i = n - 1; i > 0; i--) {
      const j = this.#rng.below(i + 1);
      const x = order[i];
      order[i] = order[j];
      order[j] = x;
    }
    return order;
  }

  #advance(): void {
    if (++this.#position < this.#order.length) return;
    this.#epoch++;
    this.#position = 0;
    this.#epochRng = this.#rng.state();
    this.#order = this.#shuffle();
  }

  /** The items of the next row of the stream (consumed). */
  #nextRow(): number[] {
    const row: number[] = [];
    let used = 0;
    for (;;) {
      const i = this.#order[this.#position];
      const len = this.#items[i].ids.length;
      if (row.length > 0 && (!this.pack || used + len > this.seqLen + 1)) return row;
      row.push(i);
      used += len;
      this.#advance();
    }
  }

  /** The training items, in file order. */
  get items(): readonly ChatItem[] {
    return this.#items;
  }

  /** The conversation files (for the run's identity: every rank must read the same). */
  get shards(): string[] {
    return [...this.#files];
  }

  get sourceNames(): string[] {
    return [CHAT_SOURCE];
  }

  /** Rows of the global stream consumed so far, by all ranks together. */
  get draws(): number {
    return this.#rows;
  }

  get batches(): number {
    return this.#batches;
  }

  /** Epochs completed, and the share of the current one placed in rows. */
  get epochs(): number {
    return this.#epoch + this.#position / this.#items.length;
  }

  /** The next batch for this rank. */
  next(): ChatBatch {
    if (this.#closed) throw new DisposedError('ChatLoader.next: the loader is closed');
    const B = this.batchSize;
    const T = this.seqLen;
    const inputs = new Int32Array(B * T);
    const targets = new Int32Array(B * T);
    const rows: ChatRow[] = [];
    let trainedTokens = 0;
    let blockTrainedTokens = 0;
    for (let i = 0; i < B * this.worldSize; i++) {
      const index = this.#rows + i;
      const items = this.#nextRow();
      const trained = items.reduce((a, k) => a + this.#items[k].trainedTargets, 0);
      blockTrainedTokens += trained;
      if (Math.floor(i / B) !== this.rank) continue;
      const r = rows.length;
      fillRow(items.map((k) => this.#items[k]), this.#rowIds, this.#rowTargets, this.eosId);
      inputs.set(this.#rowIds.subarray(0, T), r * T);
      targets.set(this.#rowTargets, r * T);
      rows.push({ index, items });
      trainedTokens += trained;
    }
    this.#rows += B * this.worldSize;
    this.#batches++;
    return { inputs, targets, rows, trainedTokens, blockTrainedTokens };
  }

  /** The one source: rows drawn (draws), their tokens (tokensDrawn) and the epochs of items placed so far. */
  sourceReport(): SourceDrawReport[] {
    return [{ name: CHAT_SOURCE, weight: 1, tokens: this.#tokens, draws: this.#rows, tokensDrawn: this.#rows * this.seqLen, epochs: this.epochs }];
  }

  /** Expected tokens and epochs over a run of `totalSequences` rows (padding counted as tokens drawn). */
  plan(totalSequences: number): MixturePlan {
    return planMixture([{ name: CHAT_SOURCE, weight: 1, tokens: this.#tokens }], totalSequences, this.seqLen);
  }

  state(): ChatLoaderState {
    return {
      version: 3,
      kind: 'chat',
      seed: this.seed,
      rng: [...this.#epochRng] as RngState,
      epoch: this.#epoch,
      position: this.#position,
      rows: this.#rows,
      batches: this.#batches,
      seqLen: this.seqLen,
      pack: this.pack,
      items: this.#items.length,
      tokens: this.#tokens,
      digest: this.#digest,
    };
  }

  /** Continues from `state`: the next batch is the one the loader that saved it would have given next. */
  restore(state: ChatLoaderState | TokenLoaderState | TokenLoaderMixtureState): void {
    const where = 'ChatLoader.restore';
    const s = state as Partial<ChatLoaderState> | null;
    if (s === null || typeof s !== 'object' || s.version !== 3 || s.kind !== 'chat') {
      const version = (state as { version?: unknown } | null)?.version;
      const what = version === 1 || version === 2 ? 'it is a state of a token-shard loader (pretraining data)' : JSON.stringify(state)?.slice(0, 200);
      throw invalidArg(`${where}: not a chat loader state (version 3): ${what}`);
    }
    if (s.seqLen !== this.seqLen) throw invalidArg(`${where}: the state is for seqLen ${s.seqLen}, this loader has ${this.seqLen}`);
    if (s.pack !== this.pack) throw invalidArg(`${where}: the state is for pack ${s.pack}, this loader has pack ${this.pack}`);
    if (s.items !== this.#items.length || s.tokens !== this.#tokens || s.digest !== this.#digest) {
      throw invalidArg(
        `${where}: the state is for other conversations (${s.items} items of ${s.tokens} tokens, digest ${String(s.digest).slice(0, 12)}), ` +
          `this loader has ${this.#items.length} items of ${this.#tokens} tokens (digest ${this.#digest.slice(0, 12)}): other files, template, overflow rule, sequence length or tokenizer`,
      );
    }
    const ints = { epoch: s.epoch, position: s.position, rows: s.rows, batches: s.batches };
    for (const [k, v] of Object.entries(ints)) {
      if (!Number.isSafeInteger(v) || (v as number) < 0) throw invalidArg(`${where}: ${k} must be a non-negative integer, got ${v}`);
    }
    if ((s.position as number) >= this.#items.length) throw invalidArg(`${where}: position ${s.position} is past the ${this.#items.length} items`);
    this.#rng = Xoshiro128.fromState(s.rng as RngState);
    this.#epochRng = this.#rng.state();
    this.#order = this.#shuffle();
    this.#epoch = s.epoch as number;
    this.#position = s.position as number;
    this.#rows = s.rows as number;
    this.#batches = s.batches as number;
  }

  /** Idempotent; next() then throws. */
  close(): void {
    this.#closed = true;
  }
}
