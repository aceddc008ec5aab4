// Soak: many training steps of the `tiny` MPT through the real Trainer (data loader, forward/backward,
// clipping, AdamW, PTWD, a metrics.jsonl record per step), with the resident set size sampled every K steps
// and a least-squares line fitted through the samples. A flat run has a slope near 0; memory that grows
// per step (a leak in the native core, the wrapper's bookkeeping or the trainer) shows as KiB per 1,000
// steps. The first tenth of the samples (allocator and JIT warm-up) is left out of the fit; the slope over
// the second half is reported too, so growth that only starts late is not averaged away.
//
//   npm run bench:soak                            10,000 steps, a sample every 100, the table
//   npm run bench:soak -- --json                  JSON on stdout (and the table on stderr)
//   options: --steps N (default 10000), --seconds S (stop after S seconds even before N steps),
//            --every K (sample RSS every K steps, default 100), --threads N (default 1), --out FILE,
//            --gc (a full garbage collection before each sample: what remains is not V8's laziness)
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { backendInfo, setThreads } from '../lib/index';
import { ShardWriter } from '../lib/data/shard';
import { Trainer } from '../lib/train/trainer';
import { benchCli } from './cli';

export interface SoakSample {
  step: number;
  /** Resident set size, KiB. */
  rssKiB: number;
  /** V8 heap in use, KiB. */
  heapUsedKiB: number;
  /** Memory reported to V8 as held outside its heap (native tensors), KiB. */
  externalKiB: number;
  elapsedSec: number;
}

export interface SoakResult {
  steps: number;
  seconds: number;
  every: number;
  samples: SoakSample[];
  /** Least-squares slope of RSS over the samples after the first tenth, KiB per 1,000 steps. */
  slopeKiBPer1kSteps: number;
  /** The same over the second half of the samples. */
  slopeSecondHalfKiBPer1kSteps: number;
  /** Last sample's RSS minus the first fitted sample's, KiB. */
  growthKiB: number;
  stepsPerSec: number;
}

/** Least-squares slope of y over x (0 with fewer than 2 points). */
export function slope(points: [number, number][]): number {
  const n = points.length;
  if (n < 2) return 0;
  const mx = points.reduce((s, p) => s + p[0], 0) / n;
  const my = points.reduce((s, p) => s + p[1], 0) / n;
  let num = 0;
  let den = 0;
  for (const [x, y] of points) {
    num += (x - mx) * (y - my);
    den += (x - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

/** A synthetic corpus for the tiny model: repeated short token runs (vocab 256), in `dir`. */
function writeCorpus(dir: string): string {
  const file = path.join(dir, 'soak.bin');
  const w = new ShardWriter(file, { vocabSize: 256, eosId: 255 });
  let s = 1;
  for (let d = 0; d < 2000; d++) {
    s = (s * 1103515245 + 12345) >>> 0;
    const start = s % 50;
    w.appendDocument(Array.from({ length: 60 + (s % 40) }, (_, i) => (start + i * 7) % 250));
  }
  w.close();
  return file;
}

/** Trains the tiny model for `steps` steps (or `seconds`), sampling RSS every `every` steps. */
export async function runSoak(options: {
  steps: number;
  seconds?: number;
  every: number;
  threads?: number;
  /** Run a full garbage collection before each sample, so V8's lazy collection does not read as growth. */
  gc?: boolean;
  onSample?: (s: SoakSample) => void;
}): Promise<SoakResult> {
  let collect: (() => void) | null = null;
  if (options.gc) {
    v8.setFlagsFromString('--expose-gc');
    collect = vm.runInNewContext('gc') as () => void;
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pajama-soak-'));
  const trainer = await Trainer.create(
    {
      model: { preset: 'tiny', precision: 'bf16' },
      batch: { microBatchSize: 4 },
      optimizer: { lr: 1e-3, warmupSteps: Math.min(100, options.steps - 1) },
      steps: Math.max(options.steps, 3),
      data: { train: [writeCorpus(dir)] },
      runDir: path.join(dir, 'run'),
      seed: 1,
      threads: options.threads ?? 1,
      peakFlops: 1e11,
    },
    { progress: false },
  );
  const samples: SoakSample[] = [];
  const t0 = performance.now();
  const sample = () => {
    collect?.();
    const m = process.memoryUsage();
    const s: SoakSample = {
      step: trainer.stepsDone,
      rssKiB: Math.round(m.rss / 1024),
      heapUsedKiB: Math.round(m.heapUsed / 1024),
      externalKiB: Math.round(m.external / 1024),
      elapsedSec: (performance.now() - t0) / 1e3,
    };
    samples.push(s);
    options.onSample?.(s);
  };
  try {
    sample();
    const deadline = options.seconds !== undefined ? t0 + options.seconds * 1e3 : Infinity;
    while (trainer.stepsDone < options.steps && performance.now() < deadline) {
      await trainer.step();
      if (trainer.stepsDone % options.every === 0) sample();
    }
    if (samples[samples.length - 1].step !== trainer.stepsDone) sample();
  } finally {
    trainer.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const fitted = samples.slice(Math.floor(samples.length / 10));
  const half = samples.slice(Math.floor(samples.length / 2));
  const perKStep = (pts: SoakSample[]) => 1000 * slope(pts.map((s) => [s.step, s.rssKiB]));
  const seconds = (performance.now() - t0) / 1e3;
  const steps = samples[samples.length - 1].step;
  return {
    steps,
    seconds,
    every: options.every,
    samples,
    slopeKiBPer1kSteps: perKStep(fitted),
    slopeSecondHalfKiBPer1kSteps: perKStep(half),
    growthKiB: samples[samples.length - 1].rssKiB - fitted[0].rssKiB,
    stepsPerSec: steps / seconds,
  };
}

async function main(): Promise<void> {
  const cli = benchCli('bench:soak', { flags: ['--gc'], options: ['--steps', '--seconds', '--every', '--threads'] });
  const steps = cli.intOpt('--steps', 10_000, 10);
  const secondsOpt = cli.opt('--seconds');
  const seconds = secondsOpt === undefined ? undefined : Number(secondsOpt);
  if (seconds !== undefined && !(seconds > 0)) cli.usageError(`--seconds must be a positive number, got '${secondsOpt}'`);
  const every = cli.intOpt('--every', 100, 1);
  const threads = cli.intOpt('--threads', 1, 1);
  setThreads(threads);
  const info = backendInfo();
  cli.log(`pajama-train soak: tiny MPT through the Trainer, ${steps} steps${seconds ? ` or ${seconds} s` : ''}, RSS every ${every} steps, ${threads} thread(s)`);
  cli.log(`machine: ${info.cpu.brand}, ISA ${info.cpu.activeIsa}, ${info.gemm.description}`);
  cli.log(`${'step'.padStart(8)} ${'RSS MiB'.padStart(9)} ${'heap MiB'.padStart(9)} ${'ext MiB'.padStart(8)} ${'s'.padStart(7)}`);
  const printEvery = Math.max(every, Math.ceil(steps / 20 / every) * every);
  const r = await runSoak({
    steps,
    seconds,
    every,
    threads,
    gc: cli.flag('--gc'),
    onSample: (s) => {
      if (s.step % printEvery === 0) {
        cli.log(
          `${String(s.step).padStart(8)} ${(s.rssKiB / 1024).toFixed(1).padStart(9)} ${(s.heapUsedKiB / 1024).toFixed(1).padStart(9)} ` +
            `${(s.externalKiB / 1024).toFixed(1).padStart(8)} ${s.elapsedSec.toFixed(1).padStart(7)}`,
        );
      }
    },
  });
  cli.log(
    `${r.steps} steps in ${r.seconds.toFixed(1)} s (${r.stepsPerSec.toFixed(0)} steps/s); RSS slope ${r.slopeKiBPer1kSteps.toFixed(1)} KiB per 1,000 steps ` +
      `(second half ${r.slopeSecondHalfKiBPer1kSteps.toFixed(1)}), growth ${(r.growthKiB / 1024).toFixed(1)} MiB after warm-up`,
  );
  cli.writeReport({
    benchmark: 'soak',
    date: new Date().toISOString(),
    machine: { cpu: info.cpu.brand, isa: info.cpu.activeIsa, gemm: info.gemm.description, threads, cores: os.cpus().length, node: process.version },
    model: 'tiny',
    gcBeforeSamples: cli.flag('--gc'),
    ...r,
  });
}

if (require.main === module) {
  main().catch((e) => {
    process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = 1;
  });
}
