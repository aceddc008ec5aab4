// minhash: signatures and band keys bit for bit against a BigInt reference of the documented algorithm, the
// shingling by code point against the JS shingleSet, MinHash accuracy against exact Jaccard and LSH candidate
// rates against 1 - (1 - s^rows)^bands on fresh random documents, identical bits across ISA levels, thread
// counts and sync/async, empty and short documents, argument checks, and sortKeyIds against a JS sort.
import t from 'tap';
import { ops, setIsaLimit, setThreads, backendInfo, type IsaLevel } from '../../lib/index';
import {
  DEFAULT_MINHASH,
  EMPTY_BAND_KEY,
  EMPTY_SIGNATURE_VALUE,
  bandKeysOf,
  estimateJaccard,
  exactJaccard,
  isEmptySignature,
  lshCandidateProbability,
  minhashDocuments,
  minhashDocumentsAsync,
  packDocuments,
  resolveMinHashOptions,
  shingleSet,
  signatureOf,
  sortKeyIds,
  sortKeyIdsAsync,
  type MinHashOptions,
  type MinHashResult,
} from '../../lib/data/corpus/minhash';
import { makeRng, seed } from '../helpers/reference';

t.comment(`seed ${seed} (PAJAMA_TEST_SEED replays it)`);
const rng = makeRng(seed);
const randInt = (n: number): number => Math.floor(rng() * n);
const u32 = (): number => (rng() * 2 ** 32) >>> 0;
const u64 = (): bigint => (BigInt(u32()) << 32n) | BigInt(u32());
const freshSeed = (): number => u32() + 1;

t.teardown(() => {
  setIsaLimit('avx512_bf16');
  setThreads(0);
});

// ---- Random documents ------------------------------------------------------------------------------------

const LETTERS = 'abcdefghijklmnopqrstuvwxyz ';
// 1-, 2-, 3- and 4-byte UTF-8 code points.
const MIXED = [...'abcdefghij klmn', 'é', 'ü', 'ß', 'ж', 'λ', '日', '本', '語', 'の', 'テ', 'キ', 'ス', 'ト', '😀', '🎉', '𝄞', '🍣'];

function randomText(n: number, alphabet: readonly string[] | string = LETTERS): string {
  const a = typeof alphabet === 'string' ? [...alphabet] : alphabet;
  let s = '';
  for (let i = 0; i < n; i++) s += a[randInt(a.length)];
  return s;
}

// ---- BigInt reference of minhash.cc's algorithm ----------------------------------------------------------

const M64 = (1n << 64n) - 1n;
const K_LEN_MUL = 0xa2a3747bc883be15n;
const K_MIX_A = 0x33ad28ad2accfa6fn;
const K_MIX_B = 0x9055752ed3dee093n;
const K_BAND_STEP = 0x25dc1ed285f78105n;

function splitMix64(seedValue: number): () => bigint {
  let s = BigInt.asUintN(64, BigInt(seedValue));
  return () => {
    s = (s + 0x9e3779b97f4a7c15n) & M64;
    let z = s;
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & M64;
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & M64;
    return z ^ (z >> 31n);
  };
}

const fold = (a: bigint, b: bigint): bigint => {
  const p = a * b;
  return (p & M64) ^ (p >> 64n);
};

function avalanche(z: bigint): bigint {
  z ^= z >> 31n;
  z = (z * K_MIX_A) & M64;
  z ^= z >> 29n;
  z = (z * K_MIX_B) & M64;
  return z ^ (z >> 32n);
}

function load(p: Uint8Array, at: number, bytes: number): bigint {
  let v = 0n;
  for (let i = bytes - 1; i >= 0; i--) v = (v << 8n) | BigInt(p[at + i]);
  return v;
}

function refHashBytes(p: Uint8Array, k0: bigint, k1: bigint): bigint {
  const n = p.length;
  let acc = k0 ^ ((BigInt(n) * K_LEN_MUL) & M64);
  let x = 0n;
  let y = 0n;
  if (n > 16) {
    for (let i = 0; n - i > 16; i += 16) acc = fold(load(p, i, 8) ^ k1, load(p, i + 8, 8) ^ acc);
    x = load(p, n - 16, 8);
    y = load(p, n - 8, 8);
  } else if (n >= 8) {
    x = load(p, 0, 8);
    y = load(p, n - 8, 8);
  } else if (n >= 4) {
    x = load(p, 0, 4);
    y = load(p, n - 4, 4);
  } else if (n > 0) {
    x = BigInt((p[0] << 16) | (p[n >> 1] << 8) | p[n - 1]);
  }
  return avalanche(fold(x ^ k1, y ^ acc));
}

/** Shingle byte ranges by the byte rule: a code point starts at every non-continuation byte and at 0. */
function refShingles(doc: Uint8Array, k: number): Uint8Array[] {
  if (doc.length === 0) return [];
  const starts: number[] = [];
  for (let i = 0; i < doc.length; i++) if (i === 0 || (doc[i] & 0xc0) !== 0x80) starts.push(i);
  starts.push(doc.length);
  const cps = starts.length - 1;
  if (cps < k) return [doc];
  const out: Uint8Array[] = [];
  for (let i = 0; i + k <= cps; i++) out.push(doc.subarray(starts[i], starts[i + k]));
  return out;
}

function refMinHash(doc: Uint8Array, o: MinHashOptions): { sig: Uint32Array; keys: BigUint64Array } {
  const next = splitMix64(o.seed);
  const sk0 = next();
  const sk1 = next();
  const bk0 = next();
  const bk1 = next();
  const a: bigint[] = [];
  const b: bigint[] = [];
  for (let i = 0; i < o.numPerm; i++) {
    a.push(next() | 1n);
    b.push(next());
  }
  const sig = new Uint32Array(o.numPerm).fill(EMPTY_SIGNATURE_VALUE);
  const keys = new BigUint64Array(o.bands).fill(EMPTY_BAND_KEY);
  const shingles = refShingles(doc, o.shingleChars);
  if (shingles.length === 0) return { sig, keys };
  const mins = new Array<bigint>(o.numPerm).fill(M64);
  for (const s of shingles) {
    const h = refHashBytes(s, sk0, sk1);
    for (let i = 0; i < o.numPerm; i++) {
      const v = (a[i] * h + b[i]) & M64;
      if (v < mins[i]) mins[i] = v;
    }
  }
  for (let i = 0; i < o.numPerm; i++) sig[i] = Number(mins[i] >> 32n);
  const bytes = new Uint8Array(sig.buffer);
  for (let j = 0; j < o.bands; j++) {
    const key = refHashBytes(bytes.subarray(4 * j * o.rows, 4 * (j + 1) * o.rows), (bk0 + BigInt(j) * K_BAND_STEP) & M64, bk1);
    keys[j] = key === EMPTY_BAND_KEY ? EMPTY_BAND_KEY - 1n : key;
  }
  return { sig, keys };
}

function packBytes(docs: Uint8Array[]): { text: Uint8Array; offsets: Uint32Array } {
  const total = docs.reduce((s, d) => s + d.length, 0);
  const text = new Uint8Array(total);
  const offsets = new Uint32Array(docs.length + 1);
  let pos = 0;
  docs.forEach((d, i) => {
    text.set(d, pos);
    pos += d.length;
    offsets[i + 1] = pos;
  });
  return { text, offsets };
}

t.test('signatures and band keys match the BigInt reference bit for bit', async (t) => {
  const enc = new TextEncoder();
  const configs: Partial<MinHashOptions>[] = [
    {},
    { shingleChars: 3, numPerm: 20, bands: 4, rows: 5 }, // windows of 3-12 bytes, permutations not a multiple of 16
    { shingleChars: 1, numPerm: 16, bands: 16, rows: 1 },
    { shingleChars: 21, numPerm: 70, bands: 3, rows: 23 }, // ASCII windows over 16 bytes
    { shingleChars: 5, numPerm: 130, bands: 2, rows: 64 },
  ];
  const texts = [
    '',
    'a',
    'ab',
    'abc',
    'short text',
    randomText(40),
    randomText(120),
    randomText(60, MIXED),
    '日本語のテキストです。これはテストです。',
    '😀🎉🍣😀🎉🍣😀🎉🍣😀🎉🍣😀🎉🍣',
  ];
  const docs: Uint8Array[] = texts.map((s) => enc.encode(s));
  // Bytes that are not valid UTF-8: a leading continuation byte, stray ones in ASCII, a cut 3-byte sequence.
  docs.push(Uint8Array.from([0x80, 0x81, 0x61, 0x62, 0x63, 0xbf, 0x64, 0xe6, 0x97, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d]));
  const packed = packBytes(docs);
  let checked = 0;
  for (const cfg of configs) {
    const o = resolveMinHashOptions({ ...cfg, seed: freshSeed() });
    const r = minhashDocuments(packed, o);
    for (let i = 0; i < docs.length; i++) {
      const ref = refMinHash(docs[i], o);
      t.same(Array.from(signatureOf(r, i)), Array.from(ref.sig), `signature, doc ${i}, ${JSON.stringify(cfg)}`);
      t.same(Array.from(bandKeysOf(r, i)), Array.from(ref.keys), `band keys, doc ${i}, ${JSON.stringify(cfg)}`);
      checked++;
    }
  }
  t.equal(checked, configs.length * docs.length);
});

t.test('a signature is the elementwise minimum of its shingles\' signatures (shingles by code point)', async (t) => {
  // Each shingle of shingleSet, hashed as a document of its own, is one shingle of exactly those code
  // points; the document's signature must be their minimum, so the native windows are exactly shingleSet's.
  for (const k of [1, 4, 13]) {
    const options = { shingleChars: k, seed: freshSeed() };
    for (let rep = 0; rep < 6; rep++) {
      const text = randomText(randInt(40), MIXED);
      const shingles = [...shingleSet(text, k)];
      const r = minhashDocuments([text, ...shingles], options);
      const want = new Uint32Array(r.numPerm).fill(EMPTY_SIGNATURE_VALUE);
      for (let s = 0; s < shingles.length; s++) {
        const sig = signatureOf(r, s + 1);
        for (let i = 0; i < r.numPerm; i++) want[i] = Math.min(want[i], sig[i]);
      }
      t.same(Array.from(signatureOf(r, 0)), Array.from(want), `k=${k}: ${JSON.stringify(text)} (${[...text].length} code points)`);
    }
  }
  t.equal(shingleSet('😀😀😀😀', 3).size, 1, 'emoji count as one code point each');
  t.equal(shingleSet('日本語の', 3).size, 2);
  t.same([...shingleSet('ab', 3)], ['ab'], 'a text shorter than a shingle is one shingle');
  t.equal(shingleSet('', 3).size, 0);
});

t.test('estimateJaccard tracks exact Jaccard on random pairs with controlled overlap', async (t) => {
  // A = S + X, B = S + Y over 27 letters: shared shingles are S's, the rest (nearly always) unique.
  const pairs = 300;
  const texts: string[] = [];
  for (let p = 0; p < pairs; p++) {
    const shared = 100 + randInt(400);
    const own = randInt(300);
    const s = randomText(shared);
    texts.push(s + randomText(own), s + randomText(own));
  }
  const r = minhashDocuments(texts, { seed: freshSeed() });
  let sumAbs = 0;
  let sumSigned = 0;
  let sumSigma = 0;
  let worst = 0;
  const levels: number[] = [];
  for (let p = 0; p < pairs; p++) {
    const exact = exactJaccard(texts[2 * p], texts[2 * p + 1]);
    const est = estimateJaccard(signatureOf(r, 2 * p), signatureOf(r, 2 * p + 1));
    const sigma = Math.sqrt((exact * (1 - exact)) / r.numPerm);
    const err = est - exact;
    levels.push(exact);
    sumAbs += Math.abs(err);
    sumSigned += err;
    sumSigma += sigma;
    worst = Math.max(worst, Math.abs(err));
    // 5.5 standard errors (a 4e-8 event per pair), plus two permutations for the granularity.
    if (Math.abs(err) > 5.5 * sigma + 2 / r.numPerm) t.fail(`pair ${p}: estimate ${est} vs exact ${exact.toFixed(4)}`);
  }
  const meanAbs = sumAbs / pairs;
  const expectedMeanAbs = (Math.sqrt(2 / Math.PI) * sumSigma) / pairs; // E|N(0, sigma^2)|
  t.comment(`J in [${Math.min(...levels).toFixed(2)}, ${Math.max(...levels).toFixed(2)}]; mean |err| ${meanAbs.toFixed(4)} (binomial ${expectedMeanAbs.toFixed(4)}), bias ${(sumSigned / pairs).toFixed(4)}, max |err| ${worst.toFixed(4)}`);
  t.ok(Math.min(...levels) < 0.3 && Math.max(...levels) > 0.8, 'the pairs span low to high similarity');
  t.ok(meanAbs <= 1.25 * expectedMeanAbs + 0.003, `mean |err| ${meanAbs} is what 128 independent permutations give (${expectedMeanAbs})`);
  t.ok(Math.abs(sumSigned / pairs) <= 0.012, `no bias: mean err ${sumSigned / pairs}`);
  t.ok(worst <= 0.25, `max |err| ${worst}`);
});

t.test('LSH candidate rates follow 1 - (1 - s^13)^9, and keys agree exactly when their rows do', async (t) => {
  const { bands, rows } = DEFAULT_MINHASH;
  // 800 pairs a level: a 12-row mistake (0.52 instead of 0.40 at s = 0.8) would be well outside tolerance.
  const perLevel = 800;
  for (const s of [0.5, 0.7, 0.8, 0.9]) {
    const texts: string[] = [];
    for (let p = 0; p < perLevel; p++) {
      const shared = 250 + randInt(150);
      // |A n B| / |A u B| = (shared - 12) / (shared - 12 + 2 own)
      const own = Math.round(((shared - 12) * (1 - s)) / (2 * s));
      const common = randomText(shared);
      texts.push(common + randomText(own), common + randomText(own));
    }
    const r = minhashDocuments(texts, { seed: freshSeed() });
    let candidates = 0;
    let expected = 0;
    let keyMismatch = 0;
    for (let p = 0; p < perLevel; p++) {
      expected += lshCandidateProbability(exactJaccard(texts[2 * p], texts[2 * p + 1]), bands, rows);
      const sa = signatureOf(r, 2 * p);
      const sb = signatureOf(r, 2 * p + 1);
      const ka = bandKeysOf(r, 2 * p);
      const kb = bandKeysOf(r, 2 * p + 1);
      let candidate = false;
      for (let b = 0; b < bands; b++) {
        let rowsEqual = true;
        for (let i = b * rows; i < (b + 1) * rows; i++) rowsEqual &&= sa[i] === sb[i];
        if (rowsEqual !== (ka[b] === kb[b])) keyMismatch++;
        candidate ||= ka[b] === kb[b];
      }
      if (candidate) candidates++;
    }
    const rate = candidates / perLevel;
    const p = expected / perLevel;
    const tol = 4.5 * Math.sqrt((p * (1 - p)) / perLevel) + 0.01;
    t.ok(Math.abs(rate - p) <= tol, `s=${s}: candidate rate ${rate.toFixed(3)} vs ${p.toFixed(3)} (tolerance ${tol.toFixed(3)})`);
    t.equal(keyMismatch, 0, `s=${s}: a band key matches exactly when its ${rows} rows match`);
  }
  t.equal(lshCandidateProbability(1, 9, 13), 1);
  t.equal(lshCandidateProbability(0, 9, 13), 0);
  t.ok(Math.abs(lshCandidateProbability(0.8, 9, 13) - 0.39884) < 1e-5);
});

t.test('identical documents, determinism, seeds', async (t) => {
  const base = randomText(500, MIXED);
  const texts = [base, randomText(300), base, base.slice(0, 400)];
  const a = minhashDocuments(texts, { seed: 7 });
  const b = minhashDocuments(texts, { seed: 7 });
  t.same(signatureOf(a, 0), signatureOf(a, 2), 'identical documents, identical signatures');
  t.same(bandKeysOf(a, 0), bandKeysOf(a, 2), 'and identical band keys');
  t.same(a.signatures, b.signatures, 'the same seed gives the same signatures');
  t.same(a.bandKeys, b.bandKeys);
  const c = minhashDocuments(texts, { seed: 8 });
  let same = 0;
  for (let i = 0; i < a.signatures.length; i++) if (a.signatures[i] === c.signatures[i]) same++;
  t.ok(same < a.signatures.length / 100, `another seed gives other values (${same} of ${a.signatures.length} agree)`);
  for (let i = 0; i < a.bandKeys.length; i++) if (a.bandKeys[i] === c.bandKeys[i]) t.fail(`band key ${i} agrees across seeds`);
  const neg = minhashDocuments(texts, { seed: -5 });
  t.same(neg.signatures, minhashDocuments(texts, { seed: -5 }).signatures, 'negative seeds work and are deterministic');
  const big = minhashDocuments(texts, { seed: 2 ** 53 - 1 });
  t.notSame(big.signatures, a.signatures);
  // Keys come from one stream: fewer permutations give a prefix of the signature.
  const short = minhashDocuments(texts, { seed: 7, numPerm: 40, bands: 3, rows: 13 });
  for (let d = 0; d < texts.length; d++) {
    t.same(signatureOf(short, d), signatureOf(a, d).subarray(0, 40), `numPerm 40 is a prefix of numPerm 128 (doc ${d})`);
  }
  t.equal(estimateJaccard(signatureOf(a, 0), signatureOf(a, 2)), 1);
  t.ok(estimateJaccard(signatureOf(a, 0), signatureOf(a, 1)) < 0.05);
});

t.test('empty and short documents', async (t) => {
  const texts = ['', 'abc', 'abd', 'abc', '', 'é', 'e', '😀', 'abcdefghijkl', 'abcdefghijklm', 'abcdefghijklmn'];
  const r = minhashDocuments(texts);
  for (const i of [0, 4]) {
    t.ok(signatureOf(r, i).every((v) => v === EMPTY_SIGNATURE_VALUE), `empty doc ${i}: every value is 0xFFFFFFFF`);
    t.ok(bandKeysOf(r, i).every((k) => k === EMPTY_BAND_KEY), `empty doc ${i}: every band key is EMPTY_BAND_KEY`);
    t.ok(isEmptySignature(signatureOf(r, i)));
  }
  t.equal(estimateJaccard(signatureOf(r, 0), signatureOf(r, 4)), 0, 'two empty documents are not duplicates');
  t.equal(exactJaccard('', ''), 0);
  for (let i = 0; i < r.count; i++) {
    if (texts[i] === '') continue;
    t.notOk(isEmptySignature(signatureOf(r, i)), `doc ${i} is not empty`);
    for (const k of bandKeysOf(r, i)) if (k === EMPTY_BAND_KEY) t.fail(`doc ${i} has the empty key`);
  }
  t.same(signatureOf(r, 1), signatureOf(r, 3), 'equal short documents agree');
  t.notSame(signatureOf(r, 1), signatureOf(r, 2), 'short documents differing in one character do not');
  t.ok(estimateJaccard(signatureOf(r, 1), signatureOf(r, 2)) < 0.1, 'a short document is one shingle: nothing in common');
  t.ok(estimateJaccard(signatureOf(r, 5), signatureOf(r, 6)) < 0.1, "'é' and 'e' differ");
  // 12 code points: one shingle; 13: one shingle; 14: two, one of which is the 13's.
  t.ok(estimateJaccard(signatureOf(r, 8), signatureOf(r, 9)) < 0.1);
  const j = estimateJaccard(signatureOf(r, 9), signatureOf(r, 10));
  t.ok(j > 0.3 && j < 0.7, `13 vs 14 code points: Jaccard 1/2, estimate ${j}`);
  t.equal(exactJaccard('abcdefghijklm', 'abcdefghijklmn'), 0.5);
  const none = minhashDocuments([]);
  t.equal(none.count, 0);
  t.equal(none.signatures.length, 0);
});

t.test('same bits on every ISA level, thread count, sync and async, offsets type', async (t) => {
  const texts: string[] = [];
  for (let i = 0; i < 150; i++) texts.push(i % 3 === 0 ? randomText(randInt(3000), MIXED) : randomText(randInt(3000)));
  texts.push('', 'x', randomText(200_000)); // one document larger than the others together
  const packed = packDocuments(texts);
  const options = { seed: freshSeed(), numPerm: 100, bands: 7, rows: 14 };
  setIsaLimit('scalar');
  setThreads(1);
  const ref = minhashDocuments(packed, options);
  const detected = backendInfo().cpu.detectedIsa;
  const levels: IsaLevel[] = ['scalar', 'avx2', 'avx512'];
  const ran: string[] = [];
  for (const level of levels) {
    const active = setIsaLimit(level);
    if (active !== level) continue; // the CPU lacks it
    for (const threads of [1, 2, 3]) {
      setThreads(threads);
      const r = minhashDocuments(packed, options);
      t.same(r.signatures, ref.signatures, `${level}, ${threads} threads: signatures`);
      t.same(r.bandKeys, ref.bandKeys, `${level}, ${threads} threads: band keys`);
      ran.push(`${level}/${threads}`);
    }
    const asyncResult = await minhashDocumentsAsync(packed, options);
    t.same(asyncResult.signatures, ref.signatures, `${level}: async agrees`);
    t.same(asyncResult.bandKeys, ref.bandKeys);
  }
  t.comment(`detected ${detected}; compared ${ran.join(', ')}`);
  setIsaLimit('avx512_bf16');
  setThreads(0);
  const f64 = minhashDocuments({ text: packed.text, offsets: Float64Array.from(packed.offsets) }, options);
  t.same(f64.signatures, ref.signatures, 'Float64Array offsets give the same result');
  // A window into a larger buffer: offsets need not start at 0 or end at the text's end.
  const sub = minhashDocuments({ text: packed.text, offsets: packed.offsets.subarray(40, 61) }, options);
  t.same(sub.signatures, ref.signatures.subarray(40 * 100, 60 * 100), 'a slice of the documents');
  const strings = minhashDocuments(texts, options);
  t.same(strings.bandKeys, ref.bandKeys, 'string input packs to the same bytes');
});

t.test('async runs keep their arrays alive and settle in order', async (t) => {
  const texts = Array.from({ length: 64 }, () => randomText(2000));
  const want = minhashDocuments(texts, { seed: 3 });
  // The packed text is referenced only by the pending calls; garbage churns while they run.
  const pending: Promise<MinHashResult>[] = [];
  for (let k = 0; k < 4; k++) pending.push(minhashDocumentsAsync(packDocuments(texts), { seed: 3 }));
  const churn: unknown[] = [];
  for (let i = 0; i < 2000; i++) churn.push(new Uint8Array(4096));
  (globalThis as { gc?: () => void }).gc?.();
  for (const r of await Promise.all(pending)) {
    t.same(r.signatures, want.signatures);
    t.same(r.bandKeys, want.bandKeys);
  }
  const reused = { signatures: new Uint32Array(64 * 128), bandKeys: new BigUint64Array(64 * 9) };
  const r = await minhashDocumentsAsync(texts, { seed: 3 }, reused);
  t.equal(r.signatures, reused.signatures, 'caller buffers are used, not copied');
  t.same(reused.bandKeys, want.bandKeys);
});

t.test('minhash rejects bad arguments, naming the op and the argument', async (t) => {
  const text = new TextEncoder().encode('hello world, hello world');
  const n = 2;
  const sig = new Uint32Array(n * 128);
  const keys = new BigUint64Array(n * 9);
  const offsets = new Uint32Array([0, 10, 24]);
  const call = (...over: [number, unknown][]) => {
    const args: unknown[] = [sig, keys, text, offsets, 128, 13, 9, 13, 1];
    for (const [i, v] of over) args[i] = v;
    return () => (ops.minhashSignatures as (...a: unknown[]) => void)(...args);
  };
  const bad: [string, () => void, RegExp][] = [
    ['signatures type', call([0, new Int32Array(n * 128)]), /minhashSignatures: argument 'signatures' \(#0\) must be a Uint32Array, got Int32Array/],
    ['bandKeys type', call([1, new BigInt64Array(n * 9)]), /'bandKeys' \(#1\) must be a BigUint64Array, got BigInt64Array/],
    ['text type', call([2, 'hello']), /'text' \(#2\) must be a Uint8Array, got string/],
    ['offsets type', call([3, new Int32Array([0, 10, 24])]), /'offsets' \(#3\) must be a Uint32Array or Float64Array, got Int32Array/],
    ['offsets missing', call([3, undefined]), /'offsets' \(#3\) must be a Uint32Array or Float64Array, got undefined/],
    ['offsets empty', call([3, new Uint32Array(0)]), /'offsets' must hold n \+ 1 >= 1 byte offsets/],
    ['offsets decreasing', call([3, new Uint32Array([0, 12, 10])], [0, new Uint32Array(256)]), /'offsets' must be non-decreasing, but offsets\[2\] = 10 < offsets\[1\] = 12/],
    ['offsets past the text', call([3, new Uint32Array([0, 10, 25])]), /'offsets'\[2\] = 25 is past the end of 'text' \(24 bytes\)/],
    ['offsets fractional', call([3, new Float64Array([0, 1.5, 24])]), /'offsets'\[1\] = 1.5 is not a non-negative integer/],
    ['offsets negative', call([3, new Float64Array([-1, 10, 24])]), /'offsets'\[0\] = -1 is not a non-negative integer/],
    ['offsets NaN', call([3, new Float64Array([0, NaN, 24])]), /'offsets'\[1\] = nan is not a non-negative integer/i],
    ['signatures length', call([0, new Uint32Array(255)]), /'signatures' must hold n \* numPerm = 2 \* 128 = 256 values, got 255/],
    ['bandKeys length', call([1, new BigUint64Array(19)]), /'bandKeys' must hold n \* bands = 2 \* 9 = 18 keys, got 19/],
    ['numPerm 0', call([4, 0]), /'numPerm' must be an integer in \[1, 1024\], got 0/],
    ['numPerm too big', call([4, 1025]), /'numPerm' must be an integer in \[1, 1024\], got 1025/],
    ['numPerm fractional', call([4, 12.5]), /'numPerm' must be an integer, got 12.5/],
    ['shingleChars 0', call([5, 0]), /'shingleChars' must be an integer in \[1, 1024\], got 0/],
    ['bands 0', call([6, 0]), /'bands' must be an integer in \[1, 128\], got 0/],
    ['rows 0', call([7, 0]), /'rows' must be an integer in \[1, 128\], got 0/],
    ['bands * rows', call([6, 10]), /bands \* rows = 10 \* 13 = 130 must be at most numPerm = 128/],
    ['seed fractional', call([8, 0.5]), /'seed' must be a safe integer, got 0.5/],
    ['seed unsafe', call([8, 2 ** 60]), /'seed' must be a safe integer/],
    ['seed string', call([8, '1']), /argument 'seed' \(#8\) must be a number/],
    ['extra argument', call([9, 1]), /expected 9 arguments, got 10/],
  ];
  const shared = new ArrayBuffer(4096);
  bad.push([
    'outputs overlap',
    call([0, new Uint32Array(shared, 0, 256)], [1, new BigUint64Array(shared, 1024 - 8, 18)]),
    /'signatures' and 'bandKeys' share memory/,
  ]);
  const textShared = new Uint8Array(shared, 0, 24);
  bad.push(['output over the input', call([2, textShared], [0, new Uint32Array(shared, 0, 256)]), /'signatures' and 'text' share memory/]);
  for (const [what, fn, re] of bad) {
    t.throws(fn, re, what);
    try {
      fn();
    } catch (e) {
      t.ok(e instanceof TypeError && (e as { code?: string }).code === 'ERR_PAJAMA_INVALID_ARG', `${what}: TypeError ERR_PAJAMA_INVALID_ARG`);
    }
  }
  await t.rejects(
    (ops.minhashSignaturesAsync as (...a: unknown[]) => Promise<void>)(sig, keys, text, new Uint32Array([0, 30, 24]), 128, 13, 9, 13, 1),
    /minhashSignatures(Async)?: 'offsets'\[1\] = 30 is past the end/,
    'async rejects',
  );
  t.same(sig, new Uint32Array(n * 128), 'nothing was written by the failed calls');

  // The TS layer checks options and shapes before the native call.
  t.throws(() => minhashDocuments(['a'], { numPerm: 0 }), /minhashDocuments: numPerm must be an integer in \[1, 1024\], got 0/);
  t.throws(() => minhashDocuments(['a'], { bands: 20 } as Partial<MinHashOptions>), /bands \* rows = 20 \* 13 = 260 must be at most numPerm = 128/);
  t.throws(() => minhashDocuments(['a'], { permutations: 5 } as unknown as Partial<MinHashOptions>), /unknown option 'permutations'/);
  t.throws(() => minhashDocuments(['a'], { seed: 1.5 }), /seed must be a safe integer/);
  t.throws(() => minhashDocuments(['a', 3 as unknown as string]), /texts\[1\] is not a string/);
  t.throws(() => minhashDocuments({ text: 'x', offsets: new Uint32Array([0, 1]) } as unknown as { text: Uint8Array; offsets: Uint32Array }), /docs.text must be a Uint8Array/);
  t.throws(() => minhashDocuments(['a', 'b'], {}, { signatures: new Uint32Array(128) }), /out.signatures must be a Uint32Array of 2 \* 128 values, got Uint32Array\(128\)/);
  await t.rejects(minhashDocumentsAsync(['a'], { rows: 0 }), /minhashDocumentsAsync: rows must be an integer/);
  t.throws(() => estimateJaccard(new Uint32Array(3), new Uint32Array(4)), /same non-zero length/);
  t.throws(() => lshCandidateProbability(1.5, 9, 13), /s must be in \[0, 1\]/);
});

// ---- sortKeyIds ------------------------------------------------------------------------------------------

type KeyGen = (n: number) => { keys: BigUint64Array; ids: Uint32Array };

const keyGens: Record<string, KeyGen> = {
  'random keys, unique ids': (n) => ({ keys: BigUint64Array.from({ length: n }, u64), ids: Uint32Array.from({ length: n }, (_, i) => i) }),
  'few distinct keys, random ids': (n) => {
    const pool = Array.from({ length: 37 }, u64);
    return { keys: BigUint64Array.from({ length: n }, () => pool[randInt(pool.length)]), ids: Uint32Array.from({ length: n }, u32) };
  },
  'small keys (top bytes equal), ids with repeats': (n) => ({
    keys: BigUint64Array.from({ length: n }, () => BigInt(randInt(5000))),
    ids: Uint32Array.from({ length: n }, () => randInt(1000)),
  }),
  'keys differing only in the top byte': (n) => ({
    keys: BigUint64Array.from({ length: n }, () => (BigInt(randInt(256)) << 56n) | 0x1234n),
    ids: Uint32Array.from({ length: n }, u32),
  }),
  'one key': (n) => ({ keys: new BigUint64Array(n).fill(EMPTY_BAND_KEY), ids: Uint32Array.from({ length: n }, u32) }),
  'already sorted': (n) => {
    const keys = BigUint64Array.from({ length: n }, u64).sort();
    return { keys, ids: Uint32Array.from({ length: n }, (_, i) => i) };
  },
  'reverse sorted': (n) => {
    const keys = BigUint64Array.from({ length: n }, u64).sort().reverse();
    return { keys, ids: Uint32Array.from({ length: n }, (_, i) => n - i) };
  },
};

function referenceSort(keys: BigUint64Array, ids: Uint32Array): { keys: BigUint64Array; ids: Uint32Array } {
  const order = Array.from({ length: keys.length }, (_, i) => i);
  order.sort((a, b) => (keys[a] < keys[b] ? -1 : keys[a] > keys[b] ? 1 : ids[a] - ids[b]));
  return { keys: BigUint64Array.from(order, (i) => keys[i]), ids: Uint32Array.from(order, (i) => ids[i]) };
}

t.test('sortKeyIds sorts by (key, id) like a JS sort', async (t) => {
  const sizes = [0, 1, 2, 47, 48, 49, 1000, 70_001];
  for (const [name, gen] of Object.entries(keyGens)) {
    for (const n of sizes) {
      const { keys, ids } = gen(n);
      const want = referenceSort(keys, ids);
      sortKeyIds(keys, ids);
      t.ok(equalArrays(keys, want.keys) && equalArrays(ids, want.ids), `${name}, n=${n}`);
    }
  }
});

t.test('sortKeyIds: large inputs on 1 and 2 threads, async', async (t) => {
  for (const name of ['random keys, unique ids', 'few distinct keys, random ids', 'small keys (top bytes equal), ids with repeats']) {
    const { keys, ids } = keyGens[name](300_001);
    const want = referenceSort(keys, ids);
    for (const threads of [1, 2]) {
      setThreads(threads);
      const k = keys.slice();
      const i = ids.slice();
      sortKeyIds(k, i);
      t.ok(equalArrays(k, want.keys) && equalArrays(i, want.ids), `${name}, ${threads} threads`);
    }
    setThreads(0);
    const k = keys.slice();
    const i = ids.slice();
    await sortKeyIdsAsync(k, i);
    t.ok(equalArrays(k, want.keys) && equalArrays(i, want.ids), `${name}, async`);
  }
  // Subarray views sort only their window.
  const { keys, ids } = keyGens['random keys, unique ids'](1000);
  const before = keys.slice();
  sortKeyIds(keys.subarray(100, 900), ids.subarray(100, 900));
  t.ok(equalArrays(keys.subarray(0, 100), before.subarray(0, 100)) && equalArrays(keys.subarray(900), before.subarray(900)), 'outside the view untouched');
  t.ok(isSorted(keys.subarray(100, 900)), 'inside sorted');
});

t.test('sortKeyIds rejects bad arguments', async (t) => {
  t.throws(() => sortKeyIds(new BigUint64Array(3), new Uint32Array(2)), /sortKeyIds: keys \(3\) and ids \(2\) must have the same length/);
  t.throws(() => sortKeyIds(new BigInt64Array(2) as unknown as BigUint64Array, new Uint32Array(2)), /keys must be a BigUint64Array, got BigInt64Array\(2\)/);
  const native = ops.sortKeyIds as (...a: unknown[]) => void;
  t.throws(() => native(new BigUint64Array(3), new Uint32Array(2)), /sortKeyIds: 'keys' \(3\) and 'ids' \(2\) must have the same length/);
  t.throws(() => native(new BigUint64Array(2), new Int32Array(2)), /sortKeyIds: argument 'ids' \(#1\) must be a Uint32Array, got Int32Array/);
  t.throws(() => native([1n, 2n], new Uint32Array(2)), /argument 'keys' \(#0\) must be a BigUint64Array, got Array/);
  const buf = new ArrayBuffer(64);
  t.throws(() => native(new BigUint64Array(buf, 0, 4), new Uint32Array(buf, 16, 4)), /'keys' and 'ids' share memory/);
  await t.rejects((ops.sortKeyIdsAsync as (...a: unknown[]) => Promise<void>)(new BigUint64Array(1), new Uint32Array(2)), /must have the same length/);
});

function equalArrays(a: ArrayLike<bigint | number>, b: ArrayLike<bigint | number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function isSorted(k: BigUint64Array): boolean {
  for (let i = 1; i < k.length; i++) if (k[i - 1] > k[i]) return false;
  return true;
}
