// Kernels flush denormals to zero on every thread they run on (issue 8, item 7): the JS thread during a
// synchronous op, the native worker thread for Async ops, and every OpenMP pool thread. A diverging fp32 run
// otherwise spends most of its time in denormal arithmetic (cross-entropy 231 ms -> 7,200 ms per step).
// Multiplying by 1 or adding 0 returns a denormal input unchanged in IEEE arithmetic and 0 under
// FTZ/DAZ, so every output element shows which mode the thread that computed it was in. JavaScript's own
// arithmetic on the JS thread must keep IEEE denormals after a synchronous op. No timing is asserted here.
import t from 'tap';
import { Tensor } from '../../lib/core/tensor';
import { ops } from '../../lib/core/ops';
import { backendInfo, setThreads } from '../../lib/core/backend';

const DENORMAL = 1e-40; // f32 denormal (the smallest normal f32 is 1.18e-38)
const THREADS = 8; // more OpenMP threads than CI's cores, so the pool grows past its default size
// 64 blocks of the reducer's 16,384-element work items: every thread of the team gets several.
const N = 64 * 16384;

const x86 = process.arch === 'x64' || process.arch === 'ia32';

function denormals(): Tensor {
  const t = Tensor.zeros('f32', [N]);
  t.fill(DENORMAL);
  return t;
}

// Indices of elements that are not zero, at most 5 of them, plus the count.
function nonzero(a: Float32Array): string {
  const idx: number[] = [];
  let count = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== 0) {
      count++;
      if (idx.length < 5) idx.push(i);
    }
  }
  return count === 0 ? 'none' : `${count} (first at ${idx.join(', ')})`;
}

t.before(() => {
  setThreads(THREADS);
});
t.teardown(() => {
  setThreads(0);
});

t.test('backendInfo says how denormals are handled', async (t) => {
  t.equal(backendInfo().denormals, x86 ? 'flush-to-zero' : 'ieee');
});

t.test('the fill itself stores denormals (the test would prove nothing otherwise)', async (t) => {
  const x = denormals();
  const a = x.toFloat32();
  t.equal(a[0], Math.fround(DENORMAL));
  t.equal(a[N - 1], Math.fround(DENORMAL));
  x.dispose();
});

for (const mode of ['sync', 'async'] as const) {
  t.test(`${mode}: scaleInPlace by 1 and residualForward + 0 flush every element`, { skip: !x86 && 'x86 only' }, async (t) => {
    const x = denormals();
    if (mode === 'sync') ops.scaleInPlace(x, 1);
    else await ops.scaleInPlaceAsync(x, 1);
    t.equal(nonzero(x.toFloat32()), 'none', 'scaleInPlace(x, 1): no element stays denormal');
    x.dispose();

    const a = denormals();
    const zero = Tensor.zeros('f32', [N]);
    const out = Tensor.zeros('f32', [N]);
    out.fill(1);
    if (mode === 'sync') ops.residualForward(out, a, zero);
    else await ops.residualForwardAsync(out, a, zero);
    t.equal(nonzero(out.toFloat32()), 'none', 'residualForward(out, denormals, 0): every element is 0');
    for (const x of [a, zero, out]) x.dispose();
  });
}

t.test('JavaScript arithmetic keeps IEEE denormals after a synchronous op', async (t) => {
  const x = denormals();
  ops.scaleInPlace(x, 1);
  x.dispose();
  const d = new Float64Array([1e-310, 0.5]);
  t.equal(d[0] * d[1], 5e-311, 'double denormal * 0.5 is the denormal 5e-311, not 0');
  t.equal(Number.MIN_VALUE * (d[1] * 2), 5e-324, 'Number.MIN_VALUE * 1 is still 5e-324');
  const f = new Float32Array(1);
  f[0] = d[0] * 1e270; // 1e-40: stored to f32 as a denormal
  t.not(f[0], 0, 'a denormal stored into a Float32Array stays denormal');
  t.equal(Math.fround(1e-40), f[0]);
});
