// stats.ts against hand-computed cases: the mean and sample sd of small samples, Student-t quantiles against
// the printed table (t(0.975, 1) = 12.706 ...) and against scipy at non-integer degrees of freedom, the CDF,
// Welch's interval (with its Welch-Satterthwaite df worked out by hand) for an interval that excludes zero
// and one that includes it, the paired interval, and no interval from one run.
import t from 'tap';
import { lnGamma, mean, pairedInterval, regularizedIncompleteBeta, sampleSd, sampleVariance, tCdf, tQuantile, welchInterval } from '../../lib/eval/stats';

const close = (actual: number | null, expected: number, tol: number, msg: string) =>
  t.ok(actual !== null && Math.abs(actual - expected) <= tol * Math.max(1, Math.abs(expected)), `${msg}: ${actual} vs ${expected}`);

t.test('mean and sample standard deviation', async (t) => {
  t.equal(mean([1, 2, 3, 4]), 2.5);
  // [2, 4, 4, 4, 5, 5, 7, 9]: mean 5, squared deviations sum to 32, / 7 -> variance 4.571428..., sd 2.13809
  close(sampleVariance([2, 4, 4, 4, 5, 5, 7, 9]), 32 / 7, 1e-14, 'variance');
  close(sampleSd([2, 4, 4, 4, 5, 5, 7, 9]), Math.sqrt(32 / 7), 1e-14, 'sd');
  // Large offset, tiny spread: the two-pass variance keeps it (1000.01, 1000.02, 1000.03 -> sd 0.01).
  close(sampleSd([1000.01, 1000.02, 1000.03]), 0.01, 1e-9, 'sd with an offset');
  t.equal(sampleSd([3.5]), null, 'one value: no sd');
  t.throws(() => mean([]), /needs at least 1 value/);
  t.throws(() => mean([1, NaN]), /value 1 must be a finite number/);
});

t.test('lnGamma and the incomplete beta function', async (t) => {
  close(lnGamma(5), Math.log(24), 1e-14, 'ln 4!');
  close(lnGamma(0.5), 0.5 * Math.log(Math.PI), 1e-14, 'ln Γ(1/2)');
  // I_x(1, 1) = x; I_x(a, 1) = x^a; I_0.5(a, a) = 0.5 by symmetry.
  close(regularizedIncompleteBeta(0.3, 1, 1), 0.3, 1e-14, 'I_x(1,1)');
  close(regularizedIncompleteBeta(0.7, 3, 1), 0.343, 1e-14, 'I_x(3,1)');
  close(regularizedIncompleteBeta(0.5, 2.5, 2.5), 0.5, 1e-14, 'I_0.5(a,a)');
  t.throws(() => regularizedIncompleteBeta(1.5, 1, 1), /x must be in \[0, 1\]/);
});

t.test('t quantiles against the printed table', async (t) => {
  // Two-sided 95% critical values as every statistics textbook's table prints them (3 decimals).
  const table: [number, number][] = [
    [1, 12.706],
    [2, 4.303],
    [3, 3.182],
    [4, 2.776],
    [5, 2.571],
    [10, 2.228],
    [30, 2.042],
    [120, 1.98],
  ];
  for (const [df, q] of table) t.equal(Number(tQuantile(0.975, df).toFixed(3)), q, `t(0.975, ${df})`);
  t.equal(Number(tQuantile(0.995, 4).toFixed(3)), 4.604, 't(0.995, 4)');
  t.equal(tQuantile(0.5, 7), 0);
  close(tQuantile(0.025, 4), -tQuantile(0.975, 4), 1e-15, 'symmetry');
});

t.test('t quantiles and CDF against scipy at any degrees of freedom', async (t) => {
  // /usr/bin/python3 -c "from scipy.stats import t; import math
  // for p,df in [(0.975,1),(0.975,2),(0.975,4),(0.975,30),(0.975,2.5),(0.995,3.7),(0.9,1000),(0.975,math.inf),(0.6,0.5),(0.999999,1)]:
  //   print(p, df, '%.15g' % t.ppf(p, df), '%.15g' % t.cdf(-2, df))"
  const cases: [number, number, number, number][] = [
    [0.975, 1, 12.7062047361747, 0.147583617650433],
    [0.975, 2, 4.30265272974946, 0.091751709536137],
    [0.975, 4, 2.77644510519779, 0.0580582617584078],
    [0.975, 30, 2.04227245630124, 0.0273125224814915],
    [0.975, 2.5, 3.57465484200368, 0.078695747878983],
    [0.995, 3.7, 4.86925225322783, 0.060908600952617],
    [0.9, 1000, 1.28239872146092, 0.0228851732466258],
    [0.975, Infinity, 1.95996398454005, 0.0227501319481792],
    [0.6, 0.5, 0.397975426784791, 0.222757445091566],
    [0.999999, 1, 318309.88617359, 0.147583617650433],
  ];
  for (const [p, df, q, cdf] of cases) {
    close(tQuantile(p, df), q, 1e-9, `ppf(${p}, ${df})`);
    close(tCdf(-2, df), cdf, 1e-12, `cdf(-2, ${df})`);
    close(tCdf(q, df), p, 1e-12, `cdf(ppf(${p}, ${df}))`);
  }
  t.throws(() => tQuantile(1, 3), /p must be in \(0, 1\)/);
  t.throws(() => tQuantile(0.9, 0), /degrees of freedom must be a number > 0/);
});

t.test("Welch's interval", async (t) => {
  // a = [3.41, 3.42, 3.40]: mean 3.41, sd 0.01; b = [3.45, 3.46, 3.44, 3.47]: mean 3.455, sd 0.012910.
  // By hand: sa^2/na = 1e-4/3 = 3.3333e-5, sb^2/nb = (5e-4/3)/4 = 4.1667e-5, se^2 = 7.5e-5, se = 0.0086603;
  // df = 7.5e-5^2 / ((3.3333e-5)^2/2 + (4.1667e-5)^2/3) = 5.625e-9 / 1.13426e-9 = 4.95918;
  // diff = -0.045; half-width = t(0.975, 4.95918) * se. Ends from
  // python3 -c "from scipy import stats; print(stats.ttest_ind([3.41,3.42,3.40],[3.45,3.46,3.44,3.47],equal_var=False).confidence_interval())"
  const w = welchInterval([3.41, 3.42, 3.4], [3.45, 3.46, 3.44, 3.47]);
  close(w.diff, -0.045, 1e-12, 'diff');
  close(w.se, 0.00866025403784442, 1e-10, 'se');
  close(w.df, 4.95918367346939, 1e-9, 'df');
  close(w.lo, -0.0673171148133879, 1e-9, 'lo');
  close(w.hi, -0.022682885186612, 1e-9, 'hi');
  t.equal(w.method, 'welch');
  t.equal(w.reason, null);
  t.ok(w.hi! < 0, 'excludes zero');

  // c = [3.40, 3.43, 3.46], e = [3.41, 3.44, 3.44]: equal means; sd 0.03 and 0.017321; se = 0.02,
  // df = (4e-4)^2 / ((3e-4)^2/2 + (1e-4)^2/2) = 3.2; interval +-t(0.975, 3.2) * 0.02 = +-0.0614566.
  const z = welchInterval([3.4, 3.43, 3.46], [3.41, 3.44, 3.44]);
  close(z.diff, 0, 1e-12, 'diff 0');
  close(z.df, 3.2, 1e-9, 'df 3.2');
  close(z.lo, -0.0614565785942633, 1e-9, 'lo');
  close(z.hi, 0.0614565785942633, 1e-9, 'hi');
  t.ok(z.lo! < 0 && z.hi! > 0, 'includes zero');
});

t.test('no interval from one run, or from no spread at all', async (t) => {
  const one = welchInterval([3.4], [3.5, 3.6]);
  close(one.diff, -0.15, 1e-12, 'the difference is still the estimate');
  t.same([one.lo, one.hi, one.se, one.df], [null, null, null, null]);
  t.match(one.reason, /one run in a group \(n = 1 and 2\)/);
  const flat = welchInterval([3, 3], [3, 3]);
  t.equal(flat.lo, null);
  t.match(flat.reason, /do not vary between seeds/);
});

t.test('paired interval', async (t) => {
  // x - y = [-0.02, -0.03, -0.02]: mean -0.023333, sd 0.0057735, se 0.0033333, df 2, t(0.975, 2) = 4.302653;
  // python3 -c "from scipy import stats; print(stats.ttest_rel([3.41,3.45,3.38],[3.43,3.48,3.40]).confidence_interval())"
  const p = pairedInterval([3.41, 3.45, 3.38], [3.43, 3.48, 3.4]);
  close(p.diff, -0.0233333333333333, 1e-12, 'diff');
  t.equal(p.df, 2);
  close(p.lo, -0.0376755090991645, 1e-9, 'lo');
  close(p.hi, -0.00899115756750204, 1e-9, 'hi');
  t.equal(p.method, 'paired');
  t.throws(() => pairedInterval([1, 2], [1]), /must pair up, got 2 and 1 values/);
  t.match(pairedInterval([1], [2]).reason, /one pair/);
});
