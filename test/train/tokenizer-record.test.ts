// Checkpoints know their tokenizer (issue #13 item 1): saveCheckpoint records it (tokenizer_config.json, and a
// copy of a tokenizer.json beside the weights), checkpointTokenizer reads it back (errors name the file and
// key), a run on a manifest of GPT-NeoX shards records GPT-NeoX, and `pajama generate` decodes with the
// recorded tokenizer; a checkpoint that records none decodes with GPT-2 and says so.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Arena } from '../../lib/core/tensor';
import { writeDataManifest, type DataManifest } from '../../lib/data/manifest';
import { ShardWriter } from '../../lib/data/shard';
import { createTokenizer } from '../../lib/data/tokenizers/create';
import { loadHfTokenizer } from '../../lib/data/tokenizers/hf';
import { generate } from '../../lib/eval/generate';
import { MptModel } from '../../lib/model/mpt';
import { mptConfig, padVocab } from '../../lib/model/config';
import { mptHfConfig } from '../../lib/model/hf';
import { checkpointTokenizer, saveCheckpoint } from '../../lib/train/checkpoint';
import { Trainer } from '../../lib/train/trainer';
import { loadModelFromCheckpoint } from '../../lib/cli/commands';
import { runCli } from '../helpers/cli-run';
import { tinyConfig, writeTinyShard } from '../helpers/tiny-run';

const NEOX = path.resolve(__dirname, '../../../shared/data/gpt-neox-20b-tokenizer.json');
const noNeox = fs.existsSync(NEOX) ? false : `${NEOX} is absent (the team's shared data)`;

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pajama-tokrec-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A checkpoint of a tiny model saved with `tokenizer`; returns its directory. */
function save(name: string, tokenizer?: Parameters<typeof saveCheckpoint>[2]['tokenizer']): string {
  const cfg = mptConfig('tiny', { nLayers: 1 });
  const model = new MptModel(cfg);
  try {
    return saveCheckpoint(path.join(dir, name), 1, { config: mptHfConfig(cfg), params: model.params, trainerState: { step: 1 }, keepLast: 1, ...(tokenizer !== undefined ? { tokenizer } : {}) }).dir;
  } finally {
    model.dispose();
  }
}

t.test('saveCheckpoint records the tokenizer; checkpointTokenizer reads it back', { skip: noNeox }, async (t) => {
  const hf = save('hf', { kind: 'hf', path: NEOX });
  t.ok(fs.readFileSync(path.join(hf, 'tokenizer.json')).equals(fs.readFileSync(NEOX)), 'tokenizer.json is a copy of the run\'s');
  const cfg = JSON.parse(fs.readFileSync(path.join(hf, 'tokenizer_config.json'), 'utf8'));
  t.same(cfg, { tokenizer_class: 'PreTrainedTokenizerFast', pajama_tokenizer: { kind: 'hf', file: 'tokenizer.json' } });
  t.same(checkpointTokenizer(hf), { kind: 'hf', path: path.join(hf, 'tokenizer.json') });
  const gpt2 = save('gpt2', { kind: 'gpt2' });
  t.notOk(fs.existsSync(path.join(gpt2, 'tokenizer.json')));
  t.same(checkpointTokenizer(gpt2), { kind: 'gpt2' });
  const none = save('none');
  t.equal(checkpointTokenizer(none), null, 'a checkpoint saved without one records none');
  fs.copyFileSync(NEOX, path.join(none, 'tokenizer.json'));
  t.same(checkpointTokenizer(none), { kind: 'hf', path: path.join(none, 'tokenizer.json') }, 'a tokenizer.json alone (a Hugging Face directory) is used');
  const withOptions = save('options', { kind: 'hf', path: NEOX, allowSpecial: true, eosToken: '<|endoftext|>' });
  t.same(checkpointTokenizer(withOptions), { kind: 'hf', path: path.join(withOptions, 'tokenizer.json'), allowSpecial: true, eosToken: '<|endoftext|>' }, 'with its options');
  const file = path.join(gpt2, 'tokenizer_config.json');
  for (const [value, message] of [
    [{ kind: 'spm' }, /'pajama_tokenizer' kind must be 'gpt2' or 'hf', got "spm"/],
    [{ kind: 'hf', file: '../x.json' }, /'pajama_tokenizer' file must name a file in the checkpoint, got "..\/x.json"/],
    [{ kind: 'hf', file: 'other.json' }, /tokenizer_config.json names other.json, which the checkpoint lacks/],
    [[1], /'pajama_tokenizer' must be an object, got \[1\]/],
  ] as const) {
    fs.writeFileSync(file, JSON.stringify({ pajama_tokenizer: value }));
    t.throws(() => checkpointTokenizer(gpt2), { code: 'ERR_PAJAMA_CHECKPOINT', message }, JSON.stringify(value));
  }
  fs.writeFileSync(file, '{');
  t.throws(() => checkpointTokenizer(gpt2), { code: 'ERR_PAJAMA_CHECKPOINT', message: /tokenizer_config.json is not valid JSON/ });
  t.throws(() => saveCheckpoint(path.join(dir, 'bad'), 1, { config: {}, params: new Arena('f32', [['x', [1]]]), trainerState: {}, keepLast: 1, tokenizer: { kind: 'hf' } as never }), {
    message: /saveCheckpoint: tokenizer must be \{kind: 'gpt2'\} or \{kind: 'hf', path\}/,
  });
});

t.test('a run on GPT-NeoX shards records GPT-NeoX, and pajama generate decodes with it', { skip: noNeox }, async (t) => {
  // A manifest as pajama prepare writes it: NeoX shards, and the tokenizer.json copied next to it.
  const neox = loadHfTokenizer(NEOX);
  const data = path.join(dir, 'neox-data');
  fs.mkdirSync(path.join(data, 'shards'), { recursive: true });
  fs.copyFileSync(NEOX, path.join(data, 'tokenizer.json'));
  const w = new ShardWriter(path.join(data, 'shards', 'text.train.bin'), { vocabSize: neox.vocabSize, eosId: neox.eosId });
  const text = 'The quick brown fox jumps over the lazy dog. Pajamas are comfortable clothes for sleeping in.';
  for (let i = 0; i < 40; i++) w.appendDocument(neox.encode(`${i}: ${text}`));
  w.close();
  const manifest: DataManifest = {
    version: 1,
    kind: 'pajama-data-manifest',
    tokenizer: { name: neox.name, vocabSize: neox.vocabSize, eosId: neox.eosId, spec: 'tokenizer.json' },
    sources: { text: { train: ['shards/text.train.bin'], validation: null, test: null, documents: { train: 40 }, tokens: { train: w.tokens, validation: 0, test: 0 }, bytes: {} } },
    created: new Date(0).toISOString(),
    config: {},
  };
  writeDataManifest(path.join(data, 'manifest.json'), manifest);
  const runDir = path.join(dir, 'neox-run');
  const tr = await Trainer.create(
    tinyConfig(runDir, '', {
      model: { preset: 'tiny', precision: 'fp32', overrides: { nLayers: 1, vocabSize: padVocab(neox.vocabSize), realVocabSize: neox.vocabSize } },
      data: { manifest: path.join(data, 'manifest.json') },
      steps: 3,
    }),
  );
  t.same(tr.data.tokenizer, { kind: 'hf', path: path.join(data, 'tokenizer.json') }, 'the data knows its tokenizer');
  const fit = await tr.fit();
  tr.dispose();
  t.ok(fs.readFileSync(path.join(fit.checkpoint, 'tokenizer.json')).equals(fs.readFileSync(NEOX)), 'the checkpoint carries GPT-NeoX\'s tokenizer.json');

  const loaded = loadModelFromCheckpoint(runDir);
  t.equal(loaded.tokenizer.vocabSize, neox.vocabSize, 'loading the checkpoint gives its tokenizer');
  const prompt = 'The quick brown';
  const expected = await generate(loaded.model, neox, prompt, { maxNewTokens: 6, temperature: 0 });
  loaded.model.dispose();
  const r = await runCli(['generate', '--checkpoint', runDir, '--prompt', prompt, '--max-tokens', '6']);
  t.equal(r.code, 0, r.err);
  t.equal(r.out, prompt + expected.text, 'pajama generate prints what GPT-NeoX decodes');
});

t.test('a checkpoint that records no tokenizer decodes with GPT-2, with a warning; --tokenizer overrides', async (t) => {
  // shards of a 256-token alphabet are not GPT-2's vocabulary, so these runs record no tokenizer
  const train = writeTinyShard(path.join(dir, 'synthetic.bin'), 60, 1);
  const run = async (name: string, overrides: Record<string, unknown>) => {
    const runDir = path.join(dir, name);
    const tr = await Trainer.create(tinyConfig(runDir, train, { steps: 3, model: { preset: 'tiny', precision: 'fp32', overrides: { nLayers: 1, ...overrides } } }));
    t.equal(tr.data.tokenizer, null, `${name}: the shards name no tokenizer`);
    const fit = await tr.fit();
    tr.dispose();
    t.notOk(fs.existsSync(path.join(fit.checkpoint, 'tokenizer_config.json')), `${name}: none recorded`);
    return runDir;
  };
  // a model with GPT-2's vocabulary: decoded with GPT-2, saying so
  const wide = await run('wide', { vocabSize: padVocab(50257), realVocabSize: 50257 });
  const warnings: string[] = [];
  const onWarning = (w: Error & { code?: string }) => warnings.push(`${w.code}: ${w.message}`);
  process.on('warning', onWarning);
  try {
    const loaded = loadModelFromCheckpoint(wide);
    await new Promise((r) => setImmediate(r));
    t.equal(loaded.tokenizer.name, createTokenizer({ kind: 'gpt2' }).name, 'GPT-2');
    loaded.model.dispose();
    t.match(warnings.join('\n'), /PAJAMA_NO_TOKENIZER: .* records no tokenizer .*decoding with GPT-2; give --tokenizer to use another/);
    warnings.length = 0;
    loadModelFromCheckpoint(wide, { tokenizer: { kind: 'gpt2' } }).model.dispose();
    await new Promise((r) => setImmediate(r));
    t.same(warnings, [], 'a tokenizer given is used without a warning');
  } finally {
    process.off('warning', onWarning);
  }
  const r = await runCli(['generate', '--checkpoint', wide, '--prompt', 'x', '--tokenizer', '']);
  t.not(r.code, 0);
  t.match(r.err, /--tokenizer must be 'gpt2' or a tokenizer.json path, got ""/);
  // a model of 256 rows cannot have been trained with GPT-2: refused, naming both vocabularies
  const narrow = await run('narrow', {});
  const g = await runCli(['generate', '--checkpoint', narrow, '--prompt', 'x', '--tokenizer', 'gpt2']);
  t.not(g.code, 0);
  t.match(g.err, /the tokenizer's vocabulary \(50257\) is larger than the model's \(256, .*\): it is not the tokenizer the model was trained with/);
});
