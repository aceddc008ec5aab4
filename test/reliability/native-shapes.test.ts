// Shape arithmetic cannot overflow (issue 8, item 5). Before every size computation was checked,
// Tensor.zeros('f32', [2**32, 2**32]) made a tensor of 0 elements and [2**44 + 1, 2**20] wrapped to 2**20
// elements, after which embeddingForward/Backward and crossEntropyForward read and wrote far outside it.
// Random shapes (huge, overflowing, zero, fractional, negative dims) are thrown at the tensor constructor,
// view, reshape, arenas and every op: each call must either succeed on a valid shape (with the exact element
// count) or throw a TypeError with code ERR_PAJAMA_INVALID_ARG. The native part runs in a child process so a
// crash is a failure with its signal, not a lost test run.
import t from 'tap';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { Arena, Tensor } from '../../lib/core/tensor';
import { OP_NAMES } from '../../lib/core/ops';

const ROOT = path.resolve(__dirname, '../..');
const ADDON = process.env.PAJAMA_ADDON
  ? path.resolve(process.env.PAJAMA_ADDON)
  : path.join(ROOT, 'build/Release/pajama_native.node');

const LIMIT = 2n ** 40n;
const DIMS = [0, 1, 2, 3, 5, 7, 64, 2 ** 20, 2 ** 31, 2 ** 32, 2 ** 40, 2 ** 40 + 1, 2 ** 44 + 1, 2 ** 52, 2 ** 53 - 1];
const BAD_DIMS = [-1, 0.5, NaN, Infinity, 2 ** 53, 1e300];

// Deterministic generator, so a failure names a reproducible case. Mulberry32 (lib/core/rng.ts) written out
// self-contained, because its source is sent to the child process below (rng.toString()).
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let x = Math.imul(s ^ (s >>> 15), 1 | s);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

function randomShape(r: () => number): number[] {
  const n = Math.floor(r() * 5);
  return Array.from({ length: n }, () => (r() < 0.08 ? BAD_DIMS[Math.floor(r() * BAD_DIMS.length)] : DIMS[Math.floor(r() * DIMS.length)]));
}

// The element count the shape must give, or null when the shape must be refused.
function expectedNumel(shape: number[]): bigint | null {
  let nonzero = 1n;
  let empty = false;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) return null;
    if (BigInt(d) > LIMIT) return null;
    if (d === 0) empty = true;
    else nonzero *= BigInt(d);
    if (nonzero > LIMIT) return null;
  }
  return empty ? 0n : nonzero;
}

const isInvalidArg = (e: unknown) => e instanceof TypeError && (e as { code?: string }).code === 'ERR_PAJAMA_INVALID_ARG';
const SMALL = 2 ** 16; // valid shapes up to this many elements are allocated; larger valid ones are not tried

t.test('the named cases of the issue are refused with a typed error', async (t) => {
  for (const shape of [[2 ** 32, 2 ** 32], [2 ** 44 + 1, 2 ** 20], [2 ** 20, 2 ** 21], [0, 2 ** 41], [2 ** 40, 2]]) {
    t.throws(() => Tensor.zeros('f32', shape), { code: 'ERR_PAJAMA_INVALID_ARG', message: /more elements than/ }, `[${shape}]`);
  }
  const x = Tensor.zeros('f32', [64]);
  t.throws(() => x.view(0, [2 ** 32, 2 ** 32]), { code: 'ERR_PAJAMA_INVALID_ARG' }, 'view');
  t.throws(() => x.reshape([2 ** 44 + 1, 2 ** 20]), { code: 'ERR_PAJAMA_INVALID_ARG' }, 'reshape');
  t.throws(() => new Arena('f32', [['a', [2 ** 39, 1]], ['b', [2 ** 39, 1]], ['c', [1]]]), { code: 'ERR_PAJAMA_INVALID_ARG' }, 'arena total');
  x.dispose();
});

t.test('Tensor.zeros, view, reshape and Arena: 3,000 random shapes', async (t) => {
  const r = rng(8);
  const parent = Tensor.zeros('f32', [4096]);
  const failures: string[] = [];
  const check = (what: string, shape: number[], valid: boolean, fn: () => Tensor | Arena) => {
    try {
      const out = fn();
      const numel = out instanceof Arena ? out.numel : out.numel;
      if (!valid) failures.push(`${what} [${shape}] was accepted (numel ${numel})`);
      else if (!(out instanceof Arena) && BigInt(numel) !== expectedNumel(shape)) failures.push(`${what} [${shape}] has numel ${numel}`);
      out.dispose();
    } catch (e) {
      if (valid || !isInvalidArg(e)) failures.push(`${what} [${shape}] threw ${(e as Error).name}: ${(e as Error).message}`);
    }
  };
  for (let k = 0; k < 3000 && failures.length < 10; k++) {
    const shape = randomShape(r);
    const n = expectedNumel(shape);
    if (n === null || n <= SMALL) check('Tensor.zeros', shape, n !== null, () => Tensor.zeros(r() < 0.5 ? 'bf16' : 'i32', shape));
    const offset = r() < 0.8 ? Math.floor(r() * 4096) : DIMS[Math.floor(r() * DIMS.length)];
    check(`view(${offset})`, shape, n !== null && BigInt(offset) + n <= 4096n, () => parent.view(offset, shape));
    check('reshape', shape, n === 4096n, () => parent.reshape(shape));
    if (n === null || n <= SMALL) check('Arena', shape, n !== null, () => new Arena('f32', [['w', shape], ['b', [3]]]));
  }
  parent.dispose();
  t.same(failures, [], 'every shape is either valid or refused with ERR_PAJAMA_INVALID_ARG');
});

// Runs in the child against the addon itself (no TypeScript checks in front of it).
const NATIVE_FUZZ = `
const n = require(process.env.FUZZ_ADDON);
${rng.toString()}
const LIMIT = ${LIMIT}n, DIMS = ${JSON.stringify(DIMS)}, BAD_DIMS = [-1, 0.5, NaN, Infinity, 2 ** 53, 1e300];
${randomShape.toString()}
${expectedNumel.toString()}
const OPS = ${JSON.stringify(OP_NAMES)};
const failures = [];
const code = (e) => (e && e.code) || (e && e.name) || String(e);
const r = rng(5);
// Tensor constructor and view.
const parent = new n.Tensor('f32', [4096]);
for (let k = 0; k < 4000 && failures.length < 10; k++) {
  const shape = randomShape(r);
  const want = expectedNumel(shape);
  if (want === null || want <= ${SMALL}n) {
    try {
      const x = new n.Tensor(r() < 0.5 ? 'f32' : 'i32', shape);
      if (want === null || BigInt(x.numel) !== want) failures.push('Tensor [' + shape + '] accepted with numel ' + x.numel);
      x.dispose();
    } catch (e) {
      if (want !== null || code(e) !== 'ERR_PAJAMA_INVALID_ARG') failures.push('Tensor [' + shape + '] threw ' + code(e) + ' ' + e.message);
    }
  }
  const off = r() < 0.8 ? Math.floor(r() * 4096) : DIMS[Math.floor(r() * DIMS.length)];
  const ok = want !== null && BigInt(off) + want <= 4096n;
  try {
    const v = parent.view(off, shape);
    if (!ok || BigInt(v.numel) !== want) failures.push('view(' + off + ', [' + shape + ']) accepted with numel ' + v.numel);
  } catch (e) {
    if (ok || code(e) !== 'ERR_PAJAMA_INVALID_ARG') failures.push('view(' + off + ', [' + shape + ']) threw ' + code(e) + ' ' + e.message);
  }
}
// Every op, sync and Async, on small real tensors mixed with zero-element tensors whose dims are huge.
const real = [
  ['f32', [4, 8]], ['f32', [8, 4]], ['f32', [32]], ['bf16', [4, 8]], ['f32', [2, 4, 24]], ['f32', [2, 2, 4]],
  ['f32', [2]], ['f32', [4]], ['bf16', [2, 4, 24]], ['f32', [1, 8]],
].map(([d, s]) => new n.Tensor(d, s));
const ids = new n.Tensor('i32', [4]);
ids.copyFrom(new Int32Array([0, 1, 2, 3]));
const hollow = [[0, 2 ** 40], [2 ** 40, 0], [0, 2 ** 20, 2 ** 20], [2 ** 20, 0, 2 ** 20], [0]].flatMap((s) =>
  ['f32', 'bf16', 'i32'].map((d) => new n.Tensor(d, s)));
const pool = [...real, ids, ...hollow];
const NUMS = [0, 1, 2, 3, 4, 8, -1, -100, 2 ** 20, 2 ** 31, 2 ** 32, 2 ** 40, 2 ** 44 + 1, 2 ** 53, 0.5, NaN, Infinity];
const arg = () => {
  const x = r();
  if (x < 0.6) return pool[Math.floor(r() * pool.length)];
  if (x < 0.9) return NUMS[Math.floor(r() * NUMS.length)];
  if (x < 0.95) return r() < 0.5;
  return new Int32Array([0, 2 ** 31 - 1, 1]);
};
const pending = [];
for (let k = 0; k < 6000 && failures.length < 10; k++) {
  const name = OPS[k % OPS.length] + (k % 3 === 0 ? 'Async' : '');
  const args = Array.from({ length: 3 + Math.floor(r() * 8) }, arg);
  const what = name + '(' + args.map((a) => (a instanceof n.Tensor ? a.dtype + '[' + a.shape + ']' : a && a.constructor === Int32Array ? 'Int32Array' : String(a))).join(', ') + ')';
  const bad = (e) => {
    const c = code(e);
    if (c !== 'ERR_PAJAMA_INVALID_ARG') failures.push(what + ' threw ' + c + ' ' + (e && e.message));
  };
  try {
    const res = n[name](...args);
    if (res && typeof res.then === 'function') pending.push(res.then(() => {}, bad));
  } catch (e) {
    bad(e);
  }
}
Promise.all(pending).then(() => {
  console.log(JSON.stringify({ failures }));
});
`;

t.test('the addon itself: random shapes, views and every op builder, in a child process', async (t) => {
  const r = spawnSync(process.execPath, ['-e', NATIVE_FUZZ], {
    env: { ...process.env, FUZZ_ADDON: ADDON },
    encoding: 'utf8',
    timeout: 240_000,
    maxBuffer: 16 << 20,
  });
  t.equal(r.signal, null, `no signal (stderr: ${r.stderr.slice(-1000)})`);
  t.equal(r.status, 0, 'exit 0');
  const line = r.stdout.trim().split('\n').pop() ?? '';
  const parsed = line.startsWith('{') ? (JSON.parse(line) as { failures: string[] }) : { failures: [`no result: ${r.stdout.slice(-500)}`] };
  t.same(parsed.failures, [], 'every call succeeds or throws ERR_PAJAMA_INVALID_ARG');
});
