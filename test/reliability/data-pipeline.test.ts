// The data pipeline's answers to bad or unusual input (issue #8, items 8 and 10): removed documents listed
// with what they matched, mixtures over sources the data lacks, a validation set per source that holds
// several evaluation batches, one rule for invalid UTF-8 in tokenize and prepare, tokenizer.json ids that
// cannot blow up the vocabulary, and missing shards named by path.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { JsonlDocumentReader } from '../../lib/data/corpus/jsonl';
import { DUPLICATES_FILE, formatPrepareReport, prepareData, resolvePrepareConfig, type RemovalRecord } from '../../lib/data/corpus/prepare/prepare';
import { formatMixturePlan, planMixture, resolveMixture } from '../../lib/data/mixture';
import { readDataManifest } from '../../lib/data/manifest';
import { openShard } from '../../lib/data/shard';
import { gpt2Tokenizer } from '../../lib/data/tokenizers/gpt2';
import { tokenizeFiles } from '../../lib/data/corpus/tokenize';
import { loadHfTokenizer } from '../../lib/data/tokenizers/hf';
import { resolveTrainConfig } from '../../lib/train/config';

function tempDir(t: { teardown(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pajama-pipeline-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

let seed = 12345;
function rng(): number {
  seed = (seed * 1103515245 + 12345) % 2 ** 31;
  return seed / 2 ** 31;
}
const WORDS = 'whale sea ship captain harbour white harpoon boat crew deck mast sail wind storm night island compass rope anchor tide'.split(' ');
function randomDoc(words = 120): string {
  return Array.from({ length: words }, () => WORDS[Math.floor(rng() * WORDS.length)] + String(Math.floor(rng() * 100))).join(' ') + '.';
}
function nearCopy(text: string): string {
  const w = text.split(' ');
  w[Math.floor(rng() * w.length)] = 'changed';
  return w.join(' ');
}
const line = (text: string, source: string) => JSON.stringify({ text, meta: { redpajama_set_name: source } });

t.test('prepare and dedup list every removed document with the kept one it matched (duplicates.jsonl)', async (t) => {
  const dir = tempDir(t);
  const a: string[] = [];
  for (let i = 0; i < 20; i++) a.push(randomDoc());
  fs.mkdirSync(path.join(dir, 'raw'));
  fs.writeFileSync(path.join(dir, 'raw', 'a.jsonl'), a.map((x, i) => line(x, i % 2 ? 'RedPajamaC4' : 'RedPajamaBook')).join('\n') + '\n');
  // b.jsonl: a blank line, then near-copies of a's documents 3 and 8 (lines 2, 3) and an exact copy of 5 (line 4).
  const bLines = ['', line(nearCopy(a[3]), 'RedPajamaC4'), line(nearCopy(a[8]), 'RedPajamaBook'), line(a[5], 'RedPajamaC4'), line(randomDoc(), 'RedPajamaC4')];
  fs.writeFileSync(path.join(dir, 'raw', 'b.jsonl'), bLines.join('\n') + '\n');
  const config = resolvePrepareConfig({ inputs: ['raw'], output: 'out', workers: 1, split: { validation: 0, minValidationDocuments: 0, minValidationTokens: 0 } }, dir);
  const r = await prepareData(config, { until: 'dedup' });
  t.equal(r.report.totals.duplicates.documents, 3);
  const file = path.join(dir, 'out', DUPLICATES_FILE);
  const records = fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as RemovalRecord);
  const aFile = path.join(dir, 'raw', 'a.jsonl');
  const bFile = path.join(dir, 'raw', 'b.jsonl');
  t.same(
    records.map((x) => [x.reason, x.removed.file, x.removed.line, x.removed.source, x.kept.file, x.kept.line, x.kept.id, x.kept.source]),
    [
      ['near-duplicate', bFile, 2, 'RedPajamaC4', aFile, 4, 3, 'RedPajamaC4'],
      ['near-duplicate', bFile, 3, 'RedPajamaBook', aFile, 9, 8, 'RedPajamaBook'],
      ['near-duplicate', bFile, 4, 'RedPajamaC4', aFile, 6, 5, 'RedPajamaC4'],
    ],
    'each removed document, by file and line, with the kept document it matched',
  );
  t.same(records.map((x) => x.removed.id), [20, 21, 22], 'ids in reading order (the blank line is no document)');
  t.equal(records[2].bandsShared, 9, 'the exact copy agrees in every band');
  t.equal(records[2].estimatedJaccard, 1);
  for (const x of records.slice(0, 2)) {
    t.ok(x.bandsShared! >= 1 && x.bandsShared! <= 9 && x.bands === 9, `bands shared ${x.bandsShared} of ${x.bands}`);
    t.ok(x.estimatedJaccard > 0.8 && x.estimatedJaccard <= 1, `a one-word change estimates high (${x.estimatedJaccard})`);
  }
  t.match(formatPrepareReport(r.report), `removed documents (near-duplicates with the kept document each matched, decontaminated): 3, listed in ${file}`);
});

t.test('decontamination removals are listed too, with the holdout document of the same text', async (t) => {
  const dir = tempDir(t);
  const docs = Array.from({ length: 30 }, () => randomDoc());
  fs.mkdirSync(path.join(dir, 'raw'));
  fs.writeFileSync(path.join(dir, 'raw', 'a.jsonl'), docs.map((x) => line(x, 'RedPajamaC4')).join('\n') + '\n');
  // An exact copy of every document: with dedup off, the training copy of a validation document goes.
  fs.writeFileSync(path.join(dir, 'raw', 'b.jsonl'), docs.map((x) => line(x, 'RedPajamaC4')).join('\n') + '\n');
  const config = resolvePrepareConfig({ inputs: ['raw'], output: 'out', workers: 1, dedup: { mode: 'none' }, split: { validation: 0.2, minValidationTokens: 0, seed: 3 } }, dir);
  const r = await prepareData(config, { until: 'dedup' });
  const records = fs.readFileSync(path.join(dir, 'out', DUPLICATES_FILE), 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as RemovalRecord);
  t.ok(records.length > 0);
  t.equal(records.length, r.report.totals.decontaminated.documents);
  for (const x of records) {
    t.equal(x.reason, 'decontaminated');
    t.equal((x.removed.id % 30), (x.kept.id % 30), 'the kept document is the copy of the same text');
    t.equal(x.estimatedJaccard, 1);
  }
});

t.test('prepare refuses outputs that are inputs, and inputs in the folders it clears', async (t) => {
  const dir = tempDir(t);
  fs.mkdirSync(path.join(dir, 'raw'));
  const input = path.join(dir, 'raw', 'a.jsonl');
  const text = Array.from({ length: 5 }, () => line(randomDoc(), 'RedPajamaC4')).join('\n') + '\n';
  fs.writeFileSync(input, text);
  fs.mkdirSync(path.join(dir, 'out'));
  fs.symlinkSync(input, path.join(dir, 'out', DUPLICATES_FILE));
  const config = resolvePrepareConfig({ inputs: ['raw'], output: 'out', workers: 1 }, dir);
  await t.rejects(prepareData(config, { until: 'dedup' }), new RegExp(`the output ${path.join(dir, 'out', DUPLICATES_FILE)} is the same file as the input ${input}`));
  t.equal(fs.readFileSync(input, 'utf8'), text, 'the input is untouched');
  // The output folder inside the input folder: the second run would read its own work files.
  const nested = resolvePrepareConfig({ inputs: ['raw'], output: 'raw/prepared', workers: 1, split: { minValidationTokens: 0 } }, dir);
  fs.rmSync(path.join(dir, 'out'), { recursive: true });
  await prepareData(nested, { until: 'dedup' });
  await t.rejects(prepareData(nested, { until: 'dedup' }), /lies inside the output folder|is the input/);
});

t.test('a mixture naming a source the data lacks: an error that names the way out, or renormalised', async (t) => {
  const have = ['RedPajamaArXiv', 'RedPajamaBook', 'RedPajamaC4', 'RedPajamaCommonCrawl', 'RedPajamaGithub', 'RedPajamaStackExchange'];
  t.throws(() => resolveMixture('slimpajama', have), /RedPajamaWikipedia, which the data does not have.*data\.mixtureMissing to 'renormalize'/);
  const m = resolveMixture('slimpajama', have, { missing: 'renormalize' });
  t.same(m.missing.map((x) => x.name), ['RedPajamaWikipedia']);
  t.ok(Math.abs(m.missing[0].weight - 0.038) < 1e-9, 'the missing share of the preset');
  t.ok(Math.abs(m.weights.RedPajamaC4 - 0.267 / 0.962) < 1e-9, 'the others divided by what is left');
  t.ok(Math.abs(Object.values(m.weights).reduce((a, b) => a + b, 0) - 1) < 1e-9);
  const plan = { ...planMixture(have.map((n) => ({ name: n, weight: m.weights[n], tokens: 1e6 })), 1000, 128), missing: m.missing };
  const text = formatMixturePlan(plan).join('\n');
  t.match(text, /RedPajamaC4 +27\.75%/, 'the effective proportion is printed');
  t.match(text, /not in the data \(data\.mixtureMissing 'renormalize'\): RedPajamaWikipedia 3\.80%; the percentages above are the remaining 96\.20% renormalised/);
  t.throws(() => resolveMixture({ S2ORC: 1 }, have, { missing: 'renormalize' }), /nothing left to renormalise/);
  // The training config key.
  const base = { data: { manifest: 'm.json', mixture: 'slimpajama' } };
  t.equal(resolveTrainConfig(base).data.mixtureMissing, 'error', 'defaults to error');
  t.equal(resolveTrainConfig({ data: { ...base.data, mixtureMissing: 'renormalize' } }).data.mixtureMissing, 'renormalize');
  t.throws(() => resolveTrainConfig({ data: { ...base.data, mixtureMissing: 'ignore' } }), /data\.mixtureMissing/);
});

t.test('every source gets at least split.minValidationTokens of validation, keeping documents for training', async (t) => {
  const dir = tempDir(t);
  fs.mkdirSync(path.join(dir, 'raw'));
  // Three sources of 60, 40 and 4 documents of 120 words (about 250 tokens each).
  const lines: string[] = [];
  for (let i = 0; i < 60; i++) lines.push(line(randomDoc(), 'RedPajamaC4'));
  for (let i = 0; i < 40; i++) lines.push(line(randomDoc(), 'RedPajamaArXiv'));
  for (let i = 0; i < 4; i++) lines.push(line(randomDoc(), 'RedPajamaBook'));
  fs.writeFileSync(path.join(dir, 'raw', 'a.jsonl'), lines.join('\n') + '\n');
  t.equal(resolvePrepareConfig({ inputs: ['raw'] }, dir).split.minValidationTokens, 4 * 8 * 2048 + 1, 'the default: the trainer\'s default evaluation');
  const min = 1500;
  const logs: string[] = [];
  const r = await prepareData(resolvePrepareConfig({ inputs: ['raw'], output: 'out', workers: 1, split: { minValidationTokens: min } }, dir), { onLog: (l) => logs.push(l) });
  const m = readDataManifest(r.manifest!);
  for (const s of ['RedPajamaC4', 'RedPajamaArXiv']) {
    const v = m.sources[s].tokens.validation;
    t.ok(v >= min, `${s}: ${v} validation tokens >= ${min}`);
    t.ok(m.sources[s].documents.train > m.sources[s].documents.validation, `${s}: most documents still train`);
  }
  // The 4-document source cannot give 1500 tokens without losing more than half of its documents.
  t.equal(m.sources.RedPajamaBook.documents.validation, 2, 'a tiny source gives half, no more');
  t.match(logs.join('\n'), /source 'RedPajamaBook' has \d+ validation tokens, fewer than split.minValidationTokens \(1500\)/);
  t.throws(() => resolvePrepareConfig({ inputs: ['raw'], split: { minValidationTokens: -1 } }, dir), /split.minValidationTokens/);
});

t.test('invalid UTF-8: malformed in tokenize as in prepare, reported with file and line; strict throws', async (t) => {
  const dir = tempDir(t);
  const jsonl = path.join(dir, 'a.jsonl');
  const good = Buffer.from(`${JSON.stringify({ text: 'a good line' })}\n`);
  const bad = Buffer.concat([Buffer.from('{"text": "caf'), Buffer.from([0xc3, 0x28]), Buffer.from('"}\n')]);
  fs.writeFileSync(jsonl, Buffer.concat([good, bad, good]));
  const s = await tokenizeFiles({ inputs: [jsonl], output: path.join(dir, 'out', 'a.bin'), tokenizer: gpt2Tokenizer() });
  t.equal(s.documents, 2, 'the bad line is not a document');
  t.same(s.skipped, [{ file: jsonl, line: 2, reason: 'invalid UTF-8' }]);
  const ids = openShard(path.join(dir, 'out', 'a.bin'));
  const decoded = gpt2Tokenizer().decode(Array.from(ids.read(0, ids.tokenCount)));
  ids.close();
  t.notMatch(decoded, /\ufffd/, 'no replacement character reaches the shard');
  // prepare's reader calls the same line malformed.
  const reader = new JsonlDocumentReader({ inputs: [jsonl], defaultSource: 'x' });
  for await (const _ of reader) void _;
  t.same(reader.stats.malformedSamples.map((m) => [m.file, m.line, m.reason]), [[jsonl, 2, 'invalid UTF-8']]);
  await t.rejects(tokenizeFiles({ inputs: [jsonl], output: path.join(dir, 'out', 'b.bin'), tokenizer: gpt2Tokenizer(), strict: true }), new RegExp(`${jsonl}: line 2: invalid UTF-8`));
  t.notOk(fs.existsSync(path.join(dir, 'out', 'b.bin')));
  // A .txt document with a bad byte on its third line is skipped whole, with that line.
  const txt = path.join(dir, 'b.txt');
  fs.writeFileSync(txt, Buffer.concat([Buffer.from('one\ntwo\nthree '), Buffer.from([0xff]), Buffer.from('\nfour\n')]));
  const s2 = await tokenizeFiles({ inputs: [txt, jsonl], output: path.join(dir, 'out', 'c.bin'), tokenizer: gpt2Tokenizer() });
  t.same(s2.skipped[0], { file: txt, line: 3, reason: 'invalid UTF-8 (the whole .txt document is skipped)' });
  t.equal(s2.documents, 2);
  // A multi-byte character cut by a line break is invalid too.
  fs.writeFileSync(txt, Buffer.concat([Buffer.from('ok\n'), Buffer.from([0xe6, 0x97]), Buffer.from('\n')]));
  const s3 = await tokenizeFiles({ inputs: [txt, jsonl], output: path.join(dir, 'out', 'd.bin'), tokenizer: gpt2Tokenizer() });
  t.same(s3.skipped[0], { file: txt, line: 2, reason: 'invalid UTF-8 (the whole .txt document is skipped)' });
});

t.test('tokenizer.json: a stray huge id is an error naming the file and the entry', async (t) => {
  const dir = tempDir(t);
  const printable = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  let extra = 0;
  const vocab: Record<string, number> = {};
  for (let b = 0; b < 256; b++) vocab[String.fromCharCode(printable(b) ? b : 256 + extra++)] = b;
  const json = (v: Record<string, number>, eosId: number) => ({
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [{ id: eosId, content: '<eos>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, vocab: v, merges: [] },
  });
  const file = path.join(dir, 'tokenizer.json');
  fs.writeFileSync(file, JSON.stringify(json(vocab, 256)));
  t.equal(loadHfTokenizer(file, { eosToken: '<eos>' }).vocabSize, 257, 'a dense file loads');
  fs.writeFileSync(file, JSON.stringify(json({ ...vocab, hello: 99_999_999 }, 256)));
  t.throws(() => loadHfTokenizer(file, { eosToken: '<eos>' }), new RegExp(`${file}: model\\.vocab\\["hello"\\]: id 99999999 leaves at least 99999742 of the ids below it unused`));
  fs.writeFileSync(file, JSON.stringify(json(vocab, 5_000_000)));
  t.throws(() => loadHfTokenizer(file, { eosToken: '<eos>' }), new RegExp(`${file}: added_tokens\\[0\\]\\.id: id 5000000 leaves`));
  // A few unused ids (a padded vocabulary) are fine.
  fs.writeFileSync(file, JSON.stringify(json(vocab, 256 + 500)));
  t.equal(loadHfTokenizer(file, { eosToken: '<eos>' }).vocabSize, 757);
});

t.test('a missing or wrong shard path is named in the error', async (t) => {
  const dir = tempDir(t);
  const missing = path.join(dir, 'nope.bin');
  t.throws(() => openShard(missing), { code: 'ERR_PAJAMA_DATA', message: `${missing}: cannot open: no such token shard (ENOENT)` });
  t.throws(() => openShard(dir), { code: 'ERR_PAJAMA_DATA', message: new RegExp(`^${dir}: `) });
});

t.test('the trainer with data.mixtureMissing: an error by default, the effective shares in its plan with renormalize', async (t) => {
  const { ShardWriter } = await import('../../lib/data/shard');
  const { writeDataManifest } = await import('../../lib/data/manifest');
  const { Trainer } = await import('../../lib/train/trainer');
  const dir = tempDir(t);
  const sources: Record<string, unknown> = {};
  for (const [name, stride] of [['RedPajamaC4', 3], ['RedPajamaBook', 7]] as const) {
    const w = new ShardWriter(path.join(dir, 'shards', `${name}.train.bin`), { vocabSize: 256, eosId: 255 });
    for (let d = 0; d < 40; d++) w.appendDocument(Array.from({ length: 40 }, (_, i) => (d + i * stride) % 200));
    const n = w.close().tokenCount;
    sources[name] = { train: [`shards/${name}.train.bin`], validation: null, test: null, documents: { train: 40 }, tokens: { train: n, validation: 0, test: 0 }, bytes: {} };
  }
  const manifest = path.join(dir, 'manifest.json');
  writeDataManifest(manifest, { version: 1, kind: 'pajama-data-manifest', tokenizer: { name: 'synthetic', vocabSize: 256, eosId: 255 }, sources, created: new Date(0).toISOString(), config: {} } as never);
  const config = (mixtureMissing?: string) => ({
    model: { preset: 'tiny', precision: 'fp32' },
    batch: { seqLen: 32, microBatchSize: 2, globalBatchTokens: 128 },
    optimizer: { lr: 3e-3, warmupSteps: 2 },
    steps: 4,
    data: { manifest, mixture: 'llama-1', ...(mixtureMissing ? { mixtureMissing } : {}) },
    runDir: path.join(dir, 'run'),
    peakFlops: 1e11,
  });
  await t.rejects(Trainer.create(config(), { progress: false, resume: false }), /draws from sources .*which the data does not have.*data\.mixtureMissing to 'renormalize'/);
  const tr = await Trainer.create(config('renormalize'), { progress: false, resume: false });
  try {
    const w = Object.fromEntries(tr.dataPlan.sources.map((s) => [s.name, s.weight]));
    t.ok(Math.abs(w.RedPajamaC4 - 15 / 19.5) < 1e-9 && Math.abs(w.RedPajamaBook - 4.5 / 19.5) < 1e-9, 'LLaMA-1\'s C4 15% and Book 4.5%, renormalised');
    t.same(tr.dataPlan.missing!.map((m) => m.name).sort(), ['RedPajamaArXiv', 'RedPajamaCommonCrawl', 'RedPajamaGithub', 'RedPajamaStackExchange', 'RedPajamaWikipedia']);
    t.match(formatMixturePlan(tr.dataPlan).join("\n"), /RedPajamaBook +23\.08%[\s\S]*RedPajamaC4 +76\.92%[\s\S]*the percentages above are the remaining 19\.50% renormalised to 100%/);
  } finally {
    tr.dispose();
  }
});
