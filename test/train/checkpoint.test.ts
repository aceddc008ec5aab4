// Checkpoints: the MPT config.json, the directory layout, bit-identical restore of params and moments, atomic
// saves (no temporary leftovers; a crashed save ignored, then cleaned), keepLast pruning, the `latest`
// pointer, validation of incomplete or mismatched checkpoints, and initialising from model weights.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Arena } from '../../lib/index';
import {
  CheckpointError,
  latestCheckpoint,
  listCheckpoints,
  loadCheckpoint,
  loadModelWeights,
  mptHfConfig,
  mptParamLayout,
  saveCheckpoint,
  type MptShape,
} from '../../lib/train/checkpoint';
import { readSafetensorsHeader, saveArenaSafetensors, writeSafetensors, arenaTensorsToWrite } from '../../lib/train/safetensors';
import { randn, roundBf16, seed } from '../helpers/reference';

t.comment(`seed ${seed}`);

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'pajama-checkpoint-'));
t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
let runNo = 0;
const newRun = () => path.join(root, `run-${runNo++}`);

const tiny: MptShape = { dModel: 8, nHeads: 2, nLayers: 2, expansionRatio: 4, maxSeqLen: 16, vocabSize: 24 };
const config = mptHfConfig(tiny);

function randomArena(dtype: 'f32' | 'bf16' = 'f32', scale = 1): Arena {
  const a = new Arena(dtype, mptParamLayout(config));
  a.buffer.copyFrom(Float32Array.from(randn(a.numel, scale)));
  return a;
}

const bits = (a: Arena) => Buffer.from(a.buffer.toFloat32().buffer);
const ckptEntries = (run: string) => fs.readdirSync(path.join(run, 'checkpoints')).sort();

t.test('mptHfConfig is transformers MptConfig for this model', async (t) => {
  t.same(mptHfConfig({ ...tiny, alibiBiasMax: 8 }, { torchDtype: 'bfloat16' }), {
    architectures: ['MptForCausalLM'],
    model_type: 'mpt',
    d_model: 8,
    n_heads: 2,
    n_layers: 2,
    expansion_ratio: 4,
    max_seq_len: 16,
    vocab_size: 24,
    resid_pdrop: 0,
    emb_pdrop: 0,
    layer_norm_epsilon: 1e-5,
    learned_pos_emb: false,
    no_bias: true,
    attn_config: {
      attn_type: 'multihead_attention',
      attn_pdrop: 0,
      attn_impl: 'torch',
      clip_qkv: null,
      softmax_scale: null,
      prefix_lm: false,
      qk_ln: false,
      attn_uses_sequence_id: false,
      alibi: true,
      alibi_bias_max: 8,
    },
    init_device: 'cpu',
    logit_scale: null,
    norm_type: 'low_precision_layernorm',
    embedding_fraction: 1,
    verbose: 0,
    use_cache: false,
    torch_dtype: 'bfloat16',
    tie_word_embeddings: true,
  });
  t.equal(config.torch_dtype, 'float32', 'float32 by default');
  t.equal(mptHfConfig({ ...tiny, alibiBiasMax: 16 }, { attnImpl: 'flash' }).attn_config.alibi_bias_max, 16);
  t.throws(() => mptHfConfig({ ...tiny, dModel: 9 }), /dModel 9 is not a multiple of nHeads 2/);
  t.throws(() => mptHfConfig({ ...tiny, expansionRatio: 2.5 }), /expansionRatio must be a positive integer/);
  t.throws(() => mptHfConfig({ ...tiny, vocabSize: 0 }), /vocabSize must be a positive integer/);
});

t.test('mptParamLayout names and shapes every MPT parameter', async (t) => {
  const layout = mptParamLayout(config);
  t.equal(layout.length, 1 + 6 * 2 + 1);
  t.same(layout.slice(0, 8), [
    ['transformer.wte.weight', [24, 8]],
    ['transformer.blocks.0.norm_1.weight', [8]],
    ['transformer.blocks.0.attn.Wqkv.weight', [24, 8]],
    ['transformer.blocks.0.attn.out_proj.weight', [8, 8]],
    ['transformer.blocks.0.norm_2.weight', [8]],
    ['transformer.blocks.0.ffn.up_proj.weight', [32, 8]],
    ['transformer.blocks.0.ffn.down_proj.weight', [8, 32]],
    ['transformer.blocks.1.norm_1.weight', [8]],
  ]);
  t.same(layout[layout.length - 1], ['transformer.norm_f.weight', [8]]);
});

t.test('save then load restores params and moments bit-identically, with config and trainer state', async (t) => {
  const run = newRun();
  const params = randomArena();
  const m = randomArena('f32', 1e-3);
  const v = randomArena('f32', 1e-6);
  const trainerState = { step: 123, tokensSeen: 123 * 4096, ptwd: { stage: 1, lr: 3e-4 }, data: { shard: 3, offset: 77 }, rng: [1, 2, 3, 4] };
  const info = saveCheckpoint(run, 123, { config, params, optimizerState: { m, v }, trainerState, keepLast: 3, chunkBytes: 100 });
  t.same(info, { step: 123, dir: path.join(run, 'checkpoints', 'step-000123') });
  t.same(ckptEntries(run), ['latest', 'step-000123'], 'no temporary files or directories left');
  t.same(fs.readdirSync(info.dir).sort(), ['config.json', 'model.safetensors', 'optimizer.safetensors', 'trainer_state.json']);
  t.equal(fs.readFileSync(path.join(run, 'checkpoints', 'latest'), 'utf8'), 'step-000123\n');
  t.same(JSON.parse(fs.readFileSync(path.join(info.dir, 'config.json'), 'utf8')), config);

  const model = readSafetensorsHeader(path.join(info.dir, 'model.safetensors'));
  t.same(model.metadata, { format: 'pt', producer: 'pajama-train', step: '123' }, 'format "pt", as transformers requires');
  t.same(model.tensors.map((x) => [x.name, x.dtype, x.shape]), params.entries.map((e) => [e.name, 'F32', e.shape]));
  const opt = readSafetensorsHeader(path.join(info.dir, 'optimizer.safetensors'));
  t.same(opt.tensors.map((x) => x.name), [...params.entries.map((e) => `m.${e.name}`), ...params.entries.map((e) => `v.${e.name}`)]);

  const p2 = new Arena('f32', mptParamLayout(config));
  const m2 = p2.like();
  const v2 = p2.like();
  const loaded = loadCheckpoint(info.dir, { params: p2, m: m2, v: v2, chunkBytes: 64 });
  t.ok(bits(p2).equals(bits(params)), 'params bit-identical');
  t.ok(bits(m2).equals(bits(m)), 'm bit-identical');
  t.ok(bits(v2).equals(bits(v)), 'v bit-identical');
  t.same(loaded.trainerState, trainerState);
  t.same(loaded.config, config);
  t.equal(loaded.step, 123);

  // Only the moments asked for are loaded.
  const m3 = p2.like();
  loadCheckpoint(info.dir, { params: p2, m: m3 });
  t.ok(bits(m3).equals(bits(m)));
  for (const a of [params, m, v, p2, m2, v2, m3]) a.dispose();
});

t.test('keepLast prunes the oldest, latest follows the newest', async (t) => {
  const run = newRun();
  const params = randomArena();
  t.equal(latestCheckpoint(run), null, 'no checkpoints yet');
  t.same(listCheckpoints(run), []);
  for (const step of [100, 200, 300, 400]) {
    saveCheckpoint(run, step, { config, params, trainerState: { step }, keepLast: 2 });
    t.equal(latestCheckpoint(run)?.step, step);
  }
  t.same(listCheckpoints(run).map((c) => c.step), [300, 400]);
  t.same(ckptEntries(run), ['latest', 'step-000300', 'step-000400']);
  t.equal(fs.readFileSync(path.join(run, 'checkpoints', 'latest'), 'utf8'), 'step-000400\n');
  t.equal(latestCheckpoint(run)?.dir, path.join(run, 'checkpoints', 'step-000400'));
  // Steps past six digits sort numerically.
  saveCheckpoint(run, 1_234_567, { config, params, trainerState: {}, keepLast: Infinity });
  t.same(listCheckpoints(run).map((c) => c.step), [300, 400, 1_234_567]);
  t.equal(latestCheckpoint(run)?.step, 1_234_567);
  params.dispose();
});

t.test('a crashed save is ignored, then cleaned by the next save', async (t) => {
  const run = newRun();
  const params = randomArena();
  saveCheckpoint(run, 100, { config, params, trainerState: { step: 100 }, keepLast: 5 });
  // A crash mid-write of step 200: a temporary directory with some files, and a half-written pointer.
  const ckpt = path.join(run, 'checkpoints');
  const crashed = path.join(ckpt, 'step-000200.tmp-xyz');
  fs.mkdirSync(crashed);
  fs.writeFileSync(path.join(crashed, 'config.json'), JSON.stringify(config));
  fs.writeFileSync(path.join(crashed, 'model.safetensors'), Buffer.alloc(100));
  fs.writeFileSync(path.join(ckpt, 'latest.tmp-123-abcd'), 'step-0002');
  t.same(listCheckpoints(run).map((c) => c.step), [100]);
  t.equal(latestCheckpoint(run)?.step, 100);

  saveCheckpoint(run, 150, { config, params, trainerState: { step: 150 }, keepLast: 5 });
  t.same(ckptEntries(run), ['latest', 'step-000100', 'step-000150'], 'leftovers removed');
  params.dispose();
});

t.test('latest: the pointer wins while its checkpoint exists, else the highest step', async (t) => {
  const run = newRun();
  const params = randomArena();
  saveCheckpoint(run, 100, { config, params, trainerState: {}, keepLast: 5 });
  saveCheckpoint(run, 200, { config, params, trainerState: {}, keepLast: 5 });
  const ckpt = path.join(run, 'checkpoints');
  // A crash after step 300's rename but before the pointer moved: resume from what `latest` committed.
  fs.cpSync(path.join(ckpt, 'step-000200'), path.join(ckpt, 'step-000300'), { recursive: true });
  t.equal(latestCheckpoint(run)?.step, 200);
  fs.rmSync(path.join(ckpt, 'latest'));
  t.equal(latestCheckpoint(run)?.step, 300, 'no pointer: the highest step');
  fs.writeFileSync(path.join(ckpt, 'latest'), 'step-000999\n');
  t.equal(latestCheckpoint(run)?.step, 300, 'pointer to a deleted checkpoint: the highest step');
  fs.writeFileSync(path.join(ckpt, 'step-000400'), 'a file, not a checkpoint');
  t.same(listCheckpoints(run).map((c) => c.step), [100, 200, 300], 'only directories count');
  params.dispose();
});

t.test('resuming from an earlier step: later checkpoints are kept (with a warning) and not counted', async (t) => {
  const run = newRun();
  const params = randomArena();
  for (const step of [100, 200, 300]) saveCheckpoint(run, step, { config, params, trainerState: {}, keepLast: 10 });
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(w.message);
  process.on('warning', onWarning);
  saveCheckpoint(run, 150, { config, params, trainerState: {}, keepLast: 1 });
  await new Promise((r) => setImmediate(r));
  process.off('warning', onWarning);
  t.equal(latestCheckpoint(run)?.step, 150, 'latest is the checkpoint just saved');
  t.same(listCheckpoints(run).map((c) => c.step), [150, 200, 300], 'older pruned, the newest saved kept');
  t.match(warnings.join('\n'), /step-000200, step-000300/);
  params.dispose();
});

t.test('saving a step again replaces it', async (t) => {
  const run = newRun();
  const a = randomArena();
  const b = randomArena();
  saveCheckpoint(run, 7, { config, params: a, trainerState: { step: 7, v: 1 }, keepLast: 2 });
  saveCheckpoint(run, 7, { config, params: b, trainerState: { step: 7, v: 2 }, keepLast: 2 });
  t.same(ckptEntries(run), ['latest', 'step-000007']);
  const c = a.like();
  t.same(loadCheckpoint(path.join(run, 'checkpoints', 'step-000007'), { params: c }).trainerState, { step: 7, v: 2 });
  t.ok(bits(c).equals(bits(b)));
  for (const x of [a, b, c]) x.dispose();
});

t.test('saveCheckpoint checks its arguments before writing anything', async (t) => {
  const run = newRun();
  const params = randomArena();
  const other = new Arena('f32', [['x', [3]]]);
  const ok = { config, params, trainerState: {}, keepLast: 2 };
  const bad = (opts: object, step: number, re: RegExp, what: string) =>
    t.throws(() => saveCheckpoint(run, step, { ...ok, ...opts } as never), { name: 'TypeError', message: re }, what);
  bad({}, -1, /step must be a non-negative integer/, 'negative step');
  bad({ keepLast: 0 }, 1, /keepLast must be a positive integer or Infinity/, 'keepLast 0');
  bad({ optimizerState: { m: params.like() } }, 1, /needs both m and v/, 'one moment');
  bad({ optimizerState: { m: other, v: other } }, 1, /m must have the layout of params/, 'moment layout');
  bad({ trainerState: { step: 2 } }, 1, /trainerState\.step is 2, saving step 1/, 'step disagrees');
  bad({ trainerState: { loss: NaN } }, 1, /trainerState\.loss is NaN/, 'NaN');
  bad({ trainerState: { rng: { s: 1n } } }, 1, /trainerState\.rng\.s is a bigint/, 'bigint');
  bad({ trainerState: { at: new Date() } }, 1, /trainerState\.at is a Date/, 'Date');
  bad({ trainerState: { a: [1, undefined] } }, 1, /trainerState\.a\[1\] is undefined/, 'undefined');
  bad({ config: { ...config, d_model: 16 } }, 1, /config \(d_model 16.*does not match the parameter arena: 'transformer\.wte\.weight' is \[24, 8\] in the arena, the config implies \[24, 16\]/, 'config mismatch');
  bad({ config: { ...config, model_type: 'gpt2' } }, 1, /model_type is "gpt2"/, 'not mpt');
  bad({ params: other }, 1, /arena entry 'x' is not a parameter of this config.*'transformer\.wte\.weight' \[24, 8\] is missing from the arena/, 'wrong arena');
  t.notOk(fs.existsSync(run), 'nothing written');
  params.dispose();
  other.dispose();
});

t.test('loadCheckpoint rejects incomplete and mismatched checkpoints with clear errors', async (t) => {
  const run = newRun();
  const params = randomArena();
  const m = params.like();
  const v = params.like();
  const { dir } = saveCheckpoint(run, 5, { config, params, optimizerState: { m, v }, trainerState: { step: 5 }, keepLast: 1 });
  const copy = (name: string, edit: (d: string) => void) => {
    const d = path.join(root, `${name}-${runNo++}`, 'step-000005');
    fs.cpSync(dir, d, { recursive: true });
    edit(d);
    return d;
  };
  const fails = (d: string, re: RegExp, what: string, opts: object = {}) => {
    const err = t.throws(() => loadCheckpoint(d, { params, ...opts }), re, what) as unknown;
    t.ok(err instanceof Error && (err as Error).message.includes(path.dirname(d)), `${what}: names the directory or file`);
  };
  fails(copy('nomodel', (d) => fs.rmSync(path.join(d, 'model.safetensors'))), /has no model\.safetensors/, 'no model file');
  fails(copy('noconfig', (d) => fs.rmSync(path.join(d, 'config.json'))), /has no config\.json/, 'no config');
  fails(copy('nostate', (d) => fs.rmSync(path.join(d, 'trainer_state.json'))), /has no trainer_state\.json/, 'no trainer state');
  fails(copy('noopt', (d) => fs.rmSync(path.join(d, 'optimizer.safetensors'))), /has no optimizer\.safetensors/, 'no optimizer file', { m });
  fails(copy('badjson', (d) => fs.writeFileSync(path.join(d, 'trainer_state.json'), '{"step": 5,')), /trainer_state\.json is not valid JSON/, 'bad JSON');
  fails(
    copy('cfg', (d) => fs.writeFileSync(path.join(d, 'config.json'), JSON.stringify({ ...config, n_layers: 3 }))),
    /config\.json \(d_model 8, n_layers 3.*'transformer\.blocks\.2\.norm_1\.weight' \[8\] is missing from the arena/,
    'config mismatch',
  );
  fails(copy('cfg2', (d) => fs.writeFileSync(path.join(d, 'config.json'), JSON.stringify({ ...config, vocab_size: null }))), /vocab_size must be a positive integer/, 'config without vocab_size');
  fails(copy('step', (d) => fs.writeFileSync(path.join(d, 'trainer_state.json'), '{"step": 6}')), /says step 6, the directory says 5/, 'step disagrees');
  fails(
    copy('trunc', (d) => {
      const f = path.join(d, 'model.safetensors');
      fs.truncateSync(f, fs.statSync(f).size - 4);
    }),
    /model\.safetensors: tensor 'transformer\.norm_f\.weight': data_offsets .* run past the end of the file/,
    'truncated weights',
  );
  t.throws(() => loadCheckpoint(path.join(root, 'nowhere'), { params }), { name: 'CheckpointError', message: /is not a checkpoint directory/ });
  // The config matches but the file holds another model: the safetensors checks catch it.
  const small = new Arena('f32', [['transformer.wte.weight', [24, 8]]]);
  t.throws(() => loadCheckpoint(dir, { params: small }), CheckpointError, 'arena missing parameters the config implies');
  for (const a of [params, m, v, small]) a.dispose();
});

t.test('loadModelWeights: from a checkpoint, a model file, BF16 weights, and HF shards', async (t) => {
  const run = newRun();
  const params = randomArena();
  const { dir } = saveCheckpoint(run, 1, { config, params, trainerState: {}, keepLast: 1 });
  const p = params.like();
  t.same(loadModelWeights(dir, p).config, config);
  t.ok(bits(p).equals(bits(params)), 'from a checkpoint directory');

  // A bf16 model file (as a bf16 HF release would have), widened exactly into f32 master weights.
  const hf = path.join(root, `hf-${runNo++}`);
  fs.mkdirSync(hf);
  fs.writeFileSync(path.join(hf, 'config.json'), JSON.stringify(mptHfConfig(tiny, { torchDtype: 'bfloat16' })));
  saveArenaSafetensors(path.join(hf, 'model.safetensors'), params, { dtype: 'BF16' });
  const q = params.like();
  loadModelWeights(hf, q);
  t.same(Array.from(q.buffer.toFloat32()), Array.from(params.buffer.toFloat32(), roundBf16));
  const r = params.like();
  t.same(loadModelWeights(path.join(hf, 'model.safetensors'), r).files, [path.join(hf, 'model.safetensors')]);
  t.ok(bits(r).equals(bits(q)), 'from the file itself');

  // Sharded: model.safetensors.index.json and two shards.
  const sharded = path.join(root, `sharded-${runNo++}`);
  fs.mkdirSync(sharded);
  const all = arenaTensorsToWrite(params);
  const half = Math.ceil(all.length / 2);
  const shards = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'];
  writeSafetensors(path.join(sharded, shards[0]), all.slice(0, half), { format: 'pt' });
  writeSafetensors(path.join(sharded, shards[1]), all.slice(half), { format: 'pt' });
  const weightMap = Object.fromEntries(all.map((x, i) => [x.name, shards[i < half ? 0 : 1]]));
  fs.writeFileSync(path.join(sharded, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
  const s = params.like();
  t.same(loadModelWeights(sharded, s).files, shards.map((f) => path.join(sharded, f)));
  t.ok(bits(s).equals(bits(params)), 'from shards');

  t.throws(() => loadModelWeights(path.join(root, 'missing'), s), { name: 'CheckpointError', message: /no such file or directory/ });
  const empty = fs.mkdtempSync(path.join(root, 'empty-'));
  t.throws(() => loadModelWeights(empty, s), /has neither model\.safetensors nor model\.safetensors\.index\.json/);
  fs.writeFileSync(path.join(empty, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { a: '../x.safetensors' } }));
  t.throws(() => loadModelWeights(empty, s), /names shard "\.\.\/x\.safetensors", not a file name in this directory/);
  const wrong = new Arena('f32', mptParamLayout({ ...config, d_model: 16 }));
  t.throws(() => loadModelWeights(dir, wrong), /config\.json \(d_model 8.*does not match the parameter arena/);
  for (const a of [params, p, q, r, s, wrong]) a.dispose();
});

t.test('bf16 master weights round-trip; a BF16 model file from f32 weights', async (t) => {
  const run = newRun();
  const params = randomArena('bf16');
  const { dir } = saveCheckpoint(run, 2, { config: mptHfConfig(tiny, { torchDtype: 'bfloat16' }), params, trainerState: {}, keepLast: 1 });
  t.ok(readSafetensorsHeader(path.join(dir, 'model.safetensors')).tensors.every((x) => x.dtype === 'BF16'));
  const back = params.like();
  loadCheckpoint(dir, { params: back });
  t.same(Array.from(back.buffer.toBf16Bits()), Array.from(params.buffer.toBf16Bits()));

  const f = randomArena('f32');
  const d2 = saveCheckpoint(run, 3, { config, params: f, trainerState: {}, keepLast: 1, modelDtype: 'BF16' }).dir;
  const g = f.like();
  loadCheckpoint(d2, { params: g });
  t.same(Array.from(g.buffer.toFloat32()), Array.from(f.buffer.toFloat32(), roundBf16));
  for (const a of [params, back, f, g]) a.dispose();
});
