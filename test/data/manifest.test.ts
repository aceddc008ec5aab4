// The data manifest: written atomically, read back with shard paths resolved against its folder, and every
// field and shard checked, with errors naming the manifest and the JSON key.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ShardWriter, readDataManifest, writeDataManifest, type DataManifest } from '../../lib/data/index';

const VOCAB = 1000;
const EOS = 999;

function tempDir(t: { teardown(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pajama-manifest-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A shard of `docs` documents of 9 tokens + EOS: 10 * docs tokens. */
function shard(file: string, docs: number, vocabSize = VOCAB, eosId = EOS): number {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const w = new ShardWriter(file, { vocabSize, eosId });
  for (let d = 0; d < docs; d++) w.appendDocument(Array.from({ length: 9 }, (_, i) => (d * 7 + i) % eosId));
  return w.close().tokenCount;
}

/** A data folder with two sources and its manifest (not yet written). */
function dataset(dir: string): DataManifest {
  shard(path.join(dir, 'shards/web.train.00000.bin'), 30);
  shard(path.join(dir, 'shards/web.train.00001.bin'), 20);
  shard(path.join(dir, 'shards/web.validation.bin'), 5);
  shard(path.join(dir, 'shards/code.train.00000.bin'), 12);
  shard(path.join(dir, 'shards/code.test.bin'), 3);
  return {
    version: 1,
    kind: 'pajama-data-manifest',
    tokenizer: { name: 'test', vocabSize: VOCAB, eosId: EOS, spec: 'inline' },
    sources: {
      web: {
        train: ['shards/web.train.00000.bin', 'shards/web.train.00001.bin'],
        validation: 'shards/web.validation.bin',
        test: null,
        documents: { train: 50, validation: 5, test: 0, duplicates: 4 },
        tokens: { train: 500, validation: 50, test: 0 },
        bytes: { train: 2000, validation: 200 },
        stats: { meanDocumentTokens: 10 },
      },
      code: {
        train: ['shards/code.train.00000.bin'],
        validation: null,
        test: 'shards/code.test.bin',
        documents: { train: 12, test: 3 },
        tokens: { train: 120, validation: 0, test: 30 },
        bytes: {},
      },
    },
    created: '2024-05-01T12:00:00.000Z',
    config: { dedup: { mode: 'global' }, seed: 1 },
  };
}

t.test('write then read: the same manifest, shard paths resolved against its folder', async (t) => {
  const dir = tempDir(t);
  const m = dataset(dir);
  const file = path.join(dir, 'manifest.json');
  writeDataManifest(file, m);
  t.same(fs.readdirSync(dir).sort(), ['manifest.json', 'shards'], 'no temporary file left behind');
  t.same(JSON.parse(fs.readFileSync(file, 'utf8')), m, 'the file is the manifest as given');

  // Read from another working directory, by a relative path: shards still resolve against the manifest.
  const cwd = process.cwd();
  process.chdir(os.tmpdir());
  let read;
  try {
    read = readDataManifest(path.relative(os.tmpdir(), file));
  } finally {
    process.chdir(cwd);
  }
  t.equal(read.file, file);
  t.same(read.sources.web.train, [path.join(dir, 'shards/web.train.00000.bin'), path.join(dir, 'shards/web.train.00001.bin')]);
  t.equal(read.sources.web.validation, path.join(dir, 'shards/web.validation.bin'));
  t.equal(read.sources.code.validation, null);
  t.equal(read.sources.code.test, path.join(dir, 'shards/code.test.bin'));
  t.same(read.tokenizer, m.tokenizer);
  t.same(read.sources.web.stats, { meanDocumentTokens: 10 });
  t.same({ ...read, file: undefined, sources: undefined }, { ...m, file: undefined, sources: undefined });

  // Overwriting is atomic too, and a source with no training shards is allowed.
  const next = structuredClone(m);
  next.sources.held = { train: [], validation: 'shards/web.validation.bin', test: null, documents: {}, tokens: { train: 0, validation: 50, test: 0 }, bytes: {} };
  writeDataManifest(file, next);
  t.same(readDataManifest(file).sources.held.train, []);
});

t.test('every field is checked; errors name the manifest and the key', async (t) => {
  const dir = tempDir(t);
  const good = dataset(dir);
  const file = path.join(dir, 'manifest.json');
  const bad = (edit: (m: Record<string, any>) => void, message: RegExp, label: string) => {
    const m = structuredClone(good) as Record<string, any>;
    edit(m);
    fs.writeFileSync(file, JSON.stringify(m));
    t.throws(() => readDataManifest(file), { name: 'PajamaDataError', code: 'ERR_PAJAMA_DATA', file, message }, label);
    t.throws(() => writeDataManifest(path.join(dir, 'other.json'), m as DataManifest), { name: 'TypeError', message }, `${label} (write)`);
    t.notOk(fs.existsSync(path.join(dir, 'other.json')), 'nothing written');
  };
  const at = (s: string) => new RegExp(`(manifest|other)\\.json: ${s}`);
  bad((m) => (m.kind = 'demo'), at('kind must be "pajama-data-manifest", got "demo"'), 'kind');
  bad((m) => (m.version = 2), at('version unsupported manifest version 2; this reader reads version 1'), 'version');
  bad((m) => (m.extra = 1), at('extra unknown key \\(known: version, kind, tokenizer, sources, created, config\\)'), 'unknown key');
  bad((m) => delete m.config, at('config is missing'), 'missing key');
  bad((m) => (m.config = []), at('config must be an object'), 'config');
  bad((m) => (m.tokenizer.name = ''), at('tokenizer.name must be a non-empty string'), 'tokenizer name');
  bad((m) => (m.tokenizer.vocabSize = 0), at('tokenizer.vocabSize must be an integer in \\[1, 2\\^32\\], got 0'), 'vocab');
  bad((m) => (m.tokenizer.eosId = VOCAB), at('tokenizer.eosId must be an integer in \\[0, vocabSize = 1000\\), got 1000'), 'eos');
  bad((m) => (m.sources = {}), at('sources names no sources'), 'no sources');
  bad((m) => (m.sources.web.shards = []), at('sources.web.shards unknown key \\(known: train, validation, test, documents, tokens, bytes, stats\\)'), 'source key');
  bad((m) => delete m.sources.code.bytes, at('sources.code.bytes is missing'), 'source key missing');
  bad((m) => (m.sources.web.train = 'shards/a.bin'), at('sources.web.train must be an array of shard paths'), 'train type');
  bad((m) => (m.sources.web.train[1] = path.join(dir, 'shards/web.train.00001.bin')), at('sources.web.train\\[1\\] ".*" must be relative to the manifest\'s folder'), 'absolute');
  bad((m) => m.sources.web.train.push('shards/web.train.00000.bin'), at('sources.web.train lists "shards/web.train.00000.bin" twice'), 'duplicate');
  bad((m) => (m.sources.web.validation = 3), at('sources.web.validation must be a shard path, got 3'), 'validation type');
  bad((m) => (m.sources.web.documents.train = -1), at('sources.web.documents.train must be a non-negative integer, got -1'), 'documents');
  bad((m) => (m.sources.web.bytes.train = 1.5), at('sources.web.bytes.train must be a non-negative integer, got 1.5'), 'bytes');
  bad((m) => (m.sources.web.tokens.all = 1), at('sources.web.tokens.all unknown key'), 'tokens key');
  bad((m) => delete m.sources.web.tokens.test, at('sources.web.tokens.test must be a non-negative integer, got undefined'), 'tokens missing');
  bad((m) => (m.sources.code.tokens.validation = 5), at('sources.code.tokens.validation is 5 but sources.code.validation is null'), 'null split');
  bad((m) => (m.sources.web.stats = 'x'), at('sources.web.stats must be an object'), 'stats');
  bad((m) => (m.created = 'yesterday'), at('created must be an ISO 8601 date'), 'created');
  bad((m) => (m.created = '2024-13-45T00:00:00Z'), at('created must be an ISO 8601 date'), 'created range');
  bad((m) => (m.sources['a.b'] = 1), at('sources\\["a.b"\\] must be an object'), 'odd name');
});

t.test('the shards must exist, match the tokenizer and hold the stated tokens', async (t) => {
  const dir = tempDir(t);
  const good = dataset(dir);
  const file = path.join(dir, 'manifest.json');
  const bad = (edit: (m: DataManifest) => void, message: RegExp, label: string) => {
    const m = structuredClone(good);
    edit(m);
    writeDataManifest(file, m); // the shape is right; the files are what is wrong
    t.throws(() => readDataManifest(file), { name: 'PajamaDataError', file, message }, label);
  };
  const at = (s: string) => new RegExp(`manifest\\.json: ${s}`);
  bad((m) => (m.sources.web.train[0] = 'shards/none.bin'), at(`sources.web.train\\[0\\] names "shards/none.bin", but .*none\\.bin does not exist`), 'missing');
  bad((m) => (m.sources.web.train[0] = 'shards'), at('sources.web.train\\[0\\] names "shards", but .*shards is not a file'), 'a folder');
  bad((m) => (m.sources.web.tokens.train = 499), at('sources.web.tokens.train is 499, but the train shards hold 500 tokens'), 'train tokens');
  bad((m) => (m.sources.code.tokens.test = 31), at('sources.code.tokens.test is 31, but the test shard holds 30 tokens'), 'test tokens');
  shard(path.join(dir, 'shards/other.bin'), 10, 2000, 1999);
  bad(
    (m) => (m.sources.code.train = ['shards/other.bin']),
    at('sources.code.train\\[0\\] names .*other\\.bin, whose vocab size 2000 and EOS 1999 differ from the manifest\'s tokenizer \\(1000, 999\\)'),
    'tokenizer',
  );
  fs.writeFileSync(path.join(dir, 'shards/junk.bin'), 'not a shard at all, longer than sixty-four bytes so the magic is what fails.....');
  bad((m) => (m.sources.web.validation = 'shards/junk.bin'), at('sources.web.validation names "shards/junk.bin", which is not a readable token shard: .*bad magic'), 'junk');

  fs.writeFileSync(file, '{ "version": 1, ');
  t.throws(() => readDataManifest(file), { name: 'PajamaDataError', message: /manifest\.json: the data manifest is not valid JSON/ });
  t.throws(() => readDataManifest(path.join(dir, 'absent.json')), { name: 'PajamaDataError', message: /absent\.json: cannot read the data manifest: ENOENT/ });
  t.throws(() => readDataManifest(''), TypeError);
});
