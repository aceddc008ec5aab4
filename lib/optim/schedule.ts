// schedule.ts: the learning-rate and weight-decay schedules of SlimPajama-DC's 7B large-batch recipe, as pure
// functions of the optimizer step (0-based: the first update is step 0, the last of a run of totalSteps
// updates is totalSteps - 1), so they can be tested and plotted without a trainer.
//  - cosineWithWarmup: linear warmup to peakLr, then cosine decay to minLrRatio * peakLr at the last step.
//  - PTWD (progressive training weight decay): weight decay in stages, by default 0, 0.5, 0.1 over equal
//    thirds of the run. ptwdStage / ptwdWeightDecay are the fixed-boundary schedule; PtwdController adds the
//    optional plateau trigger (a stage may end early when the training loss stops improving) and is the one
//    piece with state, kept small and JSON-serialisable for checkpoints.
// Every option is validated on every call (cheap next to a training step); a bad one is a TypeError naming
// the function, the option, what was expected and what was given. Unknown option keys are errors.
import { invalidArg } from '../core/errors';
import * as schema from '../core/config-schema';
import type { ObjectField } from '../core/config-schema';
import { checkInteger, checkKeys, checkNumber, checkStep, resolveOptions, show } from './options';

// ---------------------------------------------------------------------------------------------------------
// Learning rate

/** The cosine schedule's options. The defaults stated here are checked against COSINE_OPTIONS_SCHEMA by a test. */
export interface CosineWithWarmupOptions {
  /** The learning rate at the end of warmup (the largest of the run). Required. */
  peakLr: number;
  /** Updates of linear warmup. Defaults to 2000 (SlimPajama-DC). 0 starts the decay at peakLr on step 0. */
  warmupSteps?: number;
  /** Updates in the whole run; the last is step totalSteps - 1. Required; must exceed warmupSteps and be >= 2. */
  totalSteps: number;
  /** The final learning rate as a fraction of peakLr, in [0, 1]. Defaults to 0.1. */
  minLrRatio?: number;
}

const totalStepsWant = (o: Record<string, unknown>) => `an integer > warmupSteps (${o.warmupSteps}) and >= 2`;

/** cosineWithWarmup's options: kinds, ranges and SlimPajama-DC's defaults, stated once. */
export const COSINE_OPTIONS_SCHEMA: ObjectField<Required<CosineWithWarmupOptions>> = schema.object<Required<CosineWithWarmupOptions>>(
  {
    peakLr: schema.number({ min: 0, minOpen: true, doc: 'The learning rate at the end of warmup.' }),
    warmupSteps: schema.integer({ min: 0, safe: true, default: 2000, doc: 'Updates of linear warmup.' }),
    totalSteps: schema.integer({
      min: 2,
      safe: true,
      expected: totalStepsWant,
      doc: 'Updates in the whole run.',
      check: (n, ctx) => {
        if (n <= (ctx.parent.warmupSteps as number)) ctx.mismatch(`be ${totalStepsWant(ctx.parent)}`, n);
      },
    }),
    minLrRatio: schema.number({ min: 0, max: 1, default: 0.1, doc: 'The final learning rate as a share of peakLr.' }),
  },
  { doc: 'cosineWithWarmup options.', order: ['peakLr', 'warmupSteps', 'minLrRatio', 'totalSteps'] },
);

/**
 * The learning rate for the update at `step`:
 *  - warmup, step < warmupSteps: peakLr * (step + 1) / warmupSteps, so step 0 already gets a small positive
 *    rate (peakLr / warmupSteps) and step warmupSteps - 1, the last warmup step, gets exactly peakLr;
 *  - decay: from peakLr at step warmupSteps - 1 (step 0 without warmup) along half a cosine to
 *    minLrRatio * peakLr at step totalSteps - 1, exactly;
 *  - after the run (step >= totalSteps): minLrRatio * peakLr.
 */
export function cosineWithWarmup(step: number, options: CosineWithWarmupOptions): number {
  const where = 'cosineWithWarmup';
  checkStep(where, step);
  const { peakLr, warmupSteps, totalSteps, minLrRatio } = resolveOptions(where, COSINE_OPTIONS_SCHEMA, options);
  const minLr = minLrRatio * peakLr;
  if (step < warmupSteps) return (peakLr * (step + 1)) / warmupSteps;
  const lastStep = totalSteps - 1;
  if (step >= lastStep) return minLr;
  const peakStep = Math.max(warmupSteps - 1, 0);
  const progress = (step - peakStep) / (lastStep - peakStep); // in [0, 1)
  return minLr + (peakLr - minLr) * 0.5 * (1 + Math.cos(Math.PI * progress));
}

// ---------------------------------------------------------------------------------------------------------
// Weight decay: constant and PTWD stages

export interface ConstantWeightDecayOptions {
  /** The weight decay of every step, >= 0. Required. */
  value: number;
}

export const CONSTANT_WEIGHT_DECAY_SCHEMA: ObjectField<ConstantWeightDecayOptions> = schema.object<ConstantWeightDecayOptions>(
  { value: schema.number({ min: 0, doc: 'The weight decay of every step.' }) },
  { doc: 'constantWeightDecay options.' },
);

/** The same weight decay at every step: the schedule to use when PTWD is off. */
export function constantWeightDecay(step: number, options: ConstantWeightDecayOptions): number {
  const where = 'constantWeightDecay';
  checkStep(where, step);
  return resolveOptions(where, CONSTANT_WEIGHT_DECAY_SCHEMA, options).value;
}

/** SlimPajama-DC's PTWD stages: no decay, then strong decay, then the usual 0.1. */
export const PTWD_DEFAULT_VALUES: readonly number[] = Object.freeze([0, 0.5, 0.1]);

export interface PtwdOptions {
  /** The weight decay of each stage, in order, each >= 0. Defaults to [0, 0.5, 0.1] (SlimPajama-DC). */
  values?: readonly number[];
  /**
   * The step at which stage k + 1 starts, for k = 0 .. values.length - 2: integers, strictly increasing,
   * >= 1 (and < totalSteps when that is given). Defaults to equal shares of totalSteps:
   * floor(k * totalSteps / values.length) for k = 1 .. values.length - 1 (100 and 200 for 300 steps).
   */
  boundaries?: readonly number[];
  /** Updates in the run. Required unless boundaries are given; >= values.length. */
  totalSteps?: number;
}

const PTWD_KEYS = ['values', 'boundaries', 'totalSteps'] as const;

/** A PTWD schedule with its defaults filled in and checked. */
export interface ResolvedPtwd {
  readonly values: readonly number[];
  readonly boundaries: readonly number[];
}

function resolvePtwdAt(where: string, options: PtwdOptions, known: readonly string[]): ResolvedPtwd {
  checkKeys(where, options, known);
  const rawValues = options.values ?? PTWD_DEFAULT_VALUES;
  if (!Array.isArray(rawValues) || rawValues.length === 0) {
    throw invalidArg(`${where}: option 'values' must be a non-empty array of weight decays, got ${show(rawValues)}`);
  }
  const values = rawValues.map((x, i) => checkNumber(where, `option 'values[${i}]'`, x, { min: 0 }));
  const n = values.length;
  let totalSteps: number | undefined;
  if (options.totalSteps !== undefined) {
    totalSteps = options.totalSteps;
    if (typeof totalSteps !== 'number' || !Number.isSafeInteger(totalSteps) || totalSteps < n) {
      throw invalidArg(
        `${where}: option 'totalSteps' must be an integer >= the number of stages (${n}), got ${show(totalSteps)}`,
      );
    }
  }
  let boundaries: number[];
  if (options.boundaries !== undefined) {
    const b = options.boundaries;
    if (!Array.isArray(b) || b.length !== n - 1) {
      throw invalidArg(
        `${where}: option 'boundaries' must be an array of ${n - 1} step(s) (one fewer than 'values'), got ${show(b)}`,
      );
    }
    boundaries = b.map((x, k) => {
      const min = k === 0 ? 1 : (b[k - 1] as number) + 1;
      if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < min) {
        throw invalidArg(
          `${where}: option 'boundaries[${k}]' must be an integer >= ${min} (boundaries are >= 1 and strictly increasing), got ${show(x)}`,
        );
      }
      if (totalSteps !== undefined && x >= totalSteps) {
        throw invalidArg(
          `${where}: option 'boundaries[${k}]' must be < totalSteps (${totalSteps}), or stage ${k + 1} never runs; got ${x}`,
        );
      }
      return x;
    });
  } else {
    if (totalSteps === undefined) {
      throw invalidArg(`${where}: give option 'totalSteps' (for equal stages) or option 'boundaries', got neither`);
    }
    // k * totalSteps is an exact integer; its quotient by n is correctly rounded, so floor is exact here.
    boundaries = Array.from({ length: n - 1 }, (_, k) => Math.floor(((k + 1) * (totalSteps as number)) / n));
  }
  return { values: Object.freeze(values), boundaries: Object.freeze(boundaries) };
}

/** The PTWD schedule with defaults filled in (stage values and the steps where stages 1.. start); for logs and plots. */
export function resolvePtwd(options: PtwdOptions): ResolvedPtwd {
  return resolvePtwdAt('resolvePtwd', options, PTWD_KEYS);
}

// The stage of `step` under fixed boundaries: how many boundaries are <= step.
function stageOf(step: number, boundaries: readonly number[]): number {
  let k = 0;
  while (k < boundaries.length && step >= boundaries[k]) k++;
  return k;
}

/** The 0-based PTWD stage of the update at `step` under fixed boundaries. */
export function ptwdStage(step: number, options: PtwdOptions): number {
  checkStep('ptwdStage', step);
  return stageOf(step, resolvePtwdAt('ptwdStage', options, PTWD_KEYS).boundaries);
}

/** The weight decay of the update at `step` under fixed PTWD boundaries. */
export function ptwdWeightDecay(step: number, options: PtwdOptions): number {
  checkStep('ptwdWeightDecay', step);
  const { values, boundaries } = resolvePtwdAt('ptwdWeightDecay', options, PTWD_KEYS);
  return values[stageOf(step, boundaries)];
}

// ---------------------------------------------------------------------------------------------------------
// PTWD with the plateau trigger

/**
 * When a PTWD stage may end early because the training loss has plateaued.
 *
 * The criterion: the losses observed in the current stage are averaged over consecutive, non-overlapping
 * windows of `window` steps. Each time a window fills, its mean is compared with the previous window's
 * mean; the relative improvement is (previous - current) / |previous|. Once the stage has lasted at least
 * `minStageSteps` steps, a window whose improvement is below `threshold` counts as flat and any other resets
 * the count; `patience` flat windows in a row end the stage, and the next stage starts with the next step.
 * The last stage never ends. The fixed boundaries still apply as the latest step of each transition: stage
 * k + 1 starts at boundaries[k] at the latest, whether or not a plateau was seen. Each stage starts with no
 * windows, so with a loss observed every step a plateau ends a stage at the earliest
 * (max(ceil(minStageSteps / window), 2) + patience - 1) * window steps into it (2200 with the defaults).
 * Non-finite losses are not counted.
 */
export interface PtwdPlateauOptions {
  /** Steps per window of averaged losses. Defaults to 100. */
  window?: number;
  /** Relative improvement per window below which a window counts as flat, >= 0. Defaults to 0.01. */
  threshold?: number;
  /** Flat windows in a row that end a stage. Defaults to 3. */
  patience?: number;
  /** Steps a stage lasts before a plateau may end it. Defaults to 2000, so the warmup never counts as a plateau. */
  minStageSteps?: number;
}

/** The plateau trigger's options and their defaults (checked against PtwdPlateauOptions' comments by a test). */
export const PTWD_PLATEAU_SCHEMA: ObjectField<Required<PtwdPlateauOptions>> = schema.object<Required<PtwdPlateauOptions>>(
  {
    window: schema.integer({ min: 1, safe: true, default: 100, doc: 'Steps per window of averaged losses.' }),
    threshold: schema.number({ min: 0, default: 0.01, doc: 'Relative improvement per window below which a window is flat.' }),
    patience: schema.integer({ min: 1, safe: true, default: 3, doc: 'Flat windows in a row that end a stage.' }),
    minStageSteps: schema.integer({ min: 0, safe: true, default: 2000, doc: 'Steps a stage lasts before a plateau may end it.' }),
  },
  { doc: 'PTWD plateau options.' },
);

export interface PtwdControllerOptions extends PtwdOptions {
  /** Enables the plateau trigger (`{}` for its defaults). Without it the stages follow the fixed boundaries. */
  plateau?: PtwdPlateauOptions;
}

/** A stage change: the update at `step` is the first of stage `to`. */
export interface PtwdTransition {
  step: number;
  from: number;
  to: number;
  reason: 'plateau' | 'boundary';
}

/** Everything a checkpoint keeps of a PtwdController; plain numbers and arrays, JSON round-trips exactly. */
export interface PtwdControllerState {
  version: 1;
  /** The stage reached by the observations so far. */
  stage: number;
  /** The first step of that stage. */
  stageStartStep: number;
  /** The last step passed to observe(); -1 before the first. */
  lastStep: number;
  /** Mean loss of the last full window in this stage; null before the first. */
  previousWindowMean: number | null;
  /** Sum and count of the losses of the window being filled. */
  windowSum: number;
  windowCount: number;
  /** Flat windows in a row so far. */
  flatWindows: number;
  /** Every stage change so far, in order. */
  transitions: PtwdTransition[];
}

interface ResolvedPlateau {
  window: number;
  threshold: number;
  patience: number;
  minStageSteps: number;
}

/**
 * PTWD as the trainer drives it: `weightDecay(step)` before each update, `observe(step, loss)` after it.
 * Without `plateau` it is exactly ptwdWeightDecay; with it, stages may also end at a loss plateau (see
 * PtwdPlateauOptions). `state()` / `restore()` carry it through checkpoints.
 */
export class PtwdController {
  readonly schedule: ResolvedPtwd;
  readonly plateau: Readonly<ResolvedPlateau> | null;
  #s: PtwdControllerState;

  constructor(options: PtwdControllerOptions) {
    const where = 'PtwdController';
    this.schedule = resolvePtwdAt(where, options, [...PTWD_KEYS, 'plateau']);
    if (options.plateau !== undefined) {
      this.plateau = Object.freeze(resolveOptions(where, PTWD_PLATEAU_SCHEMA, options.plateau, 'plateau'));
    } else {
      this.plateau = null;
    }
    this.#s = {
      version: 1,
      stage: 0,
      stageStartStep: 0,
      lastStep: -1,
      previousWindowMean: null,
      windowSum: 0,
      windowCount: 0,
      flatWindows: 0,
      transitions: [],
    };
  }

  /** The stage reached by the observations so far (weightDecay(step) may be later, at a boundary). */
  get stage(): number {
    return this.#s.stage;
  }

  get transitions(): readonly PtwdTransition[] {
    return this.#s.transitions.map((t) => ({ ...t }));
  }

  /** The stage of the update at `step`: the observed stage, or later when `step` is past its boundary. */
  stageAt(step: number): number {
    checkStep('PtwdController.stageAt', step);
    return Math.max(this.#s.stage, stageOf(step, this.schedule.boundaries));
  }

  /** The weight decay of the update at `step` (a step at or after the last observed one). */
  weightDecay(step: number): number {
    checkStep('PtwdController.weightDecay', step);
    return this.schedule.values[this.stageAt(step)];
  }

  /**
   * Records the training loss of the update at `step` (steps strictly increasing; gaps allowed). A
   * non-finite loss (a skipped update) is not counted. Returns the stage change this causes, else null: a
   * boundary passed since the last observation (effective at the boundary), or a plateau (effective at
   * step + 1).
   */
  observe(step: number, loss: number): PtwdTransition | null {
    const where = 'PtwdController.observe';
    checkStep(where, step);
    if (typeof loss !== 'number') throw invalidArg(`${where}: loss must be a number, got ${show(loss)}`);
    const s = this.#s;
    if (step <= s.lastStep) {
      throw invalidArg(`${where}: step ${step} is not after the last observed step ${s.lastStep}`);
    }
    s.lastStep = step;
    let change: PtwdTransition | null = null;
    const fixed = stageOf(step, this.schedule.boundaries);
    if (fixed > s.stage) change = this.#advance(fixed, this.schedule.boundaries[fixed - 1], 'boundary');

    const p = this.plateau;
    const last = this.schedule.values.length - 1;
    if (!p || s.stage === last || !Number.isFinite(loss)) return change;
    s.windowSum += loss;
    s.windowCount++;
    if (s.windowCount < p.window) return change;
    const mean = s.windowSum / s.windowCount;
    s.windowSum = 0;
    s.windowCount = 0;
    const previous = s.previousWindowMean;
    s.previousWindowMean = mean;
    if (previous === null || step + 1 - s.stageStartStep < p.minStageSteps) return change;
    const improvement = (previous - mean) / (Math.abs(previous) > 0 ? Math.abs(previous) : 1);
    s.flatWindows = improvement < p.threshold ? s.flatWindows + 1 : 0;
    if (s.flatWindows >= p.patience) change = this.#advance(s.stage + 1, step + 1, 'plateau');
    return change;
  }

  #advance(to: number, atStep: number, reason: PtwdTransition['reason']): PtwdTransition {
    const s = this.#s;
    const t: PtwdTransition = { step: atStep, from: s.stage, to, reason };
    s.transitions.push(t);
    s.stage = to;
    s.stageStartStep = atStep;
    s.previousWindowMean = null;
    s.windowSum = 0;
    s.windowCount = 0;
    s.flatWindows = 0;
    return { ...t };
  }

  /** A deep copy of the state, for a checkpoint (JSON.stringify it as is). */
  state(): PtwdControllerState {
    return JSON.parse(JSON.stringify(this.#s)) as PtwdControllerState;
  }

  /** Continues from a state() of a controller with the same stages; checks every field. */
  restore(state: PtwdControllerState): void {
    const where = 'PtwdController.restore';
    checkKeys(`${where}: state`, state, [
      'version',
      'stage',
      'stageStartStep',
      'lastStep',
      'previousWindowMean',
      'windowSum',
      'windowCount',
      'flatWindows',
      'transitions',
    ]);
    if (state.version !== 1) throw invalidArg(`${where}: state.version must be 1, got ${show(state.version)}`);
    const nStages = this.schedule.values.length;
    const stage = checkInteger(where, 'state.stage', state.stage, 0);
    if (stage >= nStages) {
      throw invalidArg(`${where}: state.stage ${stage} does not exist in a schedule of ${nStages} stages`);
    }
    const lastStep = checkInteger(where, 'state.lastStep', state.lastStep, -1);
    const stageStartStep = checkInteger(where, 'state.stageStartStep', state.stageStartStep, 0);
    const previousWindowMean =
      state.previousWindowMean === null ? null : checkNumber(where, 'state.previousWindowMean', state.previousWindowMean);
    const windowSum = checkNumber(where, 'state.windowSum', state.windowSum);
    const windowCount = checkInteger(where, 'state.windowCount', state.windowCount, 0);
    const flatWindows = checkInteger(where, 'state.flatWindows', state.flatWindows, 0);
    if (this.plateau && windowCount >= this.plateau.window) {
      throw invalidArg(`${where}: state.windowCount must be < plateau.window (${this.plateau.window}), got ${windowCount}`);
    }
    if (!Array.isArray(state.transitions)) {
      throw invalidArg(`${where}: state.transitions must be an array, got ${show(state.transitions)}`);
    }
    const transitions = state.transitions.map((t, i) => {
      checkKeys(`${where}: state.transitions[${i}]`, t, ['step', 'from', 'to', 'reason']);
      if (t.reason !== 'plateau' && t.reason !== 'boundary') {
        throw invalidArg(`${where}: state.transitions[${i}].reason must be 'plateau' or 'boundary', got ${show(t.reason)}`);
      }
      const from = checkInteger(where, `state.transitions[${i}].from`, t.from, 0);
      const to = checkInteger(where, `state.transitions[${i}].to`, t.to, from + 1);
      if (to >= nStages) throw invalidArg(`${where}: state.transitions[${i}].to ${to} does not exist in ${nStages} stages`);
      return { step: checkInteger(where, `state.transitions[${i}].step`, t.step, 1), from, to, reason: t.reason };
    });
    this.#s = {
      version: 1,
      stage,
      stageStartStep,
      lastStep,
      previousWindowMean,
      windowSum,
      windowCount,
      flatWindows,
      transitions,
    };
  }
}
