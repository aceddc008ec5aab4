// generate.ts: autoregressive text generation from a trained model.
//
// Two paths compute the next token's logits:
//   - cached (the default for a model with createCache, e.g. MptModel): the prompt is prefilled once into a
//     key/value cache (model/kv-cache.ts), then each step runs only the newest token. While prompt + generated
//     tokens fit the model's context (maxSeqLen), every step sees the whole sequence, exactly as the uncached
//     path does. When the cache is full, the context shifts: the last ceil(maxSeqLen / 2) tokens are prefilled
//     again and decoding goes on from there, so each token past the context sees between half and all of
//     maxSeqLen tokens before it (one prefill per maxSeqLen / 2 tokens, instead of one per token).
//   - uncached (`cache: false`, or a model with lastLogits only): model.lastLogits over the sequence so far, cut
//     to its last maxSeqLen tokens, recomputed from scratch for every token (a window that slides by one).
// Picking a token: temperature 0 is greedy (the highest logit, the lowest id among equals). Otherwise the token
// is drawn from softmax(logits / temperature), narrowed as Hugging Face's samplers do, in this order: to the topK
// highest logits (ties broken by the lower id), then to the smallest set of most likely tokens whose probability
// reaches topP (nucleus sampling); the draw uses a Xoshiro128 seeded by `seed`, so the same model, prompt and
// options give the same tokens on either path (within float rounding of the logits: see the tests). Only ids
// below min(realVocabSize, tokenizer.vocabSize) are candidates, so the padded rows of the embedding (logit
// -Infinity) are never drawn, nor ids the tokenizer cannot decode.
// Stopping: after maxNewTokens, after the tokenizer's EOS (stopAtEos), or as soon as the decoded continuation
// contains one of the `stop` strings; the text returned then ends just before the earliest one.
import { invalidArg } from '../core/errors';
import { Xoshiro128, uniform53 } from '../core/rng';
import type { Tokenizer } from '../data/tokenizers/base';

/** A key/value cache session (MptKvCache has it). */
export interface LogitsCache {
  readonly maxLen: number;
  readonly length: number;
  ids(b?: number): number[];
  prefill(ids: Int32Array): Promise<Float32Array>;
  append(ids: Int32Array): Promise<Float32Array>;
  truncate(n: number): void;
  dispose(): void;
}

/** What generate needs of a model; MptModel has it. */
export interface LogitsModel {
  readonly config: { readonly maxSeqLen: number; readonly vocabSize: number; readonly realVocabSize: number };
  /** (B, vocabSize) f32 logits of the last position of each of B sequences of T ids. */
  lastLogits(ids: Int32Array, B: number, T: number): Promise<Float32Array>;
  /** A key/value cache of one sequence (optional: without it generation takes the uncached path). */
  createCache?(options: { batch?: number; maxLen?: number }): LogitsCache;
}

export interface GenerateOptions {
  /** Tokens to generate at most, an integer >= 0. */
  maxNewTokens: number;
  /** 0 (default) is greedy; > 0 samples from softmax(logits / temperature). */
  temperature?: number;
  /** Sample only among the k highest logits (k >= 1). Defaults to all. */
  topK?: number;
  /** Nucleus sampling: only among the most likely tokens whose probabilities sum to topP, in (0, 1]. Defaults to 1 (all). */
  topP?: number;
  /** Seed of the sampling. Defaults to 0. */
  seed?: number;
  /** Stop after the tokenizer's EOS (which is not part of the text). Defaults to true. */
  stopAtEos?: boolean;
  /** Stop as soon as the generated text contains one of these (non-empty) strings; the text ends before it. Defaults to none. */
  stop?: readonly string[];
  /** Use the model's key/value cache (true needs createCache). Defaults to true when the model has one. */
  cache?: boolean;
}

export interface GenerateResult {
  /** The generated continuation, decoded (the prompt is not repeated; a final EOS and a stop string and what follows it are left out). */
  text: string;
  /** The generated ids, a final EOS (or the token that completed a stop string) included. */
  tokens: number[];
  /** The prompt's ids as the model saw them (EOS alone for an empty prompt). */
  promptTokens: number[];
  /** Why it stopped: EOS, maxNewTokens, or a stop string (`stopString` says which). */
  stop: 'eos' | 'length' | 'stop';
  /** The stop string found, when stop is 'stop'. */
  stopString?: string;
}

interface CheckedOptions {
  maxNewTokens: number;
  temperature: number;
  topK: number | undefined;
  topP: number;
  seed: number;
  stopAtEos: boolean;
  stop: string[];
  cache: boolean | undefined;
}

const KNOWN = ['maxNewTokens', 'temperature', 'topK', 'topP', 'seed', 'stopAtEos', 'stop', 'cache'];

function checkOptions(options: GenerateOptions): CheckedOptions {
  const where = 'generate';
  if (options === null || typeof options !== 'object') throw invalidArg(`${where}: options must be an object with maxNewTokens`);
  for (const k of Object.keys(options)) if (!KNOWN.includes(k)) throw invalidArg(`${where}: unknown option '${k}' (options: ${KNOWN.join(', ')})`);
  const { maxNewTokens } = options;
  if (!Number.isSafeInteger(maxNewTokens) || maxNewTokens < 0) throw invalidArg(`${where}: maxNewTokens must be an integer >= 0, got ${maxNewTokens}`);
  const temperature = options.temperature ?? 0;
  if (typeof temperature !== 'number' || !Number.isFinite(temperature) || temperature < 0) {
    throw invalidArg(`${where}: temperature must be a finite number >= 0, got ${temperature}`);
  }
  const topK = options.topK;
  if (topK !== undefined && (!Number.isSafeInteger(topK) || topK < 1)) throw invalidArg(`${where}: topK must be an integer >= 1, got ${topK}`);
  const topP = options.topP ?? 1;
  if (typeof topP !== 'number' || !(topP > 0 && topP <= 1)) throw invalidArg(`${where}: topP must be a number in (0, 1], got ${topP}`);
  const seed = options.seed ?? 0;
  if (!Number.isSafeInteger(seed)) throw invalidArg(`${where}: seed must be a safe integer, got ${seed}`);
  const stopAtEos = options.stopAtEos ?? true;
  if (typeof stopAtEos !== 'boolean') throw invalidArg(`${where}: stopAtEos must be a boolean, got ${stopAtEos}`);
  const stop = options.stop ?? [];
  if (!Array.isArray(stop) || stop.some((s) => typeof s !== 'string' || s === '')) {
    throw invalidArg(`${where}: stop must be an array of non-empty strings, got ${JSON.stringify(stop)}`);
  }
  const cache = options.cache;
  if (cache !== undefined && typeof cache !== 'boolean') throw invalidArg(`${where}: cache must be a boolean, got ${cache}`);
  return { maxNewTokens, temperature, topK, topP, seed, stopAtEos, stop: [...stop], cache };
}

/**
 * The next id from one row of logits (ids >= `limit` never chosen): greedy at temperature 0, else a draw
 * from the tempered softmax over the topK highest, then over the nucleus of probability topP. Exported for tests.
 */
export function pickToken(logits: ArrayLike<number>, limit: number, temperature: number, topK: number | undefined, rng: Xoshiro128, topP = 1): number {
  const noFinite = () => new RangeError(`generate: the model gave no finite logit among the ${limit} token ids (diverged weights?)`);
  if (temperature === 0 || topK === 1) {
    // Greedy in one pass: the first (lowest) id of the highest finite logit.
    let best = -1;
    for (let i = 0; i < limit; i++) if (Number.isFinite(logits[i]) && (best < 0 || logits[i] > logits[best])) best = i;
    if (best < 0) throw noFinite();
    return best;
  }
  // Candidates: finite logits below the limit (NaN and -Infinity are never chosen).
  let ids: number[] = [];
  for (let i = 0; i < limit; i++) if (Number.isFinite(logits[i])) ids.push(i);
  if (ids.length === 0) throw noFinite();
  const byLogit = (a: number, b: number) => logits[b] - logits[a] || a - b;
  if (topK !== undefined && topK < ids.length) ids = ids.sort(byLogit).slice(0, topK);
  let max = -Infinity;
  for (const i of ids) max = Math.max(max, logits[i]);
  let weights = ids.map((i) => Math.exp((logits[i] - max) / temperature));
  let total = 0;
  for (const w of weights) total += w;
  if (topP < 1) {
    // The smallest prefix of the candidates by falling probability whose mass reaches topP (at least one).
    const order = ids.map((_, k) => k).sort((a, b) => byLogit(ids[a], ids[b]));
    let mass = 0;
    let keep = 0;
    while (keep < order.length && (keep === 0 || mass < topP * total)) mass += weights[order[keep++]];
    const kept = order.slice(0, keep);
    ids = kept.map((k) => ids[k]);
    weights = kept.map((k) => weights[k]);
    total = mass;
  }
  let u = uniform53(rng) * total;
  for (let k = 0; k < ids.length; k++) {
    u -= weights[k];
    if (u < 0) return ids[k];
  }
  // Rounding left u just above zero: the last candidate with any weight.
  for (let k = ids.length - 1; k >= 0; k--) if (weights[k] > 0) return ids[k];
  return ids[0];
}

/** The earliest occurrence of any stop string in text at or after `from`: [index, string], or null. */
function findStop(text: string, stops: readonly string[], from: number): [number, string] | null {
  let best: [number, string] | null = null;
  for (const s of stops) {
    const i = text.indexOf(s, Math.max(0, from));
    if (i >= 0 && (!best || i < best[0])) best = [i, s];
  }
  return best;
}

/** Logits of the next token after `context` (ids), through the cache: reuses the longest prefix it already holds. */
async function cachedLogits(cache: LogitsCache, context: number[]): Promise<Float32Array> {
  const held = cache.ids();
  let common = 0;
  while (common < held.length && common < context.length && held[common] === context[common]) common++;
  // The last position must run to give its logits.
  if (common === context.length) common--;
  if (common <= 0) return cache.prefill(Int32Array.from(context));
  cache.truncate(common);
  return cache.append(Int32Array.from(context.slice(common)));
}

/** Continues `prompt` with up to maxNewTokens tokens (see the file header). */
export async function generate(model: LogitsModel, tokenizer: Tokenizer, prompt: string, options: GenerateOptions): Promise<GenerateResult> {
  checkModel(model, tokenizer);
  if (typeof prompt !== 'string') throw invalidArg(`generate: prompt must be a string, got ${typeof prompt}`);
  const promptTokens = prompt === '' ? [tokenizer.eosId] : Array.from(tokenizer.encode(prompt));
  return generateFromIds(model, tokenizer, promptTokens, options);
}

function checkModel(model: LogitsModel, tokenizer: Tokenizer): void {
  if (!model || typeof model.lastLogits !== 'function' || !model.config) throw invalidArg('generate: model must have config and lastLogits (an MptModel)');
  if (!tokenizer || typeof tokenizer.encode !== 'function' || typeof tokenizer.decode !== 'function') {
    throw invalidArg('generate: tokenizer must implement Tokenizer');
  }
}

/**
 * generate() from prompt ids (for prompts built of ids, such as a chat template's). `cache`: a cache of the
 * model to use and keep (a chat's, across turns: the prefix it already holds is not run again); without it a
 * cached generation makes its own and disposes of it.
 */
export async function generateFromIds(
  model: LogitsModel,
  tokenizer: Tokenizer,
  promptIds: readonly number[],
  options: GenerateOptions,
  cache?: LogitsCache,
): Promise<GenerateResult> {
  checkModel(model, tokenizer);
  const { maxNewTokens, temperature, topK, topP, seed, stopAtEos, stop: stops, cache: useCache } = checkOptions(options);
  const { maxSeqLen, vocabSize, realVocabSize } = model.config;
  const limit = Math.min(realVocabSize, tokenizer.vocabSize);
  const promptTokens = Array.from(promptIds);
  if (promptTokens.length === 0) throw invalidArg('generate: the prompt has no tokens');
  promptTokens.forEach((id, i) => {
    if (!(Number.isInteger(id) && id >= 0 && id < realVocabSize)) {
      throw invalidArg(`generate: prompt token ${i} is id ${id}, outside the model's vocabulary [0, ${realVocabSize}) (tokenizer and model do not match)`);
    }
  });
  if (useCache === true && typeof model.createCache !== 'function' && !cache) throw invalidArg('generate: cache true needs a model with createCache (an MptModel)');
  const cached = useCache !== false && (cache !== undefined || typeof model.createCache === 'function');
  const rng = Xoshiro128.fromSeed(seed);
  const sequence = promptTokens.slice();
  const tokens: number[] = [];
  let stop: GenerateResult['stop'] = 'length';
  let stopString: string | undefined;
  let text = '';
  const own = cached && !cache ? model.createCache!({ batch: 1, maxLen: maxSeqLen }) : null;
  const kv = cache ?? own;
  const keep = Math.ceil(maxSeqLen / 2);
  try {
    if (kv && kv.maxLen !== maxSeqLen) throw invalidArg(`generate: the cache holds ${kv.maxLen} positions, the model's context is ${maxSeqLen}`);
    let logits: Float32Array | null = null;
    while (tokens.length < maxNewTokens) {
      if (kv) {
        // The first step, and every step after the cache filled up, (re)runs a window; the others append one token.
        if (logits === null) logits = await cachedLogits(kv, sequence.slice(-maxSeqLen));
      } else {
        const window = Int32Array.from(sequence.slice(-maxSeqLen));
        logits = await model.lastLogits(window, 1, window.length);
      }
      if (logits.length !== vocabSize) throw new RangeError(`generate: the model returned ${logits.length} logits, expected vocabSize ${vocabSize}`);
      const id = pickToken(logits, limit, temperature, topK, rng, topP);
      tokens.push(id);
      sequence.push(id);
      if (stopAtEos && id === tokenizer.eosId) {
        stop = 'eos';
        break;
      }
      if (stops.length > 0) {
        const before = text.length;
        text = tokenizer.decode(tokens);
        const longest = Math.max(...stops.map((s) => s.length));
        const found = findStop(text, stops, before - longest + 1);
        if (found) {
          [, stopString] = found;
          text = text.slice(0, found[0]);
          stop = 'stop';
          break;
        }
      }
      if (kv && tokens.length < maxNewTokens) {
        logits = kv.length < kv.maxLen ? await kv.append(Int32Array.of(id)) : await kv.prefill(Int32Array.from(sequence.slice(-keep)));
      }
    }
  } finally {
    own?.dispose();
  }
  if (stop !== 'stop') text = tokenizer.decode(stop === 'eos' ? tokens.slice(0, -1) : tokens);
  return { text, tokens, promptTokens, stop, ...(stopString !== undefined ? { stopString } : {}) };
}
