// The preparation pipeline end to end on real .jsonl.zst files (written by the zstd tool): the short
// filter, global versus local MinHash dedup, the holdout split and decontamination, shards that decode back
// to the kept documents, the manifest and report, resumable stages, and config errors.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { prepareData, resolvePrepareConfig, splitDraw, formatPrepareReport, DOC_STATUS } from '../../../lib/data/corpus/prepare/prepare';
import { ST_DECONTAMINATED, ST_DUPLICATE, ST_SHORT, ST_TEST, ST_TRAIN, ST_VALIDATION } from '../../../lib/data/corpus/prepare/doc-status';
import { readDataManifest } from '../../../lib/data/manifest';
import { manifestTokenizer } from '../../../lib/train/data';
import { openShard } from '../../../lib/data/shard';
import { gpt2Tokenizer } from '../../../lib/data/tokenizers/gpt2';
import { makeRng, seed } from '../../helpers/reference';

t.comment(`seed ${seed} (PAJAMA_TEST_SEED replays it)`);
const rng = makeRng(seed);
const hasZstd = spawnSync('zstd', ['--version']).status === 0;
if (!hasZstd && process.env.CI) throw new Error('the zstd tool is missing; CI installs it (apt-get install zstd)');
const tok = gpt2Tokenizer();

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'pajama-prepare-'));
t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));

const WORDS = 'whale sea ship captain harbour white harpoon boat crew deck mast sail wind storm night island compass rope anchor tide'.split(' ');
function randomDoc(words = 200): string {
  return Array.from({ length: words }, () => WORDS[Math.floor(rng() * WORDS.length)] + String(Math.floor(rng() * 100))).join(' ') + '.';
}
function nearCopy(text: string): string {
  const w = text.split(' ');
  w[Math.floor(rng() * w.length)] = 'changed';
  return w.join(' ');
}

interface Doc {
  text: string;
  source: string;
  expect: 'keep' | 'short' | 'duplicate';
}

/** Writes `docs` as jsonl lines into `file` (compressed with zstd when the name ends in .zst). */
function writeShard(file: string, lines: string[]): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const plain = file.replace(/\.zst$/, '');
  fs.writeFileSync(plain, lines.join('\n') + '\n');
  if (file.endsWith('.zst')) execFileSync('zstd', ['-q', '-f', '--rm', plain, '-o', file]);
}

/**
 * A corpus of three files: a.jsonl.zst (C4 and Wikipedia by meta), b.jsonl.zst (C4, with near-copies of
 * a's documents and a malformed line) and markdown/m.jsonl (no meta: mapped to 'Markdown' by folder).
 * Returns the documents in reading order with what the global pipeline should do with them.
 */
function writeCorpus(dir: string): Doc[] {
  const docs: Doc[] = [];
  const line = (d: Doc, meta = true) => JSON.stringify(meta ? { text: d.text, meta: { redpajama_set_name: d.source } } : { text: d.text });
  const a: Doc[] = [];
  for (let i = 0; i < 30; i++) a.push({ text: randomDoc(), source: i % 3 === 0 ? 'RedPajamaWikipedia' : 'RedPajamaC4', expect: 'keep' });
  a.push({ text: 'Too short to keep, after normalisation.', source: 'RedPajamaC4', expect: 'short' });
  const b: Doc[] = [];
  for (let i = 0; i < 6; i++) b.push({ text: nearCopy(a[i * 2].text), source: 'RedPajamaC4', expect: 'duplicate' });
  for (let i = 0; i < 10; i++) b.push({ text: randomDoc(), source: 'RedPajamaC4', expect: 'keep' });
  const m: Doc[] = [];
  m.push({ text: a[1].text.toUpperCase() + '!!!', source: 'Markdown', expect: 'duplicate' }); // same after normalisation
  for (let i = 0; i < 12; i++) m.push({ text: randomDoc(), source: 'Markdown', expect: 'keep' });
  writeShard(path.join(dir, 'a.jsonl.zst'), a.map((d) => line(d)));
  const bLines = b.map((d) => line(d));
  bLines.splice(3, 0, '{"text": "a broken line');
  writeShard(path.join(dir, 'b.jsonl.zst'), bLines);
  writeShard(path.join(dir, 'markdown', 'm.jsonl'), m.map((d) => line(d, false)));
  docs.push(...a, ...b, ...m);
  return docs;
}

function shardDocs(file: string): string[] {
  const r = openShard(file);
  const ids = Array.from(r.read(0, r.tokenCount));
  r.close();
  const out: string[] = [];
  let cur: number[] = [];
  for (const id of ids) {
    if (id === tok.eosId) {
      out.push(tok.decode(cur));
      cur = [];
    } else cur.push(id);
  }
  return out;
}

const skipZstd = hasZstd ? false : 'the zstd tool is not installed (apt-get install zstd)';

t.test('global dedup: filter, near-duplicates across sources, holdout, shards and report', { skip: skipZstd }, async (t) => {
  const dir = path.join(root, 'global');
  const docs = writeCorpus(path.join(dir, 'raw'));
  const config = resolvePrepareConfig(
    { inputs: ['raw'], sources: { 'raw/markdown': 'Markdown' }, output: 'out', split: { validation: 0.1, minValidationDocuments: 1, seed: 9 }, workers: 1, dedup: { verifySample: 100 } },
    dir,
  );
  const logs: string[] = [];
  const r = await prepareData(config, { onLog: (l) => logs.push(l) });
  t.same(r.ran, ['scan', 'dedup', 'tokenize']);
  const rep = r.report;
  t.equal(rep.reader.malformed, 1, 'the broken line is counted');
  t.match(rep.reader.malformedSamples[0], { file: path.join(dir, 'raw', 'b.jsonl.zst'), line: 4 });
  t.same(Object.keys(rep.sources).sort(), ['Markdown', 'RedPajamaC4', 'RedPajamaWikipedia']);
  const count = (source: string, expect: Doc['expect']) => docs.filter((d) => d.source === source && d.expect === expect).length;
  for (const s of Object.keys(rep.sources)) {
    t.equal(rep.sources[s].documents, docs.filter((d) => d.source === s).length, `${s}: documents`);
    t.equal(rep.sources[s].short.documents, count(s, 'short'), `${s}: short`);
    t.equal(rep.sources[s].duplicates.documents, count(s, 'duplicate'), `${s}: duplicates (first copy kept)`);
  }
  t.equal(rep.totals.duplicates.documents, 7);
  const v = rep.dedup.verification!;
  t.equal(v.documents, rep.totals.documents - rep.totals.short.documents, 'the check samples every document that passed the filter (fewer than 100)');
  t.equal(v.pairsAbove, 7, 'the planted pairs are the only ones above 0.8');
  t.equal(v.recall, 1);
  // Shards hold exactly the kept documents, split without overlap.
  const m = readDataManifest(r.manifest!);
  const kept = new Set(docs.filter((d) => d.expect === 'keep').map((d) => d.text));
  const seen: string[] = [];
  for (const [name, s] of Object.entries(m.sources)) {
    const train = s.train.flatMap(shardDocs);
    const val = s.validation ? shardDocs(s.validation) : [];
    t.ok(val.length >= 1, `${name}: at least one validation document`);
    t.equal(train.length + val.length, rep.sources[name].train.documents + rep.sources[name].validation.documents);
    t.equal(s.tokens.train, rep.sources[name].train.tokens);
    seen.push(...train, ...val);
  }
  t.equal(new Set(seen).size, seen.length, 'no document twice');
  t.same(new Set(seen), kept, 'exactly the kept documents');
  t.match(formatPrepareReport(rep), /RedPajamaC4[\s\S]*total/);
  t.ok(fs.existsSync(path.join(dir, 'out', 'report.json')));
});

t.test('local dedup keeps cross-source copies; decontamination removes a training copy of a holdout document', { skip: skipZstd }, async (t) => {
  const dir = path.join(root, 'local');
  const shared = randomDoc();
  // id 0: A's copy; id 2: B's exact copy. Pick a split seed that holds id 0 out and keeps id 2 for training.
  const lines = [
    { text: shared, meta: { redpajama_set_name: 'A' } },
    { text: randomDoc(), meta: { redpajama_set_name: 'A' } },
    { text: shared, meta: { redpajama_set_name: 'B' } },
    { text: randomDoc(), meta: { redpajama_set_name: 'B' } },
    { text: randomDoc(), meta: { redpajama_set_name: 'B' } },
  ].map((x) => JSON.stringify(x));
  writeShard(path.join(dir, 'raw', 'x.jsonl.zst'), lines);
  const share = 0.3;
  const limit = share * 2 ** 32;
  let splitSeed = 0;
  while (!(splitDraw(splitSeed, 0) < limit && [1, 2, 3, 4].every((id) => splitDraw(splitSeed, id) >= limit))) splitSeed++;
  const base = { inputs: ['raw'], output: 'out', split: { validation: share, minValidationDocuments: 0, seed: splitSeed }, workers: 1 };
  const local = await prepareData(resolvePrepareConfig({ ...base, dedup: { mode: 'local' } }, dir), { force: true });
  t.equal(local.report.totals.duplicates.documents, 0, 'local mode: the copies are in different sources, both survive dedup');
  t.equal(local.report.sources.B.decontaminated.documents, 1, "B's training copy of A's validation document is removed");
  t.equal(local.report.sources.A.validation.documents, 1);
  const noDecon = await prepareData(resolvePrepareConfig({ ...base, dedup: { mode: 'local' }, decontaminate: false }, dir));
  t.equal(noDecon.report.totals.decontaminated.documents, 0, 'decontaminate: false keeps it');
  t.same(noDecon.skipped, ['scan'], 'and the scan is reused');
  const global = await prepareData(resolvePrepareConfig({ ...base, dedup: { mode: 'global' } }, dir));
  t.equal(global.report.sources.B.duplicates.documents, 1, "global mode: B's copy is a duplicate of A's (read first)");
  t.equal(global.report.totals.decontaminated.documents, 0);
});

t.test('stages resume: an interrupted run continues where it stopped, a changed option re-runs what it affects', { skip: skipZstd }, async (t) => {
  const dir = path.join(root, 'resume');
  writeCorpus(path.join(dir, 'raw'));
  const input = { inputs: ['raw'], sources: { 'raw/markdown': 'Markdown' }, output: 'out', workers: 1, split: { validation: 0.1 } };
  const first = await prepareData(resolvePrepareConfig(input, dir), { until: 'dedup' });
  t.same(first.ran, ['scan', 'dedup']);
  t.equal(first.manifest, null);
  t.ok(fs.existsSync(path.join(dir, 'out', 'dedup-report.json')));
  const second = await prepareData(resolvePrepareConfig(input, dir));
  t.same(second.skipped, ['scan', 'dedup']);
  t.same(second.ran, ['tokenize']);
  // A run killed during tokenize leaves no tokenize entry: only tokenize runs again.
  const stateFile = path.join(dir, 'out', 'prepare-state.json');
  const state = JSON.parse(fs.readFileSync(stateFile, 'utf8'));
  delete state.stages.tokenize;
  fs.writeFileSync(stateFile, JSON.stringify(state));
  const third = await prepareData(resolvePrepareConfig(input, dir));
  t.same(third.ran, ['tokenize']);
  t.same(third.report.sources, second.report.sources, 'the same result');
  const fourth = await prepareData(resolvePrepareConfig({ ...input, dedup: { mode: 'local' } }, dir));
  t.same(fourth.ran, ['scan', 'dedup', 'tokenize'], 'a dedup option re-runs from the scan (band keys change in local mode)');
  // A changed input file re-runs everything.
  fs.appendFileSync(path.join(dir, 'raw', 'markdown', 'm.jsonl'), JSON.stringify({ text: randomDoc() }) + '\n');
  const fifth = await prepareData(resolvePrepareConfig({ ...input, dedup: { mode: 'local' } }, dir));
  t.same(fifth.ran, ['scan', 'dedup', 'tokenize']);
  t.equal(fifth.report.sources.Markdown.documents, fourth.report.sources.Markdown.documents + 1);
});

t.test('strict mode fails on the malformed line, naming file and line, in this thread or a worker', { skip: skipZstd }, async (t) => {
  const dir = path.join(root, 'strict');
  writeCorpus(path.join(dir, 'raw'));
  for (const workers of [1, 2]) {
    const config = resolvePrepareConfig({ inputs: ['raw'], sources: { 'raw/markdown': 'Markdown' }, output: 'out', strict: true, workers }, dir);
    await t.rejects(prepareData(config, { force: true }), { name: 'PajamaDataError', message: /b\.jsonl\.zst: line 4/ }, `${workers} worker(s)`);
  }
});

t.test('the scan on worker threads gives exactly what it gives in one thread', { skip: skipZstd }, async (t) => {
  const dir = path.join(root, 'workers');
  writeCorpus(path.join(dir, 'raw'));
  for (let i = 0; i < 4; i++) writeShard(path.join(dir, 'raw', 'more', `m${i}.jsonl.zst`), Array.from({ length: 20 }, () => JSON.stringify({ text: randomDoc(), meta: { redpajama_set_name: i % 2 ? 'RedPajamaBook' : 'RedPajamaArXiv' } })));
  const input = { inputs: ['raw'], sources: { 'raw/markdown': 'Markdown' }, split: { validation: 0.2 }, dedup: { verifySample: 50 } };
  const progress: number[] = [];
  const one = await prepareData(resolvePrepareConfig({ ...input, output: 'one', workers: 1 }, dir), { until: 'dedup' });
  const two = await prepareData(resolvePrepareConfig({ ...input, output: 'two', workers: 2 }, dir), { until: 'dedup', onProgress: (p) => progress.push(p.files) });
  const bytes = (out: string, f: string) => fs.readFileSync(path.join(dir, out, 'work', f)).toString('hex');
  t.equal(bytes('two', 'documents.bin'), bytes('one', 'documents.bin'), 'the same document table');
  t.equal(bytes('two', 'status.bin'), bytes('one', 'status.bin'), 'the same decisions');
  t.equal(bytes('two', 'sample.jsonl'), bytes('one', 'sample.jsonl'), 'the same verification sample');
  t.same(two.report.sources, one.report.sources);
  t.same(two.report.reader, one.report.reader);
  t.equal(Math.max(...progress), 7, 'progress counts the 7 files done');
});

t.test('a bad tokenizer file fails before any stage runs', { skip: skipZstd }, async (t) => {
  const dir = path.join(root, 'badtok');
  writeCorpus(path.join(dir, 'raw'));
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), '{"model": {"type": "WordPiece"}}');
  const config = resolvePrepareConfig({ inputs: ['raw'], sources: { 'raw/markdown': 'Markdown' }, output: 'out', tokenizer: 'tokenizer.json' }, dir);
  await t.rejects(prepareData(config), /tokenizer\.json/);
  t.notOk(fs.existsSync(path.join(dir, 'out', 'work', 'scan.json')), 'nothing was scanned');
});

t.test('config errors name the key', async (t) => {
  const bad = (input: unknown, message: RegExp) => t.throws(() => resolvePrepareConfig(input, root), { name: 'TypeError', code: 'ERR_PAJAMA_INVALID_ARG', message });
  bad({ inputs: ['x'], dedupe: {} }, /unknown key 'dedupe'/);
  bad({ inputs: ['x'], dedup: { mode: 'fuzzy' } }, /'dedup.mode' must be one of global, local, none/);
  bad({ inputs: ['x'], dedup: { bands: 20, rows: 13 } }, /bands \* dedup.rows \(20 \* 13\) must not exceed dedup.numPerm \(128\)/);
  bad({ inputs: ['x'], dedup: { rows: 0 } }, /'dedup.rows' must be a positive integer/);
  bad({ inputs: ['x'], split: { validation: 0.6, test: 0.5 } }, /split.validation \+ split.test must be below 1/);
  bad({ inputs: ['x'], split: { valid: 0.1 } }, /unknown key 'split.valid'/);
  bad({ inputs: [] }, /'inputs' must name at least one/);
  bad({ inputs: ['x'], shardTokens: 5 }, /'shardTokens' must be an integer >= 1024/);
  bad({ inputs: ['x'], tokenizer: 7 }, /'tokenizer' must be 'gpt2' or a tokenizer.json path/);
  const c = resolvePrepareConfig({ inputs: ['raw/*.jsonl.zst'], output: 'o' }, '/data');
  t.same(c.inputs, ['/data/raw/*.jsonl.zst']);
  t.equal(c.output, '/data/o');
  t.equal(c.dedup.bands * c.dedup.rows, 117, 'SlimPajama defaults: 9 bands x 13 rows');
  t.same(DOC_STATUS, ['train', 'validation', 'test', 'short', 'duplicate', 'decontaminated']);
});

t.test('status.bin codes are DOC_STATUS indices, the kept splits first (tokenize keeps codes up to ST_TEST)', async (t) => {
  const codes = { train: ST_TRAIN, validation: ST_VALIDATION, test: ST_TEST, short: ST_SHORT, duplicate: ST_DUPLICATE, decontaminated: ST_DECONTAMINATED };
  for (const [name, code] of Object.entries(codes)) t.equal(DOC_STATUS[code], name, `${name} is DOC_STATUS[${code}]`);
  t.ok(ST_TRAIN <= ST_TEST && ST_VALIDATION <= ST_TEST && ST_SHORT > ST_TEST && ST_DUPLICATE > ST_TEST && ST_DECONTAMINATED > ST_TEST);
});

const NEOX = path.resolve(__dirname, '../../../../shared/data/gpt-neox-20b-tokenizer.json');
t.test('GPT-NeoX tokenizer.json, tokenised by worker threads, gives the same shards as in-process', { skip: !hasZstd ? skipZstd : fs.existsSync(NEOX) ? false : `${NEOX} is absent (the team's shared data)` }, async (t) => {
  const dir = path.join(root, 'neox');
  writeCorpus(path.join(dir, 'raw'));
  const input = { inputs: ['raw'], sources: { 'raw/markdown': 'Markdown' }, tokenizer: NEOX, shardTokens: 2048 };
  const one = await prepareData(resolvePrepareConfig({ ...input, output: 'one', workers: 1 }, dir));
  const two = await prepareData(resolvePrepareConfig({ ...input, output: 'two', workers: 2 }, dir));
  const m1 = readDataManifest(one.manifest!);
  const m2 = readDataManifest(two.manifest!);
  t.equal(m1.tokenizer.vocabSize, 50277);
  t.equal(m1.tokenizer.eosId, 0);
  t.equal(m1.tokenizer.spec, 'tokenizer.json', 'the manifest names its tokenizer file');
  t.ok(fs.readFileSync(path.join(path.dirname(one.manifest!), 'tokenizer.json')).equals(fs.readFileSync(NEOX)), 'copied next to the manifest');
  t.same(manifestTokenizer(m1), { kind: 'hf', path: path.join(path.dirname(one.manifest!), 'tokenizer.json') }, 'so runs on the data know their tokenizer');
  t.ok(m1.sources.RedPajamaC4.train.length > 1, 'shardTokens splits the training shards');
  for (const [name, s] of Object.entries(m1.sources)) {
    const bytes = (files: string[]) => files.map((f) => fs.readFileSync(f).toString('hex')).join();
    t.equal(bytes(s.train), bytes(m2.sources[name].train), `${name}: identical training shards`);
  }
});
