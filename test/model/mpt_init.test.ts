// MptModel's initial weights, bit for bit: MPT's default init (llm-foundry kaiming_normal_, fan_in, ReLU
// gain: N(0, 2 / fan_in), residual output projections divided by sqrt(2 * nLayers), LayerNorm weights 1),
// with the normals drawn in arena order from one seededNormal(seed) stream. test/core/rng.test.ts checks
// seededNormal against Box-Muller over mulberry32 written from their definitions; together the two pin the
// weights of every seed, which checkpoints and seeded runs depend on.
import t from 'tap';
import { MptModel, type Precision } from '../../lib/model/mpt';
import { mptConfig, parameterLayout, type MptConfig } from '../../lib/model/config';
import { seededNormal } from '../../lib/core/rng';

/** The weights MPT's init gives `cfg` from `seed`, in arena order, written out from the rule above. */
function referenceInit(cfg: MptConfig, seed: number): Float32Array {
  const layout = parameterLayout(cfg);
  const out = new Float32Array(layout.reduce((n, [, shape]) => n + shape.reduce((a, b) => a * b, 1), 0));
  const normal = seededNormal(seed);
  let at = 0;
  for (const [name, shape] of layout) {
    const numel = shape.reduce((a, b) => a * b, 1);
    if (shape.length === 1) {
      out.fill(1, at, at + numel);
    } else {
      const residualOut = name.endsWith('attn.out_proj.weight') || name.endsWith('ffn.down_proj.weight');
      const std = Math.sqrt(2 / shape[1]) / (residualOut ? Math.sqrt(2 * cfg.nLayers) : 1);
      for (let i = 0; i < numel; i++) out[at + i] = normal() * std;
    }
    at += numel;
  }
  return out;
}

const sameBits = (a: Float32Array, b: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

const configs = [
  mptConfig({ dModel: 32, nHeads: 4, nLayers: 2, maxSeqLen: 16, vocabSize: 64 }),
  // odd sizes: an odd tensor leaves a spare normal for the next tensor, which must take it
  mptConfig({ dModel: 15, nHeads: 3, nLayers: 3, expansionRatio: 3, maxSeqLen: 8, vocabSize: 51, realVocabSize: 45 }),
];

for (const [ci, cfg] of configs.entries()) {
  t.test(`config ${ci}: the init is MPT's, drawn from seededNormal in arena order`, async (t) => {
    for (const seed of [0, 1, 0x5eed, -7]) {
      const want = referenceInit(cfg, seed);
      for (const precision of ['fp32', 'bf16'] as Precision[]) {
        const model = new MptModel(cfg, { seed, precision });
        t.ok(sameBits(model.params.buffer.toFloat32(), want), `seed ${seed}, ${precision}: master weights`);
        model.initialize(seed + 1);
        t.ok(sameBits(model.params.buffer.toFloat32(), referenceInit(cfg, seed + 1)), `seed ${seed}, ${precision}: initialize(seed + 1)`);
        model.dispose();
      }
    }
  });
}
