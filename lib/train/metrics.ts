// metrics.ts: the records a training run reports (the data plan at start, every step, every evaluation, every
// checkpoint, and a divergence), the MetricSink interface that receives them, and the sink that appends them
// to metrics.jsonl, one JSON object per line with its time first. The trainer hands every record to each of
// its sinks in order; a sink that throws stops the run (a metrics file that cannot be written is an error).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { withFsContext } from '../core/fs-errors';
import { writeAll } from '../core/atomic';
import type { DataPlan } from './data';

export interface StepMetrics {
  /** Optimizer steps completed (1 after the first). */
  step: number;
  /** Mean training loss of the step's global batch. */
  loss: number;
  lr: number;
  weightDecay: number;
  ptwdStage: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  /** True when the loss or the gradients held NaN/Inf and the update was skipped. */
  skipped: boolean;
  /** Gradient elements that were NaN or +-Inf (0 on a normal step). */
  nonFiniteGradients: number;
  /** Tokens trained on so far, by all ranks. */
  tokens: number;
  /** Tokens per second of the whole run (all ranks). */
  tokensPerSec: number;
  /** Model FLOPs utilisation against peakFlops (per rank: against peakFlops x ranks). */
  mfu: number;
  stepSec: number;
  /**
   * Seconds of the step spent in collectives (the gradient all-reduce and the loss reduction), waiting for
   * the slowest rank included; 0 with one rank. Not overlapped with the backward on the CPU.
   */
  commSeconds: number;
  elapsedSec: number;
  /** Per training source (the manifest's, or 'all' for data.train): tokens trained on so far and epochs. */
  sources: Record<string, { tokensDrawn: number; epochs: number }>;
}

export interface EvalMetrics {
  step: number;
  /** Mean validation loss per source. */
  losses: Record<string, number>;
}

/** The last finite training loss and its step. */
export interface FiniteLoss {
  step: number;
  loss: number;
}

/**
 * Bytes one rank holds for training, by kind (Trainer.memory(), recorded at start-up): what the sharding mode
 * and activation checkpointing change shows here.
 */
export interface MemoryReport {
  /** f32 master weights and the bf16 compute copy (whole on every rank; under sharding 'optimizer' a rank updates its range). */
  weights: number;
  /** f32 gradients: the model's full accumulation arena, plus the shard's reduced gradients under sharding 'optimizer'. */
  gradients: number;
  /** AdamW's two f32 moments: the whole model's, or the shard's. */
  optimizerState: number;
  /** Activations kept for the backward at the run's micro-batch (see model.checkpointEvery). */
  activations: number;
  /** Buffers held for collectives: the reduce-scatter's staging bucket under sharding 'optimizer' (the rest run in place). */
  communication: number;
  /** Held only while a checkpoint is written under sharding 'optimizer': the gathered moments (two full f32 arenas). */
  checkpointGather: number;
  /** The sum of the kinds above but checkpointGather. */
  total: number;
}

/** One record of a run, as metrics.jsonl holds it (without the time the JSONL sink adds). */
export type MetricRecord =
  /** Written when the trainer is created (also on resume): the step it starts at, what it will draw, and rank 0's memory. */
  | ({ type: 'plan'; step: number; memory: MemoryReport } & DataPlan)
  | ({ type: 'step' } & StepMetrics)
  | ({ type: 'eval' } & EvalMetrics)
  | { type: 'checkpoint'; step: number; dir: string }
  /** The last record of a run stopped by divergence.maxConsecutiveSkips. */
  | { type: 'diverged'; step: number; consecutiveSkips: number; loss: number; nonFiniteGradients: number; lastFiniteLoss: FiniteLoss | null };

/** Receives every record of a run, synchronously and in order; an error thrown stops the run with it. */
export interface MetricSink {
  write(record: MetricRecord): void;
}

/** The metrics file of a run directory. */
export const METRICS_FILE = 'metrics.jsonl';

/** Appends each record to a JSONL file as `{"time": ISO-8601, ...record}`, one whole line per record. */
export class JsonlMetricSink implements MetricSink {
  constructor(readonly file: string) {}

  /** The sink of `runDir`/metrics.jsonl, the file the CLI, the loss plot and resume read. */
  static inRunDir(runDir: string): JsonlMetricSink {
    return new JsonlMetricSink(path.join(runDir, METRICS_FILE));
  }

  /** Appends one record as one whole line; a failed write is cut back so the file never holds a torn line. */
  write(record: MetricRecord): void {
    const line = Buffer.from(JSON.stringify({ time: new Date().toISOString(), ...record }) + '\n', 'utf8');
    withFsContext('writing metrics to', this.file, () => {
      const fd = fs.openSync(this.file, 'a');
      try {
        const size = fs.fstatSync(fd).size;
        try {
          writeAll(fd, line);
        } catch (e) {
          try {
            fs.ftruncateSync(fd, size);
          } catch {
            // a device that cannot be truncated (e.g. /dev/full) holds no torn line either
          }
          throw e;
        }
      } finally {
        fs.closeSync(fd);
      }
    });
  }
}

/**
 * The last finite loss of a step up to `step` in a metrics.jsonl (skipped steps left out), or null when the
 * file is missing or holds none. For checkpoints written before trainer_state.json kept lastFiniteLoss.
 */
export function lastFiniteLossInMetrics(file: string, step: number): FiniteLoss | null {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return null;
  }
  let found: FiniteLoss | null = null;
  for (const line of text.split('\n')) {
    if (!line.includes('"type":"step"')) continue;
    try {
      const r = JSON.parse(line) as { step?: unknown; loss?: unknown; skipped?: unknown };
      if (typeof r.step === 'number' && r.step <= step && typeof r.loss === 'number' && Number.isFinite(r.loss) && r.skipped !== true) {
        found = { step: r.step, loss: r.loss };
      }
    } catch {
      // a torn last line of a killed run
    }
  }
  return found;
}
