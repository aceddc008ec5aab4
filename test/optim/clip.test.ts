// clip: the global gradient norm over an arena against float64, the clipping scale (returned, gradients
// untouched) with and without a pre-scale, NaN/Inf reported as a NaN norm and scale that AdamW refuses.
import t from 'tap';
import { Arena, Tensor } from '../../lib/index';
import { AdamW, clipGradNorm, clipGradNormAsync, gradNorm, gradNormAsync } from '../../lib/optim/index';
import { randn, seed } from '../helpers/reference';

t.comment(`seed ${seed}`);

t.test('known values: the norm of [3, 4] is 5', async (t) => {
  const g = Tensor.from(new Float32Array([3, 4]));
  t.same(gradNorm(g), { norm: 5, nonFinite: 0 });
  t.same(await gradNormAsync(g), { norm: 5, nonFinite: 0 }, 'async form');
  const c = clipGradNorm(g, 1);
  t.equal(c.norm, 5, 'the norm before clipping');
  t.equal(c.scale, 1 / (5 + 1e-6), 'scale = maxNorm / (norm + 1e-6)');
  t.ok(Math.abs(c.scale - 0.2) < 1e-7, `about 1/5: ${c.scale}`);
  t.same(await clipGradNormAsync(g, 1), c, 'async form');
  t.equal(clipGradNorm(g).scale, c.scale, 'maxNorm defaults to 1');
  t.equal(clipGradNorm(g, 5.5).scale, 1, 'under maxNorm: scale 1');
  t.same(Array.from(g.toFloat32()), [3, 4], 'the gradients are not touched');
  const pre = clipGradNorm(g, 1, { preScale: 0.5 });
  t.equal(pre.norm, 2.5, 'preScale: the norm of the scaled gradients');
  t.equal(pre.scale, 0.5 * (1 / (2.5 + 1e-6)), 'preScale folded into the scale');
  t.equal(clipGradNorm(g, 10, { preScale: 0.25 }).scale, 0.25, 'unclipped: the pre-scale alone');
  g.dispose();
});

t.test('an arena: the norm over every entry against float64', async (t) => {
  const grads = new Arena('f32', [['a.weight', [317, 211]], ['b.weight', [211]], ['c', [3, 5, 7]]]);
  const x = Float32Array.from(randn(grads.numel, 0.01));
  grads.buffer.copyFrom(x);
  let want = 0;
  for (const v of x) want += v * v;
  want = Math.sqrt(want);
  const { norm, nonFinite } = gradNorm(grads);
  t.ok(Math.abs(norm - want) / want < 1e-12, `norm ${norm} vs ${want}`);
  t.equal(nonFinite, 0);
  grads.get('b.weight').fill(0);
  grads.get('c').fill(0);
  const onlyA = gradNorm(grads.get('a.weight')).norm;
  t.equal(gradNorm(grads).norm, onlyA, 'a view (Tensor) works too');
  grads.dispose();
});

t.test('non-finite gradients: counted, NaN norm and scale, and AdamW refuses the scale', async (t) => {
  const grads = new Arena('f32', [['w', [4, 4]], ['n', [4]]]);
  const params = grads.like();
  const x = new Float32Array(20).fill(1);
  x[3] = NaN;
  grads.buffer.copyFrom(x);
  const r = clipGradNorm(grads, 1);
  t.equal(r.nonFinite, 1);
  t.ok(Number.isNaN(r.norm) && Number.isNaN(r.scale), 'norm and scale are NaN');
  x[3] = 1;
  x[17] = -Infinity;
  x[18] = Infinity;
  grads.buffer.copyFrom(x);
  const a = await clipGradNormAsync(grads);
  t.equal(a.nonFinite, 2, '+-Inf counted');
  t.ok(Number.isNaN(a.norm) && Number.isNaN(a.scale));
  t.same(gradNorm(grads).nonFinite, 2);
  const opt = new AdamW(params, grads);
  t.throws(() => opt.step({ lr: 1e-3, weightDecay: 0.1, gradScale: a.scale }), /'gradScale' must be a finite number > 0, got NaN \(when the gradients are not finite, skip the step\)/);
  opt.dispose();
  params.dispose();
  grads.dispose();
});

t.test('clip rejects bad arguments', async (t) => {
  const g = Tensor.from(new Float32Array([1, 2]));
  t.throws(() => clipGradNorm(g, 0), /clipGradNorm: maxNorm must be a finite number > 0, got 0/);
  t.throws(() => clipGradNorm(g, NaN), /clipGradNorm: maxNorm must be a finite number > 0, got NaN/);
  t.throws(() => clipGradNorm(g, 1, { preScale: -1 }), /clipGradNorm: option 'preScale' must be a finite number > 0, got -1/);
  t.throws(() => clipGradNorm(g, 1, { scale: 1 } as object), /clipGradNorm: unknown option 'scale' \(known: preScale\)/);
  t.throws(() => gradNorm(new Float32Array([1]) as unknown as Tensor), /gradNorm: grads must be an Arena or a Tensor, got a Float32Array/);
  await t.rejects(clipGradNormAsync(g, -2), /clipGradNormAsync: maxNorm must be a finite number > 0, got -2/);
  const i = Tensor.zeros('i32', [2]);
  t.throws(() => gradNorm(i), /sumSquares: 't' must be f32 or bf16, got i32/);
  g.dispose();
  i.dispose();
});
