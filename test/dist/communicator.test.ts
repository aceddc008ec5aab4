// The communicator: a world of one (the identity, with its arguments checked), and real ranks under mpirun
// (every collective on tensors and typed arrays, argument errors, and the two ways a run must end when one
// rank cannot go on: a rank that never reaches a collective, and a rank that aborts). The MPI cases run
// test/dist/fixtures/comm-child.js over the compiled library with `mpirun -np 2`, and are skipped with the
// reason where the build has no MPI or mpirun is missing.
import t, { type Test } from 'tap';
import * as path from 'node:path';
import { Tensor, WorldOfOne, backendInfo, initCommunicator } from '../../lib/index';
import { killAllRanks, mpiSkipReason, runRanks, type MpiRun } from '../helpers/mpirun';

const REPO = path.resolve(__dirname, '../..');
const CHILD = path.join(REPO, 'test/dist/fixtures/comm-child.js');

t.test('a world of one: every collective is the identity (or a copy), with its arguments checked', async (t) => {
  const w = new WorldOfOne();
  t.same([w.rank, w.worldSize, w.localRank], [0, 1, 0]);
  const data = Float32Array.from([1.5, -2, 3e-8, Infinity]);
  const copy = data.slice();
  await w.allReduce(data, 'sum');
  t.same([...data], [...copy], 'the sum over one rank is its own values');
  await w.allReduce(data, 'mean');
  t.same([...data], [...copy], 'and so is the mean');
  const tensor = Tensor.from(Float32Array.from([1, 2]));
  await w.allReduce(tensor, 'max');
  const out = Tensor.zeros('f32', [2]);
  await w.reduceScatter(out, tensor, 'sum');
  t.same([...out.toFloat32()], [1, 2], 'reduceScatter over one rank copies');
  const g = new Float64Array(2);
  await w.allGather(g, Float64Array.from([3, 4]));
  t.same([...g], [3, 4], 'allGather over one rank copies');
  await w.broadcast(g, 0);
  t.equal(await w.barrier(), undefined, 'a barrier of one resolves at once');

  await t.rejects(w.allReduce([1, 2] as unknown as Float32Array, 'sum'), {
    code: 'ERR_PAJAMA_INVALID_ARG',
    message: 'Communicator.allReduce: buf must be a Tensor or a Float32Array, Float64Array, Int32Array, Uint8Array or BigInt64Array, got Array',
  });
  await t.rejects(w.allReduce(data, 'prod' as 'sum'), { message: `Communicator.allReduce: op must be 'sum', 'mean', 'max' or 'min', got "prod"` });
  await t.rejects(w.allReduce(Int32Array.from([1]), 'mean'), { message: /'mean' needs a floating-point buffer/ });
  await t.rejects(w.allGather(Tensor.zeros('f32', [3]), tensor), { message: /with one rank 'out' and 'inp' must be the same kind and length/ });
  await t.rejects(w.broadcast(g, 1), { message: 'Communicator.broadcast: root 1 is not a rank in [0, 1)' });
  t.throws(() => w.abort('stop'), { message: 'pajama: aborting: stop' });
  for (const x of [tensor, out]) x.dispose();
});

t.test('a process not started by an MPI launcher is a world of one and loads no MPI', async (t) => {
  const mpi = backendInfo().mpi;
  t.equal(mpi.launched, false);
  const c = initCommunicator();
  t.ok(c instanceof WorldOfOne);
  t.equal(backendInfo().mpi.initialized, false);
  if (!mpi.built) t.match(mpi.reason, /\S/, 'a build without MPI says why');
});

const skipMpi = mpiSkipReason();
t.teardown(killAllRanks);

/** `mpirun -np 2 node comm-child.js <scenario>`; the whole run is killed after `limitMs`. */
function runScenario(scenario: string, env: NodeJS.ProcessEnv = {}, limitMs = 120_000): Promise<MpiRun> {
  return runRanks([[CHILD, scenario], [CHILD, scenario]], { env, limitMs, cwd: REPO });
}

/** Runs `scenario`, which must succeed, and returns each rank's JSON line (its own shape per scenario), in rank order. */
async function rankReports(t: Test, scenario: string): Promise<any[]> {
  const run = await runScenario(scenario);
  t.equal(run.code, 0, run.err);
  const ranks = run.out
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l))
    .sort((a, b) => a.rank - b.rank);
  t.equal(ranks.length, 2, 'one report per rank');
  return ranks;
}

t.test('two ranks under mpirun: every collective, on tensors and typed arrays', { skip: skipMpi }, async (t) => {
  const ranks = await rankReports(t, 'collectives');
  for (const r of ranks) {
    t.equal(r.worldSize, 2);
    t.equal(r.localRank, r.rank, 'one machine: the local rank is the rank');
    t.same(r.sum, [3, -1.5, 2 ** 21], 'sum over ranks');
    t.same(r.mean, [0.5, 5], 'mean over ranks');
    t.same(r.max, [1, 0], 'max over ranks');
    t.same(r.tensorMean, [50, 51, 52, 53], 'mean of an f32 tensor');
    // inp on rank r is (r + 1) * i: the sum is 3 * i, and rank r keeps elements [3r, 3r + 3)
    t.same(r.reduceScatter, [0, 3, 6].map((v) => v + 9 * r.rank), 'reduceScatter: this rank\'s block of the sum');
    t.same(r.allGather, [0, 3, 6, 9, 12, 15], 'allGather: every rank\'s block in rank order');
    t.same(r.broadcast, [1, 2, 3, 4], 'broadcast from rank 0');
    t.same(r.errors, [
      'ERR_PAJAMA_INVALID_ARG: commAllGather: \'out\' must have worldSize (2) x 3 = 6 elements (\'inp\' has 3), got 5',
      "ERR_PAJAMA_INVALID_ARG: Communicator.allReduce: 'mean' needs a floating-point buffer, got Int32Array",
      'ERR_PAJAMA_INVALID_ARG: Communicator.broadcast: root 2 is not a rank in [0, 2)',
      'ERR_PAJAMA_INVALID_ARG: Communicator.allReduce: buf must be a Tensor or a Float32Array, Float64Array, Int32Array, Uint8Array or BigInt64Array, got Array',
    ]);
  }
});

t.test('the sharded optimizer state over 2 ranks: reduce-scatter, f32 and bf16 gathers, the tail on the last rank', { skip: skipMpi }, async (t) => {
  const ranks = await rankReports(t, 'shard');
  const iota = (lo: number, n: number, f: (i: number) => number) => Array.from({ length: n }, (_, k) => f(lo + k));
  // 13 elements over 2 ranks: blocks of 6, the 13th (the tail) owned by rank 1
  t.same(ranks.map((r) => r.range), [
    { rank: 0, worldSize: 2, offset: 0, count: 6, block: 6, tail: 1 },
    { rank: 1, worldSize: 2, offset: 6, count: 7, block: 6, tail: 1 },
  ]);
  t.same(ranks[0].layout, [['a', [6], 0]], "rank 0's shard: the first 6 elements of 'a'");
  t.same(ranks[1].layout, [['a', [3], 0], ['b', [4], 3]], "rank 1's shard: the rest of 'a' and all of 'b'");
  const shifted = (i: number) => i + 0.5 + (i < 6 ? 100 : 200);
  // f32 to bf16, rounding to nearest even (what the bf16 compute copy holds)
  const bf16 = (x: number) => {
    const u = new Uint32Array(Float32Array.of(x).buffer);
    u[0] = (u[0] + 0x7fff + ((u[0] >>> 16) & 1)) & 0xffff0000;
    return new Float32Array(u.buffer)[0];
  };
  for (const r of ranks) {
    const { offset, count } = r.range;
    t.same(r.master, iota(offset, count, (i) => i + 0.5), `rank ${r.rank} starts from its range of the master weights`);
    // grads on rank q are (q + 1) * (i + 1): the sum over 2 ranks is 3 * (i + 1)
    t.equal(r.stagingBytes, 16, 'the staging buffer holds one bucket');
    t.same(r.grads, iota(offset, count, (i) => 3 * (i + 1)), `rank ${r.rank} holds the summed gradient of its range, tail included (3 buckets)`);
    t.same(r.computeParams, iota(0, 13, (i) => bf16(shifted(i))), `rank ${r.rank}: every rank's bf16 shard gathered into the compute copy`);
    const mine = (i: number) => i >= offset && i < offset + count;
    t.same(r.paramsBeforeGather, iota(0, 13, (i) => (mine(i) ? shifted(i) : i + 0.5)), 'the master is a view of params: this rank\'s range moved, the rest is not gathered by gatherWeights (bf16)');
    t.same(r.params, iota(0, 13, shifted), 'gatherFull: every rank\'s f32 shard, whole');
    t.same(r.takeShard, iota(offset, count, (i) => -i), 'takeShard: this rank\'s range of a full buffer');
    t.match(r.bf16Reduce, /Communicator.allReduce: buf: .*bf16 on the CPU; MPI reduces f32 or i32 CPU tensors/, 'bf16 is gathered, never reduced, over MPI');
  }
});

t.test('a fully sharded model over 2 ranks: units gathered whole, gradients reduced into the shards, tails on the last rank', { skip: skipMpi }, async (t) => {
  const ranks = await rankReports(t, 'fullshard');
  for (const r of ranks) {
    t.same(r.units.map((u: { name: string; numel: number }) => [u.name, u.numel]), [['embedding', 21], ['block.0', 114], ['final', 3]]);
    t.same(r.units[0].range, { rank: r.rank, worldSize: 2, offset: 10 * r.rank, count: r.rank === 0 ? 10 : 11, block: 10, tail: 1 }, 'the embedding: 10 + 11');
    t.same(r.wteGathered, r.wteRef, `rank ${r.rank}: the gathered embedding is the whole initialised one`);
    t.match(r.gradInForward, /FullShard.grad: 'transformer.wte.weight' is entered for the forward only/);
    // the final LayerNorm's 3 elements: rank 0 owns element 0, rank 1 elements 1 and 2 (the tail); two
    // micro-batches of (1 + 2) * (i + 1) each
    t.same(r.finalGrad, r.rank === 0 ? [6] : [12, 18], `rank ${r.rank}: its slice of the summed gradient, both micro-batches`);
    t.ok(r.gatheredEqualsInit, `rank ${r.rank}: gathering the master shards gives the whole initialised model back`);
  }
});

t.test('a rank that never reaches a collective ends the whole run within the timeout, naming the collective', { skip: skipMpi }, async (t) => {
  const run = await runScenario('hang', { COMM_TIMEOUT_MS: '3000' }, 90_000);
  t.not(run.code, 0, 'the run fails');
  t.ok(run.ms < 60_000, `it ends in bounded time (${run.ms} ms)`);
  t.match(run.err, /rank 0 of 2: barrier did not complete within 3 s: another rank died, hangs, or never reached it; aborting every rank/);
  t.notMatch(run.out, /not reached/);
});

t.test('a rank that aborts ends every rank, saying why', { skip: skipMpi }, async (t) => {
  const run = await runScenario('throw', {}, 90_000);
  t.not(run.code, 0);
  t.ok(run.ms < 60_000, `it ends in bounded time (${run.ms} ms)`);
  t.match(run.err, /rank 1 of 2: a deliberate failure on this rank; aborting every rank/);
  t.notMatch(run.out, /not reached/);
});

t.test('backendInfo().mpi says whether CUDA tensors go through NCCL, and why not', async (t) => {
  const info = backendInfo();
  t.type(info.mpi.nccl, 'boolean');
  if (info.mpi.nccl) {
    t.ok(info.cuda.compiled, 'NCCL is only ever built with the CUDA backend');
    t.equal(info.mpi.ncclReason, undefined, 'no reason where it is there');
  } else {
    t.match(info.mpi.ncclReason, /\S/, 'a build without NCCL says why');
    if (!info.cuda.compiled) t.match(info.mpi.ncclReason, /CUDA/, 'a CPU-only build: because it has no CUDA backend');
  }
});
