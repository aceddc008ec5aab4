// The pieces of data-parallel training that need no second rank: the gradient buckets (they cover the
// buffer once, in order, at the size asked, rounded to 64-byte lines) and the all-reduce over views of the
// gradient arena in a world of one (no views, no time); and the start-up identity check's wording.
import t from 'tap';
import { Tensor } from '../../lib/core/tensor';
import { WorldOfOne } from '../../lib/dist/communicator';
import { GradientAllReduce, gradientBuckets } from '../../lib/dist/ddp';
import { canonicalJson, checkSameRun, describeDifferences } from '../../lib/dist/identity';

t.test('gradient buckets cover the buffer exactly once, in order, bucketMB each', async (t) => {
  const covers = (numel: number, mb: number) => {
    const bs = gradientBuckets(numel, mb);
    let next = 0;
    for (const b of bs) {
      if (b.offset !== next || b.count < 1) return false;
      next += b.count;
    }
    return next === numel;
  };
  for (const [numel, mb] of [[0, 25], [1, 25], [65728, 25], [65728, 0.01], [1_000_003, 1], [7, 1e-9], [4 * 2 ** 18 + 5, 1]] as const) {
    t.ok(covers(numel, mb), `${numel} elements in ${mb} MiB buckets`);
  }
  t.same(gradientBuckets(0, 25), [], 'no gradients, no buckets');
  t.same(gradientBuckets(10, 25), [{ offset: 0, count: 10 }], 'one bucket when the buffer is smaller');
  const mib = 2 ** 18; // f32 values in 1 MiB
  t.same(gradientBuckets(2 * mib + 3, 1), [{ offset: 0, count: mib }, { offset: mib, count: mib }, { offset: 2 * mib, count: 3 }], '1 MiB buckets, the last one short');
  t.equal(gradientBuckets(10_000, 0.01)[0].count, 2608, '0.01 MiB = 2621.44 f32 values, rounded down to whole 64-byte lines (16 values)');
  t.equal(gradientBuckets(100, 1e-6)[0].count, 1, 'a bucket below one line is rounded to whole elements, at least one');
  t.equal(gradientBuckets(1000, 1e-3, 2)[0].count, 512, 'bf16: 1 KiB = 512 values');
  t.equal(gradientBuckets(25 * mib * 3, 25).length, 3, '25 MiB default: 3 buckets for 75 MiB of gradients');
  t.throws(() => gradientBuckets(10, 0), { code: 'ERR_PAJAMA_INVALID_ARG', message: 'gradientBuckets: bucketMB must be a positive number, got 0' });
  t.throws(() => gradientBuckets(-1, 1), { message: 'gradientBuckets: numel must be a non-negative integer, got -1' });
  t.throws(() => gradientBuckets(10, Infinity), { message: /bucketMB must be a positive number, got Infinity/ });
});

t.test('in a world of one the gradient all-reduce makes no views and takes no time', async (t) => {
  const grads = Tensor.from(Float32Array.from([1, 2, 3]));
  const r = new GradientAllReduce(new WorldOfOne(), grads, 25);
  t.equal(await r.reduce(), 0);
  t.same([...grads.toFloat32()], [1, 2, 3]);
  r.dispose();
  r.dispose();
  const bf = Tensor.zeros('bf16', [4]);
  t.throws(() => new GradientAllReduce(new WorldOfOne(), bf, 25), { message: /gradients are reduced in f32/ });
  grads.dispose();
  bf.dispose();
});

t.test('the identity check: canonical JSON, the differences named by key, a world of one passes', async (t) => {
  t.equal(canonicalJson({ b: 1, a: [1, { d: null, c: 'x' }] }), '{"a":[1,{"c":"x","d":null}],"b":1}', 'keys sorted at every level');
  t.same(describeDifferences({ optimizer: { lr: 1e-3, eps: 1e-8 }, steps: 10 }, { optimizer: { lr: 3e-3, eps: 1e-8 }, steps: 10 }), ["'optimizer.lr' is 0.001 here and 0.003 on rank 0"]);
  t.same(describeDifferences({ train: [{ path: 'a', bytes: 10 }] }, { train: [{ path: 'a', bytes: 12 }, { path: 'b', bytes: 1 }] }), [
    "'train[0].bytes' is 10 here and 12 on rank 0",
    "'train[1].bytes' is absent here and 1 on rank 0",
    "'train[1].path' is absent here and \"b\" on rank 0",
  ]);
  t.same(describeDifferences('0.3.0', '0.2.0'), ['is "0.3.0" here and "0.2.0" on rank 0'], 'a plain value');
  t.equal(describeDifferences({ a: 1, b: 2, c: 3, d: 4, e: 5 }, {}).length, 4, 'three differences, then how many more');
  await checkSameRun(new WorldOfOne(), { config: { a: 1 } });
});
