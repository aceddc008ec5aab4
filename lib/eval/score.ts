// score.ts: log-likelihood scoring, the engine under every multiple-choice task, with the EleutherAI
// evaluation harness's rules (lm_eval's HFLM.loglikelihood / _loglikelihood_tokens):
//
// - Encoding (encodePair): whitespace at the end of the context moves to the start of the continuation; the
//   context is encoded alone and context + continuation whole, and the continuation's tokens are the whole
//   encoding after the context's token count (so a merge across the boundary is the harness's too). An empty
//   context is the end-of-text token.
// - Input: (context + continuation) cut from the left to its last maxSeqLen + 1 tokens, then without its last
//   token: the model reads at most maxSeqLen tokens, and row t's logits predict token t + 1. The continuation
//   must fit (at most maxSeqLen tokens) and the context must have a token.
// - Result: the sum over the continuation's tokens of log_softmax(logits)[token], in float64 over the real
//   vocabulary (padded rows of the embedding are never a prediction), and whether every continuation token
//   is the argmax of its row (the first index among equal logits, as torch.argmax).
// - Batching: distinct inputs are scored once (the harness shares one forward among one-token continuations
//   of one context; here any requests with the same input ids share it, e.g. MMLU's " A".." D"), sorted
//   longest first (ties by token ids), grouped into (B, T) batches of at most `batchTokens` ids (T the
//   batch's longest input rounded up to a multiple of 32, so that batches share shapes and the model its
//   buffers; shorter inputs right-padded: causal attention keeps the padding out of their rows), one
//   positionLogits call each, asking only for the continuation rows. Results come back in
//   request order and do not depend on batchTokens beyond float rounding of the batch shape.
import { invalidArg } from '../core/errors';
import type { Tokenizer } from '../data/tokenizers/base';

/** What scoring needs of a model: MptModel has it (in inference mode it allocates no gradient buffers). */
export interface ScoringModel {
  readonly config: { readonly maxSeqLen: number; readonly vocabSize: number; readonly realVocabSize: number };
  /** (positions.length, vocabSize) f32 logits at flat positions b*T + t of a (B, T) batch of ids; padded ids -Infinity. */
  positionLogits(ids: Int32Array, B: number, T: number, positions: Int32Array): Promise<Float32Array>;
}

/** A context and the continuation whose log-likelihood is wanted. */
export interface LoglikelihoodRequest {
  context: string;
  continuation: string;
}

/** The same, encoded. */
export interface TokenRequest {
  context: ArrayLike<number>;
  continuation: ArrayLike<number>;
}

export interface LoglikelihoodResult {
  /** Sum of the continuation tokens' log-probabilities (natural log). */
  logprob: number;
  /** Every continuation token is its row's argmax. */
  greedy: boolean;
}

export interface ScoreOptions {
  /** Most ids in one forward batch (B * T). Defaults to 4096; a longer single input still gets a batch of its own. */
  batchTokens?: number;
  /** After each batch: requests scored so far and in all. */
  onProgress?: (done: number, total: number) => void;
}

export const DEFAULT_BATCH_TOKENS = 4096;

// Logits held for one batch: rows * vocabSize f32 values at most about this many bytes (a batch of at least
// one input always goes through).
const MAX_LOGITS_BYTES = 256 << 20;

// Batch lengths are multiples of this: the model keeps its buffers while (B, T) stays the same, and sorted
// inputs then share a few shapes instead of one per batch (a new shape costs about a forward in allocation).
const SHAPE_STEP = 32;

function isWhitespace(ch: string): boolean {
  return PY_WHITESPACE.has(ch);
}

/** The characters Python's str.isspace() and str.strip() treat as whitespace (JS's \s and trim() differ). */
export const PY_WHITESPACE: ReadonlySet<string> = new Set(
  [0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680, 0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006,
    0x2007, 0x2008, 0x2009, 0x200a, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000].map((c) => String.fromCharCode(c)),
);

/** Python's str.rstrip(): trailing Python whitespace removed. */
export function pyRstrip(s: string): string {
  let end = s.length;
  while (end > 0 && isWhitespace(s[end - 1])) end--;
  return s.slice(0, end);
}

/** Python's str.strip(). */
export function pyStrip(s: string): string {
  let start = 0;
  while (start < s.length && isWhitespace(s[start])) start++;
  return pyRstrip(s.slice(start));
}

/**
 * The harness's encoding of one request (see the file header). `contextCache` keeps the encoded contexts
 * (one task's choices share theirs).
 */
export function encodePair(
  tokenizer: Tokenizer,
  context: string,
  continuation: string,
  contextCache?: Map<string, number[]>,
): { context: number[]; continuation: number[] } {
  if (context === '') return { context: [tokenizer.eosId], continuation: Array.from(tokenizer.encode(continuation)) };
  const stripped = pyRstrip(context);
  const moved = context.slice(stripped.length);
  const whole = Array.from(tokenizer.encode(stripped + moved + continuation));
  let ctx = contextCache?.get(stripped);
  if (!ctx) {
    ctx = Array.from(tokenizer.encode(stripped));
    contextCache?.set(stripped, ctx);
  }
  return { context: ctx, continuation: whole.slice(ctx.length) };
}

interface Input {
  ids: Int32Array; // the model's input, at most maxSeqLen ids
  rows: number; // continuation rows asked of it: the longest continuation among its requests
  requests: number[];
}

function checkOptions(options: ScoreOptions): { batchTokens: number; onProgress?: (done: number, total: number) => void } {
  if (options === null || typeof options !== 'object') throw invalidArg('score: options must be an object');
  const known = ['batchTokens', 'onProgress'];
  for (const k of Object.keys(options)) if (!known.includes(k)) throw invalidArg(`score: unknown option '${k}' (options: ${known.join(', ')})`);
  const batchTokens = options.batchTokens ?? DEFAULT_BATCH_TOKENS;
  if (!Number.isSafeInteger(batchTokens) || batchTokens < 1) throw invalidArg(`score: batchTokens must be an integer >= 1, got ${batchTokens}`);
  if (options.onProgress !== undefined && typeof options.onProgress !== 'function') throw invalidArg('score: onProgress must be a function');
  return { batchTokens, onProgress: options.onProgress };
}

function checkModel(model: ScoringModel): void {
  if (!model || typeof model.positionLogits !== 'function' || !model.config) throw invalidArg('score: model must have config and positionLogits (an MptModel)');
}

/** A forward batch: its length T and the inputs (indices into the sorted list) that fill its rows. */
export interface BatchPlan {
  T: number;
  members: number[];
}

/**
 * The batches scoreTokens runs over inputs of `lengths` (sorted longest first, as scoreTokens sorts them):
 * each batch's T is its first input's length rounded up to a multiple of `step` (at most maxSeqLen), its
 * rows floor(batchTokens / T) inputs (at least one), fewer only at the end or where the continuation rows
 * would pass maxRows. Exported for tests.
 */
export function planBatches(lengths: readonly number[], rows: readonly number[], batchTokens: number, maxRows: number, maxSeqLen: number, step = SHAPE_STEP): BatchPlan[] {
  const batches: BatchPlan[] = [];
  for (let i = 0; i < lengths.length; ) {
    const T = Math.min(maxSeqLen, Math.ceil(lengths[i] / step) * step);
    const B = Math.max(1, Math.floor(batchTokens / T));
    const members = [i];
    let r = rows[i++];
    while (i < lengths.length && members.length < B && r + rows[i] <= maxRows) {
      members.push(i);
      r += rows[i++];
    }
    batches.push({ T, members });
  }
  return batches;
}

function compareIds(a: Int32Array, b: Int32Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

/** Log-likelihoods and greedy flags of encoded requests (see the file header). */
export async function scoreTokens(model: ScoringModel, requests: readonly TokenRequest[], options: ScoreOptions = {}): Promise<LoglikelihoodResult[]> {
  checkModel(model);
  const { batchTokens, onProgress } = checkOptions(options);
  const { maxSeqLen, vocabSize, realVocabSize } = model.config;
  // Distinct inputs, each with the requests it serves.
  const inputs: Input[] = [];
  const byKey = new Map<string, Input>();
  const conts: Int32Array[] = [];
  requests.forEach((req, i) => {
    const ctx = req?.context;
    const cont = req?.continuation;
    if (!ctx || !cont || typeof ctx.length !== 'number' || typeof cont.length !== 'number') {
      throw invalidArg(`score: request ${i} must have context and continuation token arrays`);
    }
    if (ctx.length === 0) throw invalidArg(`score: request ${i} has an empty context (encode an empty context as the end-of-text token)`);
    if (cont.length === 0) throw invalidArg(`score: request ${i} has an empty continuation: there is nothing to score`);
    if (cont.length > maxSeqLen) throw invalidArg(`score: request ${i}'s continuation has ${cont.length} tokens, more than the model's maxSeqLen ${maxSeqLen}`);
    const all = new Int32Array(ctx.length + cont.length);
    for (let k = 0; k < all.length; k++) {
      const id = k < ctx.length ? ctx[k] : cont[k - ctx.length];
      if (!(Number.isInteger(id) && id >= 0 && id < realVocabSize)) {
        throw invalidArg(`score: request ${i} has token ${id} at ${k}, outside the model's vocabulary [0, ${realVocabSize}) (tokenizer and model do not match)`);
      }
      all[k] = id;
    }
    const ids = all.slice(Math.max(0, all.length - (maxSeqLen + 1)), all.length - 1);
    conts.push(Int32Array.from(cont as ArrayLike<number>));
    const key = ids.join(',');
    let input = byKey.get(key);
    if (!input) {
      input = { ids, rows: 0, requests: [] };
      byKey.set(key, input);
      inputs.push(input);
    }
    input.rows = Math.max(input.rows, cont.length);
    input.requests.push(i);
  });
  // Longest first, then by ids, as the harness orders its requests (the order only decides the batches).
  const sorted = inputs.slice().sort((a, b) => b.ids.length - a.ids.length || compareIds(a.ids, b.ids));
  const maxRows = Math.max(1, Math.floor(MAX_LOGITS_BYTES / (4 * vocabSize)));
  const batches = planBatches(
    sorted.map((u) => u.ids.length),
    sorted.map((u) => u.rows),
    batchTokens,
    maxRows,
    maxSeqLen,
  );
  const results: LoglikelihoodResult[] = new Array(requests.length);
  let done = 0;
  for (const batch of batches) {
    const members = batch.members.map((k) => sorted[k]);
    const B = members.length;
    const T = batch.T;
    const ids = new Int32Array(B * T); // right padding: id 0, never read by the real rows
    let nRows = 0;
    for (const u of members) nRows += u.rows;
    const positions = new Int32Array(nRows);
    const rowStart: number[] = [];
    let at = 0;
    members.forEach((u, b) => {
      ids.set(u.ids, b * T);
      rowStart.push(at);
      for (let r = 0; r < u.rows; r++) positions[at++] = b * T + u.ids.length - u.rows + r;
    });
    const logits = await model.positionLogits(ids, B, T, positions);
    if (logits.length !== nRows * vocabSize) {
      throw new RangeError(`score: positionLogits returned ${logits.length} values, expected ${nRows} rows x vocabSize ${vocabSize}`);
    }
    // Per row: log-sum-exp over the real vocabulary in float64, and the argmax (first among equals).
    const lse = new Float64Array(nRows);
    const argmax = new Int32Array(nRows);
    for (let r = 0; r < nRows; r++) {
      const o = r * vocabSize;
      let best = 0;
      let mx = logits[o];
      for (let v = 1; v < realVocabSize; v++) {
        const x = logits[o + v];
        if (x > mx) {
          mx = x;
          best = v;
        }
      }
      if (!Number.isFinite(mx)) throw new RangeError(`score: the model gave a non-finite logit maximum (${mx}): diverged weights?`);
      let sum = 0;
      for (let v = 0; v < realVocabSize; v++) sum += Math.exp(logits[o + v] - mx);
      lse[r] = mx + Math.log(sum);
      argmax[r] = best;
    }
    members.forEach((u, b) => {
      for (const i of u.requests) {
        const cont = conts[i];
        // The request's rows are the last cont.length of the input's u.rows rows.
        const first = rowStart[b] + u.rows - cont.length;
        let logprob = 0;
        let greedy = true;
        for (let j = 0; j < cont.length; j++) {
          const r = first + j;
          logprob += logits[r * vocabSize + cont[j]] - lse[r];
          if (argmax[r] !== cont[j]) greedy = false;
        }
        results[i] = { logprob, greedy };
      }
      done += u.requests.length;
    });
    onProgress?.(done, requests.length);
  }
  return results;
}

/** Log-likelihoods and greedy flags of text requests, encoded with the harness's rules (see the file header). */
export async function loglikelihood(
  model: ScoringModel,
  tokenizer: Tokenizer,
  requests: readonly LoglikelihoodRequest[],
  options: ScoreOptions = {},
): Promise<LoglikelihoodResult[]> {
  checkModel(model);
  if (!tokenizer || typeof tokenizer.encode !== 'function') throw invalidArg('score: tokenizer must implement Tokenizer');
  const contexts = new Map<string, number[]>();
  const encoded = requests.map((r, i) => {
    if (!r || typeof r.context !== 'string' || typeof r.continuation !== 'string') {
      throw invalidArg(`score: request ${i} must have string context and continuation`);
    }
    return encodePair(tokenizer, r.context, r.continuation, contexts);
  });
  return scoreTokens(model, encoded, options);
}
