// ALiBi slopes match llm-foundry's gen_slopes (alibi_bias_max 8), including its interleaving for head
// counts that are not powers of two.
import t from 'tap';
import { alibiSlopes } from '../../lib/model/alibi';

t.test('power-of-two heads: 2^(-8 i / n)', async (t) => {
  t.same(Array.from(alibiSlopes(8)), [1, 2, 3, 4, 5, 6, 7, 8].map((i) => 2 ** -i));
  t.same(Array.from(alibiSlopes(1)), [2 ** -8]);
  const s32 = alibiSlopes(32);
  t.equal(s32.length, 32);
  t.equal(s32[0], Math.fround(2 ** -0.25));
  t.equal(s32[31], 2 ** -8);
});

t.test('other head counts interleave like MPT (odd-indexed slopes first)', async (t) => {
  // n = 16: exponents 0.5, 1, ..., 8; slopes[1::2] = 2^-1..2^-8, then slopes[::2] = 2^-0.5, 2^-1.5, ...
  const want12 = [1, 2, 3, 4, 5, 6, 7, 8, 0.5, 1.5, 2.5, 3.5].map((e) => Math.fround(2 ** -e));
  t.same(Array.from(alibiSlopes(12)), want12);
  // n = 4: exponents 2, 4, 6, 8 -> [2^-4, 2^-8, 2^-2]
  t.same(Array.from(alibiSlopes(3)), [2 ** -4, 2 ** -8, 2 ** -2]);
  t.same(Array.from(alibiSlopes(6)), [2, 4, 6, 8, 1, 3].map((e) => 2 ** -e));
});

t.test('bad arguments', async (t) => {
  t.throws(() => alibiSlopes(0), /nHeads must be a positive integer/);
  t.throws(() => alibiSlopes(4, 0), /alibiBiasMax must be positive/);
});
