// generate: greedy decoding is the argmax loop over lastLogits (uncached: context cut to maxSeqLen, sliding by
// one; cached: the documented context shift), the cached generator gives exactly the tokens of the uncached one
// (fp32, greedy and sampled) and keeps a chat's cache across calls, top-k 1 is greedy, seeded sampling reproduces
// and follows the tempered softmax narrowed by top-k and top-p, padded and undecodable ids are never drawn, EOS
// and stop strings stop, and bad options are TypeErrors.
import t from 'tap';
import { MptModel } from '../../lib/model/mpt';
import { mptConfig } from '../../lib/model/config';
import { Xoshiro128 } from '../../lib/core/rng';
import type { Tokenizer } from '../../lib/data/tokenizers/base';
import { generate, generateFromIds, pickToken, type LogitsModel } from '../../lib/eval/generate';

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
  const a = await generate(model, tok, prompt, { maxNewTokens: n, stopAtEos: false, cache: false });
  const b = await generate(model, tok, prompt, { maxNewTokens: n, stopAtEos: false, cache: false });
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

t.test('cached generation gives exactly the tokens of the uncached one (fp32) within the context', async (t) => {
  const n = cfg.maxSeqLen - prompt.length; // prompt + generated fill the context exactly
  const runs: [string, { temperature?: number; topK?: number; topP?: number; seed?: number }][] = [
    ['greedy', {}],
    ['T 1', { temperature: 1, seed: 3 }],
    ['T 1.5 top-k 50', { temperature: 1.5, topK: 50, seed: 1 }],
    ['T 0.8 top-p 0.9', { temperature: 0.8, topP: 0.9, seed: 7 }],
    ['T 2 top-k 100 top-p 0.95', { temperature: 2, topK: 100, topP: 0.95, seed: 11 }],
  ];
  for (const [name, o] of runs) {
    const cached = await generate(model, tok, prompt, { maxNewTokens: n, stopAtEos: false, ...o });
    const uncached = await generate(model, tok, prompt, { maxNewTokens: n, stopAtEos: false, cache: false, ...o });
    t.equal(cached.tokens.length, n);
    t.same(cached.tokens, uncached.tokens, `${name}: the same ${n} tokens`);
    t.equal(cached.text, uncached.text);
  }
});

t.test('past the context, the cached generator shifts: the last ceil(maxSeqLen / 2) tokens are prefilled again', async (t) => {
  const M = cfg.maxSeqLen;
  const keep = Math.ceil(M / 2);
  const n = 2 * M + 5; // three shifts
  const got = await generate(model, tok, prompt, { maxNewTokens: n, stopAtEos: false });
  // The reference: the argmax over lastLogits of the window the policy defines.
  const seq = Array.from(tok.encode(prompt));
  let start = Math.max(0, seq.length - M);
  const want: number[] = [];
  for (let i = 0; i < n; i++) {
    const window = seq.slice(start);
    const logits = await model.lastLogits(Int32Array.from(window), 1, window.length);
    let best = 0;
    for (let v = 1; v < cfg.realVocabSize; v++) if (logits[v] > logits[best]) best = v;
    want.push(best);
    seq.push(best);
    if (seq.length - start > M) start = seq.length - keep;
  }
  t.same(got.tokens, want);
});

t.test('a cache passed in is kept across calls and reused for the prefix it holds (a chat)', async (t) => {
  const cache = model.createCache({ maxLen: cfg.maxSeqLen });
  t.teardown(() => cache.dispose());
  const o = { maxNewTokens: 8, temperature: 1, topK: 20, seed: 4, stopAtEos: false };
  const first = Array.from(tok.encode('Hi there.'));
  const a = await generateFromIds(model, tok, first, o, cache);
  const a0 = await generateFromIds(model, tok, first, { ...o, cache: false });
  t.same(a.tokens, a0.tokens);
  t.equal(cache.length, first.length + o.maxNewTokens - 1, 'the cache holds the prompt and every token but the last');
  const second = [...first, ...a.tokens, ...tok.encode(' And?')];
  const b = await generateFromIds(model, tok, second, o, cache);
  const b0 = await generateFromIds(model, tok, second, { ...o, cache: false });
  t.same(b.tokens, b0.tokens, 'the second turn, from the cache, as from scratch');
  t.same(cache.ids(), [...second, ...b.tokens.slice(0, -1)]);
  // A prompt that departs from what the cache holds: truncated to the shared prefix, then the rest.
  const other = [...first.slice(0, 3), ...tok.encode('xyz')];
  const c = await generateFromIds(model, tok, other, o, cache);
  t.same(c.tokens, (await generateFromIds(model, tok, other, { ...o, cache: false })).tokens);
});

t.test('stop strings end generation; the text stops before the earliest one', async (t) => {
  const m = scriptedModel(8, (step) => 10 + step);
  const r = await generate(m, tok, 'ab', { maxNewTokens: 20, stop: [tok.decode([13, 14]), tok.decode([12, 13, 14, 15])] });
  t.same(r.tokens, [10, 11, 12, 13, 14]);
  t.equal(r.stop, 'stop');
  t.equal(r.stopString, tok.decode([13, 14]));
  t.equal(r.text, tok.decode([10, 11, 12]));
  const early = await generate(scriptedModel(8, (step) => 10 + step), tok, 'ab', { maxNewTokens: 20, stop: [tok.decode([15]), tok.decode([12, 13])] });
  t.equal(early.text, tok.decode([10, 11]), 'the earliest occurrence wins');
  t.equal(early.stopString, tok.decode([12, 13]));
  const none = await generate(scriptedModel(8, (step) => 10 + step), tok, 'ab', { maxNewTokens: 3, stop: ['zzz'] });
  t.equal(none.stop, 'length');
  t.equal(none.text, tok.decode([10, 11, 12]));
  // On the model, cached: the greedy text cut before a piece of itself.
  const full = await generate(model, tok, prompt, { maxNewTokens: 12, stopAtEos: false });
  const piece = tok.decode(full.tokens.slice(6, 8));
  const cut = await generate(model, tok, prompt, { maxNewTokens: 12, stopAtEos: false, stop: [piece] });
  t.equal(cut.text, full.text.slice(0, full.text.indexOf(piece)));
  t.same(cut.tokens, full.tokens.slice(0, full.text.indexOf(piece) + piece.length), 'every token up to the one that completed it');
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
  const count = (temperature: number, topK?: number, topP?: number) => {
    const rng = Xoshiro128.fromSeed(42);
    const c = new Array(logits.length).fill(0);
    for (let i = 0; i < draws; i++) c[pickToken(logits, logits.length, temperature, topK, rng, topP)]++;
    return c;
  };
  const expect = (temperature: number, ids: number[]) => {
    const w = ids.map((i) => Math.exp(logits[i] / temperature));
    const z = w.reduce((a, b) => a + b, 0);
    const p = new Array(logits.length).fill(0);
    ids.forEach((id, k) => (p[id] = w[k] / z));
    return p;
  };
  for (const [temperature, topK, ids, topP] of [
    [1, undefined, [0, 1, 2, 5]],
    [0.5, undefined, [0, 1, 2, 5]],
    [2, 2, [1, 2]],
    [1, 3, [0, 1, 2]],
    // probabilities at T 1: id 2 0.631, id 1 0.232, id 0 0.085, id 5 0.052: top-p 0.8 keeps {2, 1}, 0.9 {2, 1, 0}
    [1, undefined, [1, 2], 0.8],
    [1, undefined, [0, 1, 2], 0.9],
    [1, 2, [2], 0.6],
  ] as [number, number | undefined, number[], number?][]) {
    const c = count(temperature, topK, topP);
    const p = expect(temperature, ids);
    c.forEach((n, i) => {
      const sd = Math.sqrt(draws * p[i] * (1 - p[i]));
      t.ok(Math.abs(n - draws * p[i]) <= 5 * sd + 1e-9, `T ${temperature} k ${topK} p ${topP}: id ${i} drawn ${n} times, expected ${(draws * p[i]).toFixed(0)}`);
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
  await bad(g({ maxNewTokens: 2, topP: 0 }), /topP must be a number in \(0, 1\], got 0/);
  await bad(g({ maxNewTokens: 2, topP: 1.5 }), /topP must be a number in \(0, 1\], got 1.5/);
  await bad(g({ maxNewTokens: 2, stop: [''] }), /stop must be an array of non-empty strings/);
  await bad(g({ maxNewTokens: 2, stop: 'x' }), /stop must be an array of non-empty strings/);
  await bad(g({ maxNewTokens: 2, cache: 'yes' }), /cache must be a boolean/);
  await bad(generate(scriptedModel(4, () => 1), tok, 'x', { maxNewTokens: 1, cache: true }), /cache true needs a model with createCache/);
  await bad(g(null), /options must be an object/);
  await bad(g({ maxNewTokens: 2 }, 42), /prompt must be a string/);
  const wideTok = { ...tok, encode: (s: string) => Array.from(s, (c) => c.charCodeAt(0)) };
  await bad(generate(model, wideTok, 'é ÿ', { maxNewTokens: 1 }), /prompt token 0 is id 233, outside the model's vocabulary \[0, 200\)/);
  await bad(generate({} as LogitsModel, tok, prompt, { maxNewTokens: 1 }), /model must have config and lastLogits/);
  await bad(generate(model, {} as Tokenizer, prompt, { maxNewTokens: 1 }), /tokenizer must implement Tokenizer/);
});
