// The whole MPT model against a plain float64 TypeScript reference written straight from the math (explicit
// T x T ALiBi bias, naive softmax, erf GELU, real-vocabulary logits): the forward loss in fp32 and bf16
// autocast, the last-position logits used for generation, every parameter tensor's fp32 gradient against
// central finite differences of the float64 loss (and the bf16 autocast gradient against the fp32 one), and
// the padded embedding rows' gradient (exactly zero).
import t from 'tap';
import { MptModel } from '../../lib/model/mpt';
import { mptConfig, type MptConfig } from '../../lib/model/config';
import { mptLogitsRef, perturbForReference, weightsOf, type Weights } from '../helpers/mpt-reference';
import { makeRng, randInt, randn, relErr, seed, TOL } from '../helpers/reference';

t.comment(`seed ${seed}`);

const IGNORE = -100;

interface RefOut {
  lossSum: number;
  tokens: number;
  /** (B, realVocabSize) logits of each sequence's last position. */
  lastLogits: Float64Array;
}

/** The MPT forward in float64: summed cross-entropy over non-ignored targets. */
function referenceForward(cfg: MptConfig, w: Weights, ids: Int32Array, targets: Int32Array, B: number, T: number): RefOut {
  const V = cfg.realVocabSize;
  const N = B * T;
  const logits = mptLogitsRef(cfg, w, ids, B, T);
  let lossSum = 0;
  let tokens = 0;
  for (let n = 0; n < N; n++) {
    if (targets[n] === IGNORE) continue;
    let mx = -Infinity;
    for (let v = 0; v < V; v++) mx = Math.max(mx, logits[n * V + v]);
    let sum = 0;
    for (let v = 0; v < V; v++) sum += Math.exp(logits[n * V + v] - mx);
    lossSum += mx + Math.log(sum) - logits[n * V + targets[n]];
    tokens++;
  }
  const lastLogits = new Float64Array(B * V);
  for (let b = 0; b < B; b++) lastLogits.set(logits.subarray((b * T + T - 1) * V, (b * T + T) * V), b * V);
  return { lossSum, tokens, lastLogits };
}

// Dims chosen so that a bug has somewhere to show: 2 heads (slopes 2^-4, 2^-8) and 3 heads (MPT's interleaved
// slopes, head dim 16), a padded vocabulary, T = 7 (part of a tile) and 16, and ignored targets.
const base = mptConfig({ dModel: 64, nHeads: 2, nLayers: 2, maxSeqLen: 32, vocabSize: 128, realVocabSize: 100 });
const threeHeads = mptConfig({ dModel: 48, nHeads: 3, nLayers: 2, expansionRatio: 3, maxSeqLen: 32, vocabSize: 128, realVocabSize: 97, layerNormEps: 1e-3 });
const B = 2;

function batch(cfg: MptConfig, T: number): { ids: Int32Array; targets: Int32Array } {
  const ids = randInt(B * T, cfg.realVocabSize);
  const targets = randInt(B * T, cfg.realVocabSize);
  targets[0] = cfg.realVocabSize - 1; // the last real id is a legal target
  for (let i = 2; i < B * T; i += 5) targets[i] = IGNORE;
  return { ids, targets };
}

/**
 * A model with its init perturbed: LayerNorm weights away from 1 (so a kernel ignoring them is caught), and
 * the padded wte rows filled with large values (so a kernel reading them is caught).
 */
function makeModel(cfg: MptConfig, precision: 'fp32' | 'bf16'): MptModel {
  return perturbForReference(new MptModel(cfg, { precision, seed: seed ^ 0x5eed }), randn);
}

for (const [label, cfg] of [['2 heads', base], ['3 heads', threeHeads]] as const) {
  for (const T of [7, 16]) {
    t.test(`forward loss, ${label}, T=${T}: fp32 and bf16 autocast against float64`, async (t) => {
      const { ids, targets } = batch(cfg, T);
      for (const precision of ['fp32', 'bf16'] as const) {
        const model = makeModel(cfg, precision);
        const ref = referenceForward(cfg, weightsOf(model), ids, targets, B, T);
        const ev = await model.evaluate(ids, targets, B, T);
        t.equal(ev.tokens, ref.tokens, 'evaluate counts the non-ignored targets');
        const err = Math.abs(ev.lossSum - ref.lossSum) / Math.abs(ref.lossSum);
        const tol = precision === 'fp32' ? TOL.f32 : TOL.bf16;
        t.ok(err <= tol, `${precision} loss ${ev.lossSum / ev.tokens} vs float64 ${ref.lossSum / ref.tokens}: rel err ${err.toExponential(2)} (bound ${tol})`);
        // forwardBackward's loss is the same forward
        const fb = await model.forwardBackward(ids, targets, B, T, 0);
        t.equal(fb.lossSum, ev.lossSum, 'forwardBackward returns the same summed loss as evaluate');
        t.equal(fb.tokens, ref.tokens);
        // Generation logits: the real vocabulary as the reference has it, padded ids at -Infinity.
        const V = cfg.vocabSize;
        const Vr = cfg.realVocabSize;
        const logits = await model.lastLogits(ids, B, T);
        t.equal(logits.length, B * V);
        const real = new Float64Array(B * Vr);
        let padsAreInf = true;
        for (let b = 0; b < B; b++) {
          for (let v = 0; v < V; v++) {
            if (v < Vr) real[b * Vr + v] = logits[b * V + v];
            else padsAreInf &&= logits[b * V + v] === -Infinity;
          }
        }
        // bf16 logits come from a bf16 residual stream and bf16 wte: measured up to ~1.7e-2 over many seeds.
        const el = relErr(real, ref.lastLogits);
        const tolLogits = precision === 'fp32' ? TOL.f32 : 5e-2;
        t.ok(el <= tolLogits, `${precision} last-position logits rel err ${el.toExponential(2)} (bound ${tolLogits})`);
        t.ok(padsAreInf, 'padded ids have logit -Infinity');
        model.dispose();
      }
    });
  }
}

// Central differences of the float64 loss: h = 1e-4 * max(1, |w|) gives truncation error ~h^2 and rounding
// error ~1e-16 / h, both far below the bound. Measured over many seeds: fp32 gradients are within ~4e-6 of
// the differences (bound 1e-4), and bf16 autocast gradients (bf16 activations and activation gradients)
// within 1.7e-2 to 2.5e-2 of the fp32 ones over each whole tensor (25 seeds, 2026-12-05), with a tail: seed
// 1200424699 (PAJAMA_TEST_SEED) gives 1.15e-1 on blocks.0.norm_1 and 1.05e-1 on attn.Wqkv at T=7, with every
// tensor of that 14-token batch at 4-5%, so bf16 rounding on a small batch rather than a term. Bound 0.2. A
// wrong or missing term moves a tensor's gradient by O(1).
const FD_SAMPLES = 10;
const FD_BOUND = 1e-4;
const BF16_BOUND = 0.2;

for (const [label, cfg] of [['2 heads', base], ['3 heads', threeHeads]] as const) {
  for (const T of label === '2 heads' ? [7, 16] : [16]) {
    t.test(`gradients, ${label}, T=${T}: every tensor against finite differences of the float64 loss`, async (t) => {
      const { ids, targets } = batch(cfg, T);
      const model = makeModel(cfg, 'fp32');
      const w = weightsOf(model);
      const tokens = targets.filter((v) => v !== IGNORE).length;
      model.grads.zero();
      await model.forwardBackward(ids, targets, B, T, 1 / tokens);
      // The same weights under bf16 autocast, checked below against these fp32 gradients.
      const half = new MptModel(cfg, { precision: 'bf16' });
      half.params.buffer.copyFrom(model.params.buffer.toFloat32());
      half.syncComputeParams();
      await half.forwardBackward(ids, targets, B, T, 1 / tokens);
      const meanLoss = () => referenceForward(cfg, w, ids, targets, B, T).lossSum / tokens;
      const pick = makeRng(seed ^ T);
      const C = cfg.dModel;
      const Vr = cfg.realVocabSize;
      let worst = 0;
      let worstBf16 = 0;
      for (const e of model.params.entries) {
        const grad = model.grads.get(e.name).toFloat32();
        const p = w.get(e.name)!;
        // wte: half the samples from rows the batch embeds (the embedding backward), half from any real row
        // (the tied head); never padded rows, checked exactly below.
        const coords: number[] = [];
        for (let k = 0; k < FD_SAMPLES; k++) {
          if (e.name === 'transformer.wte.weight') {
            const row = k % 2 === 0 ? ids[Math.floor(pick() * ids.length)] : Math.floor(pick() * Vr);
            coords.push(row * C + Math.floor(pick() * C));
          } else {
            coords.push(Math.floor(pick() * e.numel));
          }
        }
        const fd: number[] = [];
        const native: number[] = [];
        for (const i of coords) {
          const w0 = p[i];
          const h = 1e-4 * Math.max(1, Math.abs(w0));
          p[i] = w0 + h;
          const up = meanLoss();
          p[i] = w0 - h;
          const down = meanLoss();
          p[i] = w0;
          fd.push((up - down) / (2 * h));
          native.push(grad[i]);
        }
        const err = relErr(native, fd);
        worst = Math.max(worst, err);
        t.ok(err <= FD_BOUND, `${e.name}: rel err ${err.toExponential(2)} over ${coords.length} coords (|fd| ${Math.hypot(...fd).toExponential(2)})`);
        // bf16 over the whole tensor: a statistic over ten coordinates is too noisy for bf16's errors.
        const gradBf16 = half.grads.get(e.name).toFloat32();
        const errBf16 = relErr(gradBf16, grad);
        worstBf16 = Math.max(worstBf16, errBf16);
        t.ok(errBf16 <= BF16_BOUND, `${e.name} bf16: rel err ${errBf16.toExponential(2)} against the fp32 gradient`);
        if (e.name === 'transformer.wte.weight') {
          const pad = grad.subarray(Vr * C);
          t.ok(pad.every((v) => v === 0), `padded wte rows (ids >= ${Vr}) have exactly zero gradient`);
          t.ok(gradBf16.subarray(Vr * C).every((v) => v === 0), 'and under bf16 autocast');
        }
      }
      t.comment(`worst per-tensor rel err: fp32 ${worst.toExponential(2)}, bf16 ${worstBf16.toExponential(2)}`);
      model.dispose();
      half.dispose();
    });
  }
}
