// The scoring engine against a float64 reference of the same rules: a float64 forward of a tiny random
// MptModel's weights (test/helpers/mpt-reference.ts), log-softmax over the real vocabulary, the harness's
// left truncation to maxSeqLen + 1 tokens; in fp32 and bf16; greedy flags, shared inputs scored once, results
// independent of the batching, and the harness's encoding of a (context, continuation) pair.
import t from 'tap';
import { MptModel } from '../../lib/model/mpt';
import { mptConfig, type MptConfig } from '../../lib/model/config';
import { gpt2Tokenizer } from '../../lib/data/index';
import { encodePair, loglikelihood, planBatches, pyStrip, scoreTokens, type ScoringModel, type TokenRequest } from '../../lib/eval/score';
import { mptLogitsRef, perturbForReference, weightsOf, type Weights } from '../helpers/mpt-reference';
import { makeRng, randInt, randn, relErr, seed, TOL } from '../helpers/reference';

t.comment(`seed ${seed}`);

const cfg = mptConfig({ dModel: 32, nHeads: 2, nLayers: 2, maxSeqLen: 24, vocabSize: 128, realVocabSize: 100 });

/**
 * A tiny inference model (no gradient buffers; `inference: false` a training one, which scores the same)
 * with LayerNorm weights away from 1 and its padded wte rows large (a reader of them is caught).
 */
function makeModel(precision: 'fp32' | 'bf16', inference = true): MptModel {
  return perturbForReference(new MptModel(cfg, { precision, seed: seed ^ 0x5c0e, inference }), randn);
}

interface Ref {
  logprob: number;
  /** Every token the reference's argmax. */
  greedy: boolean;
  /** Smallest gap between a row's top two logits (greedy flags are only comparable where it is not tiny). */
  margin: number;
}

/** The rules in float64, request by request: truncate, forward one sequence, log-softmax, sum. */
function reference(c: MptConfig, w: Weights, req: TokenRequest): Ref {
  const all = [...Array.from(req.context), ...Array.from(req.continuation)];
  const inp = all.slice(-(c.maxSeqLen + 1)).slice(0, -1);
  const cont = Array.from(req.continuation);
  const V = c.realVocabSize;
  const logits = mptLogitsRef(c, w, inp, 1, inp.length);
  let logprob = 0;
  let greedy = true;
  let margin = Infinity;
  cont.forEach((tok, j) => {
    const row = logits.subarray((inp.length - cont.length + j) * V, (inp.length - cont.length + j + 1) * V);
    let mx = -Infinity;
    let best = -1;
    for (let v = 0; v < V; v++) if (row[v] > mx) [mx, best] = [row[v], v];
    let second = -Infinity;
    for (let v = 0; v < V; v++) if (v !== best) second = Math.max(second, row[v]);
    margin = Math.min(margin, mx - second);
    let sum = 0;
    for (let v = 0; v < V; v++) sum += Math.exp(row[v] - mx);
    logprob += row[tok] - mx - Math.log(sum);
    if (best !== tok) greedy = false;
  });
  return { logprob, greedy, margin };
}

/** Counts positionLogits calls and the rows asked. */
function counting(model: ScoringModel) {
  const calls: { B: number; T: number; rows: number }[] = [];
  const wrapped: ScoringModel = {
    config: model.config,
    positionLogits: (ids, B, T, positions) => {
      calls.push({ B, T, rows: positions.length });
      return model.positionLogits(ids, B, T, positions);
    },
  };
  return { wrapped, calls };
}

const rng = makeRng(seed ^ 0x77);
const randomRequest = (ctxLen: number, contLen: number): TokenRequest => ({
  context: Array.from(randInt(ctxLen, cfg.realVocabSize)),
  continuation: Array.from(randInt(contLen, cfg.realVocabSize)),
});

// Odd lengths, one-token continuations, a continuation of maxSeqLen tokens, inputs cut from the left.
function requestSet(): TokenRequest[] {
  const reqs: TokenRequest[] = [];
  for (let i = 0; i < 14; i++) reqs.push(randomRequest(1 + Math.floor(rng() * 20), 1 + Math.floor(rng() * 6)));
  reqs.push(randomRequest(30, 3)); // 33 tokens: the first 9 are cut
  reqs.push(randomRequest(1, cfg.maxSeqLen)); // the longest continuation allowed
  reqs.push(randomRequest(5, cfg.maxSeqLen)); // the same, its context partly cut
  return reqs;
}

for (const precision of ['fp32', 'bf16'] as const) {
  t.test(`log-likelihoods and greedy flags against float64, ${precision}`, async (t) => {
    const model = makeModel(precision);
    const w = weightsOf(model);
    const reqs = requestSet();
    // Greedy continuations from the reference, clear enough for bf16 (top-two margins >= 0.1), so that
    // some flags are true.
    for (let i = 0, tries = 0; i < 3 && tries < 200; tries++) {
      const ctx = Array.from(randInt(4 + i * 3, cfg.realVocabSize));
      const cont: number[] = [];
      for (let j = 0; j < 1 + i; j++) {
        const seq = [...ctx, ...cont];
        const lg = mptLogitsRef(cfg, w, seq, 1, seq.length);
        const row = lg.subarray((seq.length - 1) * cfg.realVocabSize, seq.length * cfg.realVocabSize);
        cont.push(row.indexOf(Math.max(...row)));
      }
      const req = { context: ctx, continuation: cont };
      if (reference(cfg, w, req).margin < 0.1) continue;
      reqs.push(req);
      i++;
    }
    const got = await scoreTokens(model, reqs, { batchTokens: 64 });
    const refs = reqs.map((r) => reference(cfg, w, r));
    const err = relErr(got.map((g) => g.logprob), refs.map((r) => r.logprob));
    // bf16: the residual stream is bf16 (the head reads the f32 master embedding); measured ~5e-4.
    const tol = precision === 'fp32' ? TOL.f32 : TOL.bf16;
    t.ok(err <= tol, `log-likelihoods rel err ${err.toExponential(2)} (bound ${tol})`);
    let compared = 0;
    let trues = 0;
    refs.forEach((r, i) => {
      // A flag is comparable where the top two logits are further apart than the precision's error.
      if (r.margin < (precision === 'fp32' ? 1e-3 : 0.05)) return;
      compared++;
      if (r.greedy) trues++;
      t.equal(got[i].greedy, r.greedy, `request ${i} greedy flag`);
    });
    t.ok(trues >= 3 && compared >= 8, `${compared} of ${reqs.length} flags compared, ${trues} of them true`);
    model.dispose();
  });
}

t.test('left truncation: only the last maxSeqLen + 1 tokens count', async (t) => {
  const model = makeModel('fp32');
  const training = new MptModel(cfg, { inference: false });
  for (const e of model.params.entries) training.params.get(e.name).copyFrom(model.params.get(e.name).toFloat32());
  const long = randomRequest(40, 4);
  const cut: TokenRequest = { context: Array.from(long.context).slice(40 + 4 - (cfg.maxSeqLen + 1)), continuation: long.continuation };
  const [a, b] = await scoreTokens(model, [long, cut]);
  t.equal(a.logprob, b.logprob, 'the same input ids, the same result');
  const { wrapped, calls } = counting(model);
  await scoreTokens(wrapped, [long]);
  t.same(calls, [{ B: 1, T: cfg.maxSeqLen, rows: 4 }], 'the model reads maxSeqLen ids and scores 4 rows');
  t.same(await scoreTokens(training, [long, cut]), [a, b], 'a training model (gradient buffers and all) scores the same');
  training.dispose();
  model.dispose();
});

t.test('identical inputs are scored once; results do not depend on batchTokens', async (t) => {
  const model = makeModel('fp32');
  const ctx = Array.from(randInt(9, cfg.realVocabSize));
  // Four one-token continuations of one context share one input (as MMLU's " A" .. " D").
  const mc: TokenRequest[] = [10, 11, 12, 13].map((id) => ({ context: ctx, continuation: [id] }));
  const { wrapped, calls } = counting(model);
  const res = await scoreTokens(wrapped, mc);
  // (T: the 9 ids rounded up to the shape step of 32, capped at maxSeqLen 24)
  t.same(calls, [{ B: 1, T: 24, rows: 1 }], 'one forward, one row, for four requests');
  const w = weightsOf(model);
  const ref = mc.map((r) => reference(cfg, w, r).logprob);
  t.ok(relErr(res.map((r) => r.logprob), ref) <= TOL.f32, 'each its own token of the shared row');
  // A two-token continuation whose input equals another request's: rows are the longer one's, shared.
  const shared: TokenRequest[] = [
    { context: ctx.slice(0, 8), continuation: [ctx[8], 42] },
    { context: ctx, continuation: [42] },
  ];
  calls.length = 0;
  const two = await scoreTokens(wrapped, shared);
  t.same(calls, [{ B: 1, T: 24, rows: 2 }], 'one forward for a one-token and a two-token continuation of the same input');
  t.ok(relErr(two.map((r) => r.logprob), shared.map((r) => reference(cfg, w, r).logprob)) <= TOL.f32, 'both against the reference');

  // Batching invariance: every batch size gives the same numbers (within the rounding of other GEMM shapes).
  const reqs = [...requestSet(), ...mc, ...shared];
  const base = await scoreTokens(model, reqs, { batchTokens: 1 });
  for (const batchTokens of [30, 64, 100, 100000]) {
    calls.length = 0;
    const progress: number[] = [];
    const got = await scoreTokens(wrapped, reqs, { batchTokens, onProgress: (done, total) => progress.push(done / total) });
    const maxDiff = Math.max(...got.map((g, i) => Math.abs(g.logprob - base[i].logprob) / Math.max(1, Math.abs(base[i].logprob))));
    t.ok(maxDiff <= 1e-6, `batchTokens ${batchTokens}: ${calls.length} forwards, max rel diff ${maxDiff.toExponential(2)} from one input per forward`);
    t.same(got.map((g) => g.greedy), base.map((g) => g.greedy), `batchTokens ${batchTokens}: the same greedy flags`);
    t.ok(calls.every((c) => c.B * c.T <= batchTokens || c.B === 1), 'batches keep to the token budget (a longer input alone)');
    t.equal(progress.at(-1), 1, 'progress reaches every request');
    t.ok(progress.every((p, i) => i === 0 || p > progress[i - 1]), 'progress grows');
  }
  // Inputs of 3 to 90 ids on a model of maxSeqLen 96: batches of T 32, 64 and 96 against one input per forward.
  const wide = new MptModel({ ...cfg, maxSeqLen: 96 }, { seed: seed ^ 0x3, inference: true });
  const mixed = Array.from({ length: 12 }, (_, i) => randomRequest(3 + i * 8, 1 + (i % 3)));
  const alone = await scoreTokens(wide, mixed, { batchTokens: 1 });
  const w2 = counting(wide);
  const together = await scoreTokens(w2.wrapped, mixed, { batchTokens: 200 });
  t.same(new Set(w2.calls.map((c) => c.T)), new Set([32, 64, 96]), 'three batch lengths');
  const wideDiff = Math.max(...together.map((g, i) => Math.abs(g.logprob - alone[i].logprob) / Math.max(1, Math.abs(alone[i].logprob))));
  t.ok(wideDiff <= 1e-6, `T 32/64/96 batches vs one input per forward: max rel diff ${wideDiff.toExponential(2)}`);
  wide.dispose();
  t.same(
    planBatches([9, 9, 7, 5, 3], [1, 1, 1, 1, 1], 20, 100, 24, 4),
    [
      { T: 12, members: [0] },
      { T: 12, members: [1] },
      { T: 8, members: [2, 3] },
      { T: 4, members: [4] },
    ],
    'T rounded up to the step, B = floor(budget / T), shorter inputs fill the rows',
  );
  t.same(planBatches([23, 3], [1, 1], 100, 100, 23, 8), [{ T: 23, members: [0, 1] }], 'T at most maxSeqLen');
  t.same(planBatches([5, 5, 5], [2, 2, 2], 100, 4, 24, 1), [{ T: 5, members: [0, 1] }, { T: 5, members: [2] }], 'the row cap closes a batch');
  model.dispose();
});

t.test('bad requests', async (t) => {
  const model = makeModel('fp32');
  await t.rejects(scoreTokens(model, [{ context: [1], continuation: [] }]), /request 0 has an empty continuation/);
  await t.rejects(scoreTokens(model, [{ context: [], continuation: [1] }]), /request 0 has an empty context/);
  await t.rejects(scoreTokens(model, [randomRequest(2, 2), { context: [1], continuation: new Array(25).fill(1) }]), /request 1's continuation has 25 tokens, more than the model's maxSeqLen 24/);
  await t.rejects(scoreTokens(model, [{ context: [1, 100], continuation: [2] }]), /request 0 has token 100 at 1, outside the model's vocabulary \[0, 100\)/);
  await t.rejects(scoreTokens(model, [{ context: [1], continuation: [2.5] }]), /request 0 has token 2.5 at 1, outside/);
  await t.rejects(scoreTokens(model, [randomRequest(2, 1)], { batchTokens: 0 }), /batchTokens must be an integer >= 1/);
  await t.rejects(scoreTokens(model, [randomRequest(2, 1)], { batchSize: 3 } as never), /unknown option 'batchSize'/);
  t.same(await scoreTokens(model, []), [], 'no requests, no forwards');
  model.dispose();
});

t.test("the harness's encoding of a pair (GPT-2 BPE)", async (t) => {
  const tok = gpt2Tokenizer();
  const enc = (s: string) => Array.from(tok.encode(s));
  t.same(encodePair(tok, 'Question: 2+2?\nAnswer:', ' 4'), { context: enc('Question: 2+2?\nAnswer:'), continuation: enc(' 4') });
  // Trailing whitespace of the context moves to the continuation.
  const moved = encodePair(tok, 'Answer: ', 'B');
  t.same(moved.context, enc('Answer:'));
  t.same(moved.continuation, enc('Answer: B').slice(enc('Answer:').length));
  t.same(moved.continuation, enc(' B'));
  // The continuation is the whole encoding after the context's tokens, even where BPE merges across the cut.
  const merged = encodePair(tok, 'The cat sat on the ma', 'ts');
  t.same(merged.context, enc('The cat sat on the ma'));
  t.same(merged.continuation, enc('The cat sat on the mats').slice(merged.context.length));
  t.same(encodePair(tok, '', 'Hello'), { context: [tok.eosId], continuation: enc('Hello') }, 'an empty context is end-of-text');
  t.equal(pyStrip('\u00a0\u3000 x y\x1c\x85 '), 'x y', "Python's whitespace (JS's trim() differs at \\x1c, \\x85, \\ufeff)");
  t.equal(pyStrip('\ufeffx'), '\ufeffx');

  // Text requests end to end on a model over GPT-2's vocabulary: the same as the encoded requests.
  const big = mptConfig({ dModel: 16, nHeads: 2, nLayers: 1, maxSeqLen: 32, vocabSize: 50304, realVocabSize: 50257 });
  const model = new MptModel(big, { seed: 3, inference: true });
  const texts = [
    { context: 'Question: Which is a mammal?\nAnswer:', continuation: ' a whale' },
    { context: 'Question: Which is a mammal?\nAnswer:', continuation: ' a trout' },
  ];
  const got = await loglikelihood(model, tok, texts);
  const want = await scoreTokens(model, texts.map((r) => encodePair(tok, r.context, r.continuation)));
  t.same(got, want);
  t.ok(got.every((g) => g.logprob < 0 && Number.isFinite(g.logprob)));
  model.dispose();
});
