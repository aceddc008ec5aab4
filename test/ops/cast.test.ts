// cast: f32 -> bf16 (round to nearest even, bit for bit, with the edge cases spelled out), bf16 -> f32
// (exact), same-dtype copies, and the argument checks.
import t from 'tap';
import { ops, Tensor, setIsaLimit, backendInfo } from '../../lib/index';
import { randn, roundBf16, seed } from '../helpers/reference';

t.comment(`seed ${seed}`);

function f32Bits(x: number): number {
  return new Uint32Array(new Float32Array([x]).buffer)[0];
}

function fromBits(bits: number[]): Float32Array {
  return new Float32Array(Uint32Array.from(bits).buffer);
}

// f32 bit pattern -> the bf16 bits round-to-nearest-even must give, worked out by hand.
const edgeCases: [f32: number, bf16: number, what: string][] = [
  [0x3f800000, 0x3f80, '1 is exact'],
  [0x3f808000, 0x3f80, 'tie between 0x3f80 and 0x3f81 goes to the even 0x3f80'],
  [0x3f818000, 0x3f82, 'tie between 0x3f81 and 0x3f82 goes to the even 0x3f82'],
  [0x3f808001, 0x3f81, 'just above a tie rounds up'],
  [0x3f80ffff, 0x3f81, 'just below the next value rounds up'],
  [0x3f807fff, 0x3f80, 'just below a tie rounds down'],
  [0xbf808000, 0xbf80, 'negative tie goes to even'],
  [0xbf818000, 0xbf82, 'negative tie goes to even (away from zero here)'],
  [0x00000000, 0x0000, '+0'],
  [0x80000000, 0x8000, '-0'],
  [0x00008000, 0x0000, 'subnormal tie goes to even zero'],
  [0x00018000, 0x0002, 'subnormal tie goes to even'],
  [0x7f800000, 0x7f80, '+Inf stays +Inf'],
  [0xff800000, 0xff80, '-Inf stays -Inf'],
  [0x7f7fffff, 0x7f80, 'f32 max overflows to +Inf'],
  [0xff7fffff, 0xff80, '-f32 max overflows to -Inf'],
  [0x7f7f8000, 0x7f80, 'tie at the top of the range goes to even, which is +Inf'],
  [0x7f7f7fff, 0x7f7f, 'just below that tie stays the bf16 max'],
  [0x7fc00000, 0x7fc0, 'quiet NaN stays that NaN'],
  [0x7f800001, 0x7fc0, 'signalling NaN with only low bits set stays NaN (truncation would make it Inf)'],
  [0xffc00001, 0xffc0, 'negative NaN stays NaN with its sign'],
];

t.test('cast f32 -> bf16 edge cases, bit for bit', async (t) => {
  const src = Tensor.from(fromBits(edgeCases.map((c) => c[0])));
  const out = Tensor.zeros('bf16', [edgeCases.length]);
  ops.cast(out, src);
  const bits = out.toBf16Bits();
  edgeCases.forEach(([f, b, what], i) => {
    t.equal(bits[i].toString(16), b.toString(16), `0x${f.toString(16)}: ${what}`);
  });
  // The helpers' roundBf16 agrees on every non-NaN case (it returns NaN without bits).
  edgeCases.forEach(([f, b], i) => {
    const x = fromBits([f])[0];
    if (!Number.isNaN(x)) t.equal(f32Bits(roundBf16(x)) >>> 16, b, `roundBf16 agrees on 0x${f.toString(16)}`);
  });
  src.dispose();
  out.dispose();
});

for (const n of [1, 7, 129, 100003]) {
  t.test(`cast f32 <-> bf16 n=${n}`, async (t) => {
    const x = Float32Array.from(randn(n, 50));
    const src = Tensor.from(x);
    const half = Tensor.zeros('bf16', [n]);
    if (n === 7) await ops.castAsync(half, src);
    else ops.cast(half, src);
    const bits = half.toBf16Bits();
    let mismatches = 0;
    for (let i = 0; i < n; i++) if (bits[i] !== f32Bits(roundBf16(x[i])) >>> 16) mismatches++;
    t.equal(mismatches, 0, 'f32 -> bf16 rounds to nearest even, bit for bit');

    const back = Tensor.zeros('f32', [n]);
    ops.cast(back, half);
    const widened = back.toFloat32();
    mismatches = 0;
    for (let i = 0; i < n; i++) if (f32Bits(widened[i]) !== (bits[i] << 16) >>> 0) mismatches++;
    t.equal(mismatches, 0, 'bf16 -> f32 is exact (the bits shifted up)');

    const copy = Tensor.zeros('f32', [n]);
    ops.cast(copy, src);
    const copied = copy.toFloat32();
    t.ok(copied.every((v, i) => f32Bits(v) === f32Bits(x[i])), 'f32 -> f32 copies');
    const copyHalf = Tensor.zeros('bf16', [n]);
    ops.cast(copyHalf, half);
    t.ok(copyHalf.toBf16Bits().every((b, i) => b === bits[i]), 'bf16 -> bf16 copies');
    for (const a of [src, half, back, copy, copyHalf]) a.dispose();
  });
}

// Every ISA path (AVX-512 has a hand-written loop): the edge cases among random values, at every position of
// a 16-lane vector and in its partial tail, bit for bit.
// avx512: the AVX-512 path with integer bf16 rounding; avx512_bf16 (where detected): with vcvtneps2bf16
for (const level of [...new Set(['scalar', 'avx512', backendInfo().cpu.detectedIsa] as const)]) {
  t.test(`cast f32 <-> bf16 isa=${level}, bit for bit`, async (t) => {
    setIsaLimit(level);
    t.teardown(() => void setIsaLimit(backendInfo().cpu.detectedIsa));
    const n = 16 * edgeCases.length + 11;
    const x = Float32Array.from(randn(n, 50));
    const bits = new Uint32Array(x.buffer);
    edgeCases.forEach(([f], i) => {
      bits[17 * i] = f; // position 17 i: every lane of a vector, and the tail
    });
    bits[n - 1] = edgeCases[1][0];
    const src = Tensor.from(x);
    const half = Tensor.zeros('bf16', [n]);
    ops.cast(half, src);
    const got = half.toBf16Bits();
    const byCase = new Map(edgeCases.map(([f, b]) => [f, b]));
    let mismatches = 0;
    for (let i = 0; i < n; i++) {
      const want = byCase.get(bits[i]) ?? f32Bits(roundBf16(x[i])) >>> 16;
      if (got[i] !== want) mismatches++;
    }
    t.equal(mismatches, 0, 'f32 -> bf16 rounds to nearest even, NaN stays NaN');
    const back = Tensor.zeros('f32', [n]);
    ops.cast(back, half);
    const widened = new Uint32Array(back.toFloat32().buffer);
    mismatches = 0;
    for (let i = 0; i < n; i++) if (widened[i] !== (got[i] << 16) >>> 0) mismatches++;
    t.equal(mismatches, 0, 'bf16 -> f32 is exact');
    for (const a of [src, half, back]) a.dispose();
  });
}

t.test('cast bf16 -> f32 keeps NaN and Inf', async (t) => {
  const half = Tensor.from(Uint16Array.from([0x7fc1, 0xff80, 0x7f80, 0x8000, 0x0001]));
  const out = Tensor.zeros('f32', [5]);
  ops.cast(out, half);
  const v = out.toFloat32();
  t.ok(Number.isNaN(v[0]), 'NaN');
  t.equal(v[1], -Infinity);
  t.equal(v[2], Infinity);
  t.ok(Object.is(v[3], -0), '-0');
  t.equal(v[4], 2 ** -133, 'smallest bf16 subnormal');
  half.dispose();
  out.dispose();
});

t.test('cast rejects bad arguments, naming the op', async (t) => {
  const a = Tensor.zeros('f32', [8]);
  const b = Tensor.zeros('bf16', [9]);
  const i = Tensor.zeros('i32', [8]);
  const arena = Tensor.zeros('f32', [16]);
  const v1 = arena.view(0, [8]);
  const v2 = arena.view(4, [8]);
  t.throws(() => ops.cast(b, a), /cast: 'out' must have 8 elements, got bf16\[9\]/);
  t.throws(() => ops.cast(a, i), /cast: 'inp' must be f32 or bf16, got i32\[8\]/);
  t.throws(() => ops.cast(i, a), /cast: 'out' must be f32 or bf16, got i32\[8\]/);
  t.throws(() => ops.cast(v2, v1), /cast: 'out' and 'inp' overlap in memory/);
  await t.rejects(ops.castAsync(b, a), /cast: 'out' must have 8 elements/);
  v1.fill(3);
  ops.cast(v1, v1);
  t.ok(v1.toFloat32().every((x) => x === 3), 'casting a tensor onto itself is a no-op');
  for (const x of [a, b, i, v1, v2, arena]) x.dispose();
});
