// Devices in the core: every tensor says where it lives, copies between devices are explicit (Tensor.to,
// ops.copy), device names are checked, and on a machine or build without CUDA every CUDA request is an
// argument error carrying the reason backendInfo() gives. Ops on CUDA tensors are tested where a GPU is
// (benchmarks/gpu-checks.ts through test/cuda/ and npm run gpu-check).
import t from 'tap';
import {
  Arena,
  MptModel,
  Tensor,
  backendInfo,
  cudaMemoryStats,
  emptyCudaCache,
  mptConfig,
  ops,
  resolveTrainConfig,
  synchronize,
} from '../../lib/index';
import { native } from '../../lib/native';

const cuda = backendInfo().cuda;

t.test('tensors, views and arenas live on the CPU unless told otherwise', async (t) => {
  const a = Tensor.zeros('f32', [2, 3]);
  t.equal(a.device, 'cpu');
  t.equal(a.handle.device, 'cpu');
  const v = a.view(1, [2]);
  t.equal(v.device, 'cpu');
  t.equal(Tensor.zeros('bf16', [4], 'cpu').device, 'cpu');
  const arena = new Arena('f32', [['w', [2, 2]]]);
  t.equal(arena.device, 'cpu');
  const like = arena.like('bf16');
  t.equal(like.device, 'cpu');
  t.equal(like.get('w').device, 'cpu');
  a.dispose();
  t.equal(a.device, 'cpu', 'the device is still known after dispose');
  for (const x of [arena, like]) x.dispose();
});

t.test('Tensor.to copies into a new tensor; ops.copy moves the same dtype and count between any devices', async (t) => {
  const src = Tensor.from(new Float32Array([1, -2.5, 3, 0.375]), [2, 2]);
  const moved = src.to('cpu');
  t.not(moved, src);
  t.same(moved.shape, [2, 2]);
  t.same(Array.from(moved.toFloat32()), [1, -2.5, 3, 0.375]);
  src.fill(7);
  t.same(Array.from(moved.toFloat32()), [1, -2.5, 3, 0.375], 'the copy owns its memory');

  const bits = new Uint16Array([0x3f80, 0xc020, 0x7fc1, 0x0001]);
  const b = Tensor.from(bits);
  const c = Tensor.zeros('bf16', [4]);
  ops.copy(c, b);
  t.same(Array.from(c.toBf16Bits()), Array.from(bits), 'bits are copied, NaN payloads included');
  const d = Tensor.zeros('bf16', [4]);
  await ops.copyAsync(d, b);
  t.same(Array.from(d.toBf16Bits()), Array.from(bits));

  t.throws(() => ops.copy(Tensor.zeros('f32', [4]), b), /copy: 'out' .* and 'inp' .* must have the same dtype/);
  t.throws(() => ops.copy(Tensor.zeros('bf16', [3]), b), /copy: 'out' must have 4 elements/);
  const whole = Tensor.zeros('f32', [6]);
  t.throws(() => ops.copy(whole.view(1, [4]), whole.view(0, [4])), /copy: 'out' .* partly overlaps 'inp'/);
  ops.copy(whole, whole); // the very same tensor: nothing to do
  for (const x of [src, moved, b, c, d, whole]) x.dispose();
});

t.test('device names are checked before anything is allocated', async (t) => {
  for (const bad of ['gpu', 'cuda:', 'cuda:x', 'cuda:-1', 'CUDA', 'cuda:12345', '']) {
    t.throws(() => Tensor.zeros('f32', [1], bad as 'cpu'), { code: 'ERR_PAJAMA_INVALID_ARG', message: /Tensor.zeros: device must be 'cpu', 'cuda' or 'cuda:N'/ }, bad);
  }
  // the addon checks them too, for callers below the TypeScript layer
  t.throws(() => new (native().Tensor)('f32', [1], 'gpu' as 'cpu'), /Tensor: unknown device 'gpu'/);
  t.throws(() => new (native().Tensor)('f32', [1], 3 as unknown as 'cpu'), /Tensor: device must be a string/);
  t.throws(() => new MptModel(mptConfig('tiny'), { device: 'tpu' as 'cpu' }), /MptModel: device must be/);
  t.throws(() => resolveTrainConfig({ model: { device: 'gpu' } }), /'model.device'/);
  t.equal(resolveTrainConfig({ model: { device: 'cuda:1' } }).model.device, 'cuda:1');
  t.equal(resolveTrainConfig({}).model.device, 'cpu');
});

t.test('backendInfo says whether CUDA is usable, and why not', async (t) => {
  t.type(cuda.compiled, 'boolean');
  t.type(cuda.available, 'boolean');
  t.type(cuda.cublas, 'boolean');
  t.equal(cuda.available, cuda.devices.length > 0);
  if (!cuda.available) t.match(cuda.reason, /\S/, 'a reason is given');
  if (!cuda.compiled) t.match(cuda.reason, /this build has no CUDA backend/);
  if (!cuda.cublas) t.ok(!cuda.compiled || /\S/.test(cuda.cublasReason ?? ''), 'a build with CUDA and without cuBLASLt says why');
  synchronize(); // the CPU: nothing to wait for
  synchronize('cpu');
  t.throws(() => synchronize('gpu' as 'cpu'), /synchronize: device must be/);
});

t.test('without a usable GPU every CUDA request is an argument error carrying the reason', { skip: cuda.available ? 'a CUDA device is present (test/cuda/ covers it)' : false }, async (t) => {
  const reason = /cuda: unavailable \(.+\)/;
  t.throws(() => Tensor.zeros('f32', [2], 'cuda'), { code: 'ERR_PAJAMA_INVALID_ARG', message: reason });
  t.throws(() => Tensor.from(new Float32Array(2), [2], 'f32', 'cuda:0'), reason);
  const a = Tensor.zeros('f32', [2]);
  t.throws(() => a.to('cuda'), reason);
  t.throws(() => new Arena('f32', [['w', [2]]], 'cuda'), reason);
  t.throws(() => new MptModel(mptConfig('tiny'), { device: 'cuda' }), reason);
  t.throws(() => synchronize('cuda'), reason);
  t.throws(() => cudaMemoryStats(), reason);
  t.throws(() => emptyCudaCache('cuda:0'), reason);
  t.throws(() => cudaMemoryStats('cpu'), /cudaMemoryStats: 'cpu' is not a CUDA device/);
  a.dispose();
});
