// attention: causal multi-head attention with ALiBi, forward (out and lse) and backward (dqkv) against a float64
// reference that builds the explicit T x T bias and takes a naive softmax; both dtypes, both engines ('tiles':
// every ISA path the CPU has, each a different kernel: portable, AVX-512 FMA, AVX-512 BF16 dot products;
// 'gemm': products through the GEMM engine, oneDNN and the portable GEMM).
import t from 'tap';
import { ops, Tensor, setIsaLimit, setAttentionEngine, setGemmEngine, backendInfo, type IsaLevel } from '../../lib/index';
import { alibiSlopes } from '../../lib/model/alibi';
import { attentionForwardRef, attentionRef } from '../helpers/op-references';
import { randn, relErr, seed, tensorOf, toF64, TOL } from '../helpers/reference';

t.comment(`seed ${seed}`);

const ALL: IsaLevel[] = ['scalar', 'avx2', 'avx512', 'avx512_bf16'];
const detected = backendInfo().cpu.detectedIsa;
const levels = ALL.slice(0, ALL.indexOf(detected) + 1);

const info = backendInfo();
const defaultEngine = info.attention.engine;
const gemmEngines = info.gemm.oneDnnAvailable ? (['onednn', 'portable'] as const) : (['portable'] as const);
// Each engine at each setting it has: tiles at every ISA level; gemm on every GEMM engine there is (and on
// oneDNN at each ISA level, which decides whether bf16 products run natively or widened).
const settings: { engine: 'tiles' | 'gemm'; gemm: 'onednn' | 'portable'; level: IsaLevel }[] = [
  ...levels.map((level) => ({ engine: 'tiles' as const, gemm: info.gemm.engine, level })),
  ...gemmEngines.flatMap((gemm) => (gemm === 'onednn' ? levels : [detected]).map((level) => ({ engine: 'gemm' as const, gemm, level }))),
];

// [B, T, H, D]: T = 1, 7, 129 (one, part of one and more than two 64-wide tiles), heads 3, 6, 12, head dims
// 32, 64, 128, and an odd head dim (padded to 16 inside the kernel); T = 600 takes the gemm engine past one
// 512-key chunk (online softmax across chunks, backward key chunks).
const cases: [number, number, number, number][] = [
  [2, 1, 3, 32],
  [1, 7, 6, 64],
  [2, 7, 12, 128],
  [1, 129, 3, 64],
  [1, 129, 12, 32],
  [2, 129, 6, 128],
  [1, 70, 2, 20],
  [1, 600, 2, 16],
];

for (const [B, T, H, D] of cases) {
  for (const dtype of ['f32', 'bf16'] as const) {
    t.test(`attention ${dtype} B=${B} T=${T} H=${H} D=${D}`, async (t) => {
      const C = H * D;
      const slopes = alibiSlopes(H);
      const { t: qkv, x: q } = tensorOf(randn(B * T * 3 * C), [B, T, 3 * C], dtype);
      const { t: dout, x: g } = tensorOf(randn(B * T * C), [B, T, C], dtype);
      const slopesT = Tensor.from(slopes, [H], 'f32');
      const ref = attentionRef(q, g, slopes, B, T, H, D);
      const tol = TOL[dtype];
      for (const { engine, gemm, level } of settings) {
        setAttentionEngine(engine);
        setGemmEngine(gemm);
        setIsaLimit(level);
        const at = `${engine}${engine === 'gemm' ? `/${gemm}` : ''} ${level}`;
        const out = Tensor.zeros(dtype, [B, T, C]);
        const lse = Tensor.zeros('f32', [B, H, T]);
        const dqkv = Tensor.zeros(dtype, [B, T, 3 * C]);
        dqkv.fill(1); // overwritten, never accumulated
        ops.attentionForward(out, lse, qkv, slopesT, H);
        await ops.attentionBackwardAsync(dqkv, dout, qkv, out, lse, slopesT, H);
        const eo = relErr(toF64(out), ref.out);
        const el = relErr(toF64(lse), ref.lse);
        const ed = relErr(toF64(dqkv), ref.dqkv);
        t.ok(eo <= tol, `${at} out rel err ${eo}`);
        t.ok(el <= tol, `${at} lse rel err ${el}`);
        t.ok(ed <= tol, `${at} dqkv rel err ${ed}`);
        for (const x of [out, lse, dqkv]) x.dispose();
      }
      setIsaLimit(detected);
      setGemmEngine(info.gemm.engine);
      setAttentionEngine(defaultEngine);
      for (const x of [qkv, dout, slopesT]) x.dispose();
    });
  }
}

t.test('attention accepts qkv as (B, T, 3, H, D)', async (t) => {
  const [B, T, H, D] = [1, 5, 2, 16];
  const C = H * D;
  const slopes = alibiSlopes(H);
  const { t: qkv, x: q } = tensorOf(randn(B * T * 3 * C), [B, T, 3, H, D], 'f32');
  const slopesT = Tensor.from(slopes, [H], 'f32');
  const out = Tensor.zeros('f32', [B, T, H, D]);
  const lse = Tensor.zeros('f32', [B, H, T]);
  ops.attentionForward(out, lse, qkv, slopesT, H);
  const ref = attentionForwardRef(q, slopes, B, T, H, D);
  t.ok(relErr(toF64(out), ref.out) <= TOL.f32);
  for (const x of [qkv, slopesT, out, lse]) x.dispose();
});

t.test('attention rejects bad shapes and dtypes, naming the op', async (t) => {
  const [B, T, H, D] = [2, 4, 3, 8];
  const C = H * D;
  const qkv = Tensor.zeros('f32', [B, T, 3 * C]);
  const out = Tensor.zeros('f32', [B, T, C]);
  const lse = Tensor.zeros('f32', [B, H, T]);
  const slopes = Tensor.zeros('f32', [H]);
  const badOut = Tensor.zeros('f32', [B, T, C + 1]);
  const badLse = Tensor.zeros('bf16', [B, H, T]);
  const badSlopes = Tensor.zeros('f32', [H + 1]);
  const qkvBf16 = Tensor.zeros('bf16', [B, T, 3 * C]);
  const wide = Tensor.zeros('f32', [1, 1, 3 * 257]);
  const dqkv = Tensor.zeros('f32', [B, T, 3 * C]);
  t.throws(() => ops.attentionForward(badOut, lse, qkv, slopes, H), /attentionForward: 'out' must have shape \[2, ?4, ?24\], got f32\[2, ?4, ?25\]/);
  t.throws(() => ops.attentionForward(out, badLse, qkv, slopes, H), /attentionForward: 'lse' must be f32, got bf16/);
  t.throws(() => ops.attentionForward(out, lse, qkv, badSlopes, H), /attentionForward: 'slopes' must have shape \[3\]/);
  t.throws(() => ops.attentionForward(out, lse, qkv, slopes, 5), /attentionForward: 'qkv' last dims \(72\) must be 3 \* nHeads \(5\)/);
  t.throws(() => ops.attentionForward(out, lse, qkv, slopes, 0), /attentionForward: nHeads must be a positive integer/);
  t.throws(() => ops.attentionForward(out, lse, wide, slopes, 1), /attentionForward: head dim C \/ nHeads must be in 1\.\.256, got 257/);
  t.throws(() => ops.attentionForward(out, lse, qkvBf16, slopes, H), /attentionForward: .*'out'.*'qkv'|attentionForward: .*dtype/);
  t.throws(() => ops.attentionForward(qkv, lse, qkv, slopes, H), /attentionForward: 'out' (must have shape|and 'qkv' overlap)/);
  t.throws(() => ops.attentionBackward(qkvBf16, out, qkv, out, lse, slopes, H), /attentionBackward: .*'dqkv'/);
  t.throws(() => ops.attentionBackward(qkv, out, qkv, out, lse, slopes, H), /attentionBackward: 'dqkv' and 'qkv' overlap/);
  t.throws(() => ops.attentionBackward(dqkv, badOut, qkv, out, lse, slopes, H), /attentionBackward: 'dout' must have shape/);
  await t.rejects(ops.attentionForwardAsync(badOut, lse, qkv, slopes, H), /attentionForward.*'out' must have shape/);
  for (const x of [qkv, out, lse, slopes, badOut, badLse, badSlopes, qkvBf16, wide, dqkv]) x.dispose();
});
