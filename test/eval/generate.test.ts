// generate: greedy decoding is the argmax loop over lastLogits (context cut to maxSeqLen), top-k 1 is
// greedy, seeded sampling reproduces and follows the tempered softmax, padded and undecodable ids are never
// drawn, EOS stops, and bad options are TypeErrors.
import t from 'tap';
import { MptModel } from '../../lib/model/mpt';
import { mptConfig } from '../../lib/model/config';
import { Xoshiro128 } from '../../lib/core/rng';
import type { Tokenizer } from '../../lib/data/tokenizers/base';
import { generate, pickToken, type LogitsModel } from '../../lib/eval/generate';

/** One id per character (code mod 200), so every prompt id is a real token of the tiny model. */
function charTokenizer(vocabSize = 256, eosId = 199): Tokenizer {
  return {
    name: 'chars',
    vocabSize,
    eosId,
    encode: (text: string) => Array.from(text, (c) => c.charCodeAt(0) % 200),
    decode: (ids: ArrayLike<number>) => Array.from(ids, (id) => String.fromCharCode(0x100 + id)).join(''),
  };
}

const cfg = mptConfig('tiny', { realVocabSize: 200 }); // vocab 256: ids 200..255 are padding
const model = new MptModel(cfg, { seed: 3 });
t.teardown(() => model.dispose());
const tok = charTokenizer();
const prompt = 'Call me Ishmael.';

async function greedyReference(promptIds: number[], n: number): Promise<number[]> {
  const seq = promptIds.slice();
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const window = seq.slice(-cfg.maxSeqLen);
    const logits = await model.lastLogits(Int32Array.from(window), 1, window.length);
    let best = 0;
    for (let v = 1; v < cfg.vocabSize; v++) if (logits[v] > logits[best]) best = v;
    out.push(best);
    seq.push(best);
  }
  return out;
}

t.test('greedy: deterministic, the argmax loop, context cut to maxSeqLen', async (t) => {
  const n = cfg.maxSeqLen + 12 - prompt.length + 8; // runs past maxSeqLen, so the window slides
  const a = await generate(model, tok, prompt, { maxNewTokens: n, stopAtEos: false });
  const b = await generate(model, tok, prompt, { maxNewTokens: n, stopAtEos: false });
  t.equal(a.tokens.length, n);
  t.equal(a.stop, 'length');
  t.same(a.tokens, b.tokens, 'same tokens twice');
  t.same(a.promptTokens, tok.encode(prompt));
  t.same(a.tokens, await greedyReference(Array.from(tok.encode(prompt)), n), 'the plain argmax loop over the last maxSeqLen tokens');
  t.equal(a.text, tok.decode(a.tokens));
  t.ok(a.tokens.every((id) => id < cfg.realVocabSize));
  const seeded = await generate(model, tok, prompt, { maxNewTokens: 10, temperature: 0, seed: 99, stopAtEos: false });
  t.same(seeded.tokens, a.tokens.slice(0, 10), 'the seed does not matter when greedy');
});

t.test('top-k 1 is greedy at any temperature', async (t) => {
  const greedy = await generate(model, tok, prompt, { maxNewTokens: 20, stopAtEos: false });
  for (const temperature of [0.5, 1, 5]) {
    const k1 = await generate(model, tok, prompt, { maxNewTokens: 20, temperature, topK: 1, seed: 5, stopAtEos: false });
    t.same(k1.tokens, greedy.tokens, `temperature ${temperature}`);
  }
});

t.test('seeded sampling reproduces; another seed gives another text', async (t) => {
  const o = { maxNewTokens: 40, temperature: 1.5, topK: 50, stopAtEos: false };
  const a = await generate(model, tok, prompt, { ...o, seed: 1 });
  const b = await generate(model, tok, prompt, { ...o, seed: 1 });
  const c = await generate(model, tok, prompt, { ...o, seed: 2 });
  t.same(a.tokens, b.tokens);
  t.equal(a.text, b.text);
  t.notSame(a.tokens, c.tokens);
  const greedy = await generate(model, tok, prompt, { maxNewTokens: 40, stopAtEos: false });
  t.notSame(a.tokens, greedy.tokens, 'sampling is not greedy');
});

t.test('padded ids (-Infinity) and ids the tokenizer lacks are never sampled', async (t) => {
  // A near-uniform draw over the real vocabulary: 400 tokens reach its top end but never the padding.
  const wide = await generate(model, tok, prompt, { maxNewTokens: 400, temperature: 1e4, seed: 7, stopAtEos: false });
  t.ok(wide.tokens.every((id) => id < cfg.realVocabSize), 'every id < realVocabSize');
  t.ok(wide.tokens.some((id) => id >= 180), 'ids near realVocabSize are drawn');
  const logits = await model.lastLogits(Int32Array.from(tok.encode(prompt)), 1, prompt.length);
  t.ok(logits.subarray(cfg.realVocabSize).every((v) => v === -Infinity), 'the model pads with -Infinity');
  const small = charTokenizer(120, 119);
  const narrow = await generate(model, small, prompt, { maxNewTokens: 300, temperature: 1e4, seed: 7, stopAtEos: false });
  t.ok(narrow.tokens.every((id) => id < 120), 'ids stay below the tokenizer vocabulary when it is smaller');
});

t.test('pickToken follows softmax(logits / temperature) over the top k', async (t) => {
  const logits = [1, 2, 3, -Infinity, NaN, 0.5];
  const draws = 40000;
  const count = (temperature: number, topK?: number) => {
    const rng = Xoshiro128.fromSeed(42);
    const c = new Array(logits.length).fill(0);
    for (let i = 0; i < draws; i++) c[pickToken(logits, logits.length, temperature, topK, rng)]++;
    return c;
  };
  const expect = (temperature: number, ids: number[]) => {
    const w = ids.map((i) => Math.exp(logits[i] / temperature));
    const z = w.reduce((a, b) => a + b, 0);
    const p = new Array(logits.length).fill(0);
    ids.forEach((id, k) => (p[id] = w[k] / z));
    return p;
  };
  for (const [temperature, topK, ids] of [
    [1, undefined, [0, 1, 2, 5]],
    [0.5, undefined, [0, 1, 2, 5]],
    [2, 2, [1, 2]],
    [1, 3, [0, 1, 2]],
  ] as [number, number | undefined, number[]][]) {
    const c = count(temperature, topK);
    const p = expect(temperature, ids);
    c.forEach((n, i) => {
      const sd = Math.sqrt(draws * p[i] * (1 - p[i]));
      t.ok(Math.abs(n - draws * p[i]) <= 5 * sd + 1e-9, `T ${temperature} k ${topK}: id ${i} drawn ${n} times, expected ${(draws * p[i]).toFixed(0)}`);
    });
  }
  t.equal(pickToken(logits, logits.length, 0, undefined, Xoshiro128.fromSeed(1)), 2, 'greedy: the largest logit');
  t.equal(pickToken([5, 7, 7, 1], 4, 0, undefined, Xoshiro128.fromSeed(1)), 1, 'greedy ties: the lower id');
  t.equal(pickToken([5, 7, 7, 1], 4, 1, 1, Xoshiro128.fromSeed(1)), 1, 'top-1 ties: the lower id');
  t.equal(pickToken([5, 7, 9, 1], 2, 0, undefined, Xoshiro128.fromSeed(1)), 1, 'ids >= limit are out');
  t.throws(() => pickToken([NaN, -Infinity], 2, 1, undefined, Xoshiro128.fromSeed(1)), /no finite logit/);
});

/** A model whose next token is fixed by the script; it records each window it is given. */
function scriptedModel(maxSeqLen: number, next: (step: number) => number): LogitsModel & { windows: number[][] } {
  const windows: number[][] = [];
  return {
    config: { maxSeqLen, vocabSize: 256, realVocabSize: 200 },
    windows,
    async lastLogits(ids, B, T) {
      if (B !== 1 || ids.length !== T) throw new Error('bad call');
      windows.push(Array.from(ids));
      const out = new Float32Array(256).fill(-5);
      out.fill(-Infinity, 200);
      out[next(windows.length - 1)] = 5;
      return out;
    },
  };
}

t.test('EOS stops generation and stays out of the text; an empty prompt starts from EOS', async (t) => {
  const m = scriptedModel(4, (step) => (step === 5 ? 199 : 10 + step));
  const r = await generate(m, tok, 'ab', { maxNewTokens: 20 });
  t.same(r.tokens, [10, 11, 12, 13, 14, 199]);
  t.equal(r.stop, 'eos');
  t.equal(r.text, tok.decode([10, 11, 12, 13, 14]));
  t.same(m.windows[0], [97 % 200, 98 % 200]);
  t.same(m.windows[3], [98, 10, 11, 12], 'the window holds the last maxSeqLen tokens');
  t.same(m.windows[5], [11, 12, 13, 14]);
  const past = await generate(scriptedModel(4, (s) => (s === 1 ? 199 : 20)), tok, 'x', { maxNewTokens: 3, stopAtEos: false });
  t.same(past.tokens, [20, 199, 20], 'stopAtEos false goes on');
  const empty = scriptedModel(8, () => 30);
  const e = await generate(empty, tok, '', { maxNewTokens: 2 });
  t.same(e.promptTokens, [199]);
  t.same(empty.windows[0], [199]);
  t.same((await generate(empty, tok, 'x', { maxNewTokens: 0 })).tokens, []);
});

t.test('bad arguments are TypeErrors', async (t) => {
  const bad = (p: Promise<unknown>, message: RegExp) => t.rejects(p, { name: 'TypeError', code: 'ERR_PAJAMA_INVALID_ARG', message });
  const g = (o: unknown, p: unknown = prompt) => generate(model, tok, p as string, o as never);
  await bad(g({}), /maxNewTokens must be an integer >= 0/);
  await bad(g({ maxNewTokens: -1 }), /maxNewTokens must be an integer >= 0/);
  await bad(g({ maxNewTokens: 2.5 }), /maxNewTokens must be an integer >= 0/);
  await bad(g({ maxNewTokens: 2, temperature: -0.1 }), /temperature must be a finite number >= 0/);
  await bad(g({ maxNewTokens: 2, temperature: NaN }), /temperature must be a finite number >= 0/);
  await bad(g({ maxNewTokens: 2, topK: 0 }), /topK must be an integer >= 1/);
  await bad(g({ maxNewTokens: 2, topK: 1.5 }), /topK must be an integer >= 1/);
  await bad(g({ maxNewTokens: 2, seed: 0.5 }), /seed must be a safe integer/);
  await bad(g({ maxNewTokens: 2, stopAtEos: 'no' }), /stopAtEos must be a boolean/);
  await bad(g({ maxNewTokens: 2, top_k: 5 }), /unknown option 'top_k'/);
  await bad(g(null), /options must be an object/);
  await bad(g({ maxNewTokens: 2 }, 42), /prompt must be a string/);
  const wideTok = { ...tok, encode: (s: string) => Array.from(s, (c) => c.charCodeAt(0)) };
  await bad(generate(model, wideTok, 'é ÿ', { maxNewTokens: 1 }), /prompt token 0 is id 233, outside the model's vocabulary \[0, 200\)/);
  await bad(generate({} as LogitsModel, tok, prompt, { maxNewTokens: 1 }), /model must have config and lastLogits/);
  await bad(generate(model, {} as Tokenizer, prompt, { maxNewTokens: 1 }), /tokenizer must implement Tokenizer/);
});
