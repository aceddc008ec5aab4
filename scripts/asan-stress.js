#!/usr/bin/env node
// asan-stress.js: a dispose/GC stress of the addon's ownership rules, run by scripts/asan-test.sh under
// LeakSanitizer (and AddressSanitizer) against the sanitizer build. It uses the addon directly, so every
// allocation it makes is the addon's: tensors on both sides of the heap/mapping threshold, views disposed
// before and after their parent, tensors dropped without dispose() (freed by the GC finalizer), async ops
// whose tensors are disposed while the op is queued (freed by the op's completion), typed-array ops,
// argument errors (the error paths must free what they built), and worker threads that load the addon and end. Exits 0 after a clean run; the sanitizer
// runtime reports and fails otherwise.
'use strict';
const path = require('node:path');

const addon = process.env.PAJAMA_ADDON || path.join(__dirname, '..', 'build', 'Release', 'pajama_native.node');
const n = require(addon);
const iterations = Number(process.env.PAJAMA_STRESS_ITERATIONS || 400);
const gc = global.gc || (() => {});
const turn = () => new Promise((resolve) => setImmediate(resolve));

function expectThrow(fn, code) {
  try {
    fn();
  } catch (e) {
    if (e.code !== code) throw new Error(`expected ${code}, got ${e.code}: ${e.message}`);
    return;
  }
  throw new Error(`expected ${code}, nothing was thrown`);
}

async function main() {
  const sizes = [0, 1, 17, 4096, 32767, 32768, 40000, 300000];
  for (let i = 0; i < iterations; i++) {
    const size = sizes[i % sizes.length];
    // Owned tensors and views, disposed in both orders.
    const a = new n.Tensor(i % 2 ? 'f32' : 'bf16', [size]);
    const b = new n.Tensor('f32', [size]);
    const v = size >= 16 ? a.view(4, [4, 3]) : null;
    if (v) v.fill(1.5);
    if (i % 3 === 0) {
      a.dispose();
      if (v) expectThrow(() => v.fill(1), 'ERR_PAJAMA_DISPOSED');
    } else if (v) {
      v.dispose();
    }
    // Sync and async ops; the async one's inputs are disposed while it is queued.
    const x = new n.Tensor('f32', [size]);
    const y = new n.Tensor('f32', [size]);
    x.fill(0.25);
    n.geluForward(y, x);
    const p = n.residualForwardAsync(b, x, y);
    x.dispose();
    y.dispose();
    const q = n.scaleInPlaceAsync(b, 0.5);
    b.dispose();
    await Promise.all([p, q]);
    // Argument errors (sync: thrown; async: rejected).
    expectThrow(() => n.geluForward(a.disposed ? b : a, new n.Tensor('i32', [3])), a.disposed ? 'ERR_PAJAMA_DISPOSED' : 'ERR_PAJAMA_INVALID_ARG');
    expectThrow(() => n.cast(new n.Tensor('f32', [2]), new n.Tensor('f32', [3])), 'ERR_PAJAMA_INVALID_ARG');
    await n.scaleInPlaceAsync(new n.Tensor('i32', [2]), 1).then(
      () => { throw new Error('scaleInPlaceAsync on i32 resolved'); },
      (e) => { if (e.code !== 'ERR_PAJAMA_INVALID_ARG') throw e; },
    );
    expectThrow(() => new n.Tensor('f32', [2 ** 32, 2 ** 32]), 'ERR_PAJAMA_INVALID_ARG');
    // Dropped without dispose: the finalizer frees them.
    if (i % 4 === 0) new n.Tensor('f32', [size]);
    if (!a.disposed) a.dispose();
    // MinHash over typed arrays, async, with the arrays dropped at once.
    if (i % 16 === 0) {
      const text = new Uint8Array(4000).fill(97 + (i % 26));
      const offsets = new Uint32Array([0, 1000, 4000]);
      await n.minhashSignaturesAsync(new Uint32Array(2 * 64), new BigUint64Array(2 * 4), text, offsets, 64, 5, 4, 16, i);
    }
    if (i % 50 === 0) {
      gc();
      await turn();
    }
  }
  // Worker threads load the addon into environments of their own and end: each must free its own state
  // (op table, worker thread, tensors it left to the collector).
  const { Worker } = require('node:worker_threads');
  for (let w = 0; w < 4; w++) {
    await new Promise((resolve, reject) => {
      const worker = new Worker(
        `const n = require(${JSON.stringify(addon)});
         const x = new n.Tensor('f32', [50000]), y = new n.Tensor('f32', [50000]);
         n.geluForward(y, x);
         new n.Tensor('f32', [1000]);
         n.scaleInPlaceAsync(x, 2).then(() => { x.dispose(); });`,
        { eval: true },
      );
      worker.on('error', reject);
      worker.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`worker exited with ${code}`))));
    });
  }
  for (let k = 0; k < 3; k++) {
    gc();
    await turn();
  }
}

main().then(
  () => console.log(`asan-stress: ${iterations} iterations done`),
  (e) => {
    console.error(e);
    process.exitCode = 1;
  },
);
