// model/hf.ts: the MPT <-> Hugging Face config.json mapping in both directions (issue #9 moved it here from
// train/checkpoint.ts and cli/commands.ts).
import t from 'tap';
import { mptConfig } from '../../lib/model/config';
import { mptConfigFromHf, mptHfConfig, mptParamLayout } from '../../lib/model/hf';

const fail = (msg: string): Error => new Error(`config.json: ${msg}`);

t.test('a config written by mptHfConfig reads back as the same MptConfig', async (t) => {
  const cfg = mptConfig({ dModel: 16, nHeads: 4, nLayers: 3, expansionRatio: 2, maxSeqLen: 32, vocabSize: 64, realVocabSize: 60, alibiBiasMax: 4, layerNormEps: 1e-6 });
  const hf = mptHfConfig(cfg) as unknown as Record<string, unknown>;
  const back = mptConfigFromHf(JSON.parse(JSON.stringify(hf)) as Record<string, unknown>, 60, fail);
  t.same(back, cfg);
  t.same(
    mptParamLayout(hf as unknown as Parameters<typeof mptParamLayout>[0]).map(([n]) => n).slice(0, 3),
    ['transformer.wte.weight', 'transformer.blocks.0.norm_1.weight', 'transformer.blocks.0.attn.Wqkv.weight'],
  );
});

t.test('mptConfigFromHf names the key through the caller\'s fail', async (t) => {
  const hf = mptHfConfig({ dModel: 8, nHeads: 2, nLayers: 1, expansionRatio: 4, maxSeqLen: 16, vocabSize: 32 }) as unknown as Record<string, unknown>;
  t.throws(() => mptConfigFromHf({ ...hf, n_heads: 0 }, 32, fail), { message: "config.json: 'n_heads' must be a positive integer, got 0" });
  t.throws(() => mptConfigFromHf({ ...hf, d_model: undefined }, 32, fail), { message: "config.json: 'd_model' must be a positive integer, got nothing (the key is missing)" });
  t.throws(() => mptConfigFromHf({ ...hf, layer_norm_epsilon: 1e999 }, 32, fail), { message: "config.json: 'layer_norm_epsilon' must be a positive number, got Infinity" });
  t.throws(() => mptConfigFromHf({ ...hf, attn_config: [] }, 32, fail), { message: "config.json: 'attn_config' must be an object, got []" });
  t.throws(() => mptConfigFromHf({ ...hf, d_model: 9 }, 32, fail), { message: /^config\.json: the architecture is not a valid MPT: / });
});
