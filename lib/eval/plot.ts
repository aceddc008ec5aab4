// plot.ts: the loss curve of a run as a self-contained SVG (no dependencies), drawn like SlimPajama-DC's
// Figure 4: the training loss, the validation loss of each source, the warmup shaded, and a dashed line at
// each PTWD stage boundary with every stage labelled by its weight decay. A long, noisy training line is
// also drawn smoothed (a centred moving average) over the faded raw one.
//
// Steps on the x axis count completed optimizer updates, as metrics.jsonl's `step` does (1 after the first
// update). Warmup covers updates 0 .. warmupSteps - 1, so it is shaded over [0, warmupSteps]; a PTWD
// boundary b (the update index that starts the next stage, as resolvePtwd gives it) is drawn at x = b, just
// before the first point trained with the new decay. Non-finite losses (skipped updates; JSON null in
// metrics.jsonl) are left out of the lines and counted in a note under the plot and in the root element's
// data-skipped attribute.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { invalidArg } from '../core/errors';
import { writeTextAtomic } from '../core/atomic';

export interface LossPoint {
  step: number;
  /** null or non-finite: not drawn, counted. */
  loss: number | null;
}

export interface EvalPoint {
  step: number;
  /** Validation loss by source name. */
  losses: Record<string, number | null>;
}

export interface LossCurveOptions {
  /** Training loss per step. */
  steps: readonly LossPoint[];
  /** Validation losses, each record with one loss per source. */
  evals?: readonly EvalPoint[];
  /** Updates of learning-rate warmup (shaded). 0: none. */
  warmupSteps: number;
  /** The update indices where PTWD stages 1, 2, ... start; [] for a single stage. */
  ptwdBoundaries: readonly number[];
  /** The weight decay of each stage (one more than the boundaries), or [] to leave the stages unlabelled. */
  ptwdValues: readonly number[];
  title: string;
  /** The last step of the x axis, e.g. the run's total steps while it is still going. Defaults to the last point. */
  totalSteps?: number;
  /**
   * Also draw the training loss as a centred moving average over this many points (see movingAverage),
   * with the raw line faded behind it. 0 (or below 3): the raw line only. Defaults to points / 50, odd and
   * between 5 and 501, from 100 points on, else 0.
   */
  smoothing?: number;
  /** Pixels. Default 880 x 500. */
  width?: number;
  height?: number;
}

export const TRAIN_COLOR = '#1f77b4';
export const EVAL_COLORS = ['#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];
export const FONT = "system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif";

export function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** A coordinate with at most two decimals, no trailing zeros. */
export function num(x: number): string {
  return String(Math.round(x * 100) / 100);
}

/** Ticks at 1, 2 or 5 times a power of ten, about `target` of them over [lo, hi]. */
export function niceStep(lo: number, hi: number, target: number): number {
  const raw = (hi - lo) / Math.max(1, target);
  if (!(raw > 0) || !Number.isFinite(raw)) return 1;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  return (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
}

export function ticks(lo: number, hi: number, step: number): number[] {
  const out: number[] = [];
  const eps = step * 1e-9;
  for (let k = Math.ceil((lo - eps) / step); k * step <= hi + eps; k++) out.push(k * step);
  return out;
}

export function decimalsFor(step: number): number {
  return Math.max(0, Math.min(6, -Math.floor(Math.log10(step) + 1e-9)));
}

export function formatStep(x: number, step: number, max: number): string {
  if (x === 0) return '0';
  if (max >= 10000 && step >= 1000) return `${Number((x / 1000).toFixed(decimalsFor(step / 1000)))}k`;
  return x.toFixed(decimalsFor(step));
}

/** A weight decay as written in a config: 0, 0.5, 0.1, 1e-5. */
function formatDecay(v: number): string {
  return String(Number(v.toPrecision(4)));
}

function checkOptions(o: LossCurveOptions): void {
  if (o === null || typeof o !== 'object') throw invalidArg('lossCurveSvg: options must be an object');
  const known = ['steps', 'evals', 'warmupSteps', 'ptwdBoundaries', 'ptwdValues', 'title', 'totalSteps', 'smoothing', 'width', 'height'];
  for (const k of Object.keys(o)) if (!known.includes(k)) throw invalidArg(`lossCurveSvg: unknown option '${k}' (options: ${known.join(', ')})`);
  const isStep = (x: unknown) => typeof x === 'number' && Number.isFinite(x) && x >= 0;
  if (!Array.isArray(o.steps)) throw invalidArg('lossCurveSvg: steps must be an array of { step, loss }');
  o.steps.forEach((p, i) => {
    if (!p || !isStep(p.step)) throw invalidArg(`lossCurveSvg: steps[${i}].step must be a finite number >= 0, got ${JSON.stringify(p?.step)}`);
    if (p.loss !== null && typeof p.loss !== 'number') throw invalidArg(`lossCurveSvg: steps[${i}].loss must be a number or null, got ${JSON.stringify(p.loss)}`);
  });
  if (o.evals !== undefined) {
    if (!Array.isArray(o.evals)) throw invalidArg('lossCurveSvg: evals must be an array of { step, losses }');
    o.evals.forEach((e, i) => {
      if (!e || !isStep(e.step)) throw invalidArg(`lossCurveSvg: evals[${i}].step must be a finite number >= 0, got ${JSON.stringify(e?.step)}`);
      if (!e.losses || typeof e.losses !== 'object') throw invalidArg(`lossCurveSvg: evals[${i}].losses must be an object of losses by source`);
      for (const [k, v] of Object.entries(e.losses)) {
        if (v !== null && typeof v !== 'number') throw invalidArg(`lossCurveSvg: evals[${i}].losses.${k} must be a number or null, got ${JSON.stringify(v)}`);
      }
    });
  }
  if (!isStep(o.warmupSteps)) throw invalidArg(`lossCurveSvg: warmupSteps must be a number >= 0, got ${JSON.stringify(o.warmupSteps)}`);
  if (!Array.isArray(o.ptwdBoundaries) || !o.ptwdBoundaries.every((b, k) => isStep(b) && (k === 0 || b > o.ptwdBoundaries[k - 1]))) {
    throw invalidArg(`lossCurveSvg: ptwdBoundaries must be increasing steps, got ${JSON.stringify(o.ptwdBoundaries)}`);
  }
  if (!Array.isArray(o.ptwdValues) || !o.ptwdValues.every((v) => typeof v === 'number' && Number.isFinite(v))) {
    throw invalidArg(`lossCurveSvg: ptwdValues must be an array of weight decays, got ${JSON.stringify(o.ptwdValues)}`);
  }
  if (o.ptwdValues.length !== 0 && o.ptwdValues.length !== o.ptwdBoundaries.length + 1) {
    throw invalidArg(
      `lossCurveSvg: ptwdValues needs one weight decay per stage (${o.ptwdBoundaries.length + 1} for ${o.ptwdBoundaries.length} boundaries) or none, got ${o.ptwdValues.length}`,
    );
  }
  if (typeof o.title !== 'string') throw invalidArg('lossCurveSvg: title must be a string');
  if (o.smoothing !== undefined && !isStep(o.smoothing)) throw invalidArg(`lossCurveSvg: smoothing must be a number >= 0, got ${o.smoothing}`);
  if (o.totalSteps !== undefined && !isStep(o.totalSteps)) throw invalidArg(`lossCurveSvg: totalSteps must be a number >= 0, got ${o.totalSteps}`);
  for (const k of ['width', 'height'] as const) {
    const v = o[k];
    if (v !== undefined && !(typeof v === 'number' && Number.isFinite(v) && v >= 240)) throw invalidArg(`lossCurveSvg: ${k} must be a number >= 240, got ${v}`);
  }
}

/**
 * A centred moving average over `window` points (2h + 1 with h = floor(window / 2)); near the ends the window
 * shrinks symmetrically, so the first and last points are their own and a steep descent does not lag.
 */
export function movingAverage(points: readonly [number, number][], window: number): [number, number][] {
  const h = Math.floor(window / 2);
  const n = points.length;
  const prefix = new Float64Array(n + 1);
  for (let i = 0; i < n; i++) prefix[i + 1] = prefix[i] + points[i][1];
  return points.map(([x], i) => {
    const r = Math.min(h, i, n - 1 - i);
    return [x, (prefix[i + r + 1] - prefix[i - r]) / (2 * r + 1)];
  });
}

/** The loss curve as an SVG document (a string). See the file header for what is drawn where. */
export function lossCurveSvg(options: LossCurveOptions): string {
  checkOptions(options);
  const W = options.width ?? 880;
  const H = options.height ?? 500;
  const evals = options.evals ?? [];
  let skipped = 0;

  const train: [number, number][] = [];
  for (const p of options.steps) {
    if (typeof p.loss === 'number' && Number.isFinite(p.loss)) train.push([p.step, p.loss]);
    else skipped++;
  }
  train.sort((a, b) => a[0] - b[0]);
  const window = options.smoothing ?? (train.length >= 100 ? Math.min(501, Math.max(5, 2 * Math.floor(train.length / 100) + 1)) : 0);
  const smoothed = window >= 3 ? movingAverage(train, window) : null;
  const sources: string[] = [];
  const evalSeries = new Map<string, [number, number][]>();
  for (const e of evals) {
    for (const [name, loss] of Object.entries(e.losses)) {
      if (!evalSeries.has(name)) {
        evalSeries.set(name, []);
        sources.push(name);
      }
      if (typeof loss === 'number' && Number.isFinite(loss)) evalSeries.get(name)!.push([e.step, loss]);
      else skipped++;
    }
  }
  for (const s of evalSeries.values()) s.sort((a, b) => a[0] - b[0]);

  // Domains. x: [0, the last step drawn or totalSteps]; y: the finite losses, out to the nearest ticks.
  const allPoints = train.concat(...evalSeries.values());
  // Loops, not Math.max(...xs): a long run has more points than a call may take arguments.
  let xMax = Math.max(1, options.totalSteps ?? 0);
  for (const p of options.steps) xMax = Math.max(xMax, p.step);
  for (const e of evals) xMax = Math.max(xMax, e.step);
  let yLo = Infinity;
  let yHi = -Infinity;
  for (const p of allPoints) {
    yLo = Math.min(yLo, p[1]);
    yHi = Math.max(yHi, p[1]);
  }
  if (allPoints.length === 0) [yLo, yHi] = [0, 1];
  else if (yHi - yLo < 1e-9 * Math.max(1, Math.abs(yHi))) {
    const pad = Math.max(0.5, Math.abs(yHi) * 0.05);
    [yLo, yHi] = [yLo - pad, yHi + pad];
  }
  const yStep = niceStep(yLo, yHi, 6);
  yLo = Math.floor(yLo / yStep + 1e-9) * yStep;
  yHi = Math.ceil(yHi / yStep - 1e-9) * yStep;
  const xStep = Math.max(1, niceStep(0, xMax, 8)); // steps are whole updates

  // Layout: title, a band for the stage labels, the plot, tick labels and axis title; legend on the right.
  const trainLegend = smoothed ? `train (mean of ${2 * Math.floor(window / 2) + 1})` : 'train';
  const legendTexts = [
    trainLegend,
    ...sources.map((name) => `val: ${name}`),
    ...(options.warmupSteps > 0 ? ['LR warmup'] : []),
    ...(options.ptwdBoundaries.length > 0 ? ['PTWD stage change'] : []),
  ];
  const legendW = Math.min(280, 46 + Math.max(...legendTexts.map((t) => t.length)) * 7);
  const L = 64;
  const R = W - legendW - 24;
  const T = 64;
  const B = H - 58;
  const X = (s: number) => L + (s / xMax) * (R - L);
  const Y = (v: number) => B - ((v - yLo) / (yHi - yLo)) * (B - T);

  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="${esc(FONT)}" font-size="12" data-skipped="${skipped}">`,
  );
  out.push(`<rect class="background" x="0" y="0" width="${W}" height="${H}" fill="#ffffff"/>`);
  out.push(`<text class="title" x="${num((L + R) / 2)}" y="24" text-anchor="middle" font-size="16" font-weight="600" fill="#222">${esc(options.title)}</text>`);
  // The clip leaves room for a marker centred on the plot's edge.
  out.push(`<defs><clipPath id="plot-clip"><rect x="${L - 5}" y="${T - 5}" width="${num(R - L + 10)}" height="${num(B - T + 10)}"/></clipPath></defs>`);
  out.push(`<rect class="plot-area" x="${L}" y="${T}" width="${num(R - L)}" height="${num(B - T)}" fill="#fcfcfc" stroke="none"/>`);

  // Warmup band.
  if (options.warmupSteps > 0) {
    const x1 = X(Math.min(options.warmupSteps, xMax));
    out.push(`<rect class="warmup" data-steps="${options.warmupSteps}" x="${L}" y="${T}" width="${num(x1 - L)}" height="${num(B - T)}" fill="#fdf0c8" fill-opacity="0.8"/>`);
    if (x1 - L >= 52) out.push(`<text x="${num((L + x1) / 2)}" y="${T + 16}" text-anchor="middle" font-size="11" fill="#9a7b1c">warmup</text>`);
  }

  // Grid and ticks.
  const labels = gridAndTicks(out, { L, R, T, B, X, Y, yLo, yHi, yStep, xMax, xStep });

  // PTWD: dashed boundaries, a label per stage in the band above the plot.
  const bounds = options.ptwdBoundaries.filter((b) => b <= xMax);
  const boundaryLines = bounds.map((b) => `<line class="ptwd-boundary" data-step="${b}" x1="${num(X(b))}" y1="${T - 20}" x2="${num(X(b))}" y2="${num(B)}"/>`);
  out.push(`<g stroke="#555" stroke-width="1.2" stroke-dasharray="5 4">${boundaryLines.join('')}</g>`);
  if (options.ptwdValues.length > 0) {
    const edges = [0, ...options.ptwdBoundaries, Infinity];
    const stageLabels: string[] = [];
    for (let k = 0; k < options.ptwdValues.length; k++) {
      const a = edges[k];
      const b = Math.min(edges[k + 1], xMax);
      if (a >= xMax && k > 0) break;
      const text = `wd = ${formatDecay(options.ptwdValues[k])}`;
      stageLabels.push(`<text class="ptwd-stage" data-stage="${k}" x="${num((X(a) + X(b)) / 2)}" y="${T - 8}" text-anchor="middle">${esc(text)}</text>`);
    }
    out.push(`<g font-size="12" fill="#333">${stageLabels.join('')}</g>`);
  }

  // Losses, clipped to the plot area.
  const data: string[] = [];
  const pts = (s: [number, number][]) => s.map(([x, y]) => `${num(X(x))},${num(Y(y))}`).join(' ');
  const rawStyle = smoothed ? 'stroke-width="1" stroke-opacity="0.3"' : 'stroke-width="1.3"';
  data.push(`<polyline class="train-loss" points="${pts(train)}" fill="none" stroke="${TRAIN_COLOR}" ${rawStyle} stroke-linejoin="round"/>`);
  if (smoothed) {
    data.push(`<polyline class="train-loss-smoothed" points="${pts(smoothed)}" fill="none" stroke="${TRAIN_COLOR}" stroke-width="1.8" stroke-linejoin="round"/>`);
  }
  if (train.length === 1) data.push(`<circle class="train-point" cx="${num(X(train[0][0]))}" cy="${num(Y(train[0][1]))}" r="2.5" fill="${TRAIN_COLOR}"/>`);
  sources.forEach((name, i) => {
    const color = EVAL_COLORS[i % EVAL_COLORS.length];
    const s = evalSeries.get(name)!;
    const marks = s.map(([x, y]) => `<circle cx="${num(X(x))}" cy="${num(Y(y))}" r="3.5"/>`).join('');
    data.push(
      `<g class="eval-loss" data-source="${esc(name)}" stroke="${color}" fill="${color}">` +
        (s.length > 1 ? `<polyline points="${pts(s)}" fill="none" stroke-width="1.8" stroke-linejoin="round"/>` : '') +
        `<g stroke="#ffffff" stroke-width="1">${marks}</g></g>`,
    );
  });
  out.push(`<g clip-path="url(#plot-clip)">${data.join('')}</g>`);

  // Axes, tick labels, axis titles.
  out.push(`<g class="axes" stroke="#444" stroke-width="1" fill="none"><rect x="${L}" y="${T}" width="${num(R - L)}" height="${num(B - T)}"/></g>`);
  out.push(`<g font-size="11" fill="#444">${labels.join('')}</g>`);
  out.push(`<text class="x-label" x="${num((L + R) / 2)}" y="${num(H - 14)}" text-anchor="middle" fill="#222">optimizer step</text>`);
  out.push(`<text class="y-label" transform="translate(18 ${num((T + B) / 2)}) rotate(-90)" text-anchor="middle" fill="#222">loss (nats / token)</text>`);
  if (allPoints.length === 0) {
    out.push(`<text x="${num((L + R) / 2)}" y="${num((T + B) / 2)}" text-anchor="middle" fill="#888" font-size="14">no finite losses yet</text>`);
  }
  if (skipped > 0) {
    out.push(`<text class="skipped-note" x="${num(R)}" y="${num(H - 14)}" text-anchor="end" font-size="11" fill="#a33">${skipped} non-finite loss${skipped === 1 ? '' : 'es'} not drawn</text>`);
  }

  // Legend.
  const lx = R + 18;
  let ly = T + 4;
  const legend: string[] = [`<rect x="${lx - 8}" y="${T - 6}" width="${legendW}" height="${legendTexts.length * 20 + 12}" fill="#ffffff" stroke="#dddddd" rx="3"/>`];
  const entry = (swatch: string, text: string) => {
    legend.push(`<g transform="translate(${lx} ${ly})">${swatch}<text x="30" y="0" dy="0.32em" fill="#222">${esc(text)}</text></g>`);
    ly += 20;
  };
  entry(`<line x1="0" y1="0" x2="22" y2="0" stroke="${TRAIN_COLOR}" stroke-width="2"/>`, trainLegend);
  sources.forEach((name, i) => {
    const c = EVAL_COLORS[i % EVAL_COLORS.length];
    entry(`<line x1="0" y1="0" x2="22" y2="0" stroke="${c}" stroke-width="1.8"/><circle cx="11" cy="0" r="3.5" fill="${c}" stroke="#fff"/>`, `val: ${name}`);
  });
  if (options.warmupSteps > 0) entry(`<rect x="0" y="-6" width="22" height="12" fill="#fdf0c8" stroke="#e5d08a"/>`, 'LR warmup');
  if (options.ptwdBoundaries.length > 0) entry(`<line x1="0" y1="0" x2="22" y2="0" stroke="#555" stroke-width="1.2" stroke-dasharray="5 4"/>`, 'PTWD stage change');
  out.push(`<g class="legend" font-size="12">${legend.join('')}</g>`);
  out.push('</svg>');
  return out.join('\n') + '\n';
}

export interface WriteLossCurveOptions extends Partial<Omit<LossCurveOptions, 'steps' | 'evals'>> {
  /** Where to write. Defaults to `<runDir>/loss.svg`. */
  output?: string;
}

export interface LossCurveRecords {
  steps: LossPoint[];
  evals: EvalPoint[];
  /** Inferred from the step records: the step of the first record with the largest learning rate (0 if that is the first). */
  warmupSteps: number;
  /** Inferred from the step records: where ptwdStage changed (the update index, record step - 1) and each stage's decay. */
  ptwdBoundaries: number[];
  ptwdValues: number[];
}

/**
 * The step and eval records of a metrics.jsonl. A step logged twice (a run resumed from an earlier
 * checkpoint) keeps its last record. Lines that are not JSON (a write cut short) are ignored.
 */
export function readLossCurveRecords(metricsFile: string): LossCurveRecords {
  const steps = new Map<number, { loss: number | null; lr: unknown; weightDecay: unknown; ptwdStage: unknown }>();
  const evals = new Map<number, Record<string, number | null>>();
  for (const line of fs.readFileSync(metricsFile, 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    let r: Record<string, unknown>;
    try {
      r = JSON.parse(line) as Record<string, unknown>;
    } catch {
      continue;
    }
    if (r === null || typeof r !== 'object' || typeof r.step !== 'number' || !Number.isFinite(r.step)) continue;
    if (r.type === 'step') {
      steps.set(r.step, { loss: typeof r.loss === 'number' ? r.loss : null, lr: r.lr, weightDecay: r.weightDecay, ptwdStage: r.ptwdStage });
    } else if (r.type === 'eval' && r.losses && typeof r.losses === 'object') {
      const losses: Record<string, number | null> = {};
      for (const [k, v] of Object.entries(r.losses as Record<string, unknown>)) losses[k] = typeof v === 'number' ? v : null;
      evals.set(r.step, losses);
    }
  }
  const ordered = [...steps.entries()].sort((a, b) => a[0] - b[0]);
  let warmupSteps = 0;
  let bestLr = -Infinity;
  ordered.forEach(([step, r], i) => {
    if (typeof r.lr === 'number' && r.lr > bestLr) {
      bestLr = r.lr;
      warmupSteps = i === 0 ? 0 : step;
    }
  });
  const ptwdBoundaries: number[] = [];
  const ptwdValues: number[] = [];
  let stage: unknown;
  for (const [step, r] of ordered) {
    if (typeof r.ptwdStage !== 'number' || typeof r.weightDecay !== 'number' || r.ptwdStage === stage) continue;
    if (stage !== undefined) ptwdBoundaries.push(step - 1);
    ptwdValues.push(r.weightDecay);
    stage = r.ptwdStage;
  }
  return {
    steps: ordered.map(([step, r]) => ({ step, loss: r.loss })),
    evals: [...evals.entries()].sort((a, b) => a[0] - b[0]).map(([step, losses]) => ({ step, losses })),
    warmupSteps,
    ptwdBoundaries,
    ptwdValues,
  };
}

/**
 * Reads `<runDir>/metrics.jsonl` and writes its loss curve to `<runDir>/loss.svg` (or options.output).
 * Warmup and the PTWD stages are taken from the records (see LossCurveRecords) unless given; the title
 * defaults to the run directory's name. Returns the file written and what was drawn.
 */
export function writeLossCurve(
  runDir: string,
  options: WriteLossCurveOptions = {},
): { path: string; steps: number; evals: number; skipped: number } {
  if (typeof runDir !== 'string' || runDir === '') throw invalidArg('writeLossCurve: runDir must be a directory path');
  const metrics = path.join(runDir, 'metrics.jsonl');
  if (!fs.existsSync(metrics)) throw invalidArg(`writeLossCurve: ${metrics} does not exist (has the run logged a step yet?)`);
  const rec = readLossCurveRecords(metrics);
  const { output, ...rest } = options;
  const svg = lossCurveSvg({
    warmupSteps: rec.warmupSteps,
    ptwdBoundaries: rec.ptwdBoundaries,
    ptwdValues: rec.ptwdValues,
    title: path.basename(path.resolve(runDir)),
    ...rest,
    steps: rec.steps,
    evals: rec.evals,
  });
  const file = output ?? path.join(runDir, 'loss.svg');
  writeTextAtomic(file, svg);
  const skipped = Number(/data-skipped="(\d+)"/.exec(svg)?.[1] ?? 0);
  return { path: file, steps: rec.steps.length, evals: rec.evals.length, skipped };
}

/** The plot frame's geometry and scales, as lossCurveSvg and the comparison plot lay them out. */
export interface PlotFrame {
  L: number;
  R: number;
  T: number;
  B: number;
  X: (step: number) => number;
  Y: (loss: number) => number;
  yLo: number;
  yHi: number;
  yStep: number;
  xMax: number;
  xStep: number;
}

/** Pushes the grid lines onto `out` and returns the tick marks and labels, drawn later above the curves. */
export function gridAndTicks(out: string[], f: PlotFrame): string[] {
  const { L, R, T, B, X, Y } = f;
  const grid: string[] = [];
  const labels: string[] = [];
  for (const v of ticks(f.yLo, f.yHi, f.yStep)) {
    const y = num(Y(v));
    grid.push(`<line x1="${L}" y1="${y}" x2="${num(R)}" y2="${y}"/>`);
    labels.push(`<line x1="${L - 5}" y1="${y}" x2="${L}" y2="${y}" stroke="#444"/>`);
    labels.push(`<text class="y-tick" x="${L - 8}" y="${y}" dy="0.32em" text-anchor="end">${v.toFixed(decimalsFor(f.yStep))}</text>`);
  }
  for (const s of ticks(0, f.xMax, f.xStep)) {
    const x = num(X(s));
    grid.push(`<line x1="${x}" y1="${T}" x2="${x}" y2="${num(B)}"/>`);
    labels.push(`<line x1="${x}" y1="${num(B)}" x2="${x}" y2="${num(B + 5)}" stroke="#444"/>`);
    labels.push(`<text class="x-tick" x="${x}" y="${num(B + 18)}" text-anchor="middle">${formatStep(s, f.xStep, f.xMax)}</text>`);
  }
  out.push(`<g class="grid" stroke="#e6e6e6" stroke-width="1">${grid.join('')}</g>`);
  return labels;
}
