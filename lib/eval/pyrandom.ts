// pyrandom.ts: Python's random.Random, as far as the evaluation harness uses it to draw few-shot examples:
// MT19937 seeded from an integer the way CPython's random.seed(int) does (init_by_array over the integer's
// 32-bit words, least significant first), getrandbits, _randbelow (rejection sampling over bit_length(n)
// bits) and random.sample's two algorithms (a shrinking pool for small populations, a set of drawn indices
// for large ones), so that the same seed gives the same examples as `random.Random(seed).sample(docs, k)`.
import { invalidArg } from '../core/errors';

const N = 624;
const M = 397;

export class PyRandom {
  readonly #mt = new Uint32Array(N);
  #mti = N + 1;

  /** random.Random(seed) for an integer seed (Python uses its absolute value). */
  constructor(seed: number | bigint) {
    if (typeof seed === 'number' && !Number.isSafeInteger(seed)) throw invalidArg(`PyRandom: seed must be a safe integer or a bigint, got ${seed}`);
    let n = BigInt(seed);
    if (n < 0n) n = -n;
    const key: number[] = [];
    do {
      key.push(Number(n & 0xffffffffn));
      n >>= 32n;
    } while (n > 0n);
    this.#initByArray(key);
  }

  #initGenrand(s: number): void {
    const mt = this.#mt;
    mt[0] = s >>> 0;
    for (let i = 1; i < N; i++) {
      const prev = mt[i - 1] ^ (mt[i - 1] >>> 30);
      mt[i] = (Math.imul(1812433253, prev) + i) >>> 0;
    }
    this.#mti = N;
  }

  #initByArray(key: number[]): void {
    const mt = this.#mt;
    this.#initGenrand(19650218);
    let i = 1;
    let j = 0;
    for (let k = Math.max(N, key.length); k > 0; k--) {
      const prev = mt[i - 1] ^ (mt[i - 1] >>> 30);
      mt[i] = ((mt[i] ^ Math.imul(prev, 1664525)) + key[j] + j) >>> 0;
      i++;
      j++;
      if (i >= N) {
        mt[0] = mt[N - 1];
        i = 1;
      }
      if (j >= key.length) j = 0;
    }
    for (let k = N - 1; k > 0; k--) {
      const prev = mt[i - 1] ^ (mt[i - 1] >>> 30);
      mt[i] = ((mt[i] ^ Math.imul(prev, 1566083941)) - i) >>> 0;
      i++;
      if (i >= N) {
        mt[0] = mt[N - 1];
        i = 1;
      }
    }
    mt[0] = 0x80000000;
  }

  /** The next 32-bit output of MT19937 (genrand_uint32). */
  nextU32(): number {
    const mt = this.#mt;
    if (this.#mti >= N) {
      let kk = 0;
      const mag = (y: number) => (y & 1 ? 0x9908b0df : 0);
      for (; kk < N - M; kk++) {
        const y = (mt[kk] & 0x80000000) | (mt[kk + 1] & 0x7fffffff);
        mt[kk] = mt[kk + M] ^ (y >>> 1) ^ mag(y);
      }
      for (; kk < N - 1; kk++) {
        const y = (mt[kk] & 0x80000000) | (mt[kk + 1] & 0x7fffffff);
        mt[kk] = mt[kk + (M - N)] ^ (y >>> 1) ^ mag(y);
      }
      const y = (mt[N - 1] & 0x80000000) | (mt[0] & 0x7fffffff);
      mt[N - 1] = mt[M - 1] ^ (y >>> 1) ^ mag(y);
      this.#mti = 0;
    }
    let y = mt[this.#mti++];
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  /** random.getrandbits(k) for 0 <= k <= 53 (32-bit words least significant first; the last one keeps its top bits). */
  getrandbits(k: number): number {
    if (!Number.isInteger(k) || k < 0 || k > 53) throw invalidArg(`PyRandom.getrandbits: k must be an integer in [0, 53], got ${k}`);
    if (k === 0) return 0;
    if (k <= 32) return this.nextU32() >>> (32 - k);
    const low = this.nextU32();
    const high = this.nextU32() >>> (64 - k);
    return high * 2 ** 32 + low;
  }

  /** random._randbelow(n): uniform in [0, n), n >= 1, by rejection over n.bit_length() bits. */
  randbelow(n: number): number {
    if (!Number.isSafeInteger(n) || n < 1) throw invalidArg(`PyRandom.randbelow: n must be a positive safe integer, got ${n}`);
    const k = bitLength(n);
    let r = this.getrandbits(k);
    while (r >= n) r = this.getrandbits(k);
    return r;
  }

  /** random.sample(population, k): k distinct elements in selection order. */
  sample<T>(population: readonly T[], k: number): T[] {
    const n = population.length;
    if (!Number.isInteger(k) || k < 0 || k > n) throw invalidArg(`PyRandom.sample: sample larger than population or is negative (k ${k}, population ${n})`);
    const result: T[] = new Array(k);
    // CPython: setsize = 21, plus 4 ** ceil(log(3k, 4)) when k > 5 (3k is never a power of 4, so the ceiling
    // is the smallest m with 4^m > 3k, computed here in integers).
    let setsize = 21;
    if (k > 5) {
      let p = 1;
      while (p <= 3 * k) p *= 4;
      setsize += p;
    }
    if (n <= setsize) {
      const pool = population.slice();
      for (let i = 0; i < k; i++) {
        const j = this.randbelow(n - i);
        result[i] = pool[j];
        pool[j] = pool[n - i - 1];
      }
    } else {
      const selected = new Set<number>();
      for (let i = 0; i < k; i++) {
        let j = this.randbelow(n);
        while (selected.has(j)) j = this.randbelow(n);
        selected.add(j);
        result[i] = population[j];
      }
    }
    return result;
  }
}

function bitLength(n: number): number {
  let k = 0;
  while (n >= 2 ** 32) {
    n = Math.floor(n / 2 ** 32);
    k += 32;
  }
  return k + (n === 0 ? 0 : 32 - Math.clz32(n));
}
