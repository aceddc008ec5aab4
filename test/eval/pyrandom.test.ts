// PyRandom against CPython 3.11's random.Random: the expected vectors were printed by /usr/bin/python3 with
// the command in the comment above each (so the few-shot draws are the evaluation harness's).
import t from 'tap';
import { PyRandom } from '../../lib/eval/pyrandom';

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

t.test('MT19937 seeded like random.Random(int)', async (t) => {
  // python3 -c "import random; r=random.Random(1234); print([r.getrandbits(32) for _ in range(5)])"
  const r = new PyRandom(1234);
  t.same(range(5).map(() => r.getrandbits(32)), [4150886329, 3342196574, 1892932127, 501869158, 32175636]);
  // python3 -c "import random; r=random.Random(0); print([r.getrandbits(32) for _ in range(3)], r.getrandbits(53), r.getrandbits(40), r.getrandbits(7))"
  const z = new PyRandom(0);
  t.same(range(3).map(() => z.getrandbits(32)), [3626764237, 1654615998, 3255389356]);
  t.equal(z.getrandbits(53), 3788173568575106, 'two words, least significant first');
  t.equal(z.getrandbits(40), 283641720628);
  t.equal(z.getrandbits(7), 123, 'top bits of one word');
  // A seed above 2^32 is two key words: python3 -c "import random; r=random.Random(2**40+5); print([r.getrandbits(32) for _ in range(3)])"
  const big = new PyRandom(2 ** 40 + 5);
  t.same(range(3).map(() => big.getrandbits(32)), [2166296868, 2220160828, 1153647273]);
  t.same(range(3).map(() => new PyRandom(2n ** 40n + 5n).getrandbits(32))[0], 2166296868, 'bigint seed');
  // Negative seeds use their absolute value: python3 -c "import random; r=random.Random(-7); print([r._randbelow(1000) for _ in range(5)])"
  const neg = new PyRandom(-7);
  t.same(range(5).map(() => neg.randbelow(1000)), [331, 970, 154, 404, 666]);
});

t.test('random.sample: the set algorithm (large populations) and the pool algorithm (small ones)', async (t) => {
  // python3 -c "import random; r=random.Random(1234); print(r.sample(range(1119),25))"   (ARC-Challenge's train split, 25-shot)
  t.same(new PyRandom(1234).sample(range(1119), 25), [
    902, 239, 15, 185, 71, 171, 201, 726, 484, 35, 63, 32, 708, 991, 949, 304, 186, 374, 234, 29, 1030, 996, 511, 132, 1108,
  ]);
  // python3 -c "import random; r=random.Random(1234); print([r.sample(range(39905),10) for _ in range(2)])"   (HellaSwag's train split, 10-shot)
  const h = new PyRandom(1234);
  t.same(h.sample(range(39905), 10), [28883, 7657, 490, 5940, 38156, 2288, 5500, 6450, 23241, 15519]);
  t.same(h.sample(range(39905), 10), [1142, 2019, 1038, 22681, 31735, 30379, 9735, 5982, 11999, 7498], 'the generator carries on');
  // python3 -c "import random; r=random.Random(1234); print(r.sample(range(20),10), r.sample(range(20),10))"
  const p = new PyRandom(1234);
  t.same(p.sample(range(20), 10), [14, 3, 0, 2, 1, 10, 11, 15, 12, 5]);
  t.same(p.sample(range(20), 10), [7, 0, 18, 17, 11, 10, 9, 19, 13, 12]);
  // Both sides of the setsize threshold at k = 6 (setsize 21 + 64 = 85):
  // python3 -c "import random; r=random.Random(42); print(r.sample(range(6),6), r.sample(range(300),6), r.sample(range(22),6))"
  const q = new PyRandom(42);
  t.same(q.sample(range(6), 6), [5, 0, 4, 2, 1, 3]);
  t.same(q.sample(range(300), 6), [114, 71, 52, 279, 44, 216]);
  t.same(q.sample(range(22), 6), [1, 0, 2, 6, 7, 16]);
  t.same(new PyRandom(1).sample(['a', 'b'], 0), [], 'k = 0');
});

t.test('bad arguments', async (t) => {
  const r = new PyRandom(1);
  t.throws(() => r.sample([1, 2, 3], 4), /sample larger than population/);
  t.throws(() => r.sample([1, 2, 3], -1), /sample larger than population/);
  t.throws(() => r.randbelow(0), /n must be a positive safe integer/);
  t.throws(() => r.getrandbits(54), /k must be an integer in \[0, 53\]/);
  t.throws(() => new PyRandom(0.5), /seed must be a safe integer/);
});
