// rng.ts: a small seedable PRNG whose whole state is four u32s, so it can be saved in a checkpoint as JSON
// and resumed exactly. xoshiro128** 1.1 (Blackman & Vigna), seeded by SplitMix64 as its authors advise;
// both match the reference C code (see test/data/rng.test.ts). Not for cryptography.
import { invalidArg } from '../core/errors';

/** The generator's state: four u32s, not all zero. */
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

export class Xoshiro128 {
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
