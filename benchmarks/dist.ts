// Data-parallel benchmark: `bench-45m` bf16 training steps through the Trainer (the code `pajama train`
// runs) at 1 rank and at 2 MPI ranks, for each sharding mode, on one global batch of 2 x 8 x 512 tokens:
// 1 rank accumulates 2 micro-batches, 2 ranks take one each. Reported per run: global tokens/s, the median
// step time, the share of it spent in collectives (StepMetrics.commSeconds: the gradient reduction, the loss
// round, and under sharding 'optimizer' the weight gather), MFU, and per rank the peak RSS and the trainer's
// memory report (weights, gradients, optimizer state, activations).
//
// What the numbers mean on a small machine: the 2 ranks share the cores the single rank uses (it runs
// `cores` threads, each rank cores / 2), so 2 ranks cannot be faster; `throughputRatio` (2 ranks over 1) shows
// what data parallelism costs here: the collectives plus the loss of intra-op threading, not a speed-up. On
// machines with a GPU or a socket per rank the same runs measure scaling.
//
//   npm run bench:dist                          table
//   npm run bench:dist -- --json                JSON on stdout (and the table on stderr)
//   options: --steps N (timed steps, default 4), --warmup N (default 2), --modes none,optimizer,
//            --out FILE (also write the JSON)
//   internal: --child FILE runs one rank of one run from the config in FILE and prints one JSON line
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { backendInfo, initCommunicator, MpiCommunicator, Trainer, TRAIN_SHARDING_MODES, type MemoryReport, type StepMetrics } from '../lib/index';
import { measurePeakFlops, setThreads } from '../lib/core/backend';
import { ShardWriter } from '../lib/data/shard';
import { Xoshiro128 } from '../lib/core/rng';
import { benchCli } from './cli';

const PRESET = 'bench-45m';
const MICRO_BATCH = 8;
const SEQ_LEN = 512;
const GLOBAL_BATCH_TOKENS = 2 * MICRO_BATCH * SEQ_LEN;
const VOCAB = 50_277; // GPT-2's, which bench-45m pads to 50,304
const EOS = 50_256;

const { flag, opt, intOpt, log, writeReport, usageError } = benchCli('bench:dist', { flags: [], options: ['--steps', '--warmup', '--modes', '--child'] });

/** What one rank reports. */
interface RankResult {
  rank: number;
  worldSize: number;
  steps: Pick<StepMetrics, 'stepSec' | 'commSeconds' | 'tokensPerSec' | 'mfu' | 'loss'>[];
  memory: MemoryReport;
  peakRssMiB: number;
}

interface ChildJob {
  config: Record<string, unknown>;
  warmup: number;
  steps: number;
}

async function child(file: string): Promise<void> {
  const job = JSON.parse(fs.readFileSync(file, 'utf8')) as ChildJob;
  const comm = initCommunicator();
  const trainer = await Trainer.create(job.config, { communicator: comm, sinks: [] });
  try {
    const steps: RankResult['steps'] = [];
    for (let i = 0; i < job.warmup + job.steps; i++) {
      const m = await trainer.step();
      if (i >= job.warmup) steps.push({ stepSec: m.stepSec, commSeconds: m.commSeconds, tokensPerSec: m.tokensPerSec, mfu: m.mfu, loss: m.loss });
    }
    const out: RankResult = { rank: comm.rank, worldSize: comm.worldSize, steps, memory: trainer.memory(), peakRssMiB: process.resourceUsage().maxRSS / 1024 };
    process.stdout.write(JSON.stringify(out) + '\n');
  } finally {
    trainer.dispose();
    if (comm instanceof MpiCommunicator) comm.finalize();
  }
}

/** A shard of `tokens` random ids (documents of 64..1024 tokens), enough for every run's draws. */
function writeShard(file: string, tokens: number): void {
  const rng = Xoshiro128.fromSeed(1);
  const w = new ShardWriter(file, { vocabSize: VOCAB, eosId: EOS });
  while (w.tokens < tokens) {
    const len = 64 + rng.below(960);
    w.appendDocument(Array.from({ length: len }, () => rng.below(EOS)));
  }
  w.close();
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

function runRanks(ranks: number, jobFile: string): RankResult[] {
  const script = __filename;
  const root = process.getuid?.() === 0 ? ['--allow-run-as-root'] : [];
  const forward = ['PAJAMA_ADDON'].filter((k) => process.env[k] !== undefined).flatMap((k) => ['-x', k]);
  const [cmd, args] =
    ranks === 1
      ? [process.execPath, [script, '--child', jobFile]]
      : ['mpirun', [...root, '--oversubscribe', '--bind-to', 'none', ...forward, '-np', String(ranks), process.execPath, script, '--child', jobFile]];
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: '1' }, maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`bench:dist: ${ranks} rank(s) failed (exit ${r.status}):\n${r.stderr.slice(-4000)}`);
  const rows = r.stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as RankResult)
    .sort((a, b) => a.rank - b.rank);
  if (rows.length !== ranks) throw new Error(`bench:dist: expected ${ranks} rank reports, got ${rows.length}:\n${r.stdout.slice(-2000)}`);
  return rows;
}

async function main(): Promise<void> {
  const jobFile = opt('--child');
  if (jobFile) return child(jobFile);
  const steps = intOpt('--steps', 4, 1);
  const warmup = intOpt('--warmup', 2, 0);
  const modes = (opt('--modes') ?? TRAIN_SHARDING_MODES.join(',')).split(',');
  for (const m of modes) if (!(TRAIN_SHARDING_MODES as readonly string[]).includes(m)) usageError(`--modes: '${m}' is not one of ${TRAIN_SHARDING_MODES.join(', ')}`);
  const info = backendInfo();
  if (!info.mpi.built) usageError(`this build has no MPI (${info.mpi.reason})`);
  const cores = os.cpus().length;
  const threadsPerRank = Math.max(1, Math.floor(cores / 2));
  setThreads(cores);
  const peak = await measurePeakFlops('bf16');
  log(`bench:dist: ${PRESET} bf16, global batch ${GLOBAL_BATCH_TOKENS} tokens; ${info.cpu.brand}, ${cores} cores; bf16 GEMM peak ${(peak / 1e9).toFixed(0)} GFLOP/s on ${cores} threads`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pajama-bench-dist-'));
  const rows = [];
  try {
    const shard = path.join(dir, 'train.bin');
    writeShard(shard, 2_000_000);
    for (const ranks of [1, 2]) {
      for (const sharding of modes) {
        const threads = ranks === 1 ? cores : threadsPerRank;
        const config = {
          model: { preset: PRESET, precision: 'bf16' },
          batch: { seqLen: SEQ_LEN, microBatchSize: MICRO_BATCH, globalBatchTokens: GLOBAL_BATCH_TOKENS },
          steps: warmup + steps + 1,
          optimizer: { warmupSteps: 1 },
          data: { train: [shard] },
          checkpoint: { every: 0 },
          runDir: path.join(dir, `run-${ranks}-${sharding}`),
          seed: 1,
          threads,
          // the machine's peak split over the ranks: MFU stays the share of the machine's peak
          peakFlops: peak / ranks,
          dist: { sharding },
        };
        const job = path.join(dir, `job-${ranks}-${sharding}.json`);
        fs.writeFileSync(job, JSON.stringify({ config, warmup, steps } satisfies ChildJob));
        const ranksOut = runRanks(ranks, job);
        const r0 = ranksOut[0];
        const stepSec = median(r0.steps.map((s) => s.stepSec));
        const row = {
          ranks,
          sharding,
          threadsPerRank: threads,
          accumulationSteps: 2 / ranks,
          tokensPerSec: GLOBAL_BATCH_TOKENS / stepSec,
          stepSecMedian: stepSec,
          commShare: median(r0.steps.map((s) => s.commSeconds / s.stepSec)),
          commSecondsMedian: median(r0.steps.map((s) => s.commSeconds)),
          mfu: median(r0.steps.map((s) => s.mfu)),
          losses: r0.steps.map((s) => s.loss),
          perRank: ranksOut.map((x) => ({ rank: x.rank, peakRssMiB: Math.round(x.peakRssMiB), memoryMiB: Object.fromEntries(Object.entries(x.memory).map(([k, v]) => [k, +(v / 2 ** 20).toFixed(1)])) })),
        };
        rows.push(row);
        log(
          `${ranks} rank(s) x ${threads} thread(s), sharding '${sharding}': ${row.tokensPerSec.toFixed(0)} tokens/s, step ${stepSec.toFixed(2)} s, ` +
            `comm ${(100 * row.commShare).toFixed(1)}%, MFU ${(100 * row.mfu).toFixed(1)}%, peak RSS ${row.perRank.map((p) => `${p.peakRssMiB} MiB`).join(' / ')}, ` +
            `optimizer state ${row.perRank[0].memoryMiB.optimizerState} MiB/rank`,
        );
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const base = new Map(rows.filter((r) => r.ranks === 1).map((r) => [r.sharding, r.tokensPerSec]));
  const withRatio = rows.map((r) => ({ ...r, throughputRatio: r.tokensPerSec / base.get(r.sharding)! }));
  for (const r of withRatio.filter((x) => x.ranks === 2)) log(`sharding '${r.sharding}': 2 ranks / 1 rank throughput ${r.throughputRatio.toFixed(3)} (same ${cores} cores: overhead, not speed-up)`);
  writeReport({
    benchmark: 'dist',
    date: new Date().toISOString(),
    command: `npm run bench:dist -- ${process.argv.slice(2).join(' ')}`.trim(),
    machine: { cpu: info.cpu.brand, cores, isa: info.cpu.activeIsa, mpi: spawnSync('mpirun', ['--version'], { encoding: 'utf8' }).stdout.split('\n')[0], loadAverage: os.loadavg() },
    preset: PRESET,
    precision: 'bf16',
    globalBatchTokens: GLOBAL_BATCH_TOKENS,
    microBatch: MICRO_BATCH,
    seqLen: SEQ_LEN,
    warmupSteps: warmup,
    timedSteps: steps,
    peakFlopsBf16: peak,
    meaning:
      `1 rank runs ${cores} threads and accumulates 2 micro-batches; 2 ranks run ${threadsPerRank} thread(s) each on the same cores and take one micro-batch each. ` +
      'throughputRatio (2 ranks / 1 rank) is the cost of data parallelism on one small machine (collectives, less intra-op threading), not scaling.',
    rows: withRatio,
  });
  void flag;
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
