// stats.ts: the statistics `pajama compare` reports, in float64 with no dependencies: mean, sample standard
// deviation, Student's t distribution (CDF and quantiles for any real degrees of freedom > 0), and 95%
// intervals of a difference of means: Welch's t-interval for two independent groups (Welch-Satterthwaite
// degrees of freedom), and the paired t-interval for groups matched by seed.
//
// The t CDF goes through the regularized incomplete beta function (Numerical Recipes' continued fraction,
// evaluated with the modified Lentz method, over a Lanczos log-gamma): for t >= 0,
//   P(T <= t) = 1 - I_x(df/2, 1/2) / 2,   x = df / (df + t^2).
// tQuantile inverts it by bisection on a bracket that doubles until it holds p, then Newton steps with the
// t density, kept inside the bracket; it agrees with scipy.stats.t.ppf to about 1e-10 (test/eval/stats.test.ts).
import { invalidArg } from '../core/errors';

function checkSample(xs: readonly number[], what: string, min: number): void {
  if (!Array.isArray(xs)) throw invalidArg(`${what}: expected an array of numbers`);
  if (xs.length < min) throw invalidArg(`${what}: needs at least ${min} value${min === 1 ? '' : 's'}, got ${xs.length}`);
  xs.forEach((x, i) => {
    if (typeof x !== 'number' || !Number.isFinite(x)) throw invalidArg(`${what}: value ${i} must be a finite number, got ${JSON.stringify(x)}`);
  });
}

/** The arithmetic mean (at least one value). */
export function mean(xs: readonly number[]): number {
  checkSample(xs, 'mean', 1);
  let s = 0;
  for (const x of xs) s += x;
  return s / xs.length;
}

/** The sample variance, with n - 1 in the denominator (at least two values). Two-pass, for accuracy. */
export function sampleVariance(xs: readonly number[]): number {
  checkSample(xs, 'sampleVariance', 2);
  const m = mean(xs);
  let ss = 0;
  let c = 0;
  for (const x of xs) {
    ss += (x - m) * (x - m);
    c += x - m;
  }
  return (ss - (c * c) / xs.length) / (xs.length - 1);
}

/** The sample standard deviation (n - 1 in the denominator); null for fewer than two values. */
export function sampleSd(xs: readonly number[]): number | null {
  return xs.length < 2 ? null : Math.sqrt(Math.max(0, sampleVariance(xs)));
}

const LANCZOS = [
  0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905, -0.13857109526572012,
  9.9843695780195716e-6, 1.5056327351493116e-7,
];

/** ln Γ(x) for x > 0 (Lanczos, g = 7, n = 9: about 15 significant digits). */
export function lnGamma(x: number): number {
  if (!(x > 0)) throw invalidArg(`lnGamma: x must be > 0, got ${x}`);
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - lnGamma(1 - x);
  const z = x - 1;
  let a = LANCZOS[0];
  const t = z + 7.5;
  for (let i = 1; i < 9; i++) a += LANCZOS[i] / (z + i);
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(a);
}

/** The continued fraction of I_x(a, b) (modified Lentz); converges fast for x < (a + 1) / (a + b + 2). */
function betaContinuedFraction(a: number, b: number, x: number): number {
  const tiny = 1e-300;
  let c = 1;
  let d = 1 - ((a + b) * x) / (a + 1);
  if (Math.abs(d) < tiny) d = tiny;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= 10000; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((a + m2 - 1) * (a + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    h *= d * c;
    aa = (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + m2 + 1));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-16) return h;
  }
  throw new Error(`regularizedIncompleteBeta: the continued fraction did not converge (a=${a}, b=${b}, x=${x})`);
}

/** The regularized incomplete beta function I_x(a, b), for a, b > 0 and 0 <= x <= 1. */
export function regularizedIncompleteBeta(x: number, a: number, b: number): number {
  if (!(a > 0) || !(b > 0)) throw invalidArg(`regularizedIncompleteBeta: a and b must be > 0, got a=${a}, b=${b}`);
  if (!(x >= 0 && x <= 1)) throw invalidArg(`regularizedIncompleteBeta: x must be in [0, 1], got ${x}`);
  if (x === 0 || x === 1) return x;
  const lnFront = lnGamma(a + b) - lnGamma(a) - lnGamma(b) + a * Math.log(x) + b * Math.log1p(-x);
  if (x < (a + 1) / (a + b + 2)) return (Math.exp(lnFront) * betaContinuedFraction(a, b, x)) / a;
  return 1 - (Math.exp(lnFront) * betaContinuedFraction(b, a, 1 - x)) / b;
}

function checkDf(df: number, where: string): void {
  if (typeof df !== 'number' || !(df > 0) || Number.isNaN(df)) throw invalidArg(`${where}: degrees of freedom must be a number > 0, got ${df}`);
}

/** P(T <= t) for Student's t with `df` degrees of freedom (any real df > 0; Infinity: the normal). */
export function tCdf(t: number, df: number): number {
  checkDf(df, 'tCdf');
  if (Number.isNaN(t)) throw invalidArg('tCdf: t is NaN');
  if (t === Infinity) return 1;
  if (t === -Infinity) return 0;
  if (df === Infinity) return 0.5 * erfc(-t / Math.SQRT2);
  // x = df / (df + t^2), written to keep its precision for large |t|.
  const x = df / (df + t * t);
  const tail = 0.5 * regularizedIncompleteBeta(x, df / 2, 0.5);
  return t >= 0 ? 1 - tail : tail;
}

/** The t density. */
function tPdf(t: number, df: number): number {
  if (df === Infinity) return Math.exp(-0.5 * t * t) / Math.sqrt(2 * Math.PI);
  const lnC = lnGamma((df + 1) / 2) - lnGamma(df / 2) - 0.5 * Math.log(df * Math.PI);
  return Math.exp(lnC - ((df + 1) / 2) * Math.log1p((t * t) / df));
}

/** erfc(x), for the normal limit df = Infinity: Q(1/2, x^2), the regularized upper incomplete gamma function. */
function erfc(x: number): number {
  // erfc through the regularized incomplete gamma: erfc(x) = Q(1/2, x^2) for x >= 0.
  if (x < 0) return 2 - erfc(-x);
  const a = 0.5;
  const z = x * x;
  if (z === 0) return 1;
  const lnFront = -z + a * Math.log(z) - lnGamma(a);
  if (z < a + 1) {
    // P(a, z) by its series; Q = 1 - P.
    let sum = 1 / a;
    let term = 1 / a;
    for (let n = 1; n < 10000; n++) {
      term *= z / (a + n);
      sum += term;
      if (Math.abs(term) < Math.abs(sum) * 1e-17) break;
    }
    return 1 - sum * Math.exp(lnFront);
  }
  // Q(a, z) by its continued fraction (modified Lentz).
  const tiny = 1e-300;
  let b = z + 1 - a;
  let c = 1 / tiny;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < 10000; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < tiny) d = tiny;
    c = b + an / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-16) break;
  }
  return Math.exp(lnFront) * h;
}

/** The p-quantile of Student's t with `df` degrees of freedom: the t with P(T <= t) = p, for 0 < p < 1. */
export function tQuantile(p: number, df: number): number {
  checkDf(df, 'tQuantile');
  if (!(p > 0 && p < 1)) throw invalidArg(`tQuantile: p must be in (0, 1), got ${p}`);
  if (p === 0.5) return 0;
  if (p < 0.5) return -tQuantile(1 - p, df);
  // Bracket [0, hi] with tCdf(hi) >= p, then bisection and Newton inside the bracket.
  let lo = 0;
  let hi = 1;
  while (tCdf(hi, df) < p) {
    lo = hi;
    hi *= 2;
    if (hi > 1e300) return Infinity;
  }
  let t = (lo + hi) / 2;
  for (let i = 0; i < 200; i++) {
    const f = tCdf(t, df) - p;
    if (f === 0) return t;
    if (f < 0) lo = t;
    else hi = t;
    const newton = t - f / tPdf(t, df);
    t = newton > lo && newton < hi ? newton : (lo + hi) / 2;
    if (hi - lo <= 1e-15 * Math.max(1, t) || Math.abs(f) < 1e-16) break;
  }
  return t;
}

/** A confidence interval of a difference of means, with how it was computed. */
export interface DifferenceInterval {
  /** The estimate: mean(a) - mean(b) (Welch), or the mean of the pairwise differences a[i] - b[i] (paired). */
  diff: number;
  /** The interval's ends; null when it cannot be computed (see `reason`). */
  lo: number | null;
  hi: number | null;
  /** The standard error of `diff`; null with it. */
  se: number | null;
  /** Degrees of freedom of the t quantile (Welch-Satterthwaite for Welch, n - 1 paired); null with the interval. */
  df: number | null;
  /** The confidence level, e.g. 0.95. */
  level: number;
  /** 'welch' or 'paired'. */
  method: 'welch' | 'paired';
  /** Why there is no interval (a group of one run, or no spread at all between the values), else null. */
  reason: string | null;
}

function checkLevel(level: number, where: string): void {
  if (!(level > 0 && level < 1)) throw invalidArg(`${where}: level must be in (0, 1), got ${level}`);
}

/**
 * Welch's t-interval of mean(a) - mean(b) for two independent samples whose variances may differ:
 * se = sqrt(sa^2/na + sb^2/nb), df = se^4 / ((sa^2/na)^2/(na-1) + (sb^2/nb)^2/(nb-1)) (Welch-Satterthwaite),
 * diff +- t((1+level)/2, df) * se. With fewer than two values in either sample there is no estimate of its
 * spread and so no interval (lo, hi null, `reason` says why); likewise when both samples have zero spread.
 */
export function welchInterval(a: readonly number[], b: readonly number[], level = 0.95): DifferenceInterval {
  checkSample(a, 'welchInterval: the first sample', 1);
  checkSample(b, 'welchInterval: the second sample', 1);
  checkLevel(level, 'welchInterval');
  const diff = mean(a) - mean(b);
  const none = (reason: string): DifferenceInterval => ({ diff, lo: null, hi: null, se: null, df: null, level, method: 'welch', reason });
  if (a.length < 2 || b.length < 2) {
    return none(`one run in a group (n = ${a.length} and ${b.length}): no estimate of the spread between seeds, so no interval`);
  }
  const va = sampleVariance(a) / a.length;
  const vb = sampleVariance(b) / b.length;
  const se2 = va + vb;
  if (!(se2 > 0)) return none('the values do not vary between seeds at all: no estimate of the noise, so no interval');
  const df = (se2 * se2) / ((va * va) / (a.length - 1) + (vb * vb) / (b.length - 1));
  const se = Math.sqrt(se2);
  const half = tQuantile((1 + level) / 2, df) * se;
  return { diff, lo: diff - half, hi: diff + half, se, df, level, method: 'welch', reason: null };
}

/**
 * The paired t-interval of the mean of a[i] - b[i] (samples matched element by element, e.g. by seed):
 * d = a - b, diff = mean(d), se = sd(d) / sqrt(n), df = n - 1. Needs as many values in each; with one pair,
 * or pairs that all differ by the same amount, there is no interval.
 */
export function pairedInterval(a: readonly number[], b: readonly number[], level = 0.95): DifferenceInterval {
  checkSample(a, 'pairedInterval: the first sample', 1);
  checkSample(b, 'pairedInterval: the second sample', 1);
  checkLevel(level, 'pairedInterval');
  if (a.length !== b.length) throw invalidArg(`pairedInterval: the samples must pair up, got ${a.length} and ${b.length} values`);
  const d = a.map((x, i) => x - b[i]);
  const diff = mean(d);
  const none = (reason: string): DifferenceInterval => ({ diff, lo: null, hi: null, se: null, df: null, level, method: 'paired', reason });
  if (d.length < 2) return none('one pair: no estimate of the spread of the differences, so no interval');
  const v = sampleVariance(d);
  if (!(v > 0)) return none('every pair differs by the same amount: no estimate of the noise, so no interval');
  const se = Math.sqrt(v / d.length);
  const df = d.length - 1;
  const half = tQuantile((1 + level) / 2, df) * se;
  return { diff, lo: diff - half, hi: diff + half, se, df, level, method: 'paired', reason: null };
}
