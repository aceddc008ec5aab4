// The contract between lib/native.ts and the addon: every op exists in both forms, backendInfo is complete,
// settings validate their input.
import t from 'tap';
import { native } from '../lib/native';
import { OP_NAMES, backendInfo, setThreads, setIsaLimit, setGemmEngine, setAttentionEngine } from '../lib/index';

// Listen before the addon loads: a build without oneDNN must say so exactly once.
const warnings: string[] = [];
process.on('warning', (w) => {
  if ((w as Error & { code?: string }).code === 'PAJAMA_NO_ONEDNN') warnings.push(w.message);
});

t.test('a build without oneDNN warns once and runs on the portable GEMM', async (t) => {
  const info = backendInfo();
  backendInfo();
  await new Promise((r) => setImmediate(r)); // warnings are emitted on the next tick
  if (info.gemm.oneDnnAvailable) {
    t.equal(warnings.length, 0, 'no warning with oneDNN');
  } else {
    t.equal(warnings.length, 1, 'one warning');
    t.equal(info.gemm.engine, 'portable');
  }
  if (process.env.PAJAMA_EXPECT_NO_ONEDNN) t.equal(info.gemm.oneDnnAvailable, false);
});

t.test('every op of the contract is exported, sync and Async', async (t) => {
  const addon = native() as unknown as Record<string, unknown>;
  for (const name of OP_NAMES) {
    t.equal(typeof addon[name], 'function', `${name}`);
    t.equal(typeof addon[`${name}Async`], 'function', `${name}Async`);
  }
});

t.test('backendInfo reports CPU, GEMM engine, threads and CUDA status', async (t) => {
  const info = backendInfo();
  t.type(info.cpu.brand, 'string');
  t.ok(['scalar', 'avx2', 'avx512', 'avx512_bf16'].includes(info.cpu.detectedIsa));
  t.type(info.cpu.features.avx2, 'boolean');
  t.ok(['onednn', 'portable'].includes(info.gemm.engine));
  t.ok(info.threads >= 1);
  t.type(info.cuda.compiled, 'boolean');
  t.ok(Array.isArray(info.cuda.devices));
  // The attention engine defaults to the GEMM engine's products where the matrix unit is AMX (our tiles use
  // AVX512-BF16 dot products, a tenth of AMX's rate), to our tiles elsewhere; PAJAMA_ATTENTION overrides.
  const matrixUnit = info.cpu.features.amxBf16 && info.gemm.engine === 'onednn';
  const chosen = process.env.PAJAMA_ATTENTION === 'gemm' || process.env.PAJAMA_ATTENTION === 'tiles' ? process.env.PAJAMA_ATTENTION : matrixUnit ? 'gemm' : 'tiles';
  t.equal(info.attention.engine, chosen, 'attention engine');
  if (process.env.PAJAMA_EXPECT_BUILD) t.equal(info.buildSystem, process.env.PAJAMA_EXPECT_BUILD);
  t.comment(JSON.stringify(info));
});

t.test('settings validate their arguments', async (t) => {
  const before = backendInfo().threads;
  t.equal(setThreads(1), 1);
  t.equal(backendInfo().threads, 1);
  t.equal(setThreads(0), before);
  t.throws(() => setThreads(-1), /setThreads/);
  t.throws(() => setThreads(1.5), /setThreads/);
  t.equal(setIsaLimit('scalar'), 'scalar');
  t.equal(backendInfo().cpu.activeIsa, 'scalar');
  t.equal(setIsaLimit('avx512_bf16'), backendInfo().cpu.detectedIsa);
  t.throws(() => setIsaLimit('sse9' as never), /setIsaLimit/);
  t.throws(() => setGemmEngine('cublas' as never), /setGemmEngine/);
  setGemmEngine('portable');
  t.equal(backendInfo().gemm.engine, 'portable');
  if (backendInfo().gemm.oneDnnAvailable) {
    setGemmEngine('onednn');
    t.equal(backendInfo().gemm.engine, 'onednn');
  } else {
    t.throws(() => setGemmEngine('onednn'), /no oneDNN/);
  }
  const engine = backendInfo().attention.engine;
  t.throws(() => setAttentionEngine('flash' as never), /setAttentionEngine: 'flash' is not 'tiles' or 'gemm'/);
  t.throws(() => native().setAttentionEngine('flash' as never), /setAttentionEngine: expected 'tiles' or 'gemm'/);
  for (const e of ['gemm', 'tiles'] as const) {
    setAttentionEngine(e);
    t.equal(backendInfo().attention.engine, e);
  }
  setAttentionEngine(engine);
});
