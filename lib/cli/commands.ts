// commands.ts: what each `pajama` command does, over the library's public API.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { backendInfo } from '../core/backend';
import { invalidArg, showValue } from '../core/errors';
import { readJsonFile } from '../core/json-file';
import { FileSystemError, describeSystemError, explainSystemError, isSystemError, writableDirectoryProblem, writableFileProblem } from '../core/fs-errors';
import { MpiCommunicator, initCommunicator, type Communicator } from '../dist/communicator';
import { gpt2Tokenizer } from '../data/tokenizers/gpt2';
import { createTokenizer, type TokenizerSpec } from '../data/tokenizers/create';
import type { Tokenizer } from '../data/tokenizers/base';
import { tokenizeFiles } from '../data/corpus/tokenize';
import { DEMO_MIXTURE, buildDemoCorpus, demoDataConfig } from '../data/corpus/demo';
import { generate, generateFromIds } from '../eval/generate';
import { demoConversations, demoConversationsJsonl } from '../data/corpus/demo-chat';
import { CHAT_STOP_STRINGS, renderChatPrompt } from '../data/chat';
import { ChatSession, runChatSession } from './chat';
import { writeLossCurve } from '../eval/plot';
import { compareRuns, comparisonSvg, formatComparison, loadRuns, verdict } from '../eval/compare';
import { writeTextAtomic } from '../core/atomic';
import { checkOutputsAreNotInputs } from '../core/outputs';
import { evaluateTasks, type EvalProgress } from '../eval/harness';
import { loadTaskInputs } from '../eval/task-files';
import { leaderboardTable, mmluSubjectTable, reportText, writeEvalReport, type EvalReport } from '../eval/report';
import { TASK_NAMES, type TaskName } from '../eval/tasks';
import { MptModel } from '../model/mpt';
import { mptConfig, PRESETS, type MptConfig } from '../model/config';
import { mptConfigFromHf } from '../model/hf';
import { CheckpointError, checkpointTokenizer, latestCheckpoint, loadModelWeights } from '../train/checkpoint';
import { Trainer } from '../train/trainer';
import { SweepStoppedError, parseSeeds, runSweep, type SweepRun } from '../train/sweep';
import { applyOverrides, resolveTrainConfig } from '../train/config';
import { formatMixturePlan } from '../data/mixture';
import { formatPrepareReport, prepareData, resolvePrepareConfig, type PrepareProgress, type PrepareStage } from '../data/corpus/prepare/prepare';
import { formatPlan, GPU_KINDS, parseTokenCount, planCluster, SHARDING_MODES, type GpuKind, type PlanOptions, type ShardingMode } from '../dist/planner';
import { errorExitCode, type Command } from './args';
import { ProgressLine, TrainingProgressBar, bar } from './progress';
import { EXPERIMENT_PRESETS, runExperiment, type ExperimentPreset } from './experiment';

/** A JSON object from a file the user named (`what`: 'config', ...); a file that cannot be read is a usage error. */
function readJson(file: string, what = 'config'): Record<string, unknown> {
  return readJsonFile(file, {
    object: true,
    fail: (p) => {
      if (p.kind === 'unreadable') {
        const e = p.error;
        return invalidArg(`cannot read ${what} '${file}': ${isSystemError(e) ? `${e.code}: ${explainSystemError(e, file)}` : (e as Error).message}`);
      }
      return invalidArg(`${what} '${file}' is not valid JSON: ${p.kind === 'syntax' ? p.error.message : 'the top level is not an object'}`);
    },
  });
}

/** Throws a usage error naming `option` when a file cannot be written at `file` (see writableFileProblem). */
function checkOutputFile(option: string, file: string): void {
  const problem = writableFileProblem(file);
  if (problem) throw invalidArg(`${option} ${file}: cannot write a file there: ${problem}`);
}

/** Throws a usage error naming `option` when `dir` cannot be created or written into. */
function checkOutputDirectory(option: string, dir: string): void {
  const problem = writableDirectoryProblem(dir);
  if (problem) throw invalidArg(`${option} ${dir}: cannot write there: ${problem}`);
}

/** The signals `pajama train` stops on, and the exit status for each: 128 + the signal's number, as a shell reports it. */
export const STOP_SIGNALS = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 } as const;
type StopSignal = keyof typeof STOP_SIGNALS;

/** Training stopped on a signal after saving a checkpoint; main() exits with exitCode (130, 143 or 129). */
export class StoppedBySignalError extends Error {
  readonly code = 'ERR_PAJAMA_STOPPED';
  constructor(
    readonly signal: StopSignal,
    readonly exitCode: number,
    message: string,
  ) {
    super(message);
    this.name = 'StoppedBySignalError';
  }
}

function formatFinalLoss(l: { step: number; loss: number } | null): string {
  return l ? `final loss ${l.loss.toFixed(4)} (step ${l.step})` : 'no step had a finite loss';
}

/**
 * Trains from a config. SIGINT (Ctrl-C), SIGTERM (schedulers, docker stop, systemd) and SIGHUP (a closed
 * terminal) stop the run after the step in flight with a checkpoint, then throw StoppedBySignalError; the
 * same signal again exits at once (checkpoint writes are atomic, so the last complete one stays intact).
 *
 * Under an MPI launcher (mpirun -np N, srun --mpi=pmix) this process is one rank of the run (initCommunicator
 * decides; no flag): rank 0 alone prints. An error on any rank is printed there and ends every rank
 * (communicator.abort), so none is left waiting in a collective; a run that ends normally, or stopped by a
 * signal (every rank stops after the same step), finalizes MPI.
 */
export async function runTraining(config: Record<string, unknown>, options: { resume?: boolean } = {}): Promise<Trainer> {
  let timeoutMs: number | undefined;
  try {
    timeoutMs = resolveTrainConfig(config).dist.timeoutSeconds * 1000;
  } catch {
    // the same error comes again from Trainer.fromConfig below, where it is reported on every rank
  }
  const communicator = initCommunicator({ timeoutMs });
  try {
    const trainer = await trainRank(communicator, config, options);
    if (communicator instanceof MpiCommunicator) communicator.finalize();
    return trainer;
  } catch (e) {
    if (communicator.worldSize > 1 && !(e instanceof StoppedBySignalError)) {
      const message = isSystemError(e) ? describeSystemError(e) : e instanceof Error ? e.message : String(e);
      communicator.abort(`train: ${message}`, errorExitCode(e)); // every rank exits with this rank's status
    }
    if (communicator instanceof MpiCommunicator) communicator.finalize();
    throw e;
  }
}

/** runTraining on one rank of `communicator`. */
async function trainRank(communicator: Communicator, config: Record<string, unknown>, options: { resume?: boolean }): Promise<Trainer> {
  const trainer = await Trainer.fromConfig(config, { resume: options.resume ?? true, communicator });
  const leader = communicator.rank === 0;
  const log = (line: string) => {
    if (leader) console.log(line);
  };
  let stopping: StopSignal | null = null;
  const onSignal = (sig: StopSignal) => {
    if (stopping !== null) {
      console.error(`pajama train: ${sig} while stopping: exiting now; the last complete checkpoint is kept`);
      process.exit(STOP_SIGNALS[sig]);
    }
    stopping = sig;
    if (leader) console.error(`\npajama train: ${sig}: stopping after this step and saving a checkpoint (${sig} again to exit at once)`);
    trainer.requestStop();
  };
  for (const sig of Object.keys(STOP_SIGNALS) as StopSignal[]) process.on(sig, onSignal);
  let progressBar: TrainingProgressBar | null = null;
  try {
    const info = backendInfo();
    const p = trainer.plan;
    const ranks = p.worldSize > 1 ? ` x ${p.worldSize} ranks (${communicator instanceof MpiCommunicator ? communicator.library : 'MPI'}, sharding '${trainer.config.dist.sharding}')` : '';
    log(
      `pajama train: ${trainer.modelConfig.nLayers} layers, d_model ${trainer.modelConfig.dModel}, ${(trainer.model.parameterCount / 1e6).toFixed(2)}M parameters, ` +
        `${trainer.config.model.precision}, batch ${p.microBatchSize} x ${p.seqLen} x ${p.accumulationSteps} accumulation${ranks} = ${p.globalBatchTokens} tokens; ` +
        `${info.threads} threads, ${info.gemm.description}; peak ${(trainer.peakFlops / 1e9).toFixed(0)} GFLOP/s`,
    );
    for (const line of formatMixturePlan(trainer.dataPlan)) log(`pajama train: ${line}`);
    const mem = trainer.memory();
    const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
    log(
      `pajama train: memory per rank: weights ${mib(mem.weights)}, gradients ${mib(mem.gradients)}, optimizer state ${mib(mem.optimizerState)}, ` +
        `activations ${mib(mem.activations)} = ${mib(mem.total)}` + (mem.checkpointGather > 0 ? ` (+ ${mib(mem.checkpointGather)} while writing a checkpoint)` : ''),
    );
    if (trainer.stepsDone > 0) log(`pajama train: resumed at step ${trainer.stepsDone} from ${trainer.config.runDir}`);
    // On a terminal a bar redrawn in place (before the eval printer, so it ends its line first); else step lines.
    progressBar = leader && process.stderr.isTTY ? new TrainingProgressBar(trainer, trainer.config.steps) : null;
    let lastPrinted = 0;
    trainer.on('step', (m) => {
      if (!process.stderr.isTTY && (m.step - lastPrinted >= trainer.config.logEvery || m.step === trainer.config.steps || m.skipped)) {
        lastPrinted = m.step;
        const why = !Number.isFinite(m.loss) ? `loss ${m.loss}` : `${m.nonFiniteGradients} non-finite gradient values`;
        log(
          `step ${m.step}/${trainer.config.steps} loss ${m.loss.toFixed(4)} lr ${m.lr.toExponential(2)} wd ${m.weightDecay} ` +
            `grad ${m.gradNorm.toFixed(3)} ${Math.round(m.tokensPerSec)} tok/s MFU ${(100 * m.mfu).toFixed(1)}%` +
            `${p.worldSize > 1 ? ` comm ${m.commSeconds.toFixed(3)}s` : ''}${m.skipped ? ` (skipped: ${why})` : ''}`,
        );
      }
    });
    trainer.on('eval', (e) => {
      const parts = Object.entries(e.losses).map(([k, v]) => `${k} ${v.toFixed(4)}`);
      log(`eval @ step ${e.step}: ${parts.join(', ')}`);
    });
    const r = await trainer.fit();
    progressBar?.end();
    if (r.alreadyDone) {
      log(
        `pajama train: the run in ${trainer.config.runDir} already reached step ${r.steps} of ${trainer.config.steps}; ${formatFinalLoss(r.finalLoss)}; ` +
          `nothing to train, checkpoint ${r.checkpoint} left as it is (raise 'steps' to train further)`,
      );
    } else {
      log(`pajama train: ${r.stopped ? 'stopped' : 'done'} at step ${r.steps}, ${formatFinalLoss(r.finalLoss)}; checkpoint ${r.checkpoint}`);
    }
    if (stopping !== null) {
      throw new StoppedBySignalError(
        stopping,
        STOP_SIGNALS[stopping],
        `stopped by ${stopping} at step ${r.steps} of ${trainer.config.steps}; checkpoint ${r.checkpoint}; run the same command to resume`,
      );
    }
  } catch (e) {
    progressBar?.end();
    trainer.dispose();
    throw e;
  } finally {
    for (const sig of Object.keys(STOP_SIGNALS) as StopSignal[]) process.removeListener(sig, onSignal);
  }
  return trainer;
}

/** A model loaded from a checkpoint, its tokenizer, its directory, and where its context length (maxSeqLen) was read. */
export interface CheckpointModel {
  model: MptModel;
  /** The tokenizer given, else the one the checkpoint records, else GPT-2 (with a PAJAMA_NO_TOKENIZER warning). */
  tokenizer: Tokenizer;
  dir: string;
  /** e.g. "max_seq_len in runs/a/checkpoints/step-000010/config.json", for messages. */
  contextSource: string;
}

/** `--tokenizer`: 'gpt2' or a tokenizer.json path. */
/** --top-p: a number in (0, 1], or undefined when not given. */
function topPOption(v: unknown): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !(v > 0 && v <= 1)) throw invalidArg(`--top-p must be a number in (0, 1], got ${v}`);
  return v;
}

/**
 * The sampling options of `generate` and `chat` (--max-tokens, --temperature, --top-k, --top-p, --seed),
 * checked before the model is loaded, with each command's defaults for what is not given.
 */
function samplingOptions(
  o: Record<string, unknown>,
  defaults: { temperature: number; topK?: number; topP?: number },
): { maxTokens: number | undefined; temperature: number; topK: number | undefined; topP: number | undefined; seed: number } {
  const maxTokens = o['max-tokens'] as number | undefined;
  if (maxTokens !== undefined && (!Number.isSafeInteger(maxTokens) || maxTokens < 1)) throw invalidArg(`--max-tokens must be a positive integer, got ${maxTokens}`);
  const temperature = (o.temperature as number | undefined) ?? defaults.temperature;
  if (temperature < 0) throw invalidArg(`--temperature must be >= 0 (0 is greedy), got ${temperature}`);
  const topK = (o['top-k'] as number | undefined) ?? defaults.topK;
  if (topK !== undefined && (!Number.isSafeInteger(topK) || topK < 1)) throw invalidArg(`--top-k must be a positive integer, got ${topK}`);
  const topP = topPOption(o['top-p']) ?? defaults.topP;
  const seed = (o.seed as number | undefined) ?? 0;
  if (!Number.isSafeInteger(seed)) throw invalidArg(`--seed must be an integer, got ${seed}`);
  return { maxTokens, temperature, topK, topP, seed };
}

function tokenizerOption(v: unknown): TokenizerSpec | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || v === '') throw invalidArg(`--tokenizer must be 'gpt2' or a tokenizer.json path, got ${JSON.stringify(v)}`);
  return v === 'gpt2' ? { kind: 'gpt2' } : { kind: 'hf', path: v };
}

/** A checkpoint's JSON file as an object; unreadable, invalid or non-object contents name the file. */
function readCheckpointJson(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if (isSystemError(e)) throw new FileSystemError('reading', file, e);
    throw e;
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new CheckpointError(file, `not valid JSON (${(e as Error).message})`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new CheckpointError(file, `the top level is ${showValue(v)}, not an object`);
  return v as Record<string, unknown>;
}

/**
 * The model a checkpoint directory (or a run directory's latest checkpoint) holds: its architecture from
 * trainer_state.json's training config, else from config.json (HF MptConfig). Errors name the file and key.
 */
export function loadModelFromCheckpoint(source: string, options: { tokenizer?: TokenizerSpec; inference?: boolean } = {}): CheckpointModel {
  let dir = source;
  if (!fs.existsSync(path.join(dir, 'model.safetensors'))) {
    let st: fs.Stats | null = null;
    try {
      st = fs.statSync(source);
    } catch (e) {
      if (!isSystemError(e)) throw e;
      throw invalidArg(`'${source}' is neither a checkpoint directory nor a run directory with checkpoints (${e.code}: ${explainSystemError(e, source)})`);
    }
    if (!st.isDirectory()) throw invalidArg(`'${source}' is neither a checkpoint directory nor a run directory with checkpoints (it is a file)`);
    const latest = latestCheckpoint(source);
    if (!latest) throw invalidArg(`'${source}' is neither a checkpoint directory nor a run directory with checkpoints`);
    dir = latest.dir;
  }
  const recorded = options.tokenizer ?? checkpointTokenizer(dir);
  if (!recorded) {
    process.emitWarning(`${dir} records no tokenizer (a checkpoint from before tokenizers were recorded, or trained on shards of unknown origin): decoding with GPT-2; give --tokenizer to use another`, {
      code: 'PAJAMA_NO_TOKENIZER',
    });
  }
  const tokenizer = createTokenizer(recorded ?? { kind: 'gpt2' });
  const realVocabSize = tokenizer.vocabSize;
  let cfg: MptConfig;
  let contextSource: string;
  const statePath = path.join(dir, 'trainer_state.json');
  const configPath = path.join(dir, 'config.json');
  const state = fs.existsSync(statePath) ? readCheckpointJson(statePath) : {};
  if (state.trainConfig !== undefined) {
    try {
      const tc = resolveTrainConfig(state.trainConfig);
      cfg = mptConfig(tc.model.preset, tc.model.overrides);
    } catch (e) {
      throw new CheckpointError(statePath, `its 'trainConfig' is not a valid training config: ${(e as Error).message}`);
    }
    contextSource = `the training config's model.maxSeqLen in ${statePath}`;
  } else {
    if (!fs.existsSync(configPath)) {
      throw new CheckpointError(dir, `has no config.json and no trainer_state.json with a 'trainConfig': cannot tell the model's architecture`);
    }
    cfg = mptConfigFromHf(readCheckpointJson(configPath), realVocabSize, (msg) => new CheckpointError(configPath, msg));
    contextSource = `max_seq_len in ${configPath}`;
  }
  const model = new MptModel(cfg, { precision: 'fp32', inference: options.inference ?? false });
  try {
    loadModelWeights(dir, model.params);
  } catch (e) {
    model.dispose();
    throw e;
  }
  model.syncComputeParams();
  if (tokenizer.vocabSize > model.config.vocabSize) {
    model.dispose();
    throw invalidArg(`the tokenizer's vocabulary (${tokenizer.vocabSize}) is larger than the model's (${model.config.vocabSize}, ${dir}): it is not the tokenizer the model was trained with`);
  }
  return { model, tokenizer, dir, contextSource };
}

/** The demo's weight decay: PTWD over these stages, each of which needs at least one step. */
const DEMO_PTWD_STAGES = [0, 0.5, 0.1];

/** The fewest steps the demo accepts: one per PTWD stage (the trainer's own rule for PTWD). */
export const DEMO_MIN_STEPS = DEMO_PTWD_STAGES.length;

/** The demo's training config: `steps` steps on `data`, checkpoints and metrics in `trainDir`. */
function demoTrainConfig(trainDir: string, steps: number, data: Record<string, unknown>): Record<string, unknown> {
  return {
    model: {
      preset: 'tiny',
      overrides: { dModel: 256, nHeads: 4, nLayers: 4, maxSeqLen: 256, vocabSize: 50304, realVocabSize: 50257 },
      precision: 'bf16',
    },
    batch: { seqLen: 256, microBatchSize: 8, globalBatchTokens: 8 * 256 * 2 },
    optimizer: { lr: 2e-3, warmupSteps: Math.max(1, Math.round(steps / 10)) },
    weightDecay: { mode: 'ptwd', stages: DEMO_PTWD_STAGES },
    steps,
    data,
    eval: { every: Math.max(1, Math.round(steps / 8)), batches: 2 },
    checkpoint: { every: 0, keepLast: 1 },
    runDir: trainDir,
    seed: 1234,
    logEvery: Math.max(1, Math.round(steps / 40)),
  };
}

/**
 * Checks the demo's options before any work (building the corpus takes a while): the step count, the run
 * directory, and the training config they make, with the corpus's manifest still to be written.
 */
export function checkDemoOptions(options: { runDir: string; steps: number }): void {
  const { runDir, steps } = options;
  if (!Number.isSafeInteger(steps) || steps < DEMO_MIN_STEPS) {
    throw invalidArg(`--steps must be an integer >= ${DEMO_MIN_STEPS} (the demo's weight decay has ${DEMO_PTWD_STAGES.length} PTWD stages, each needs a step), got ${steps}`);
  }
  if (typeof runDir !== 'string' || runDir === '') throw invalidArg(`--run-dir must be a directory path, got ${JSON.stringify(runDir)}`);
  checkOutputDirectory('--run-dir', runDir);
  const placeholder = { manifest: path.join(runDir, 'data', 'manifest.json'), mixture: { ...DEMO_MIXTURE } };
  try {
    resolveTrainConfig(demoTrainConfig(path.join(runDir, 'train'), steps, placeholder));
  } catch (e) {
    throw invalidArg(`--steps ${steps} makes an invalid training config: ${(e as Error).message}`);
  }
}

/** The embedded default: a small MPT trained for a few minutes on the demo corpus (npm start). */
export async function runDemo(options: { runDir: string; steps: number }): Promise<void> {
  checkDemoOptions(options);
  const dataDir = path.join(options.runDir, 'data');
  console.log(`pajama demo: building the demo corpus in ${dataDir} (Moby-Dick, State of the Union addresses, source code) through the data pipeline`);
  const progress = new ProgressLine();
  const corpus = await buildDemoCorpus({
    outDir: dataDir,
    onProgress: (p) => progress.update(`${p.stage}: ${p.files}/${p.totalFiles} files, ${p.documents} documents`),
    onLog: (line) => {
      progress.done();
      console.log(`  ${line}`);
    },
  });
  progress.done();
  console.log(formatPrepareReport(corpus.report));
  const trainDir = path.join(options.runDir, 'train');
  fs.rmSync(trainDir, { recursive: true, force: true }); // the demo always starts fresh
  const steps = options.steps;
  const config = demoTrainConfig(trainDir, steps, demoDataConfig(corpus));
  const trainer = await runTraining(config, { resume: false });
  trainer.dispose();
  const plot = writeLossCurve(trainDir, { title: `pajama-train demo: MPT d256 x 4 layers, ${steps} steps` });
  console.log(`pajama demo: loss curve ${plot.path} (warmup and PTWD stage boundaries marked)`);
  const { model, tokenizer: tok, dir } = loadModelFromCheckpoint(trainDir, { inference: true });
  try {
    for (const prompt of ['Call me Ishmael.', 'The state of the Union is']) {
      const g = await generate(model, tok, prompt, { maxNewTokens: 40, temperature: 0.8, topK: 40, seed: 1 });
      console.log(`pajama demo: sample from ${dir}\n  ${JSON.stringify(prompt + g.text)}`);
    }
  } finally {
    model.dispose();
  }
  console.log(`pajama demo: metrics in ${path.join(trainDir, 'metrics.jsonl')}`);
  await runDemoSftAndEval(options.runDir, dir, steps);
}

/** The demo's instruction tuning: `steps` steps of pajama sft from the pretrained checkpoint `init` on the demo's conversations. */
function demoSftConfig(sftDir: string, init: string, chatFile: string, steps: number): Record<string, unknown> {
  return {
    model: {
      preset: 'tiny',
      overrides: { dModel: 256, nHeads: 4, nLayers: 4, maxSeqLen: 256, vocabSize: 50304, realVocabSize: 50257 },
      precision: 'bf16',
      init,
    },
    batch: { seqLen: 256, microBatchSize: 4, globalBatchTokens: 4 * 256 },
    optimizer: { lr: 5e-4, warmupSteps: 2, minLrRatio: 0.1 },
    weightDecay: { mode: 'constant', value: 0 },
    steps,
    data: { chat: { train: [chatFile], validationFraction: 0.15 } },
    eval: { every: Math.max(1, Math.round(steps / 4)), batches: 1 },
    checkpoint: { every: 0, keepLast: 1 },
    runDir: sftDir,
    seed: 1234,
    logEvery: Math.max(1, Math.round(steps / 10)),
  };
}

/** The demo's instruction-tuning steps for `steps` of pretraining: two thirds as many, at least 3 (each step is 4 packed rows; 100 go over the conversations about 60 times). */
function demoSftSteps(steps: number): number {
  return Math.max(3, Math.round((2 * steps) / 3));
}

/**
 * The demo's last stage: instruction tuning (pajama sft) on conversations it writes, a chat reply from the
 * tuned model, then pajama eval of the pretrained and the tuned checkpoint on the shipped example tasks, with
 * the paper's Table 13 and Table 9 layouts for both.
 */
async function runDemoSftAndEval(runDir: string, pretrained: string, steps: number): Promise<void> {
  const chatFile = path.join(runDir, 'chat', 'conversations.jsonl');
  fs.mkdirSync(path.dirname(chatFile), { recursive: true });
  fs.writeFileSync(chatFile, demoConversationsJsonl());
  const sftDir = path.join(runDir, 'sft');
  fs.rmSync(sftDir, { recursive: true, force: true }); // the demo always starts fresh
  console.log(`\npajama demo: instruction tuning (pajama sft) from ${pretrained} on ${demoConversations().length} ShareGPT conversations it wrote to ${chatFile}`);
  const trainer = await runTraining(demoSftConfig(sftDir, pretrained, chatFile, demoSftSteps(steps)), { resume: false });
  trainer.dispose();
  const { model, tokenizer, dir: tuned } = loadModelFromCheckpoint(sftDir, { inference: true });
  try {
    const question = 'Who is the captain of the Pequod?';
    const ids = renderChatPrompt(tokenizer, [{ role: 'user', text: question }]);
    const g = await generateFromIds(model, tokenizer, Array.from(ids), { maxNewTokens: 40, temperature: 0, stop: CHAT_STOP_STRINGS });
    console.log(`pajama demo: chat with ${tuned} (pajama chat --checkpoint ${tuned})\n  USER: ${question}\n  ASSISTANT:${g.text}`);
  } finally {
    model.dispose();
  }
  console.log(`\npajama demo: pajama eval of both checkpoints on the example tasks shipped in ${shippedExampleTasks()} (made-up questions in the benchmarks' formats, not the benchmarks)`);
  const rows = [];
  for (const [label, checkpoint] of [['pretrained', pretrained], ['instruction-tuned', tuned]]) {
    const report = await runEval({ checkpoint, quiet: true });
    rows.push({ label, results: report.results });
  }
  console.log(`\nThe paper's Table 13 layout (accuracy in percent; a model this small scores near chance):\n${leaderboardTable(rows, 'text')}`);
  const subjects = mmluSubjectTable(rows, 'text');
  if (subjects) console.log(`\nThe paper's Table 9 layout (MMLU 5-shot accuracy per subject):\n${subjects}`);
}

/** Runs `pajama prepare` (or `pajama dedup`: until 'dedup') with a progress line and prints the report. */
export async function runPrepare(input: Record<string, unknown>, baseDir: string, options: { force?: boolean; until?: PrepareStage; name: string }): Promise<void> {
  const config = resolvePrepareConfig(input, baseDir);
  checkOutputDirectory('output directory', config.output);
  const progress = new ProgressLine();
  const t0 = Date.now();
  const show = (p: PrepareProgress) => {
    const secs = (Date.now() - t0) / 1000;
    progress.update(
      `${p.stage} ${bar(p.diskBytesTotal > 0 ? p.diskBytes / p.diskBytesTotal : 0)} ${p.files}/${p.totalFiles} files, ${p.documents} documents, ` +
        `${(p.bytes / 1e6).toFixed(0)} MB (${(p.bytes / 1e6 / Math.max(secs, 1e-3)).toFixed(1)} MB/s)`,
    );
  };
  const result = await prepareData(config, {
    force: options.force,
    until: options.until,
    onProgress: show,
    onLog: (line) => {
      progress.done();
      console.log(`pajama ${options.name}: ${line}`);
    },
  });
  progress.done();
  console.log(formatPrepareReport(result.report));
  for (const m of result.report.reader.malformedSamples ?? []) console.log(`  malformed ${m.file}:${m.line}: ${m.reason}`);
  if (result.manifest) console.log(`pajama ${options.name}: manifest ${result.manifest}; train with data.manifest = "${result.manifest}"`);
  else console.log(`pajama ${options.name}: report ${path.join(config.output, 'dedup-report.json')}`);
}

/** The example task set shipped with the package (examples/tasks), from lib/cli or dist/lib/cli. */
export function shippedExampleTasks(): string {
  const candidates = [path.resolve(__dirname, '../../examples/tasks'), path.resolve(__dirname, '../../../examples/tasks')];
  return candidates.find((d) => fs.existsSync(path.join(d, 'README.md'))) ?? candidates[0];
}

export interface EvalCommandOptions {
  checkpoint: string;
  /** Defaults to all four. */
  tasks?: TaskName[];
  /** Defaults to the shipped example set (shippedExampleTasks()). */
  data?: string;
  limit?: number;
  batchTokens?: number;
  /** Where results.json and results.md go; defaults to <run>/eval/<checkpoint name>/ for a checkpoint inside a run directory. */
  out?: string;
  tokenizer?: TokenizerSpec;
  /** Print the JSON report to stdout (the tables then go to stderr). */
  json?: boolean;
  /** Leave the tables out of the output (the caller prints its own: the demo's before/after table). */
  quiet?: boolean;
}

/** `--tasks a,b`: known task names, each once. */
export function parseTaskList(v: string): TaskName[] {
  const names = v.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (names.length === 0) throw invalidArg(`--tasks needs at least one task (tasks: ${TASK_NAMES.join(', ')})`);
  const unknown = names.filter((n) => !TASK_NAMES.includes(n as TaskName));
  if (unknown.length > 0) throw invalidArg(`--tasks: unknown task${unknown.length === 1 ? '' : 's'} ${unknown.map((n) => `'${n}'`).join(', ')} (tasks: ${TASK_NAMES.join(', ')})`);
  const twice = names.filter((n, i) => names.indexOf(n) !== i);
  if (twice.length > 0) throw invalidArg(`--tasks: '${twice[0]}' is listed twice`);
  return names as TaskName[];
}

/** The checkpoint directory `source` names (itself, or a run directory's latest checkpoint), or null when neither. */
function checkpointDirOf(source: string): string | null {
  if (fs.existsSync(path.join(source, 'model.safetensors'))) return source;
  if (!fs.statSync(source, { throwIfNoEntry: false })?.isDirectory()) return null;
  return latestCheckpoint(source)?.dir ?? null;
}

/** The training step a checkpoint directory is at: its step-N name, else trainer_state.json's step; null when neither says. */
function checkpointStep(dir: string): number | null {
  const m = /^step-(\d+)$/.exec(path.basename(path.resolve(dir)));
  if (m) return Number(m[1]);
  try {
    const step = (JSON.parse(fs.readFileSync(path.join(dir, 'trainer_state.json'), 'utf8')) as { step?: unknown }).step;
    return Number.isSafeInteger(step) ? (step as number) : null;
  } catch {
    return null;
  }
}

/**
 * `pajama eval`: reads the tasks' files, loads the checkpoint as an inference model, scores the tasks with a
 * progress line, prints the tables (Table 13's and Table 9's layouts) and writes results.json and results.md
 * into `out`, by default `<run>/eval/<checkpoint name>/` (the checkpoint inside `<run>/checkpoints/`).
 */
export async function runEval(options: EvalCommandOptions): Promise<EvalReport> {
  const tasks = options.tasks ?? [...TASK_NAMES];
  const limit = options.limit;
  if (limit !== undefined && (!Number.isSafeInteger(limit) || limit < 1)) throw invalidArg(`--limit must be a positive integer, got ${limit}`);
  const batchTokens = options.batchTokens;
  if (batchTokens !== undefined && (!Number.isSafeInteger(batchTokens) || batchTokens < 1)) throw invalidArg(`--batch-tokens must be a positive integer, got ${batchTokens}`);
  const data = options.data ?? shippedExampleTasks();
  const say = options.json ? (line: string) => console.error(line) : (line: string) => console.log(line);
  if (options.data === undefined) say(`pajama eval: no --data: the example task set shipped in ${data} (made-up questions, not the benchmarks)`);
  const inputs = await loadTaskInputs(data, tasks);

  // Where the results go, checked before the model is loaded.
  const ckptDir = checkpointDirOf(options.checkpoint);
  let out = options.out;
  if (out === undefined && ckptDir !== null && path.basename(path.dirname(path.resolve(ckptDir))) === 'checkpoints') {
    out = path.join(path.dirname(path.dirname(path.resolve(ckptDir))), 'eval', path.basename(path.resolve(ckptDir)));
  }
  if (out === undefined && ckptDir !== null) {
    throw invalidArg(`--out DIR is required: ${ckptDir} is not inside a run directory (<run>/checkpoints/step-N), so there is no <run>/eval/ to write the results into`);
  }
  if (out !== undefined) checkOutputDirectory(options.out !== undefined ? '--out' : 'the results directory', out);

  const { model, tokenizer, dir } = loadModelFromCheckpoint(options.checkpoint, { ...(options.tokenizer ? { tokenizer: options.tokenizer } : {}), inference: true });
  try {
    const spec = options.tokenizer ?? checkpointTokenizer(dir) ?? { kind: 'gpt2' as const };
    const step = checkpointStep(dir);
    const runName = path.basename(path.dirname(path.dirname(path.resolve(dir))));
    const label = path.basename(path.dirname(path.resolve(dir))) === 'checkpoints' ? `${runName}${step === null ? '' : ` step ${step}`}` : path.basename(path.resolve(dir));
    say(
      `pajama eval: ${dir}: ${model.config.nLayers} layers, d_model ${model.config.dModel}, context ${model.config.maxSeqLen}; ` +
        `tasks ${inputs.map((i) => `${i.name} (${i.eval.length} docs${limit === undefined ? '' : `, --limit ${limit}${i.name === 'mmlu' ? ' per subject' : ''}`})`).join(', ')}`,
    );
    const progress = new ProgressLine();
    let taskIndex = 0;
    let current: TaskName | null = null;
    let t0 = Date.now();
    const started = Date.now();
    const results = await evaluateTasks(model, tokenizer, inputs, {
      ...(limit !== undefined ? { limit } : {}),
      ...(batchTokens !== undefined ? { batchTokens } : {}),
      onProgress: (p: EvalProgress) => {
        if (p.task !== current) {
          current = p.task;
          taskIndex++;
          t0 = Date.now();
        }
        // The ETA is the current task's: its requests left at its rate so far.
        const secs = (Date.now() - t0) / 1000;
        const eta = p.done > 0 && p.done < p.total ? `, ETA ${formatSeconds((secs * (p.total - p.done)) / p.done)}` : '';
        progress.update(`eval ${p.task} (${taskIndex}/${inputs.length}) ${bar(p.total > 0 ? p.done / p.total : 0)} ${p.done}/${p.total} requests, ${formatSeconds(secs)}${eta}`, p.done === p.total);
      },
    }).finally(() => progress.done());
    const report: EvalReport = {
      model: { label, checkpoint: dir, step, tokenizer: spec.kind === 'gpt2' ? 'gpt2' : spec.path, parameters: model.parameterCount },
      date: new Date().toISOString(),
      seconds: (Date.now() - started) / 1000,
      settings: {
        limit: limit ?? null,
        numFewshot: Object.fromEntries(results.map((r) => [r.task, r.numFewshot])),
        batchTokens: batchTokens ?? null,
        data,
        files: Object.fromEntries(inputs.map((i) => [i.name, i.where])),
      },
      tasks,
      results,
    };
    if (!options.quiet) {
      say('');
      say(reportText(report));
    }
    if (out !== undefined) {
      fs.mkdirSync(out, { recursive: true });
      const files = writeEvalReport(out, report);
      say(`\npajama eval: ${files.json} and ${files.markdown}`);
    }
    if (options.json) console.log(JSON.stringify(report, null, 2));
    return report;
  } finally {
    model.dispose();
  }
}

/** What `pajama sweep` is given (see its entry in `commands`). */
export interface SweepCommandOptions {
  config: string;
  grid: string;
  /** `--seeds`: a count N (1..N), a list 1,2,3 or a range 5..8; defaults to the base config's seed alone. */
  seeds?: string;
  /** Defaults to runs/<base config's name>-sweep. */
  out?: string;
  set?: string[];
}

/**
 * `pajama sweep`: every combination of a grid of config values x seeds (lib/train/sweep.ts), one run after
 * another, with a line per run (i of n, ETA) and each run's step lines. SIGINT, SIGTERM and SIGHUP stop the
 * run in flight after its step with a checkpoint (StoppedBySignalError); the same command resumes the sweep.
 */
export async function runSweepCommand(options: SweepCommandOptions): Promise<SweepRun[]> {
  const base = applyOverrides(readJson(options.config), options.set ?? []);
  const grid = readJson(options.grid, 'grid');
  const seeds = options.seeds !== undefined ? parseSeeds(options.seeds) : [resolveTrainConfig(base).seed];
  const out = options.out ?? path.join('runs', `${path.basename(options.config).replace(/\.json$/i, '')}-sweep`);
  checkOutputDirectory('--out', out);
  const communicator = initCommunicator();
  if (communicator.worldSize > 1) {
    communicator.abort('sweep: pajama sweep trains its runs one after another in one process and is not started under mpirun (see README, Sweeps)', 2);
  }
  let trainer: Trainer | null = null;
  let stopping: StopSignal | null = null;
  const onSignal = (sig: StopSignal) => {
    if (stopping !== null) {
      console.error(`pajama sweep: ${sig} while stopping: exiting now; the last complete checkpoint is kept`);
      process.exit(STOP_SIGNALS[sig]);
    }
    stopping = sig;
    console.error(`\npajama sweep: ${sig}: stopping after this step and saving a checkpoint (${sig} again to exit at once)`);
    trainer?.requestStop();
  };
  for (const sig of Object.keys(STOP_SIGNALS) as StopSignal[]) process.on(sig, onSignal);
  let warned = false;
  try {
    const runs = await runSweep({ base, baseDir: process.cwd(), grid, seeds }, out, {
      communicator,
      onProgress: (p) => {
        const eta = p.etaSeconds === null ? '' : `, ETA ${formatSeconds(p.etaSeconds)}`;
        const what = { start: 'starting', resume: 'resuming from its latest checkpoint', skip: 'finished already, skipped', done: 'done' }[p.state];
        console.log(`pajama sweep: run ${p.i}/${p.n} ${p.run.name} (${p.run.group}, seed ${p.run.seed}): ${what}${eta}`);
      },
      onTraining: (t, run) => {
        trainer = t;
        if (stopping !== null) t.requestStop();
        const c = t.config;
        if (c.checkpoint.every === 0 && !warned) {
          warned = true;
          console.log(`pajama sweep: 'checkpoint.every' is 0: a run interrupted before its end starts again from step 0 (set it to resume within a run)`);
        }
        let last = t.stepsDone;
        t.on('step', (m) => {
          if (m.step - last >= c.logEvery || m.step === c.steps || m.skipped) {
            last = m.step;
            console.log(`  ${run.name} step ${m.step}/${c.steps} loss ${m.loss.toFixed(4)} lr ${m.lr.toExponential(2)} wd ${m.weightDecay} ${Math.round(m.tokensPerSec)} tok/s${m.skipped ? ' (skipped)' : ''}`);
          }
        });
        t.on('eval', (e) => console.log(`  ${run.name} eval @ step ${e.step}: ${Object.entries(e.losses).map(([k, v]) => `${k} ${v.toFixed(4)}`).join(', ')}`));
      },
    });
    console.log(`pajama sweep: ${runs.length} runs in ${path.join(out, 'runs')}; the sweep's record is ${path.join(out, 'sweep.json')} (compare the runs with pajama compare ${out})`);
    if (communicator instanceof MpiCommunicator) communicator.finalize();
    return runs;
  } catch (e) {
    if (e instanceof SweepStoppedError && stopping !== null) {
      throw new StoppedBySignalError(stopping, STOP_SIGNALS[stopping], `stopped by ${stopping}: ${e.message}`);
    }
    throw e;
  } finally {
    for (const sig of Object.keys(STOP_SIGNALS) as StopSignal[]) process.removeListener(sig, onSignal);
  }
}

function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '?';
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m} min ${Math.round(s - 60 * m)} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

export const commands: Record<string, Command> = {
  prepare: {
    summary: '--config DATA.json [--set key=value ...] [--force]: jsonl(.zst) shards -> filter -> dedup -> split -> tokenize -> per-source shards + manifest',
    options: {
      config: { kind: 'string', describe: 'data preparation config (JSON); see README' },
      set: { kind: 'list', describe: 'override a config key, e.g. dedup.mode=local (repeatable)' },
      force: { kind: 'flag', describe: 'start over instead of resuming finished stages' },
    },
    async run(o) {
      if (typeof o.config !== 'string') throw invalidArg('--config DATA.json is required');
      const input = applyOverrides(readJson(o.config), (o.set as string[]) ?? []);
      await runPrepare(input, path.dirname(path.resolve(o.config)), { force: Boolean(o.force), name: 'prepare' });
    },
  },
  dedup: {
    summary: '(--config DATA.json | INPUT... --output DIR) [--mode global|local]: short-document filter and MinHash-LSH dedup only, with its report',
    options: {
      config: { kind: 'string', describe: 'a prepare config (JSON); its dedup settings apply' },
      output: { kind: 'string', describe: 'where the work files and dedup-report.json go (without --config)' },
      mode: { kind: 'string', describe: "'global' (across sources, default) or 'local' (within each source)" },
      set: { kind: 'list', describe: 'override a config key, e.g. dedup.bands=20 (repeatable)' },
      force: { kind: 'flag', describe: 'start over instead of resuming finished stages' },
    },
    positionals: 'INPUT...',
    async run(o, inputs) {
      let input: Record<string, unknown>;
      let baseDir = process.cwd();
      if (typeof o.config === 'string') {
        if (inputs.length > 0) throw invalidArg('give either --config or input paths, not both');
        input = readJson(o.config);
        baseDir = path.dirname(path.resolve(o.config));
      } else {
        if (inputs.length === 0) throw invalidArg('give --config DATA.json, or input files/folders/globs and --output DIR');
        if (typeof o.output !== 'string') throw invalidArg('--output DIR is required with input paths');
        input = { inputs, output: o.output };
      }
      if (typeof o.mode === 'string') input = { ...input, dedup: { ...((input.dedup as object) ?? {}), mode: o.mode } };
      input = applyOverrides(input, (o.set as string[]) ?? []);
      await runPrepare(input, baseDir, { force: Boolean(o.force), until: 'dedup', name: 'dedup' });
    },
  },
  train: {
    summary: '--config FILE.json [--set key=value ...]: train an MPT model (resumes from the run directory)',
    options: {
      config: { kind: 'string', describe: 'training config (JSON); see README' },
      set: { kind: 'list', describe: 'override a config key, e.g. optimizer.lr=3e-4 (repeatable)' },
      'no-resume': { kind: 'flag', describe: 'start fresh even if the run directory has checkpoints' },
    },
    async run(o) {
      if (typeof o.config !== 'string') throw invalidArg('pajama train: --config FILE.json is required');
      const config = applyOverrides(readJson(o.config), (o.set as string[]) ?? []);
      const trainer = await runTraining(config, { resume: !o['no-resume'] });
      trainer.dispose();
    },
  },
  sft: {
    summary: '--config FILE.json [--from CHECKPOINT] [--set key=value ...]: instruction-tune a pretrained model on ShareGPT conversations (data.chat)',
    options: {
      config: { kind: 'string', describe: "training config (JSON) with 'data.chat'; see README, Instruction tuning" },
      from: { kind: 'string', describe: "the pretrained checkpoint (or a run directory: its latest); sets 'model.init'" },
      set: { kind: 'list', describe: 'override a config key, e.g. optimizer.lr=2e-5 (repeatable)' },
      'no-resume': { kind: 'flag', describe: 'start fresh even if the run directory has checkpoints' },
    },
    async run(o) {
      if (typeof o.config !== 'string') throw invalidArg('pajama sft: --config FILE.json is required');
      const config = applyOverrides(readJson(o.config), (o.set as string[]) ?? []);
      if (typeof o.from === 'string') {
        const from = o.from;
        const dir = fs.existsSync(path.join(from, 'model.safetensors')) || !fs.existsSync(from) || !fs.statSync(from).isDirectory() ? from : latestCheckpoint(from)?.dir;
        if (dir === undefined) throw invalidArg(`pajama sft: --from '${from}' is neither a checkpoint directory nor a run directory with checkpoints`);
        const model = (config.model ?? {}) as Record<string, unknown>;
        if (model === null || typeof model !== 'object' || Array.isArray(model)) throw invalidArg(`pajama sft: the config's 'model' must be an object`);
        config.model = { ...model, init: dir };
      }
      const c = resolveTrainConfig(config);
      if (c.data.chat.train.length === 0) throw invalidArg("pajama sft: the config names no conversations in 'data.chat.train' (ShareGPT files); pajama train trains on token shards");
      if (c.model.init === null) throw invalidArg("pajama sft: give --from CHECKPOINT or 'model.init': instruction tuning starts from a pretrained model");
      const trainer = await runTraining(config, { resume: !o['no-resume'] });
      trainer.dispose();
    },
  },
  sweep: {
    summary: '--config BASE.json --grid GRID.json [--seeds 3 | 1,2,3 | 5..8] [--out DIR] [--set key=value ...]: train every combination of a grid of config values x seeds, one run after another; resumes (see README, Sweeps)',
    options: {
      config: { kind: 'string', describe: 'the base training config (JSON)' },
      grid: { kind: 'string', describe: 'the grid (JSON): dotted config keys and arrays of values, plus named groups; see README, Sweeps' },
      seeds: { kind: 'string', describe: "a count N (seeds 1..N), a list 1,2,3 or a range 5..8 (default: the base config's seed)" },
      out: { kind: 'string', describe: "the sweep's directory: sweep.json and runs/<name>/ (default runs/<config name>-sweep)" },
      set: { kind: 'list', describe: 'override a key of the base config, e.g. steps=200 (repeatable)' },
    },
    async run(o) {
      if (typeof o.config !== 'string') throw invalidArg('pajama sweep: --config BASE.json is required');
      if (typeof o.grid !== 'string') throw invalidArg('pajama sweep: --grid GRID.json is required');
      await runSweepCommand({
        config: o.config,
        grid: o.grid,
        ...(typeof o.seeds === 'string' ? { seeds: o.seeds } : {}),
        ...(typeof o.out === 'string' ? { out: o.out } : {}),
        set: (o.set as string[]) ?? [],
      });
    },
  },
  tokenize: {
    summary: '--out SHARD.bin INPUT...: tokenize .txt/.jsonl files and folders into a token shard (GPT-2 BPE)',
    options: {
      out: { kind: 'string', describe: 'the shard to write' },
      'text-field': { kind: 'string', describe: "the .jsonl field holding the text (default 'text')" },
      strict: { kind: 'flag', describe: 'fail on the first malformed line (invalid UTF-8 or JSON, no text) instead of skipping it' },
    },
    positionals: 'INPUT...',
    async run(o, inputs) {
      if (typeof o.out !== 'string') throw invalidArg('--out SHARD.bin is required');
      if (inputs.length === 0) throw invalidArg('give at least one input file or folder');
      checkOutputFile('--out', o.out);
      const s = await tokenizeFiles({
        inputs,
        output: o.out,
        tokenizer: gpt2Tokenizer(),
        ...(typeof o['text-field'] === 'string' ? { textField: o['text-field'] } : {}),
        strict: Boolean(o.strict),
        onProgress: (p) => {
          if (process.stderr.isTTY) process.stderr.write(`\r${JSON.stringify(p)}`.slice(0, 120));
        },
      }).catch((e: unknown) => {
        // The shard is the only file written: a failed write on its descriptor (disk full, quota) carries no
        // path, and a failure on its temporary file names that; both are reported as writing the shard.
        const out = path.resolve(o.out as string);
        if (isSystemError(e)) {
          const onShard = e.path ? path.resolve(e.path) === out || path.resolve(e.path).startsWith(`${out}.tmp-`) : ['ENOSPC', 'EDQUOT', 'EFBIG', 'EROFS', 'EIO'].includes(e.code ?? '');
          if (onShard) throw new FileSystemError('writing shard', o.out as string, e);
        }
        throw e;
      });
      if (process.stderr.isTTY) process.stderr.write('\n');
      console.log(`pajama tokenize: ${s.documents} documents, ${s.bytes} bytes -> ${s.tokens} tokens in ${s.output}`);
      for (const k of s.skipped) console.log(`  skipped ${k.file}:${k.line}: ${k.reason}`);
      if (s.skippedTotal > s.skipped.length) console.log(`  ... and ${s.skippedTotal - s.skipped.length} more skipped`);
    },
  },
  generate: {
    summary: '--checkpoint DIR --prompt TEXT: continue a prompt with a trained model (greedy, temperature, top-k, top-p, stop strings; KV cache)',
    options: {
      checkpoint: { kind: 'string', describe: 'a checkpoint directory, or a run directory (its latest checkpoint)' },
      prompt: { kind: 'string', describe: 'the text to continue' },
      'max-tokens': { kind: 'number', describe: "tokens to generate, at most the model's context (default 64)" },
      temperature: { kind: 'number', describe: '0 (default) is greedy' },
      'top-k': { kind: 'number', describe: 'sample among the k most likely tokens' },
      'top-p': { kind: 'number', describe: 'nucleus sampling: among the most likely tokens whose probability reaches p, in (0, 1] (default 1)' },
      stop: { kind: 'list', describe: 'stop when the text contains this string (repeatable; the output ends before it)' },
      'no-cache': { kind: 'flag', describe: 'recompute the whole window for every token instead of using the KV cache' },
      seed: { kind: 'number', describe: 'sampling seed (default 0)' },
      tokenizer: { kind: 'string', describe: "'gpt2' or a tokenizer.json path (default: the one the checkpoint records)" },
    },
    async run(o) {
      if (typeof o.checkpoint !== 'string') throw invalidArg('--checkpoint DIR is required');
      const tokenizer = tokenizerOption(o.tokenizer);
      if (typeof o.prompt !== 'string') throw invalidArg('--prompt TEXT is required');
      // Checked before the model is loaded; --max-tokens again against the model's context after.
      const { maxTokens, temperature, topK, topP, seed } = samplingOptions(o, { temperature: 0 });
      const stop = (o.stop as string[] | undefined) ?? [];
      if (stop.some((s) => s === '')) throw invalidArg('--stop must not be empty');
      const { model, tokenizer: tok, contextSource } = loadModelFromCheckpoint(o.checkpoint, { ...(tokenizer ? { tokenizer } : {}), inference: true });
      try {
        // Generation slides a window of the model's context (maxSeqLen) over the text; past that many new
        // tokens the prompt has left the window and the output no longer continues it, so that is the bound.
        const context = model.config.maxSeqLen;
        if (maxTokens !== undefined && maxTokens > context) {
          throw invalidArg(`--max-tokens ${maxTokens} is more than the model's context of ${context} tokens (${contextSource}); past it the prompt is out of view: ask for at most ${context}`);
        }
        const g = await generate(model, tok, o.prompt, {
          maxNewTokens: maxTokens ?? Math.min(64, context),
          temperature,
          ...(topK !== undefined ? { topK } : {}),
          ...(topP !== undefined ? { topP } : {}),
          ...(stop.length > 0 ? { stop } : {}),
          cache: o['no-cache'] !== true,
          seed,
        });
        console.log(o.prompt + g.text);
      } finally {
        model.dispose();
      }
    },
  },
  chat: {
    summary: '--checkpoint DIR: talk with a model: each line of input is a user turn, rendered with the chat template; replies through the KV cache',
    options: {
      checkpoint: { kind: 'string', describe: 'a checkpoint directory, or a run directory (its latest checkpoint)' },
      'max-tokens': { kind: 'number', describe: "tokens per reply at most (default 256, below the model's context)" },
      temperature: { kind: 'number', describe: '0 is greedy (default 0.7)' },
      'top-k': { kind: 'number', describe: 'sample among the k most likely tokens (default 40)' },
      'top-p': { kind: 'number', describe: 'nucleus sampling in (0, 1] (default 0.95)' },
      seed: { kind: 'number', describe: 'sampling seed of the first reply, + 1 for each next one (default 0)' },
      system: { kind: 'string', describe: "the system line ('' for none; default: the template's)" },
      tokenizer: { kind: 'string', describe: "'gpt2' or a tokenizer.json path (default: the one the checkpoint records)" },
    },
    async run(o) {
      if (typeof o.checkpoint !== 'string') throw invalidArg('--checkpoint DIR is required');
      const tokenizer = tokenizerOption(o.tokenizer);
      const { maxTokens, temperature, topK, topP, seed } = samplingOptions(o, { temperature: 0.7, topK: 40, topP: 0.95 });
      const system = o.system as string | undefined;
      const { model, tokenizer: tok, contextSource } = loadModelFromCheckpoint(o.checkpoint, { ...(tokenizer ? { tokenizer } : {}), inference: true });
      let session: ChatSession | null = null;
      try {
        const context = model.config.maxSeqLen;
        if (maxTokens !== undefined && maxTokens >= context) {
          throw invalidArg(`--max-tokens ${maxTokens} leaves no room for the conversation in the model's context of ${context} tokens (${contextSource}): ask for fewer`);
        }
        session = new ChatSession(model, tok, {
          maxTokens: maxTokens ?? Math.min(256, Math.floor(context / 2)),
          temperature,
          topK: topK!,
          topP: topP!,
          seed,
          ...(system !== undefined ? { system } : {}),
        });
        const interactive = process.stdin.isTTY === true;
        if (interactive) console.log('pajama chat: type a message and press Enter; /reset starts over; Ctrl-D ends');
        await runChatSession(session, process.stdin, (text) => process.stdout.write(text), interactive);
      } finally {
        session?.dispose();
        model.dispose();
      }
    },
  },
  demo: {
    summary: ': the embedded default (npm start): train a small MPT on text shipped in npm packages',
    options: {
      'run-dir': { kind: 'string', describe: "where data, checkpoints and metrics go (default 'runs/demo')" },
      steps: { kind: 'number', describe: `pretraining steps, at least ${DEMO_MIN_STEPS} (default 150; with the instruction-tuning and eval stage about 2.5 minutes on 2 cores)` },
    },
    async run(o) {
      // runDemo checks the options before it builds the corpus.
      await runDemo({ runDir: (o['run-dir'] as string | undefined) ?? 'runs/demo', steps: (o.steps as number | undefined) ?? 150 });
    },
  },
  experiment: {
    summary: `${EXPERIMENT_PRESETS.join('|')} [--data manifest.json] [--quick] [--seeds N] [--out DIR]: rerun one of the paper's comparisons in miniature (a sweep over seeds, then a comparison): table, curves.svg, report.md`,
    options: {
      data: { kind: 'string', describe: "a prepared data manifest (dedup: a prepare config, prepared twice); default: the embedded corpus, built in <out>/data" },
      quick: { kind: 'flag', describe: 'a tiny model sized for about 10 minutes on 2 CPU cores (default: MPT-125M sized for a real machine)' },
      seeds: { kind: 'number', describe: 'runs per group, seeds 1..N (default 3; 2 for mixtures --quick)' },
      out: { kind: 'string', describe: 'the output directory (default runs/experiment-<preset>[-quick]); an interrupted experiment resumes there' },
      set: { kind: 'list', describe: 'override a key of the base training config, e.g. model.device=cuda (repeatable)' },
    },
    positionals: 'PRESET',
    async run(o, positionals) {
      if (positionals.length !== 1) throw invalidArg(`give one experiment: ${EXPERIMENT_PRESETS.join(', ')}`);
      const preset = positionals[0];
      if (!EXPERIMENT_PRESETS.includes(preset as ExperimentPreset)) throw invalidArg(`unknown experiment '${preset}' (experiments: ${EXPERIMENT_PRESETS.join(', ')})`);
      await runExperiment({
        preset: preset as ExperimentPreset,
        quick: Boolean(o.quick),
        ...(typeof o.data === 'string' ? { data: o.data } : {}),
        ...(o.seeds !== undefined ? { seeds: o.seeds as number } : {}),
        ...(typeof o.out === 'string' ? { out: o.out } : {}),
        sets: (o.set as string[] | undefined) ?? [],
        handleSignals: true,
      });
    },
  },
  eval: {
    summary:
      '--checkpoint DIR [--tasks arc_challenge,hellaswag,mmlu,truthfulqa_mc2] [--data DIR] [--limit N] [--json]: score a checkpoint on the Open LLM Leaderboard tasks with the evaluation harness\'s rules; tables in the paper\'s Table 13 and Table 9 layouts, results.json and results.md in <run>/eval/',
    options: {
      checkpoint: { kind: 'string', describe: 'a checkpoint directory, or a run directory (its latest checkpoint)' },
      tasks: { kind: 'string', describe: `comma-separated, from ${TASK_NAMES.join(', ')} (default all four)` },
      data: { kind: 'string', describe: 'the task data directory (see README, "Evaluation"; default: the example set shipped in examples/tasks)' },
      limit: { kind: 'number', describe: 'score the first N documents of each task (of each subject for mmlu): quick checks' },
      'batch-tokens': { kind: 'number', describe: 'most token ids in one forward batch (default 4096)' },
      out: { kind: 'string', describe: 'where results.json and results.md go (default <run>/eval/<checkpoint>/)' },
      json: { kind: 'flag', describe: 'print the results as JSON on stdout (the tables on stderr)' },
      tokenizer: { kind: 'string', describe: "'gpt2' or a tokenizer.json path (default: the one the checkpoint records)" },
    },
    async run(o) {
      if (typeof o.checkpoint !== 'string') throw invalidArg('--checkpoint DIR is required');
      const tokenizer = tokenizerOption(o.tokenizer);
      await runEval({
        checkpoint: o.checkpoint,
        ...(typeof o.tasks === 'string' ? { tasks: parseTaskList(o.tasks) } : {}),
        ...(typeof o.data === 'string' ? { data: o.data } : {}),
        ...(o.limit !== undefined ? { limit: o.limit as number } : {}),
        ...(o['batch-tokens'] !== undefined ? { batchTokens: o['batch-tokens'] as number } : {}),
        ...(typeof o.out === 'string' ? { out: o.out } : {}),
        ...(tokenizer ? { tokenizer } : {}),
        json: Boolean(o.json),
      });
    },
  },
  bench: {
    summary: '[--json] [--quick] [--configs fp32,bf16-ckpt] [--out FILE]: time training steps of bench-45m (fp32/bf16, with and without checkpointing)',
    options: {
      json: { kind: 'flag', describe: 'JSON on stdout (the table on stderr)' },
      quick: { kind: 'flag', describe: '3 timed steps per configuration' },
      profile: { kind: 'flag', describe: 'time every native op and report where a step goes' },
      steps: { kind: 'string', describe: 'timed steps per configuration (default 5)' },
      repeat: { kind: 'string', describe: 'run every configuration R times and keep the median run' },
      configs: { kind: 'string', describe: 'a subset of fp32, fp32-ckpt, bf16, bf16-ckpt' },
      threads: { kind: 'string', describe: 'native threads' },
      out: { kind: 'string', describe: 'also write the JSON here' },
    },
    async run(o) {
      // The benchmark lives in benchmarks/ (compiled to dist/benchmarks/train.js) and runs each
      // configuration in its own process, so it is started as a program, not imported.
      const script = path.resolve(__dirname, '../../benchmarks/train.js');
      if (typeof o.out === 'string') checkOutputFile('--out', o.out); // before minutes of benchmarking, not after
      if (!fs.existsSync(script)) throw new Error(`the training benchmark is not built (${script} is missing): run npm run build:ts`);
      const args: string[] = [];
      for (const k of ['json', 'quick', 'profile']) if (o[k]) args.push(`--${k}`);
      for (const k of ['steps', 'repeat', 'configs', 'threads', 'out']) if (typeof o[k] === 'string') args.push(`--${k}`, o[k] as string);
      const { spawnSync } = await import('node:child_process');
      const r = spawnSync(process.execPath, [script, ...args], { stdio: 'inherit' });
      if (r.error) throw new Error(`cannot start the training benchmark (${process.execPath} ${script}): ${r.error.message}`);
      // The benchmark reports its own usage errors (exit 2) on stderr; they stay usage errors here.
      if (r.status === 2) throw invalidArg('the training benchmark rejected its options (see its message above)');
      if (r.status !== 0) throw new Error(r.status === null ? `the training benchmark was killed by ${r.signal}` : `the training benchmark failed with exit code ${r.status}`);
    },
  },
  plan: {
    summary: '--model NAME --gpu KIND [--gpus N] [--global-batch-tokens 14.3M] ...: per-GPU memory, step time, tokens/s and MFU of a cluster run, from the cost model in the README',
    options: {
      model: { kind: 'string', describe: 'a preset (mpt-125m, mpt-1b, mpt-7b, ...) or a model config JSON file (our keys or an HF config.json)' },
      gpu: { kind: 'string', describe: `the GPU: ${GPU_KINDS.join(', ')}` },
      gpus: { kind: 'number', describe: 'GPUs, one rank each (default 1)' },
      'gpus-per-node': { kind: 'number', describe: 'GPUs per node (default 8)' },
      'global-batch-tokens': { kind: 'string', describe: 'tokens per step, e.g. 14.3M (default: one micro-batch per GPU)' },
      'seq-len': { kind: 'number', describe: "sequence length (default the model's maxSeqLen)" },
      'micro-batch': { kind: 'number', describe: 'sequences per micro-batch (default the largest that fits)' },
      checkpointing: { kind: 'flag', describe: 'activation checkpointing of every block (the default)' },
      'no-checkpointing': { kind: 'flag', describe: 'no activation checkpointing' },
      sharding: { kind: 'string', describe: `${SHARDING_MODES.join(', ')} or all (default all)` },
      'compute-fraction': { kind: 'number', describe: 'achieved fraction of the bf16 peak (default 0.67)' },
      'intra-bw': { kind: 'number', describe: "NVLink GB/s per GPU (default the GPU's datasheet)" },
      'inter-bw': { kind: 'number', describe: 'network GB/s per GPU (default a typical node: 25 for A100, 50 for H100/H200)' },
      json: { kind: 'flag', describe: 'print the plan as one JSON object' },
    },
    async run(o) {
      if (typeof o.model !== 'string') throw invalidArg(`--model is required: a preset or a model config JSON file`);
      if (typeof o.gpu !== 'string') throw invalidArg(`--gpu is required: one of ${GPU_KINDS.join(', ')}`);
      if (o.checkpointing && o['no-checkpointing']) throw invalidArg('give --checkpointing or --no-checkpointing, not both');
      let model: PlanOptions['model'] = o.model;
      if (!Object.hasOwn(PRESETS, o.model)) {
        if (!fs.existsSync(o.model)) throw invalidArg(`--model '${o.model}' is neither a preset (${Object.keys(PRESETS).join(', ')}) nor a model config file`);
        const json = readJson(o.model, 'model config');
        model = 'd_model' in json ? mptConfigFromHf(json, json.vocab_size as number, (m) => invalidArg(`--model ${o.model}: ${m}`)) : (json as Partial<MptConfig>);
      }
      let globalBatchTokens: number | undefined;
      if (typeof o['global-batch-tokens'] === 'string') {
        try {
          globalBatchTokens = parseTokenCount(o['global-batch-tokens']);
        } catch (e) {
          throw invalidArg(`--global-batch-tokens: ${(e as Error).message}`);
        }
      }
      const sharding = o.sharding as string | undefined;
      if (sharding !== undefined && sharding !== 'all' && !SHARDING_MODES.includes(sharding as ShardingMode)) {
        throw invalidArg(`--sharding must be one of ${SHARDING_MODES.join(', ')} or all, got '${sharding}'`);
      }
      const flags: Record<keyof PlanOptions, string> = {
        model: '--model',
        gpu: '--gpu',
        gpus: '--gpus',
        gpusPerNode: '--gpus-per-node',
        globalBatchTokens: '--global-batch-tokens',
        seqLen: '--seq-len',
        microBatch: '--micro-batch',
        checkpointing: '--checkpointing',
        sharding: '--sharding',
        computeFraction: '--compute-fraction',
        intraNodeGBps: '--intra-bw',
        interNodeGBps: '--inter-bw',
        reserveGiB: 'reserveGiB',
      };
      const num = (k: string) => o[k] as number | undefined;
      const plan = planCluster(
        {
          model,
          gpu: o.gpu as GpuKind,
          gpus: num('gpus') ?? 1,
          gpusPerNode: num('gpus-per-node'),
          globalBatchTokens,
          seqLen: num('seq-len'),
          microBatch: num('micro-batch'),
          checkpointing: !o['no-checkpointing'],
          sharding: sharding === undefined || sharding === 'all' ? undefined : (sharding as ShardingMode),
          computeFraction: num('compute-fraction'),
          intraNodeGBps: num('intra-bw'),
          interNodeGBps: num('inter-bw'),
        },
        (key) => flags[key],
      );
      console.log(o.json ? JSON.stringify(plan, null, 2) : formatPlan(plan));
    },
  },
  compare: {
    summary:
      'RUNDIR... [--metric val|val/<source>|train] [--at final|STEP] [--baseline GROUP] [--paired] [--json] [--markdown] [--svg FILE]: group runs (run directories, or a sweep\'s output directory) by their config difference; mean ± sd over seeds and a 95% interval for each difference against the baseline, a verdict, and an SVG of the curves',
    positionals: 'RUNDIR...',
    options: {
      metric: { kind: 'string', describe: "'val' (the union of the validation sources), 'val/<source>' or 'train' (mean of the last 10 steps); default val, or train for runs without evaluations" },
      at: { kind: 'string', describe: "'final' (each run's last record; runs must be finished) or a step (default final)" },
      baseline: { kind: 'string', describe: 'the group the others are compared against (its name, or key=value parts naming one group; default the first)' },
      paired: { kind: 'flag', describe: 'paired t-intervals over the seeds both groups ran (default: Welch t-intervals)' },
      json: { kind: 'flag', describe: 'print the comparison as JSON on stdout (the table on stderr)' },
      markdown: { kind: 'flag', describe: 'print the table as Markdown' },
      svg: { kind: 'string', describe: "write each group's mean curve with its seed band to this SVG file" },
      x: { kind: 'string', describe: "the SVG's x axis: 'step' or 'tokens' (default step)" },
      band: { kind: 'string', describe: "the SVG's band: 'minmax' over seeds or 'sd' (mean ± 1 sd; default minmax)" },
    },
    async run(o, positionals) {
      if (positionals.length === 0) throw invalidArg('give at least one run directory or sweep directory (pajama compare RUNDIR...)');
      let at: 'final' | number = 'final';
      if (typeof o.at === 'string' && o.at !== 'final') {
        if (!/^\d+$/.test(o.at)) throw invalidArg(`--at must be 'final' or a step, got '${o.at}'`);
        at = Number(o.at);
      }
      for (const [k, allowed] of [['x', ['step', 'tokens']], ['band', ['minmax', 'sd']]] as const) {
        if (o[k] !== undefined && !(allowed as readonly unknown[]).includes(o[k])) throw invalidArg(`--${k} must be ${allowed.join(' or ')}, got '${o[k]}'`);
      }
      if (typeof o.svg === 'string') checkOutputFile('--svg', o.svg);
      const runs = loadRuns(positionals, { onSkip: (dir, why) => console.error(`pajama compare: skipping ${dir}: ${why}`) });
      if (typeof o.svg === 'string') checkOutputsAreNotInputs('pajama compare', [o.svg], runs.flatMap((r) => [r.configFile, path.join(r.dir, 'metrics.jsonl')]));
      const metric = typeof o.metric === 'string' ? o.metric : runs.every((r) => r.evals.length > 0) ? 'val' : 'train';
      const c = compareRuns(runs, { metric, at, ...(typeof o.baseline === 'string' ? { baseline: o.baseline } : {}), paired: Boolean(o.paired) });
      const text = `${formatComparison(c, o.markdown ? 'markdown' : 'text')}\n\n${verdict(c)}`;
      if (o.json) {
        console.error(text);
        console.log(JSON.stringify({ ...c, verdict: verdict(c) }, null, 2));
      } else console.log(text);
      if (typeof o.svg === 'string') {
        writeTextAtomic(o.svg, comparisonSvg(runs, { metric, x: (o.x as 'step' | 'tokens' | undefined) ?? 'step', band: (o.band as 'minmax' | 'sd' | undefined) ?? 'minmax' }));
        console.error(`pajama compare: wrote ${o.svg}`);
      }
    },
  },
  info: {
    summary: ': the native backend, CPU features, GEMM engine, threads and CUDA status',
    options: { json: { kind: 'flag', describe: 'print JSON' } },
    async run(o) {
      const info = backendInfo();
      if (o.json) {
        console.log(JSON.stringify(info, null, 2));
        return;
      }
      const feats = Object.entries(info.cpu.features).filter(([, v]) => v).map(([k]) => k);
      console.log(`cpu      ${info.cpu.brand} (${info.cpu.vendor})`);
      console.log(`features ${feats.join(' ')}`);
      console.log(`isa      ${info.cpu.activeIsa} (detected ${info.cpu.detectedIsa})`);
      console.log(`gemm     ${info.gemm.description}`);
      console.log(`threads  ${info.threads}${info.openmp ? ' (OpenMP)' : ''}`);
      const cuda = info.cuda.compiled
        ? `built with CUDA runtime ${info.cuda.runtimeVersion}; ${info.cuda.devices.length} device(s)${info.cuda.error ? ` (${info.cuda.error})` : ''}`
        : 'not built';
      console.log(`cuda     ${cuda}`);
      console.log(`build    ${info.buildSystem ?? 'unknown'}`);
    },
  },
};
