// The seeded generator family (lib/core/rng.ts): SplitMix64 and xoshiro128** against the reference C code,
// Xoshiro128's saved state and the range of below(); Mulberry32, uniform() and the normal sampler of model
// initialisation against straightforward reimplementations written here from their definitions.
import t from 'tap';
import { Xoshiro128, splitMix64 } from '../../lib/index';
import * as core from '../../lib/core/rng';
import { Mulberry32, normalSampler, seededNormal, uniform, uniform53 } from '../../lib/core/rng';
import { makeRng } from '../helpers/reference';

// From the reference C (splitmix64.c, xoshiro128starstar.c) compiled with gcc.
const SPLITMIX_1234567 = [6457827717110365317n, 3203168211198807973n, 9817491932198370423n];
const XOSHIRO_1234 = [11520, 0, 5927040, 70819200, 2031721883, 1637235492];
const SEED42_STATE = [803958421, 3184996902, 2993090819, 686809907];
const SEED42_OUT = [1776835114, 4165204688, 17111135, 2317295270, 2792088233, 2554630222];

t.test('SplitMix64 and xoshiro128** match the reference outputs', async (t) => {
  t.same(splitMix64(1234567n, 3), SPLITMIX_1234567);
  const g = Xoshiro128.fromState([1, 2, 3, 4]);
  t.same(Array.from({ length: 6 }, () => g.nextU32()), XOSHIRO_1234);
  const s = Xoshiro128.fromSeed(42);
  t.same(s.state(), SEED42_STATE, 'seeded from two SplitMix64 outputs, low word first');
  t.same(Array.from({ length: 6 }, () => s.nextU32()), SEED42_OUT);
});

t.test('a saved state resumes the exact stream, through JSON', async (t) => {
  const a = Xoshiro128.fromSeed(7);
  for (let i = 0; i < 1000; i++) a.nextU32();
  const b = Xoshiro128.fromState(JSON.parse(JSON.stringify(a.state())));
  const fromA = Array.from({ length: 100 }, () => a.below(1e12));
  const fromB = Array.from({ length: 100 }, () => b.below(1e12));
  t.same(fromB, fromA);
  t.notSame(Xoshiro128.fromSeed(8).nextU32(), Xoshiro128.fromSeed(7).nextU32());
  t.throws(() => Xoshiro128.fromState([0, 0, 0, 0]), /all-zero/);
  t.throws(() => Xoshiro128.fromState([1, 2, 3]), TypeError);
  t.throws(() => Xoshiro128.fromState([1, 2, 3, 2 ** 32]), TypeError);
  t.throws(() => Xoshiro128.fromSeed(1.5), TypeError);
});

t.test('below(n) is in range and roughly uniform, for small and 53-bit n', async (t) => {
  const g = Xoshiro128.fromSeed(123);
  const counts = new Array(10).fill(0);
  const N = 100_000;
  for (let i = 0; i < N; i++) counts[g.below(10)]++;
  const chi2 = counts.reduce((s, c) => s + (c - N / 10) ** 2 / (N / 10), 0);
  t.ok(chi2 < 30, `chi-square ${chi2.toFixed(1)} over 9 degrees of freedom`);
  // n = 3 * 2^40: all three thirds are reached, nothing at or past n.
  const big = 3 * 2 ** 40;
  const thirds = [0, 0, 0];
  const outside: number[] = [];
  for (let i = 0; i < 3000; i++) {
    const x = g.below(big);
    if (!(Number.isInteger(x) && x >= 0 && x < big)) outside.push(x);
    else thirds[Math.floor(x / 2 ** 40)]++;
  }
  t.same(outside, [], 'every value an integer in [0, n)');
  t.ok(thirds.every((c) => c > 800), `thirds ${thirds}`);
  t.equal(g.below(1), 0);
  t.throws(() => g.below(0), TypeError);
  t.throws(() => g.below(2 ** 53 + 2), TypeError);
});

/**
 * mulberry32 from its C definition, in BigInt arithmetic mod 2^32 (no Math.imul or >>> 0 tricks):
 *   z = (state += 0x6D2B79F5); z = (z ^ z >> 15) * (z | 1); z ^= z + (z ^ z >> 7) * (z | 61); return z ^ z >> 14;
 */
function referenceMulberry32(seed: number): () => bigint {
  const M = 0xffffffffn;
  let state = BigInt(seed >>> 0); // the C state is a uint32_t: the seed converts mod 2^32
  return () => {
    state = (state + 0x6d2b79f5n) & M;
    let z = state;
    z = ((z ^ (z >> 15n)) * (z | 1n)) & M;
    z = (z ^ ((z + (((z ^ (z >> 7n)) * (z | 61n)) & M)) & M)) & M;
    return z ^ (z >> 14n);
  };
}

/** Box-Muller as the init defines it: u = (x + 1) / (2^32 + 1), v = y / 2^32, then r cos, r sin. */
function referenceNormals(seed: number, n: number): number[] {
  const next = referenceMulberry32(seed);
  const out: number[] = [];
  while (out.length < n) {
    const u = (Number(next()) + 1) / (2 ** 32 + 1);
    const v = Number(next()) / 2 ** 32;
    const r = Math.sqrt(-2 * Math.log(u));
    out.push(r * Math.cos(2 * Math.PI * v), r * Math.sin(2 * Math.PI * v));
  }
  return out.slice(0, n);
}

const SEEDS = [0, 1, 42, 0x5eed, 123456789, 2 ** 32 - 1, 2 ** 32 + 5, -7, 1.5, 2 ** 40 + 3];

/** The first index where two number lists differ bit for bit (Object.is), or -1. */
function firstDifference(a: number[], b: number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) if (!Object.is(a[i], b[i])) return i;
  return -1;
}

t.test('Mulberry32 matches mulberry32 from its C definition, for any seed (taken mod 2^32)', async (t) => {
  for (const s of SEEDS) {
    const g = new Mulberry32(s);
    const ref = referenceMulberry32(s);
    const got = Array.from({ length: 2000 }, () => g.nextU32());
    const want = Array.from({ length: 2000 }, () => Number(ref()));
    t.equal(firstDifference(got, want), -1, `seed ${s}`);
  }
  t.notSame(new Mulberry32(1).nextU32(), new Mulberry32(2).nextU32());
});

t.test('uniform() and the tests\' makeRng are u32 / 2^32 of the same stream', async (t) => {
  for (const s of SEEDS) {
    const ref = referenceMulberry32(s);
    const want = Array.from({ length: 500 }, () => Number(ref()) / 2 ** 32);
    const g = new Mulberry32(s);
    t.equal(firstDifference(Array.from({ length: 500 }, () => uniform(g)), want), -1, `uniform, seed ${s}`);
    const r = makeRng(s);
    t.equal(firstDifference(Array.from({ length: 500 }, () => r()), want), -1, `makeRng, seed ${s}`);
  }
  const x = Xoshiro128.fromSeed(3);
  const y = Xoshiro128.fromSeed(3);
  t.equal(uniform(x), y.nextU32() / 2 ** 32, 'any U32Source will do');
});

t.test('uniform53() is the top 27 + 26 bits of two u32, exactly k / 2^53 (generation samples with it)', async (t) => {
  for (const s of SEEDS) {
    const ref = referenceMulberry32(s);
    const g = new Mulberry32(s);
    let worst = -1;
    for (let i = 0; i < 500 && worst < 0; i++) {
      const hi = BigInt(Number(ref()) >>> 5);
      const lo = BigInt(Number(ref()) >>> 6);
      const k = (hi << 26n) | lo; // an integer below 2^53, so Number(k) / 2^53 is exact
      const u = uniform53(g);
      if (u !== Number(k) / 2 ** 53 || u < 0 || u >= 1) worst = i;
    }
    t.equal(worst, -1, `seed ${s}`);
  }
  // The extremes: all-zero bits give 0, all-one bits the largest double below 1.
  t.equal(uniform53({ nextU32: () => 0 }), 0);
  t.equal(uniform53({ nextU32: () => 0xffffffff }), 1 - 2 ** -53);
});

t.test('seededNormal, the init sampler, is Box-Muller over mulberry32, bit for bit', async (t) => {
  for (const s of SEEDS) {
    const n = 4001; // odd: the last draw leaves a spare unread
    const rand = seededNormal(s);
    t.equal(firstDifference(Array.from({ length: n }, () => rand()), referenceNormals(s, n)), -1, `seed ${s}`);
  }
  const viaSource = normalSampler(new Mulberry32(9));
  const direct = seededNormal(9);
  t.same(Array.from({ length: 7 }, () => viaSource()), Array.from({ length: 7 }, () => direct()));
  // A sanity check on the distribution, so a reference that shared a bug with the code would still be caught.
  const rand = seededNormal(2024);
  const N = 200_000;
  let sum = 0;
  let sumSq = 0;
  let finite = true;
  for (let i = 0; i < N; i++) {
    const x = rand();
    finite &&= Number.isFinite(x);
    sum += x;
    sumSq += x * x;
  }
  t.ok(finite, 'every sample finite (u is never 0)');
  t.ok(Math.abs(sum / N) < 0.01, `mean ${(sum / N).toFixed(4)}`);
  t.ok(Math.abs(sumSq / N - 1) < 0.02, `variance ${(sumSq / N).toFixed(4)}`);
});

t.test('the family is one module: the public API re-exports it', async (t) => {
  t.equal(Xoshiro128, core.Xoshiro128);
  t.equal(splitMix64, core.splitMix64);
});
