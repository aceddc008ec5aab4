// Scoring benchmark: the log-likelihood engine (lib/eval/score.ts) against the training forward pass per
// token, on the `bench-45m` MPT (6 layers, d_model 512, seq 512, vocab 50,304) with random weights and
// synthetic requests shaped like the leaderboard tasks:
//   - mc4: MMLU-like, contexts of ~`--ctx` tokens with four one-token continuations (one shared input each);
//   - cont20: HellaSwag-like, the same contexts with four 20-token continuations (four inputs each).
// Scoring runs on an inference model (MptModel option inference), the training forward on a training model
// of the same weights. Training forward: MptModel.evaluate on 8 x 512 ids (the trunk plus the fused LM head and loss over every
// position). Tokens/s counts the ids the model reads (padding excluded for scoring). The two alternate,
// --repeat times each, and the median is kept (the machine is shared and noisy).
//
//   npm run bench:score -- [--json] [--out FILE] [--precision fp32|bf16] [--requests N] [--ctx N] [--batch-tokens N]
//                          [--repeat R] [--threads N]          (defaults: bf16, 16 docs, 400, 4096, 3)
import { setThreads } from '../lib/index';
import { mptConfig } from '../lib/model/config';
import { MptModel, type Precision } from '../lib/model/mpt';
import { Xoshiro128 } from '../lib/core/rng';
import { scoreTokens, type ScoringModel, type TokenRequest } from '../lib/eval/score';
import { benchCli } from './cli';

const cli = benchCli('bench:score', { flags: [], options: ['--precision', '--requests', '--ctx', '--batch-tokens', '--repeat', '--threads'] });
const precision = (cli.opt('--precision') ?? 'bf16') as Precision;
if (precision !== 'fp32' && precision !== 'bf16') cli.usageError(`--precision must be fp32 or bf16, got ${precision}`);
const docs = cli.intOpt('--requests', 16, 1);
const ctxLen = cli.intOpt('--ctx', 400, 1);
const batchTokens = cli.intOpt('--batch-tokens', 4096, 1);
const repeat = cli.intOpt('--repeat', 3, 1);
const threads = cli.opt('--threads');
if (threads !== undefined) setThreads(cli.intOpt('--threads', 2, 1));

const cfg = mptConfig('bench-45m');
// The same weights twice: an inference model scores (no gradient buffers), a training model runs evaluate.
const model = new MptModel(cfg, { precision, seed: 1, inference: true });
const trainingModel = new MptModel(cfg, { precision, seed: 1 });
const rng = Xoshiro128.fromSeed(7);
const tok = () => rng.nextU32() % cfg.realVocabSize;
const ids = (n: number) => Array.from({ length: n }, tok);

function workload(kind: 'mc4' | 'cont20'): TokenRequest[] {
  const reqs: TokenRequest[] = [];
  for (let d = 0; d < docs; d++) {
    const context = ids(ctxLen - 20 + (d % 41)); // lengths vary, as real prompts do
    for (let c = 0; c < 4; c++) reqs.push({ context, continuation: ids(kind === 'mc4' ? 1 : 20) });
  }
  return reqs;
}

/** Runs the requests; returns seconds, ids read, and the seconds inside positionLogits. */
async function timeScoring(reqs: TokenRequest[]): Promise<{ s: number; tokens: number; forwardS: number }> {
  let tokens = 0;
  let forwardS = 0;
  const timed: ScoringModel = {
    config: model.config,
    positionLogits: async (x, B, T, positions) => {
      const t0 = performance.now();
      const out = await model.positionLogits(x, B, T, positions);
      forwardS += (performance.now() - t0) / 1000;
      return out;
    },
  };
  // Real ids read: each distinct input once (what the engine runs), without padding.
  const seen = new Set<string>();
  for (const r of reqs) {
    const all = [...Array.from(r.context), ...Array.from(r.continuation)];
    const inp = all.slice(-(cfg.maxSeqLen + 1)).slice(0, -1);
    const key = inp.join(',');
    if (!seen.has(key)) {
      seen.add(key);
      tokens += inp.length;
    }
  }
  const t0 = performance.now();
  await scoreTokens(timed, reqs, { batchTokens });
  return { s: (performance.now() - t0) / 1000, tokens, forwardS };
}

async function timeTrainingForward(): Promise<{ s: number; tokens: number }> {
  const B = 8;
  const T = cfg.maxSeqLen;
  const x = Int32Array.from(ids(B * T));
  const y = Int32Array.from(ids(B * T));
  const t0 = performance.now();
  await trainingModel.evaluate(x, y, B, T);
  return { s: (performance.now() - t0) / 1000, tokens: B * T };
}

const median = (xs: number[]) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main() {
  const work = { mc4: workload('mc4'), cont20: workload('cont20') };
  await timeTrainingForward(); // warm-up: buffers, oneDNN primitives
  await timeScoring(work.mc4.slice(0, 8));
  const rates: Record<string, number[]> = { train: [], mc4: [], cont20: [] };
  const inForward: Record<string, number[]> = { mc4: [], cont20: [] };
  for (let r = 0; r < repeat; r++) {
    const tr = await timeTrainingForward();
    rates.train.push(tr.tokens / tr.s);
    for (const kind of ['mc4', 'cont20'] as const) {
      const sc = await timeScoring(work[kind]);
      rates[kind].push(sc.tokens / sc.s);
      inForward[kind].push(sc.forwardS / sc.s);
    }
  }
  const report = {
    preset: 'bench-45m',
    precision,
    requests: { docs, choices: 4, ctxTokens: ctxLen, batchTokens },
    tokensPerSecond: { trainingForward: median(rates.train), mc4: median(rates.mc4), cont20: median(rates.cont20) },
    shareInPositionLogits: { mc4: median(inForward.mc4), cont20: median(inForward.cont20) },
    runs: rates,
  };
  cli.log(`bench-45m ${precision}, ${docs} docs x 4 choices, contexts ~${ctxLen} tokens, batchTokens ${batchTokens}, median of ${repeat}`);
  cli.log(`  training forward (evaluate, 8 x 512):        ${report.tokensPerSecond.trainingForward.toFixed(0)} tokens/s`);
  for (const kind of ['mc4', 'cont20'] as const) {
    const ratio = report.tokensPerSecond[kind] / report.tokensPerSecond.trainingForward;
    cli.log(
      `  scoring ${kind.padEnd(7)}                              ${report.tokensPerSecond[kind].toFixed(0)} tokens/s (x${ratio.toFixed(2)}; ` +
        `${(100 * report.shareInPositionLogits[kind]).toFixed(0)}% in positionLogits)`,
    );
  }
  cli.writeReport(report);
  model.dispose();
  trainingModel.dispose();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
