// resume.ts: what a checkpoint's trainer_state.json holds, checked field by field, and whether the run being
// started may continue it: settings that decide what the saved state means (the seed, the model, the batch)
// must be the same, settings that change the run (the schedules, the numerics) only draw a warning.
import { invalidArg } from '../core/errors';
import { canonicalJson } from '../core/json-file';
import { mptConfig } from '../model/config';
import type { TokenLoaderMixtureState, TokenLoaderState } from '../data/loader';
import type { ChatLoaderState } from '../data/chat-loader';
import type { PtwdControllerState } from '../optim/index';
import { CheckpointError } from './checkpoint';
import { DEFAULT_TRAIN_CONFIG, type TrainConfig } from './config';

/** trainer_state.json. */
export interface TrainerState {
  step: number;
  elapsedSec: number;
  tokens: number;
  loader: TokenLoaderState | TokenLoaderMixtureState | ChatLoaderState;
  ptwd: PtwdControllerState;
  optimizerStep: number;
  seed: number;
  /** The loss of the last step that was not skipped, and its step (null before the first). */
  lastFiniteLoss?: { step: number; loss: number } | null;
  /** Skipped steps in a row just before this checkpoint. */
  consecutiveSkips?: number;
  [k: string]: unknown;
}

/** trainer_state.json's fields, checked: a corrupt one names the file and key instead of resuming wrong. */
export function checkTrainerState(raw: Record<string, unknown>, file: string): TrainerState {
  const fail = (key: string, what: string) => new CheckpointError(file, `'${key}' must be ${what}, got ${JSON.stringify(raw[key]) ?? 'nothing'}`);
  const int = (key: string) => {
    const v = raw[key];
    if (!Number.isSafeInteger(v) || (v as number) < 0) throw fail(key, 'a non-negative integer');
  };
  for (const k of ['step', 'tokens', 'optimizerStep', 'seed']) int(k);
  if (typeof raw.elapsedSec !== 'number' || !Number.isFinite(raw.elapsedSec) || raw.elapsedSec < 0) throw fail('elapsedSec', 'a non-negative number');
  for (const k of ['loader', 'ptwd']) {
    if (raw[k] === null || typeof raw[k] !== 'object' || Array.isArray(raw[k])) throw fail(k, 'an object');
  }
  if (raw.consecutiveSkips !== undefined) int('consecutiveSkips');
  const l = raw.lastFiniteLoss as { step?: unknown; loss?: unknown } | null | undefined;
  if (l !== undefined && l !== null && !(Number.isSafeInteger(l.step) && typeof l.loss === 'number' && Number.isFinite(l.loss))) {
    throw fail('lastFiniteLoss', 'null or { step, loss } with a finite loss');
  }
  return raw as TrainerState;
}

/**
 * What a resumed run must share with the run that wrote the checkpoint, as effective values (a preset and
 * its overrides as the architecture they give, a null seqLen as the model's maxSeqLen): the seed (data
 * order), the model and the batch decide what the saved state means. Keys name where to change each.
 */
function resumeIdentity(c: Pick<TrainConfig, 'seed' | 'model' | 'batch'>): Record<string, unknown> {
  const model = mptConfig(c.model.preset, c.model.overrides);
  const seqLen = c.batch.seqLen ?? model.maxSeqLen;
  return {
    seed: c.seed,
    ...Object.fromEntries(Object.entries(model).map(([k, v]) => [`model (${k}, from 'model.preset' and 'model.overrides')`, v])),
    'batch.seqLen': seqLen,
    'batch.microBatchSize': c.batch.microBatchSize,
    'batch.globalBatchTokens': c.batch.globalBatchTokens ?? c.batch.microBatchSize * seqLen,
  };
}

/** Settings that may change on resume but change the run (the schedules, the numerics): a warning names them. */
const WARN_ON_RESUME = ['steps', 'model.precision', 'optimizer', 'weightDecay'] as const;

/** JSON with object keys sorted (key order never reads as a change), `undefined` shown as 'unset'. */
const canonical = (v: unknown): string => canonicalJson(v, 'unset');

/**
 * Errors for settings of `config` that cannot change from the checkpoint's (its state's trainConfig), and
 * warnings (PAJAMA_RESUME_CONFIG_CHANGED) for those that change the run. A checkpoint without a config is
 * not compared.
 */
export function checkResumeConfig(s: TrainerState, config: TrainConfig, stateFile: string): void {
  const raw = s.trainConfig;
  if (raw === null || typeof raw !== 'object') return; // a checkpoint written without its config
  // The saved config as it was resolved then, over today's defaults (keys added since are not compared).
  const before = raw as Partial<TrainConfig>;
  const d = DEFAULT_TRAIN_CONFIG;
  let was: Record<string, unknown>;
  try {
    was = resumeIdentity({ seed: before.seed ?? d.seed, model: { ...d.model, ...before.model }, batch: { ...d.batch, ...before.batch } });
  } catch (e) {
    throw new CheckpointError(stateFile, `'trainConfig' does not describe a model: ${(e as Error).message}`);
  }
  const is = resumeIdentity(config);
  for (const key of Object.keys(is)) {
    if (canonical(was[key]) !== canonical(is[key])) {
      throw invalidArg(
        `cannot resume from ${stateFile}: ${key.startsWith('model') ? key : `'${key}'`} was ${canonical(was[key])} in that run and is ${canonical(is[key])} now, ` +
          `which would not continue the same run; change it back, or start a new runDir (or --no-resume) to train with it`,
      );
    }
  }
  for (const key of WARN_ON_RESUME) {
    const a = canonical(key.split('.').reduce<unknown>((o, k) => (o !== null && typeof o === 'object' ? (o as Record<string, unknown>)[k] : undefined), before));
    if (a === 'unset') continue;
    const b = canonical(key.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown>)[k], config));
    if (a !== b) {
      process.emitWarning(`pajama train: resuming with '${key}' changed from ${a} to ${b} (checkpoint ${stateFile}); the run is no longer the one that was started`, {
        code: 'PAJAMA_RESUME_CONFIG_CHANGED',
      });
    }
  }
}
