// xxh64.ts: streaming XXH64 with seed 0, the hash of zstd's content checksum (zstd stores its low 32 bits at
// the end of a frame; zstd-frames.ts checks them, because fzstd does not).
//
// JS has no fast 64-bit integer, so 64-bit words are (high, low) pairs of uint32, with products built from
// 16-bit limbs (exact in doubles). Only digestLow32 is offered, which is all zstd needs. Speed matters: this is
// the whole cost of checking a .jsonl.zst file's checksums (benchmarks/reader.ts, "no checksum" row).

// The 64-bit helpers return their result in rh and rl, so the hot loop allocates nothing.
let rh = 0;
let rl = 0;

/** (ah, al) * (bh, bl) mod 2^64. */
function mul64(ah: number, al: number, bh: number, bl: number): void {
  const a0 = al & 0xffff;
  const a1 = al >>> 16;
  const b0 = bl & 0xffff;
  const b1 = bl >>> 16;
  const lo = a0 * b0;
  const m1 = a1 * b0;
  const m2 = a0 * b1;
  const t = (lo >>> 16) + (m1 & 0xffff) + (m2 & 0xffff);
  rl = (((t & 0xffff) << 16) | (lo & 0xffff)) >>> 0;
  rh = (a1 * b1 + (m1 >>> 16) + (m2 >>> 16) + (t >>> 16) + Math.imul(ah, bl) + Math.imul(al, bh)) >>> 0;
}

/** (ah, al) + (bh, bl) mod 2^64. */
function add64(ah: number, al: number, bh: number, bl: number): void {
  const l = al + bl;
  rl = l >>> 0;
  rh = (ah + bh + (l > 0xffffffff ? 1 : 0)) >>> 0;
}

/** (h, l) rotated left by r, 0 < r < 32. */
function rotl64(h: number, l: number, r: number): void {
  rh = ((h << r) | (l >>> (32 - r))) >>> 0;
  rl = ((l << r) | (h >>> (32 - r))) >>> 0;
}

const P1H = 0x9e3779b1, P1L = 0x85ebca87;
const P2H = 0xc2b2ae3d, P2L = 0x27d4eb4f;
const P3H = 0x165667b1, P3L = 0x9e3779f9;
const P4H = 0x85ebca77, P4L = 0xc2b2ae63;
const P5H = 0x27d4eb2f, P5L = 0x165667c5;
const P1L0 = P1L & 0xffff, P1L1 = P1L >>> 16;
const P2L0 = P2L & 0xffff, P2L1 = P2L >>> 16;

/** XXH64's round: acc = rotl(acc + input * P2, 31) * P1. */
function round64(acch: number, accl: number, inh: number, inl: number): void {
  mul64(inh, inl, P2H, P2L);
  add64(acch, accl, rh, rl);
  rotl64(rh, rl, 31);
  mul64(rh, rl, P1H, P1L);
}

/** Streaming XXH64 with seed 0; digestLow32 gives the 32 bits zstd stores. */
export class Xxh64 {
  private readonly acc = new Uint32Array(8); // v1..v4 as (high, low)
  private readonly stripe = new Uint8Array(32); // a partial 32-byte stripe
  private stripeLength = 0;
  private total = 0;

  constructor() {
    this.reset();
  }

  reset(): void {
    const a = this.acc;
    add64(P1H, P1L, P2H, P2L);
    a[0] = rh;
    a[1] = rl;
    a[2] = P2H;
    a[3] = P2L;
    a[4] = 0;
    a[5] = 0;
    add64(0, 0, ~P1H >>> 0, ~P1L >>> 0); // -P1 = ~P1 + 1
    add64(rh, rl, 0, 1);
    a[6] = rh;
    a[7] = rl;
    this.stripeLength = 0;
    this.total = 0;
  }

  update(data: Uint8Array): void {
    this.total += data.length;
    let i = 0;
    if (this.stripeLength > 0) {
      const k = Math.min(32 - this.stripeLength, data.length);
      this.stripe.set(data.subarray(0, k), this.stripeLength);
      this.stripeLength += k;
      i = k;
      if (this.stripeLength < 32) return;
      this.stripes(this.stripe, 0, 32);
      this.stripeLength = 0;
    }
    const whole = i + ((data.length - i) & ~31);
    this.stripes(data, i, whole);
    if (whole < data.length) {
      this.stripe.set(data.subarray(whole), 0);
      this.stripeLength = data.length - whole;
    }
  }

  /**
   * XXH64's round on each 32-byte stripe of d[start, end), for the four lanes: lane = rotl(lane + input * P2,
   * 31) * P1. The 64-bit products are written out here (the low word from Math.imul, the high word from
   * 16-bit limbs, exact in doubles) because this loop is the checksum's whole cost.
   */
  private stripes(d: Uint8Array, start: number, end: number): void {
    const a = this.acc;
    for (let i = start; i < end; i += 32) {
      for (let lane = 0; lane < 4; lane++) {
        const o = i + lane * 8;
        const inl = readU32(d, o);
        const inh = readU32(d, o + 4);
        // (ph, pl) = input * P2
        let x0 = inl & 0xffff;
        let x1 = inl >>> 16;
        let lo = x0 * P2L0;
        let m1 = x1 * P2L0;
        let m2 = x0 * P2L1;
        let t = (lo >>> 16) + (m1 & 0xffff) + (m2 & 0xffff);
        const pl = Math.imul(inl, P2L) >>> 0;
        const ph = x1 * P2L1 + (m1 >>> 16) + (m2 >>> 16) + (t >>> 16) + Math.imul(inh, P2L) + Math.imul(inl, P2H);
        // (sh, sl) = lane + p
        const sum = a[2 * lane + 1] + pl;
        const sl = sum >>> 0;
        const sh = (a[2 * lane] + ph + (sum > 0xffffffff ? 1 : 0)) >>> 0;
        // (qh, ql) = rotl(s, 31)
        const qh = ((sh << 31) | (sl >>> 1)) >>> 0;
        const ql = ((sl << 31) | (sh >>> 1)) >>> 0;
        // lane = q * P1
        x0 = ql & 0xffff;
        x1 = ql >>> 16;
        lo = x0 * P1L0;
        m1 = x1 * P1L0;
        m2 = x0 * P1L1;
        t = (lo >>> 16) + (m1 & 0xffff) + (m2 & 0xffff);
        a[2 * lane + 1] = Math.imul(ql, P1L);
        a[2 * lane] = x1 * P1L1 + (m1 >>> 16) + (m2 >>> 16) + (t >>> 16) + Math.imul(qh, P1L) + Math.imul(ql, P1H);
      }
    }
  }

  /** The low 32 bits of the digest of everything updated since the last reset. */
  digestLow32(): number {
    const a = this.acc;
    let hh: number, hl: number;
    if (this.total >= 32) {
      rotl64(a[0], a[1], 1);
      let sh = rh, sl = rl;
      rotl64(a[2], a[3], 7);
      add64(sh, sl, rh, rl);
      sh = rh;
      sl = rl;
      rotl64(a[4], a[5], 12);
      add64(sh, sl, rh, rl);
      sh = rh;
      sl = rl;
      rotl64(a[6], a[7], 18);
      add64(sh, sl, rh, rl);
      hh = rh;
      hl = rl;
      for (let v = 0; v < 8; v += 2) {
        round64(0, 0, a[v], a[v + 1]);
        hh = (hh ^ rh) >>> 0;
        hl = (hl ^ rl) >>> 0;
        mul64(hh, hl, P1H, P1L);
        add64(rh, rl, P4H, P4L);
        hh = rh;
        hl = rl;
      }
    } else {
      hh = P5H;
      hl = P5L;
    }
    add64(hh, hl, Math.floor(this.total / 2 ** 32), this.total >>> 0);
    hh = rh;
    hl = rl;
    const s = this.stripe;
    const n = this.stripeLength;
    let i = 0;
    for (; i + 8 <= n; i += 8) {
      round64(0, 0, readU32(s, i + 4), readU32(s, i));
      hh = (hh ^ rh) >>> 0;
      hl = (hl ^ rl) >>> 0;
      rotl64(hh, hl, 27);
      mul64(rh, rl, P1H, P1L);
      add64(rh, rl, P4H, P4L);
      hh = rh;
      hl = rl;
    }
    if (i + 4 <= n) {
      mul64(0, readU32(s, i), P1H, P1L);
      hh = (hh ^ rh) >>> 0;
      hl = (hl ^ rl) >>> 0;
      rotl64(hh, hl, 23);
      mul64(rh, rl, P2H, P2L);
      add64(rh, rl, P3H, P3L);
      hh = rh;
      hl = rl;
      i += 4;
    }
    for (; i < n; i++) {
      mul64(0, s[i], P5H, P5L);
      hh = (hh ^ rh) >>> 0;
      hl = (hl ^ rl) >>> 0;
      rotl64(hh, hl, 11);
      mul64(rh, rl, P1H, P1L);
      hh = rh;
      hl = rl;
    }
    // avalanche
    hl = (hl ^ (hh >>> 1)) >>> 0; // h ^= h >> 33
    mul64(hh, hl, P2H, P2L);
    hh = rh;
    hl = rl;
    hl = (hl ^ ((hl >>> 29) | (hh << 3))) >>> 0; // h ^= h >> 29
    hh = (hh ^ (hh >>> 29)) >>> 0;
    mul64(hh, hl, P3H, P3L);
    hh = rh;
    hl = rl;
    return (hl ^ hh) >>> 0; // h ^= h >> 32, low half
  }
}

/** The little-endian uint32 at b[at]. */
function readU32(b: Uint8Array, at: number): number {
  return (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24)) >>> 0;
}
