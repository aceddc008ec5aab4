// The mixture: TokenLoader over weighted sources (proportions within binomial bounds, determinism, exact
// resume through JSON, disjoint ranks that make the single-rank stream, upsampling and epoch accounting,
// refusals to resume over other data), the paper's presets, resolveMixture and planMixture.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  MIXTURE_PRESETS,
  REDPAJAMA_SETS,
  REPEAT_WARNING_EPOCHS,
  TokenLoader,
  formatMixturePlan,
  planMixture,
  resolveMixture,
  type MixtureSource,
  type TokenLoaderMixtureState,
  type TrainBatch,
} from '../../lib/data/index';
import { take, takeInLockstep, writeRandomShard } from '../helpers/shards';

const VOCAB = 50257;
const EOS = 50256;

function tempDir(t: { teardown(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pajama-mixture-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A shard of exactly `tokens` tokens of pseudo-random documents; returns them all. */
function makeShard(file: string, tokens: number, seed: number): Uint32Array {
  return writeRandomShard(file, tokens, seed, VOCAB, EOS);
}

/** Four sources: web (2 shards), code, books (small: upsampled), and unused (weight 0). */
function fixture(dir: string): { sources: MixtureSource[]; raws: Uint32Array[] } {
  const spec = [
    { name: 'web', sizes: [6000, 14000], weight: 5 },
    { name: 'code', sizes: [4000], weight: 3 },
    { name: 'books', sizes: [300], weight: 2 },
    { name: 'unused', sizes: [500], weight: 0 },
  ];
  const raws: Uint32Array[] = [];
  let seed = 1;
  const sources = spec.map((s) => ({
    name: s.name,
    weight: s.weight,
    shards: s.sizes.map((n, i) => {
      const file = path.join(dir, `${s.name}-${i}.bin`);
      raws.push(makeShard(file, n, seed++));
      return file;
    }),
  }));
  return { sources, raws };
}

t.test('draws follow the weights within binomial bounds; rows are the shards\' windows', async (t) => {
  const dir = tempDir(t);
  const { sources, raws } = fixture(dir);
  const T = 8;
  const loader = new TokenLoader({ sources, seqLen: T, batchSize: 500, seed: 11 });
  t.ok(loader.isMixture);
  t.same(loader.sourceNames, ['web', 'code', 'books', 'unused']);
  t.equal(loader.shards.length, 5);
  const N = 20000;
  const batches = take(loader, N / 500);
  const counts = [0, 0, 0, 0];
  const webShard = [0, 0];
  const firstShard = [0, 2, 3, 4];
  let mismatched = 0;
  for (const b of batches) {
    b.draws.forEach((d, row) => {
      counts[d.source!]++;
      if (d.source === 0) webShard[d.shard]++;
      if (d.shard < firstShard[d.source!] || d.shard >= (firstShard[d.source! + 1] ?? 5)) mismatched++;
      const raw = raws[d.shard];
      for (let i = 0; i < T; i++) {
        if (b.inputs[row * T + i] !== raw[d.offset + i] || b.targets[row * T + i] !== raw[d.offset + i + 1]) mismatched++;
      }
    });
  }
  t.equal(mismatched, 0, 'every row is its shard\'s window, from a shard of its source');
  const p = [0.5, 0.3, 0.2, 0];
  for (let s = 0; s < 4; s++) {
    const sd = Math.sqrt(N * p[s] * (1 - p[s]));
    t.ok(Math.abs(counts[s] - N * p[s]) <= 5 * sd, `${loader.sourceNames[s]}: ${counts[s]} draws, expected ${N * p[s]} +- ${(5 * sd).toFixed(0)}`);
  }
  t.equal(counts[3], 0, 'a weight-0 source is never drawn');
  // Within a source, shards by size: windows 6000 - 8 and 14000 - 8.
  const q = (6000 - T) / (20000 - 2 * T);
  const sd = Math.sqrt(counts[0] * q * (1 - q));
  t.ok(Math.abs(webShard[0] - counts[0] * q) <= 5 * sd, `web's first shard ${webShard[0]} of ${counts[0]}, expected share ${q.toFixed(3)}`);

  const report = loader.sourceReport();
  t.same(report.map((r) => r.draws), counts, 'the report counts the same draws');
  t.same(report.map((r) => r.weight), p);
  t.same(report.map((r) => r.tokens), [20000, 4000, 300, 500]);
  loader.close();
});

t.test('the seed fixes the stream; resume through JSON continues it exactly', async (t) => {
  const dir = tempDir(t);
  const { sources } = fixture(dir);
  const opts = { sources, seqLen: 16, batchSize: 6, seed: 99 };
  const a = take(new TokenLoader(opts), 30);
  t.same(take(new TokenLoader(opts), 30), a, 'same seed, same batches');
  t.notSame(take(new TokenLoader({ ...opts, seed: 100 }), 30).map((b) => b.draws), a.map((b) => b.draws), 'another seed, other draws');
  // Weights are normalised: any scale gives the same stream.
  const scaled = sources.map((s) => ({ ...s, weight: s.weight * 0.37 }));
  t.same(take(new TokenLoader({ ...opts, sources: scaled }), 30), a, 'weights x 0.37, same batches');

  const first = new TokenLoader(opts);
  take(first, 12);
  const saved = JSON.stringify(first.state());
  const report = first.sourceReport();
  first.close();
  const state = JSON.parse(saved) as TokenLoaderMixtureState;
  t.equal(state.version, 2);
  t.match(state, { seed: 99, draws: 72, batches: 12, seqLen: 16 });
  t.same(
    state.sources.map((s) => [s.name, s.shardTokens]),
    [
      ['web', [6000, 14000]],
      ['code', [4000]],
      ['books', [300]],
      ['unused', [500]],
    ],
  );
  t.equal(state.sources.reduce((n, s) => n + s.draws, 0), 72);

  const resumed = new TokenLoader({ ...opts, seed: 5 });
  resumed.restore(state);
  t.same(resumed.sourceReport(), report, 'the report resumes too');
  t.same(take(resumed, 18), a.slice(12), 'batches 12..30 equal the uninterrupted run');
});

t.test('restore refuses other sources, weights, shards and the other form, saying what differs', async (t) => {
  const dir = tempDir(t);
  const { sources } = fixture(dir);
  const opts = { sources, seqLen: 16, batchSize: 2, seed: 3 };
  const l = new TokenLoader(opts);
  l.next();
  const state = JSON.parse(JSON.stringify(l.state())) as TokenLoaderMixtureState;

  const reweighed = sources.map((s) => (s.name === 'books' ? { ...s, weight: 1 } : s));
  t.throws(() => new TokenLoader({ ...opts, sources: reweighed }).restore(state), {
    name: 'TypeError',
    message: /mixture weights \(web 0\.500000, code 0\.300000, books 0\.200000, unused 0\.00000\) differ from this loader's \(web 0\.555556.*resuming would change the mixture mid-run/,
  });
  const reordered = [sources[1], sources[0], sources[2], sources[3]];
  t.throws(() => new TokenLoader({ ...opts, sources: reordered }).restore(state), /state is for sources \[web, code, books, unused\], this loader has \[code, web, books, unused\]/);
  t.throws(() => new TokenLoader({ ...opts, sources: sources.slice(0, 3) }).restore(state), /this loader has \[web, code, books\]/);
  const fewerShards = sources.map((s) => (s.name === 'web' ? { ...s, shards: s.shards.slice(0, 1) } : s));
  t.throws(() => new TokenLoader({ ...opts, sources: fewerShards }).restore(state), /source 'web': the state is for shards of \[6000,14000\] tokens, this loader's hold \[6000\]/);
  t.throws(() => new TokenLoader({ ...opts, seqLen: 15 }).restore(state), /seqLen 16/);
  t.throws(() => new TokenLoader(opts).restore({ ...state, draws: 3 }), /draws \[.*\] must be non-negative integers summing to draws 3/);

  const flat = new TokenLoader({ shards: sources[1].shards, seqLen: 16, batchSize: 2, seed: 3 });
  t.throws(() => flat.restore(state), /not a version 1 TokenLoader state.*version 2 state of a mixture of sources web, code, books, unused/);
  t.throws(() => new TokenLoader(opts).restore(flat.state()), /not a version 2 TokenLoader state, which this loader over a mixture of sources web, code, books, unused needs: it is a version 1 state/);
  t.throws(() => new TokenLoader(opts).restore(null as never), /not a version 2 TokenLoader state/);
});

t.test('data-parallel ranks split the mixture stream disjointly and together make the single-rank stream', async (t) => {
  const dir = tempDir(t);
  const { sources } = fixture(dir);
  const T = 12;
  const base = { sources, seqLen: T, batchSize: 3, seed: 2024 };
  const W = 4;
  const K = 10;
  const ranks = Array.from({ length: W }, (_, rank) => new TokenLoader({ ...base, rank, worldSize: W }));
  const perRank = takeInLockstep(ranks, K, (k) => t.fail(`rank states differ after batch ${k}`));
  const rowsOf = (bs: TrainBatch[]) =>
    bs.flatMap((b) => b.draws.map((d, row) => ({ ...d, input: Array.from(b.inputs.subarray(row * T, row * T + T)) })));
  perRank.forEach((bs, r) => t.ok(rowsOf(bs).every((d) => Math.floor((d.index % (3 * W)) / 3) === r), `rank ${r} takes the r-th block of 3 draws of every batch`));
  const all = perRank.flatMap(rowsOf).sort((x, y) => x.index - y.index);
  t.equal(new Set(all.map((d) => d.index)).size, all.length, 'no draw is taken by two ranks');
  const single = new TokenLoader({ ...base, batchSize: base.batchSize * W });
  const singleRows = rowsOf(take(single, K));
  t.same(all, singleRows, 'the ranks together draw the single-rank stream: same sources, windows and tokens');
  t.same(ranks[2].sourceReport(), single.sourceReport(), 'every rank reports the draws of all ranks');
  t.same(ranks[1].state(), single.state(), 'and holds the same state as one rank that drew the same batches');
});

t.test('small sources are upsampled; the report and the plan count epochs', async (t) => {
  const dir = tempDir(t);
  const { sources } = fixture(dir);
  const T = 10;
  const loader = new TokenLoader({ sources, seqLen: T, batchSize: 100, seed: 8 });
  const draws = take(loader, 20).flatMap((b) => b.draws);
  const books = draws.filter((d) => d.source === 2);
  const distinct = new Set(books.map((d) => d.offset));
  t.ok(books.length > 300 - T, `books drawn ${books.length} times`);
  t.ok(distinct.size <= 300 - T, `from at most its ${300 - T} windows (${distinct.size} distinct): windows repeat`);
  const r = loader.sourceReport();
  const byName = Object.fromEntries(r.map((x) => [x.name, x]));
  t.equal(byName.books.draws, books.length);
  t.equal(byName.books.tokensDrawn, books.length * T);
  t.equal(byName.books.epochs, (books.length * T) / 300);
  t.ok(byName.books.epochs > 10, `books epochs ${byName.books.epochs.toFixed(2)}`);
  t.equal(byName.unused.epochs, 0);
  t.equal(r.reduce((n, x) => n + x.draws, 0), 2000);

  const plan = loader.plan(1000);
  t.equal(plan.totalTokens, 1000 * T);
  t.same(
    plan.sources.map((s) => [s.name, s.expectedTokens, s.expectedEpochs]),
    [
      ['web', 0.5 * 10000, (0.5 * 10000) / 20000],
      ['code', 0.3 * 10000, (0.3 * 10000) / 4000],
      ['books', 0.2 * 10000, (0.2 * 10000) / 300],
      ['unused', 0, 0],
    ],
  );
  t.same(plan.notDrawn, ['unused']);
  t.equal(plan.warnings.length, 1, `only books repeats more than ${REPEAT_WARNING_EPOCHS} times`);
  t.match(plan.warnings[0], /source 'books' \(300 tokens, weight 20\.00%\) is expected to repeat 6\.7 times over the run's 10000 tokens, more than 4/);
  t.same(loader.plan(0).warnings, []);
  t.throws(() => loader.plan(-1), /totalSequences must be a non-negative integer/);
  const text = formatMixturePlan(plan).join('\n');
  t.match(text, /books\s+20\.00%\s+300 tokens\s+6\.67 epochs expected/);
  t.match(text, /not drawn \(weight 0 or not in the mixture\): unused/);
  t.match(text, /warning: source 'books'/);

  // A loader over plain shards reports them as one source.
  const flat = new TokenLoader({ shards: sources[0].shards, seqLen: T, batchSize: 4, seed: 1 });
  take(flat, 5);
  t.same(flat.sourceReport(), [{ name: 'all', weight: 1, tokens: 20000, draws: 20, tokensDrawn: 200, epochs: 0.01 }]);
  t.same(flat.plan(4000).sources, [{ name: 'all', weight: 1, tokens: 20000, expectedTokens: 40000, expectedEpochs: 2 }]);
  t.same(Object.keys(flat.state()).sort(), ['batches', 'draws', 'rng', 'seed', 'seqLen', 'shardTokens', 'version'], 'its state is unchanged');
  t.equal(flat.next().draws[0].source, undefined, 'and its draws carry no source');
});

t.test('bad sources and weights are refused', async (t) => {
  const dir = tempDir(t);
  const { sources } = fixture(dir);
  const base = { seqLen: 8, batchSize: 1, seed: 0 };
  t.throws(() => new TokenLoader({ ...base, shards: sources[0].shards, sources }), /give shards or sources \(a mixture\), not both/);
  t.throws(() => new TokenLoader({ ...base, sources: [] }), /sources must be a non-empty array/);
  t.throws(() => new TokenLoader({ ...base }), /shards must be a non-empty array/);
  t.throws(() => new TokenLoader({ ...base, sources: [sources[0], { ...sources[1], name: 'web' }] }), /source 'web' is given twice/);
  t.throws(() => new TokenLoader({ ...base, sources: [{ ...sources[0], name: '' }] }), /every source needs a non-empty name/);
  t.throws(() => new TokenLoader({ ...base, sources: [{ ...sources[0], shards: [] }] }), /source 'web': shards must be a non-empty array/);
  for (const bad of [-1, NaN, Infinity, '2' as unknown as number]) {
    t.throws(() => new TokenLoader({ ...base, sources: [sources[0], { ...sources[1], weight: bad }] }), {
      name: 'TypeError',
      message: /the weight of source 'code' must be a finite non-negative number/,
    });
  }
  t.throws(() => new TokenLoader({ ...base, sources: sources.map((s) => ({ ...s, weight: 0 })) }), /at least one source needs a positive weight/);
  t.throws(() => new TokenLoader({ ...base, sources: [sources[0], { ...sources[1], weight: 1e-12 }] }), /weight of source 'code' is below 2\^-32 of the total/);
  t.throws(() => new TokenLoader({ ...base, sources: [{ ...sources[0], weight: 1e308 }, { ...sources[1], weight: 1e308 }] }), /weights sum to Infinity/);
  const short = path.join(dir, 'short.bin');
  makeShard(short, 5, 77);
  t.throws(() => new TokenLoader({ ...base, sources: [sources[0], { name: 'tiny', shards: [short], weight: 0 }] }), {
    name: 'PajamaDataError',
    message: /short\.bin: holds 5 tokens, fewer than one sequence/,
  });
  // A single positive source, the rest zero: every draw is from it.
  const only = new TokenLoader({ ...base, batchSize: 50, sources: sources.map((s) => ({ ...s, weight: s.name === 'code' ? 1 : 0 })) });
  t.ok(only.next().draws.every((d) => d.source === 1));
});

t.test('presets: the paper\'s tables, summing to 100, with citations', async (t) => {
  const table8 = {
    slimpajama: [52.2, 26.7, 5.2, 4.2, 4.6, 3.8, 3.3],
    redpajama: [72.6, 14.4, 4.9, 2.1, 2.3, 2.0, 1.7],
    'llama-1': [67.0, 15.0, 4.5, 4.5, 2.5, 4.5, 2.0],
  };
  t.same(REDPAJAMA_SETS, ['RedPajamaCommonCrawl', 'RedPajamaC4', 'RedPajamaGithub', 'RedPajamaBook', 'RedPajamaArXiv', 'RedPajamaWikipedia', 'RedPajamaStackExchange']);
  for (const [name, column] of Object.entries(table8)) {
    const p = MIXTURE_PRESETS[name as keyof typeof table8];
    t.same(REDPAJAMA_SETS.map((s) => p.percent[s]), column, `${name} matches Table 8`);
    t.same(Object.keys(p.percent).sort(), [...REDPAJAMA_SETS].sort());
    t.match(p.citation, /arXiv:2309\.10818, Table 8/);
  }
  t.same(MIXTURE_PRESETS.refinedweb.percent, { RedPajamaCommonCrawl: 100 });
  t.same(MIXTURE_PRESETS['slimpajama-dc-7b'].percent, {
    RedPajamaArXiv: 4,
    RedPajamaStackExchange: 3.2,
    RedPajamaGithub: 4.9,
    RedPajamaWikipedia: 7.5,
    RedPajamaBook: 4.3,
    RedPajamaC4: 17.6,
    S2ORC: 3,
    Markdown: 3,
    SlimPajamaCommonCrawl: 34.5,
    RedPajamaCommonCrawl: 18,
  });
  t.match(MIXTURE_PRESETS['slimpajama-dc-7b'].citation, /Table 10/);
  for (const p of Object.values(MIXTURE_PRESETS)) {
    const sum = Object.values(p.percent).reduce((a, b) => a + b, 0);
    t.ok(Math.abs(sum - 100) < 1e-9, `${p.name} sums to ${sum}`);
    t.ok(Object.isFrozen(p) && Object.isFrozen(p.percent), `${p.name} is frozen`);
  }
});

t.test('resolveMixture: presets and weights against the data\'s sources', async (t) => {
  const data = [...REDPAJAMA_SETS, 'Markdown'];
  const r = resolveMixture('slimpajama', data);
  t.equal(r.preset, 'slimpajama');
  t.match(r.citation, /Table 8/);
  t.same(Object.keys(r.weights), data, 'every available source, in order');
  t.ok(Math.abs(r.weights.RedPajamaCommonCrawl - 0.522) < 1e-12 && Math.abs(r.weights.RedPajamaStackExchange - 0.033) < 1e-12);
  t.ok(Math.abs(Object.values(r.weights).reduce((a, b) => a + b, 0) - 1) < 1e-12, 'normalised');
  t.equal(r.weights.Markdown, 0);
  t.same(r.notDrawn, ['Markdown'], 'a data source the mixture leaves out is not drawn, and said so');

  const web = resolveMixture('refinedweb', data);
  t.same(web.notDrawn, data.slice(1));
  t.equal(web.weights.RedPajamaCommonCrawl, 1);

  const user = resolveMixture({ a: 3, b: 1, c: 0 }, ['c', 'b', 'a', 'd']);
  t.same(user, { preset: null, citation: null, weights: { c: 0, b: 0.25, a: 0.75, d: 0 }, notDrawn: ['c', 'd'], missing: [] });

  t.throws(() => resolveMixture('slimpajama-dc-7b', data), {
    name: 'TypeError',
    message: /the mixture preset 'slimpajama-dc-7b' draws from sources S2ORC, SlimPajamaCommonCrawl, which the data does not have \(available: RedPajamaCommonCrawl, .*, Markdown\)/,
  });
  t.throws(() => resolveMixture({ a: 1, zz: 0 }, ['a', 'b']), /the mixture draws from source zz, which the data does not have \(available: a, b\)/);
  t.throws(() => resolveMixture('pile', data), /unknown mixture preset 'pile' \(presets: slimpajama, redpajama, llama-1, refinedweb, slimpajama-dc-7b\)/);
  t.throws(() => resolveMixture('toString', data), /unknown mixture preset 'toString'/);
  t.throws(() => resolveMixture({}, data), /names no sources/);
  t.throws(() => resolveMixture({ a: -1 }, ['a']), /weight of source 'a' must be a finite non-negative number, got -1/);
  t.throws(() => resolveMixture({ a: 0 }, ['a']), /at least one source needs a positive weight/);
  t.throws(() => resolveMixture(['a'] as never, ['a']), /a preset name or an object of weights/);
});

t.test('planMixture on its own', async (t) => {
  const p = planMixture(
    [
      { name: 'x', weight: 0.75, tokens: 1000 },
      { name: 'y', weight: 0.25, tokens: 100 },
    ],
    100,
    20,
  );
  t.same(p, {
    seqLen: 20,
    totalSequences: 100,
    totalTokens: 2000,
    sources: [
      { name: 'x', weight: 0.75, tokens: 1000, expectedTokens: 1500, expectedEpochs: 1.5 },
      { name: 'y', weight: 0.25, tokens: 100, expectedTokens: 500, expectedEpochs: 5 },
    ],
    notDrawn: [],
    warnings: [p.warnings[0]],
  });
  t.match(p.warnings[0], /source 'y'.*repeat 5\.0 times/);
  t.equal(p.warnings.length, 1);
  t.throws(() => planMixture([], 10, 0), /seqLen must be a positive integer/);
});
