// TokenLoader and evalBatches: batches against the raw shards, determinism by seed, exact resume, disjoint
// data-parallel ranks that together make the single-rank stream, size-weighted sampling, and the errors.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DisposedError } from '../../lib/index';
import { TokenLoader, evalBatches, evalBatchCount } from '../../lib/data/index';
import { take, takeInLockstep, writeRandomShard } from '../helpers/shards';

const VOCAB = 50257;
const EOS = 50256;

function tempDir(t: { teardown(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pajama-loader-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A shard of `tokens` tokens: documents of 1..97 pseudo-random ids, each followed by EOS. Returns them all. */
function makeShard(file: string, tokens: number, seed: number, vocabSize = VOCAB, eosId = EOS): Uint32Array {
  return writeRandomShard(file, tokens, seed, vocabSize, eosId);
}

t.test('batches are windows of the shards: targets are inputs shifted by one', async (t) => {
  const dir = tempDir(t);
  const raws = [makeShard(path.join(dir, 'a.bin'), 5000, 1), makeShard(path.join(dir, 'b.bin'), 20000, 2)];
  const T = 33;
  const B = 5;
  const loader = new TokenLoader({ shards: [path.join(dir, 'a.bin'), path.join(dir, 'b.bin')], seqLen: T, batchSize: B, seed: 1234 });
  t.equal(loader.vocabSize, VOCAB);
  t.equal(loader.eosId, EOS);
  let rows = 0;
  let mismatched = 0;
  for (const batch of take(loader, 40)) {
    t.equal(batch.inputs.length, B * T);
    t.equal(batch.targets.length, B * T);
    t.ok(batch.inputs instanceof Int32Array && batch.targets instanceof Int32Array);
    batch.draws.forEach((d, row) => {
      const raw = raws[d.shard];
      if (!(d.offset >= 0 && d.offset + T + 1 <= raw.length)) mismatched++;
      for (let i = 0; i < T; i++) {
        if (batch.inputs[row * T + i] !== raw[d.offset + i] || batch.targets[row * T + i] !== raw[d.offset + i + 1]) mismatched++;
      }
      rows++;
    });
  }
  t.equal(rows, 200);
  t.equal(mismatched, 0, 'every row is raw[offset, offset + T) and raw[offset + 1, offset + T + 1)');
  t.equal(loader.batches, 40);
  t.equal(loader.draws, 200);
  loader.close();
  loader.close();
  t.throws(() => loader.next(), DisposedError);
});

t.test('the seed fixes the batches; shards are drawn in proportion to their size', async (t) => {
  const dir = tempDir(t);
  const shards = [path.join(dir, 'a.bin'), path.join(dir, 'b.bin')];
  makeShard(shards[0], 5000, 3);
  makeShard(shards[1], 20000, 4);
  const opts = { shards, seqLen: 16, batchSize: 8 };
  const a = take(new TokenLoader({ ...opts, seed: 7 }), 20);
  const b = take(new TokenLoader({ ...opts, seed: 7 }), 20);
  const c = take(new TokenLoader({ ...opts, seed: 8 }), 20);
  t.same(b, a, 'same seed, same batches');
  t.notSame(c.map((x) => x.draws), a.map((x) => x.draws), 'another seed, other draws');
  t.notSame(Array.from(c[0].inputs), Array.from(a[0].inputs));

  const many = take(new TokenLoader({ ...opts, seed: 9, batchSize: 500 }), 4).flatMap((x) => x.draws);
  const fromA = many.filter((d) => d.shard === 0).length / many.length;
  const expected = (5000 - 16) / (5000 - 16 + 20000 - 16);
  t.ok(Math.abs(fromA - expected) < 0.04, `share of the small shard ${fromA.toFixed(3)}, expected ${expected.toFixed(3)}`);
  const offsets = new Set(many.filter((d) => d.shard === 1).map((d) => d.offset));
  t.ok(offsets.size > 1500, `offsets spread over the shard (${offsets.size} distinct)`);
  t.ok(Math.max(...offsets) >= 20000 - 17 - 200 && Math.min(...offsets) <= 200, 'both ends of the shard reached');
});

t.test('state/restore resumes exactly, through JSON, in a new loader', async (t) => {
  const dir = tempDir(t);
  const shards = [path.join(dir, 'a.bin'), path.join(dir, 'b.bin'), path.join(dir, 'c.bin')];
  makeShard(shards[0], 3000, 5);
  makeShard(shards[1], 700, 6);
  makeShard(shards[2], 9000, 7);
  const opts = { shards, seqLen: 24, batchSize: 3, seed: 42 };
  const N = 25;
  const uninterrupted = take(new TokenLoader(opts), 2 * N);

  const first = new TokenLoader(opts);
  take(first, N);
  const saved = JSON.stringify(first.state());
  first.close();
  const state = JSON.parse(saved);
  t.match(state, { version: 1, seed: 42, draws: N * 3, batches: N, seqLen: 24, shardTokens: [3000, 700, 9000] });

  const resumed = new TokenLoader({ ...opts, seed: 999 }); // the seed comes from the state
  resumed.restore(state);
  t.equal(resumed.batches, N);
  t.same(take(resumed, N), uninterrupted.slice(N), 'batches N..2N equal the uninterrupted run');

  const other = new TokenLoader({ ...opts, seqLen: 25 });
  t.throws(() => other.restore(state), { name: 'TypeError', message: /seqLen 24/ });
  const fewer = new TokenLoader({ ...opts, shards: shards.slice(0, 2) });
  t.throws(() => fewer.restore(state), /shards of \[3000,700,9000\] tokens/);
  t.throws(() => fewer.restore({ ...state, version: 2 }), /not a version 1/);
  t.throws(() => new TokenLoader(opts).restore({ ...state, rng: [0, 0, 0, 0] }), /all-zero/);
});

t.test('data-parallel ranks draw disjointly and together make the single-rank stream', async (t) => {
  const dir = tempDir(t);
  const shards = [path.join(dir, 'a.bin'), path.join(dir, 'b.bin')];
  makeShard(shards[0], 4000, 8);
  makeShard(shards[1], 6000, 9);
  const base = { shards, seqLen: 20, batchSize: 4, seed: 2024 };
  const K = 15;
  const W = 3;
  const ranks = Array.from({ length: W }, (_, rank) => new TokenLoader({ ...base, rank, worldSize: W }));
  const perRank = takeInLockstep(ranks, K, (k) => t.fail(`rank states differ after batch ${k}`));
  t.pass('after every batch all ranks hold the same state');
  const indices = perRank.map((bs) => bs.flatMap((b) => b.draws.map((d) => d.index)));
  indices.forEach((ix, r) => t.ok(ix.every((i) => Math.floor((i % (4 * W)) / 4) === r), `rank ${r} takes the r-th block of 4 draws of every batch`));
  const all = indices.flat();
  t.equal(new Set(all).size, all.length, 'no draw is taken by two ranks');

  // The single-rank stream with the same seed: draws 0 .. K*B*W - 1.
  const single = take(new TokenLoader(base), K * W);
  const singleRows = single.flatMap((b) => b.draws.map((d, row) => ({ ...d, input: Array.from(b.inputs.subarray(row * 20, row * 20 + 20)) })));
  const rankRows = perRank
    .flatMap((bs) => bs.flatMap((b) => b.draws.map((d, row) => ({ ...d, input: Array.from(b.inputs.subarray(row * 20, row * 20 + 20)) }))))
    .sort((x, y) => x.index - y.index);
  t.same(rankRows, singleRows, 'the ranks together draw exactly the single-rank stream, same windows, same tokens');
  // Blocks, not round-robin: rank r's batch k is batch k * W + r of one rank with the same batch size, so N
  // ranks x A accumulation steps run exactly the micro-batches of 1 rank x N*A.
  const sameSize = take(new TokenLoader(base), K * W);
  t.same(
    perRank.map((bs, r) => bs.map((b, k) => Array.from(b.inputs).join() === Array.from(sameSize[k * W + r].inputs).join() && b.draws[0].index === sameSize[k * W + r].draws[0].index)),
    perRank.map((bs) => bs.map(() => true)),
    "rank r's batch k is the single-rank batch k * W + r",
  );

  // A checkpoint from rank 0 restores any rank, and a new world size continues the same global stream.
  const saved = ranks[0].state();
  const two = [0, 1].map((rank) => new TokenLoader({ ...base, rank, worldSize: 2 }));
  two.forEach((l) => l.restore(saved));
  const next = two.flatMap((l) => l.next().draws.map((d) => d.index)).sort((a, b) => a - b);
  t.same(next, Array.from({ length: 8 }, (_, i) => K * 4 * W + i), 'continues at the next global draw');
  const singleNext = new TokenLoader({ ...base, batchSize: 8 });
  singleNext.restore(saved);
  singleNext.next();
  t.same(two.map((l) => l.state().rng), [singleNext.state().rng, singleNext.state().rng], 'and ends where one rank of 8 would');
  t.throws(() => new TokenLoader({ ...base, rank: 3, worldSize: 3 }), /rank must be an integer in \[0, worldSize = 3\)/);
});

t.test('shards that cannot serve are refused, naming the file', async (t) => {
  const dir = tempDir(t);
  const ok = path.join(dir, 'ok.bin');
  const short = path.join(dir, 'short.bin');
  makeShard(ok, 1000, 10);
  makeShard(short, 64, 11);
  t.throws(() => new TokenLoader({ shards: [ok, short], seqLen: 64, batchSize: 1, seed: 0 }), {
    name: 'PajamaDataError',
    file: short,
    message: /short\.bin: holds 64 tokens, fewer than one sequence of seqLen \+ 1 = 65/,
  });
  const other = path.join(dir, 'other.bin');
  makeShard(other, 1000, 12, 100277, 100257);
  t.throws(() => new TokenLoader({ shards: [ok, other], seqLen: 8, batchSize: 1, seed: 0 }), /other\.bin: vocab size 100277 and EOS 100257 differ/);
  t.throws(() => new TokenLoader({ shards: [path.join(dir, 'none.bin')], seqLen: 8, batchSize: 1, seed: 0 }), { code: 'ERR_PAJAMA_DATA', message: `${path.join(dir, 'none.bin')}: cannot open: no such token shard (ENOENT)` });
  t.throws(() => new TokenLoader({ shards: [ok], seqLen: 0, batchSize: 1, seed: 0 }), /seqLen must be a positive integer/);
  t.throws(() => new TokenLoader({ shards: [ok], seqLen: 8, batchSize: 1.5, seed: 0 }), TypeError);
  t.throws(() => new TokenLoader({ shards: [], seqLen: 8, batchSize: 1, seed: 0 }), TypeError);
  t.throws(() => new TokenLoader({ shards: [ok], seqLen: 8, batchSize: 1, seed: NaN }), /seed/);

  // A token id past the vocab size fails when a window holding it is read, naming file and offset.
  const bad = path.join(dir, 'bad.bin');
  makeShard(bad, 17, 13);
  const bytes = fs.readFileSync(bad);
  bytes.writeUInt16LE(VOCAB + 5, 64 + 2 * 9);
  fs.writeFileSync(bad, bytes);
  const loader = new TokenLoader({ shards: [bad], seqLen: 16, batchSize: 1, seed: 0 }); // one window: the whole shard
  t.throws(() => loader.next(), { name: 'PajamaDataError', file: bad, offset: 9, message: /bad\.bin: token id 50262 at token offset 9/ });
  t.throws(() => [...evalBatches(bad, 16, 1)], /token offset 9/);
});

t.test('evalBatches covers the shard sequentially with non-overlapping windows', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'val.bin');
  const raw = makeShard(file, 1000, 14);
  const T = 16;
  const B = 4;
  t.equal(evalBatchCount(1000, T, B), 15, '(1000 - 1) / 16 = 62 windows, 15 full batches');
  const batches = [...evalBatches(file, T, B)];
  t.equal(batches.length, 15);
  const offsets = batches.flatMap((b) => b.offsets);
  t.same(offsets, Array.from({ length: 60 }, (_, i) => i * T), 'windows at 0, T, 2T, ...');
  const inputs = batches.flatMap((b) => Array.from(b.inputs));
  const targets = batches.flatMap((b) => Array.from(b.targets));
  t.same(inputs, Array.from(raw.subarray(0, 60 * T)), 'inputs are the shard from the start, in order');
  t.same(targets, Array.from(raw.subarray(1, 60 * T + 1)), 'targets are the shard shifted by one: every token a target once');
  t.same([...evalBatches(file, T, B)], batches, 'the same every time');
  t.equal([...evalBatches(file, T, B, 3)].length, 3, 'maxBatches');
  t.equal([...evalBatches(file, T, B, 0)].length, 0);
  const it = evalBatches(file, T, B);
  t.same(it.next().value?.offsets, [0, 16, 32, 48]);
  it.return(undefined);
  t.throws(() => evalBatches(file, 500, 2), { name: 'PajamaDataError', message: /val\.bin: holds 1000 tokens, fewer than one batch of 2 windows/ });
  t.throws(() => evalBatches(file, T, 0), TypeError);
  t.throws(() => evalBatches(file, T, B, -1), TypeError);
});
