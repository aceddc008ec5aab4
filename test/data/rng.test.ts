// The seedable PRNG against the reference C code of SplitMix64 and xoshiro128** 1.1, its saved state, and
// the range of below().
import t from 'tap';
import { Xoshiro128, splitMix64 } from '../../lib/data/index';

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
