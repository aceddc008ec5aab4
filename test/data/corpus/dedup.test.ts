// LSH clustering: union-find roots, the spilled index against an in-memory reference, local mode, and the
// brute-force verification against exact Jaccard.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LshIndex, UnionFind, foldSourceIntoKeys, shingleHashes, sortedJaccard, verifyLshSample } from '../../../lib/data/corpus/dedup';
import { DEFAULT_MINHASH, exactJaccard } from '../../../lib/data/corpus/minhash';
import { makeRng, seed } from '../../helpers/reference';

t.comment(`seed ${seed} (PAJAMA_TEST_SEED replays it)`);
const rng = makeRng(seed);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pajama-dedup-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));

t.test('UnionFind keeps the smallest id as root whatever the union order', async (t) => {
  const n = 500;
  const pairs: [number, number][] = [];
  for (let i = 0; i < 400; i++) pairs.push([Math.floor(rng() * n), Math.floor(rng() * n)]);
  const a = new UnionFind(4);
  a.grow(n);
  for (const [x, y] of pairs) a.union(x, y);
  const b = new UnionFind();
  b.grow(n);
  for (const [x, y] of [...pairs].reverse()) b.union(y, x);
  // Reference: components by repeated relaxation to the minimum label.
  const label = Array.from({ length: n }, (_, i) => i);
  for (let changed = true; changed; ) {
    changed = false;
    for (const [x, y] of pairs) {
      const m = Math.min(label[x], label[y]);
      if (label[x] !== m || label[y] !== m) {
        label[x] = label[y] = m;
        changed = true;
      }
    }
  }
  let same = true;
  for (let i = 0; i < n; i++) if (a.find(i) !== label[i] || b.find(i) !== label[i]) same = false;
  t.ok(same, 'roots equal the minimum of each component, for both union orders');
  t.equal(a.union(0, 0), false, 'a self-union joins nothing');
});

/** Random band keys with planted collisions: docs in a group share band `b` keys with probability p. */
function plantedKeys(n: number, bands: number): { keys: BigUint64Array; groups: number[] } {
  const keys = new BigUint64Array(n * bands);
  const groups: number[] = [];
  const rnd64 = () => (BigInt(Math.floor(rng() * 2 ** 32)) << 32n) | BigInt(Math.floor(rng() * 2 ** 32));
  for (let i = 0; i < n; i++) {
    const g = rng() < 0.3 && i > 0 ? groups[Math.floor(rng() * i)] : i;
    groups.push(g);
    for (let b = 0; b < bands; b++) keys[i * bands + b] = g !== i && rng() < 0.5 ? keys[g * bands + b] : rnd64();
  }
  return { keys, groups };
}

function referenceRoots(keys: BigUint64Array, n: number, bands: number): number[] {
  const uf = new UnionFind();
  uf.grow(n);
  for (let b = 0; b < bands; b++) {
    const first = new Map<bigint, number>();
    for (let i = 0; i < n; i++) {
      const k = keys[i * bands + b];
      const f = first.get(k);
      if (f === undefined) first.set(k, i);
      else uf.union(f, i);
    }
  }
  return Array.from({ length: n }, (_, i) => uf.find(i));
}

t.test('LshIndex clusters equal an in-memory reference, with and without spilling', async (t) => {
  const bands = 4;
  const n = 20000;
  const { keys } = plantedKeys(n, bands);
  const want = referenceRoots(keys, n, bands);
  for (const memoryBytes of [256 * 2 ** 20, 12 * bands * 1024]) {
    const dir = path.join(tmp, `lsh-${memoryBytes}`);
    const index = new LshIndex({ bands, dir, memoryBytes });
    // Added in uneven batches, ids increasing.
    for (let at = 0; at < n; ) {
      const m = Math.min(n - at, 1 + Math.floor(rng() * 3000));
      const ids = Uint32Array.from({ length: m }, (_, i) => at + i);
      await index.add(ids, keys.slice(at * bands, (at + m) * bands));
      at += m;
    }
    const uf = new UnionFind();
    const stats = await index.cluster(uf);
    const spilled = memoryBytes < 2 ** 20;
    if (spilled) t.ok(stats.runs > bands, `small budget spilled ${stats.runs} runs`);
    let same = true;
    for (let i = 0; i < n; i++) if (uf.find(i) !== want[i]) same = false;
    t.ok(same, `roots equal the reference (memory ${memoryBytes} bytes, ${stats.runs} runs)`);
    t.equal(stats.documents, n);
    // Reopened from disk (a resumed dedup stage), the same clusters.
    const reopened = LshIndex.open({ bands, dir, memoryBytes, documents: n });
    const uf2 = new UnionFind();
    await reopened.cluster(uf2);
    let same2 = true;
    for (let i = 0; i < n; i++) if (uf2.find(i) !== want[i]) same2 = false;
    t.ok(same2, 'the reopened runs give the same clusters');
    reopened.removeRuns();
    t.same(fs.readdirSync(dir).filter((f) => f.endsWith('.run')), [], 'removeRuns deletes the runs');
  }
});

t.test('LshIndex rejects ids that do not increase and keys of the wrong length', async (t) => {
  const index = new LshIndex({ bands: 2, dir: path.join(tmp, 'bad') });
  await index.add(Uint32Array.of(0, 1), new BigUint64Array(4));
  await t.rejects(index.add(Uint32Array.of(1), new BigUint64Array(2)), /ids must increase/);
  await t.rejects(index.add(Uint32Array.of(5), new BigUint64Array(3)), /expected ids \(1\) \* bands \(2\)/);
  t.throws(() => new LshIndex({ bands: 0, dir: tmp }), /bands must be a positive integer/);
});

t.test('local mode: equal keys of different sources no longer collide, within a source they still do', async (t) => {
  const bands = 3;
  const keys = new BigUint64Array(4 * bands).fill(42n);
  foldSourceIntoKeys(keys, [0, 0, 1, 1], bands);
  const roots = referenceRoots(keys, 4, bands);
  t.same(roots, [0, 0, 2, 2]);
  t.throws(() => foldSourceIntoKeys(keys, [0, 1], bands), /expected sources \(2\) \* bands \(3\)/);
});

t.test('shingle hashes give exact Jaccard on small strings', async (t) => {
  const a = shingleHashes('abcdef', 3); // abc bcd cde def
  const b = shingleHashes('abcdxf', 3); // abc bcd cdx dxf
  t.equal(a.length, 4);
  t.equal(sortedJaccard(a, b), 2 / 6);
  t.equal(shingleHashes('ab', 3).length, 1, 'a text shorter than a shingle is one shingle');
  t.equal(shingleHashes('😀😀😀😀', 3).length, 1, 'shingles count code points, not UTF-16 units');
  t.equal(sortedJaccard(shingleHashes('aaaa', 2), shingleHashes('aaaaaa', 2)), 1, 'sets, not bags');
});

t.test('sortedJaccard over shingleHashes equals minhash.ts exactJaccard (the reference the native kernel is tested against)', async (t) => {
  const alphabet = ['a', 'b', 'c', ' ', 'é', '日', '😀'];
  let worst = 0;
  for (let i = 0; i < 200; i++) {
    const len = () => Math.floor(rng() * 60);
    const a = Array.from({ length: len() }, () => alphabet[Math.floor(rng() * alphabet.length)]).join('');
    // Cut by code points: a UTF-16 slice could split '😀' into lone surrogates, which no decoded document holds.
    const cps = Array.from(a);
    const b = rng() < 0.5 ? cps.slice(0, Math.floor(rng() * cps.length)).join('') + 'ab' + cps.slice(Math.floor(rng() * cps.length)).join('') : a;
    if (a.length === 0 || b.length === 0) continue;
    for (const k of [3, 13]) worst = Math.max(worst, Math.abs(sortedJaccard(shingleHashes(a, k), shingleHashes(b, k)) - exactJaccard(a, b, k)));
  }
  t.equal(worst, 0, 'identical on random strings with multi-byte and astral characters');
});

t.test('verifyLshSample: recall of near-duplicate pairs and false positives against brute force', async (t) => {
  const words = 'the a whale sea ship captain ahab white harpoon boat crew deck mast sail wind storm night day'.split(' ');
  const doc = () => Array.from({ length: 300 }, () => words[Math.floor(rng() * words.length)] + String(Math.floor(rng() * 50))).join(' ');
  const texts: string[] = [];
  for (let i = 0; i < 60; i++) {
    const base = doc();
    texts.push(base);
    if (i % 3 === 0) {
      const w = base.split(' ');
      w[Math.floor(rng() * w.length)] = 'changed';
      texts.push(w.join(' ')); // one word changed: Jaccard well above 0.8
    }
  }
  const v = await verifyLshSample(texts, DEFAULT_MINHASH);
  t.equal(v.pairs, (texts.length * (texts.length - 1)) / 2);
  t.equal(v.pairsAbove, 20, 'every planted pair is above 0.8 and nothing else is');
  t.equal(v.recall, 1, 'LSH finds all of them (each has Jaccard near 0.98: a miss has probability about 2e-6)');
  t.equal(v.falseCandidates, 0, 'random documents never become candidates');
});
