// generate.ts: autoregressive text generation from a trained model, for a look at what it learned.
//
// Each new token comes from model.lastLogits over the sequence so far (prompt + generated), cut to its last
// model.config.maxSeqLen tokens. Temperature 0 is greedy: the highest logit, the lowest id among equals.
// Otherwise the token is drawn from softmax(logits / temperature), over the topK highest logits when topK
// is given (ties broken by the lower id), with a Xoshiro128 seeded by `seed`: the same model, prompt and
// options give the same tokens. Only ids below min(realVocabSize, tokenizer.vocabSize) are candidates, so
// the padded rows of the embedding (logit -Infinity) are never drawn, nor ids the tokenizer cannot decode.
// Each step recomputes the whole window (there is no KV cache), and the model's activation buffers are
// resized while the window grows: fine for looking at a small model, not a serving path.
import { invalidArg } from '../core/errors';
import { Xoshiro128, uniform53 } from '../core/rng';
import type { Tokenizer } from '../data/tokenizers/base';

/** What generate needs of a model; MptModel has it. */
export interface LogitsModel {
  readonly config: { readonly maxSeqLen: number; readonly vocabSize: number; readonly realVocabSize: number };
  /** (B, vocabSize) f32 logits of the last position of each of B sequences of T ids. */
  lastLogits(ids: Int32Array, B: number, T: number): Promise<Float32Array>;
}

export interface GenerateOptions {
  /** Tokens to generate at most, an integer >= 0. */
  maxNewTokens: number;
  /** 0 (default) is greedy; > 0 samples from softmax(logits / temperature). */
  temperature?: number;
  /** Sample only among the k highest logits (k >= 1). Defaults to all. */
  topK?: number;
  /** Seed of the sampling. Defaults to 0. */
  seed?: number;
  /** Stop after the tokenizer's EOS (which is not part of the text). Defaults to true. */
  stopAtEos?: boolean;
}

export interface GenerateResult {
  /** The generated continuation, decoded (the prompt is not repeated; a final EOS is left out). */
  text: string;
  /** The generated ids, a final EOS included. */
  tokens: number[];
  /** The prompt's ids as the model saw them (EOS alone for an empty prompt). */
  promptTokens: number[];
  /** Why it stopped. */
  stop: 'eos' | 'length';
}

function checkOptions(options: GenerateOptions) {
  const where = 'generate';
  if (options === null || typeof options !== 'object') throw invalidArg(`${where}: options must be an object with maxNewTokens`);
  const known = ['maxNewTokens', 'temperature', 'topK', 'seed', 'stopAtEos'];
  for (const k of Object.keys(options)) if (!known.includes(k)) throw invalidArg(`${where}: unknown option '${k}' (options: ${known.join(', ')})`);
  const { maxNewTokens } = options;
  if (!Number.isSafeInteger(maxNewTokens) || maxNewTokens < 0) throw invalidArg(`${where}: maxNewTokens must be an integer >= 0, got ${maxNewTokens}`);
  const temperature = options.temperature ?? 0;
  if (typeof temperature !== 'number' || !Number.isFinite(temperature) || temperature < 0) {
    throw invalidArg(`${where}: temperature must be a finite number >= 0, got ${temperature}`);
  }
  const topK = options.topK;
  if (topK !== undefined && (!Number.isSafeInteger(topK) || topK < 1)) throw invalidArg(`${where}: topK must be an integer >= 1, got ${topK}`);
  const seed = options.seed ?? 0;
  if (!Number.isSafeInteger(seed)) throw invalidArg(`${where}: seed must be a safe integer, got ${seed}`);
  const stopAtEos = options.stopAtEos ?? true;
  if (typeof stopAtEos !== 'boolean') throw invalidArg(`${where}: stopAtEos must be a boolean, got ${stopAtEos}`);
  return { maxNewTokens, temperature, topK, seed, stopAtEos };
}

/**
 * The next id from one row of logits (ids >= `limit` never chosen): greedy at temperature 0, else a draw
 * from the tempered softmax over the topK highest. Exported for tests.
 */
export function pickToken(logits: ArrayLike<number>, limit: number, temperature: number, topK: number | undefined, rng: Xoshiro128): number {
  // Candidates: finite logits below the limit (NaN and -Infinity are never chosen).
  let ids: number[] = [];
  for (let i = 0; i < limit; i++) if (Number.isFinite(logits[i])) ids.push(i);
  if (ids.length === 0) throw new RangeError(`generate: the model gave no finite logit among the ${limit} token ids (diverged weights?)`);
  const byLogit = (a: number, b: number) => logits[b] - logits[a] || a - b;
  if (temperature === 0 || topK === 1) {
    let best = ids[0];
    for (const i of ids) if (logits[i] > logits[best]) best = i;
    return best;
  }
  if (topK !== undefined && topK < ids.length) ids = ids.sort(byLogit).slice(0, topK);
  let max = -Infinity;
  for (const i of ids) max = Math.max(max, logits[i]);
  const weights = ids.map((i) => Math.exp((logits[i] - max) / temperature));
  let total = 0;
  for (const w of weights) total += w;
  let u = uniform53(rng) * total;
  for (let k = 0; k < ids.length; k++) {
    u -= weights[k];
    if (u < 0) return ids[k];
  }
  // Rounding left u just above zero: the last candidate with any weight.
  for (let k = ids.length - 1; k >= 0; k--) if (weights[k] > 0) return ids[k];
  return ids[0];
}

/** Continues `prompt` with up to maxNewTokens tokens (see the file header). */
export async function generate(model: LogitsModel, tokenizer: Tokenizer, prompt: string, options: GenerateOptions): Promise<GenerateResult> {
  if (!model || typeof model.lastLogits !== 'function' || !model.config) throw invalidArg('generate: model must have config and lastLogits (an MptModel)');
  if (!tokenizer || typeof tokenizer.encode !== 'function' || typeof tokenizer.decode !== 'function') {
    throw invalidArg('generate: tokenizer must implement Tokenizer');
  }
  if (typeof prompt !== 'string') throw invalidArg(`generate: prompt must be a string, got ${typeof prompt}`);
  const { maxNewTokens, temperature, topK, seed, stopAtEos } = checkOptions(options);
  const { maxSeqLen, vocabSize, realVocabSize } = model.config;
  const limit = Math.min(realVocabSize, tokenizer.vocabSize);
  const promptTokens = prompt === '' ? [tokenizer.eosId] : Array.from(tokenizer.encode(prompt));
  promptTokens.forEach((id, i) => {
    if (!(id >= 0 && id < realVocabSize)) {
      throw invalidArg(`generate: prompt token ${i} is id ${id}, outside the model's vocabulary [0, ${realVocabSize}) (tokenizer and model do not match)`);
    }
  });
  const rng = Xoshiro128.fromSeed(seed);
  const sequence = promptTokens.slice();
  const tokens: number[] = [];
  let stop: GenerateResult['stop'] = 'length';
  while (tokens.length < maxNewTokens) {
    const window = Int32Array.from(sequence.slice(-maxSeqLen));
    const logits = await model.lastLogits(window, 1, window.length);
    if (logits.length !== vocabSize) throw new RangeError(`generate: lastLogits returned ${logits.length} logits, expected vocabSize ${vocabSize}`);
    const id = pickToken(logits, limit, temperature, topK, rng);
    tokens.push(id);
    sequence.push(id);
    if (stopAtEos && id === tokenizer.eosId) {
      stop = 'eos';
      break;
    }
  }
  const textIds = stop === 'eos' ? tokens.slice(0, -1) : tokens;
  return { text: tokenizer.decode(textIds), tokens, promptTokens, stop };
}
