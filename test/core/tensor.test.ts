// Tensors and arenas: copies, bf16 rounding, views, disposal and its errors, async ops and the event loop.
import t from 'tap';
import { Arena, DisposedError, Tensor, ops } from '../../lib/index';
import { roundBf16 } from '../helpers/reference';

t.test('copy in and out for every dtype', async (t) => {
  const f = Tensor.from(new Float32Array([1.5, -2, 3.25]), [3]);
  t.same(Array.from(f.toFloat32()), [1.5, -2, 3.25]);
  t.equal(f.dtype, 'f32');
  t.same(f.shape, [3]);
  const i = Tensor.from(new Int32Array([7, -1, 2 ** 31 - 1]));
  t.same(Array.from(i.toInt32()), [7, -1, 2 ** 31 - 1]);
  const bits = Tensor.from(new Uint16Array([0x3f80, 0xc000]));
  t.equal(bits.dtype, 'bf16');
  t.same(Array.from(bits.toFloat32()), [1, -2]);
  for (const x of [f, i, bits]) x.dispose();
});

t.test('f32 -> bf16 on copy rounds to nearest even', async (t) => {
  // 1 + 2^-8 is exactly half way between 1 and 1 + 2^-7: ties to even (1); 1 + 3*2^-8 ties up to 1 + 2^-6.
  const vals = [1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -8 + 2 ** -20, -3.14159, 65504.5, 1e-40, Infinity, -Infinity];
  const b = Tensor.from(new Float32Array(vals), [vals.length], 'bf16');
  const got = Array.from(b.toFloat32());
  t.same(got, vals.map(roundBf16));
  t.equal(got[0], 1);
  t.equal(got[1], 1 + 2 ** -6);
  const nan = Tensor.from(new Float32Array([NaN]), [1], 'bf16');
  t.ok(Number.isNaN(nan.toFloat32()[0]), 'NaN stays NaN');
  b.dispose();
  nan.dispose();
});

t.test('views share memory and die with their parent', async (t) => {
  const p = Tensor.from(new Float32Array([0, 1, 2, 3, 4, 5]), [6]);
  const v = p.view(2, [2, 2]);
  t.same(Array.from(v.toFloat32()), [2, 3, 4, 5]);
  v.fill(9);
  t.same(Array.from(p.toFloat32()), [0, 1, 9, 9, 9, 9]);
  t.throws(() => p.view(4, [3]), /exceed/);
  t.throws(() => p.reshape([4]), /holds 4 elements/);
  p.dispose();
  t.ok(v.disposed, 'child disposed with parent');
  t.throws(() => v.toFloat32(), DisposedError);
});

t.test('an arena carved out of an existing buffer shares its memory and frees nothing', async (t) => {
  const whole = new Arena('f32', [['w', [2, 3]], ['n', [4]]]);
  whole.buffer.copyFrom(Float32Array.from({ length: 10 }, (_, i) => i));
  const part = new Arena('f32', [['w', [2]], ['n', [4]]], 'cpu', whole.buffer.view(4, [6]));
  t.same([...part.get('w').toFloat32()], [4, 5], 'its entries read the buffer it was given');
  part.get('n').fill(-1);
  t.same([...whole.get('n').toFloat32()], [-1, -1, -1, -1], 'and write through to it');
  part.dispose();
  t.same([...whole.get('w').toFloat32()], [0, 1, 2, 3, 4, 5], 'disposing it leaves the arena it was carved from');
  t.throws(() => new Arena('f32', [['a', [3]]], 'cpu', whole.buffer.view(0, [4])), { message: /^Arena: 'over' must be a live f32 tensor of the layout's 3 elements, got Tensor f32\[4\]/ });
  t.throws(() => new Arena('bf16', [['a', [4]]], 'cpu', whole.buffer.view(0, [4])), { message: /'over' must be a live bf16 tensor of the layout's 4 elements/ });
  whole.dispose();
});

t.test('dispose is idempotent; use after dispose is a DisposedError', async (t) => {
  const a = Tensor.zeros('f32', [4]);
  const b = Tensor.zeros('f32', [4]);
  a.dispose();
  a.dispose();
  t.ok(a.disposed);
  t.throws(() => a.toFloat32(), DisposedError);
  t.throws(() => ops.geluForward(b, a), DisposedError);
  await t.rejects(ops.geluForwardAsync(b, a), DisposedError);
  b.dispose();
});

t.test('bad construction arguments are TypeErrors naming the problem', async (t) => {
  t.throws(() => Tensor.zeros('f16' as never, [2]), /dtype must be/);
  t.throws(() => Tensor.zeros('f32', [2, -1]), /shape\[1\] = -1/);
  t.throws(() => Tensor.zeros('f32', [2.5]), /shape\[0\] = 2.5/);
  t.throws(() => Tensor.from(new Float32Array(3), [2]), /holds 2 elements, data has 3/);
  const x = Tensor.zeros('f32', [3]);
  t.throws(() => x.copyFrom(new Int32Array(3)), /Float32Array/);
  t.throws(() => x.copyFrom(new Float32Array(4)), /4 elements/);
  x.dispose();
});

t.test('arena: named views over one buffer', async (t) => {
  const a = new Arena('f32', [
    ['wte', [5, 4]],
    ['norm', [4]],
  ]);
  t.equal(a.numel, 24);
  t.same(
    a.entries.map((e) => [e.name, e.offset, e.numel]),
    [
      ['wte', 0, 20],
      ['norm', 20, 4],
    ],
  );
  a.get('norm').fill(1);
  const flat = a.buffer.toFloat32();
  t.same(Array.from(flat.slice(20)), [1, 1, 1, 1]);
  t.same(Array.from(flat.slice(0, 20)), new Array(20).fill(0));
  const g = a.like('bf16');
  t.equal(g.dtype, 'bf16');
  t.same(g.entry('norm'), a.entry('norm'));
  t.throws(() => a.get('nope'), /no entry 'nope' \(entries: wte, norm\)/);
  t.throws(() => new Arena('f32', [['x', [1]], ['x', [2]]]), /duplicate entry 'x'/);
  a.zero();
  t.same(Array.from(a.get('norm').toFloat32()), [0, 0, 0, 0]);
  a.dispose();
  a.dispose();
  t.throws(() => a.get('norm'), DisposedError);
  g.dispose();
});

t.test('async ops leave the event loop free and keep their tensors alive', async (t) => {
  const n = 1 << 23;
  const x = Tensor.from(new Float32Array(n).fill(1), [n]);
  const y = Tensor.zeros('f32', [n]);
  let ticks = 0;
  const timer = setInterval(() => ticks++, 0);
  const p1 = ops.geluForwardAsync(y, x);
  const p2 = ops.geluBackwardAsync(y, x, y); // queued after p1, in order
  x.dispose(); // pinned by the queued ops: freed when they finish
  await Promise.all([p1, p2]);
  clearInterval(timer);
  t.ok(ticks >= 0);
  t.ok(x.disposed);
  const gelu1 = 0.8413447460685429;
  const dgelu1 = 0.8413447460685429 + Math.exp(-0.5) / Math.sqrt(2 * Math.PI);
  const out = y.toFloat32();
  t.ok(Math.abs(out[0] - gelu1 * dgelu1) < 1e-5, `ran in order: ${out[0]}`);
  y.dispose();
});

t.test('the event loop runs while long ops are in flight', async (t) => {
  const n = 1 << 24;
  const x = Tensor.zeros('f32', [n]);
  let ran = false;
  // Several queued ops: the last can only resolve after the loop has gone round at least once.
  const pending = [1, 2, 3, 4].map(() => ops.geluForwardAsync(x, x));
  setImmediate(() => {
    ran = true;
  });
  t.equal(await pending[3].then(() => ran), true, 'setImmediate ran before the queued ops finished');
  await Promise.all(pending);
  x.dispose();
});
