// rng.ts: the project's seeded random generators, one family with one shape. Each generator is a U32Source
// (nextU32(): the next uniform u32); the distributions are functions over any source: uniform() for a double
// in [0, 1), normalSampler() for Normal(0, 1). Not for cryptography.
//
// Which generator is for what, and why:
// - Xoshiro128 (xoshiro128** 1.1 by Blackman & Vigna, seeded by SplitMix64 as its authors advise) for every
//   stream that must resume exactly or run long: the loader's sample order (its whole state is four u32s,
//   saved in the checkpoint as JSON, so a resumed run reads the same batches), the demo corpus, generation's
//   sampling and the benchmarks' inputs. Period 2^128 - 1; below(n) gives unbiased integers up to 2^53.
// - Mulberry32 (one u32 of state, period 2^32) for model initialisation, through seededNormal, and for test
//   data. Its stream is drawn once and never saved, and the weights of a seed are defined by it: every
//   existing checkpoint and test seed depends on this exact stream, so it stays.
// - normalSampler: Box-Muller over two u32s, cosine sample first, the sine sample kept for the next call.
//
// SplitMix64, xoshiro128** and the seeding match the reference C code; mulberry32 and the normal sampler
// match straightforward reimplementations (test/core/rng.test.ts).
import { invalidArg } from './errors';

/** A seeded generator: a stream of uniform u32s. */
export interface U32Source {
  /** The next u32, uniform in [0, 2^32). */
  nextU32(): number;
}

/** Xoshiro128's state: four u32s, not all zero. */
export type RngState = [number, number, number, number];

const MASK64 = (1n << 64n) - 1n;

/** SplitMix64 from `seed`: returns the next `count` outputs. */
export function splitMix64(seed: bigint, count: number): bigint[] {
  let x = BigInt.asUintN(64, seed);
  const out: bigint[] = [];
  for (let i = 0; i < count; i++) {
    x = (x + 0x9e3779b97f4a7c15n) & MASK64;
    let z = x;
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
    out.push(z ^ (z >> 31n));
  }
  return out;
}

const rotl = (x: number, k: number): number => (x << k) | (x >>> (32 - k));

/** xoshiro128** 1.1: a resumable stream (see state() and fromState()). */
export class Xoshiro128 implements U32Source {
  #s = new Uint32Array(4);

  private constructor(state: ArrayLike<number>) {
    this.#s.set(state);
  }

  /** A generator seeded from any safe integer (negative seeds are taken mod 2^64). */
  static fromSeed(seed: number): Xoshiro128 {
    if (!Number.isSafeInteger(seed)) throw invalidArg(`Xoshiro128.fromSeed: seed must be a safe integer, got ${seed}`);
    const [a, b] = splitMix64(BigInt(seed), 2);
    const words = [a & 0xffffffffn, a >> 32n, b & 0xffffffffn, b >> 32n].map(Number);
    if (!words.some((w) => w !== 0)) words[0] = 1; // the one state xoshiro cannot leave; SplitMix64 never gives it in practice
    return new Xoshiro128(words);
  }

  /** A generator resuming from a saved state(). */
  static fromState(state: readonly number[]): Xoshiro128 {
    if (!Array.isArray(state) || state.length !== 4 || !state.every((w) => Number.isInteger(w) && w >= 0 && w <= 0xffffffff)) {
      throw invalidArg(`Xoshiro128.fromState: state must be four u32s, got ${JSON.stringify(state)}`);
    }
    if (state.every((w) => w === 0)) throw invalidArg('Xoshiro128.fromState: the all-zero state is not a valid xoshiro state');
    return new Xoshiro128(state);
  }

  /** The state, as plain numbers (JSON-serialisable). */
  state(): RngState {
    const s = this.#s;
    return [s[0], s[1], s[2], s[3]];
  }

  /** The next u32. */
  nextU32(): number {
    const s = this.#s;
    const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /**
   * A uniform integer in [0, n), n a positive integer up to 2^53, by rejection (no modulo bias): one u32 per
   * try when n <= 2^32, otherwise 53 bits from two u32s per try.
   */
  below(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > 2 ** 53) throw invalidArg(`Xoshiro128.below: n must be an integer in [1, 2^53], got ${n}`);
    if (n <= 2 ** 32) {
      const limit = 2 ** 32 - (2 ** 32 % n);
      for (;;) {
        const x = this.nextU32();
        if (x < limit) return x % n;
      }
    }
    const limit = 2 ** 53 - (2 ** 53 % n);
    for (;;) {
      const x = (this.nextU32() >>> 11) * 2 ** 32 + this.nextU32();
      if (x < limit) return x % n;
    }
  }
}

/**
 * Mulberry32 (Tommy Ettinger): the generator behind model initialisation and test data. The seed is taken
 * as ToUint32(seed) (`seed >>> 0`: negative seeds mod 2^32, fractions truncated), as the init always has.
 */
export class Mulberry32 implements U32Source {
  #a: number;

  constructor(seed: number) {
    this.#a = seed >>> 0;
  }

  nextU32(): number {
    this.#a = (this.#a + 0x6d2b79f5) >>> 0;
    let t = this.#a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
}

/** A uniform double in [0, 1) from one u32 (32 bits of resolution). */
export function uniform(source: U32Source): number {
  return source.nextU32() / 4294967296;
}

/** A uniform double in [0, 1) from two u32 (53 bits, every double of the form k / 2^53): for sampling. */
export function uniform53(source: U32Source): number {
  return ((source.nextU32() >>> 5) * 67108864 + (source.nextU32() >>> 6)) / 9007199254740992;
}

/**
 * Normal(0, 1) samples by Box-Muller: each pair of u32s gives u in (0, 1) (never 0, so the log is finite) and
 * v in [0, 1); a call returns r cos(2 pi v), the next call the r sin(2 pi v) of the same pair.
 */
export function normalSampler(source: U32Source): () => number {
  let spare: number | null = null;
  return () => {
    if (spare !== null) {
      const s = spare;
      spare = null;
      return s;
    }
    const u = (source.nextU32() + 1) / 4294967297;
    const v = source.nextU32() / 4294967296;
    const r = Math.sqrt(-2 * Math.log(u));
    spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  };
}

/** The sampler of model initialisation: Normal(0, 1) from Mulberry32(seed), deterministic across platforms. */
export function seededNormal(seed: number): () => number {
  return normalSampler(new Mulberry32(seed));
}
