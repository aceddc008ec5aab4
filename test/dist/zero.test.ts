// Sharded training state in one process (dist.sharding 'optimizer', dist/zero.ts; 'full', dist/fsdp.ts): the
// ranges cover the arena once, a shard's layout is its entries clipped to the range; in a world of one
// 'optimizer' trains bit for bit as 'none' (fp32 and bf16), writes the same checkpoint files and resumes
// either's checkpoints; 'full' trains as 'none' up to the rounding of its gradient accumulation (with and
// without activation checkpointing) and resumes bit for bit; each reports its memory. The 2-rank cases are in
// communicator.test.ts (the shard's collectives) and train-ddp.test.ts (training, and resuming with another
// number of ranks and mode).
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Arena } from '../../lib/core/tensor';
import { shardLayout, shardRange } from '../../lib/dist/zero';
import { Trainer } from '../../lib/train/trainer';
import { tinyConfig, writeTinyShard } from '../helpers/tiny-run';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pajama-zero-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
const train = writeTinyShard(path.join(dir, 'train.bin'), 120, 5);

t.test('shardRange: every element belongs to exactly one rank, the tail to the last', async (t) => {
  for (const numel of [0, 1, 2, 7, 13, 64, 1001]) {
    for (const worldSize of [1, 2, 3, 8]) {
      const owner = new Int32Array(numel).fill(-1);
      for (let rank = 0; rank < worldSize; rank++) {
        const r = shardRange(numel, rank, worldSize);
        t.equal(r.block, Math.floor(numel / worldSize));
        t.ok(r.tail >= 0 && r.tail < worldSize, 'the tail is shorter than the world');
        for (let i = r.offset; i < r.offset + r.count; i++) {
          if (owner[i] !== -1) t.fail(`element ${i} of ${numel} owned twice over ${worldSize} ranks`);
          owner[i] = rank;
        }
      }
      t.ok(owner.every((o) => o >= 0), `${numel} elements over ${worldSize} ranks: all owned`);
      if (numel % worldSize !== 0) t.equal(owner[numel - 1], worldSize - 1, 'the tail is the last rank\'s');
    }
  }
  t.throws(() => shardRange(10, 2, 2), { message: 'shardRange: rank must be an integer in [0, 2), got 2' });
  t.throws(() => shardRange(10, 0, 0), { message: 'shardRange: worldSize must be a positive integer, got 0' });
  t.throws(() => shardRange(-1, 0, 1), { message: 'shardRange: numel must be a non-negative integer, got -1' });
});

t.test('shardLayout: the entries met by the range, clipped, flat, under their names', async (t) => {
  const a = new Arena('f32', [['w', [2, 5]], ['n', [3]], ['u', [4, 2]]]);
  t.same(shardLayout(a.entries, { offset: 0, count: 21 }), [['w', [10]], ['n', [3]], ['u', [8]]], 'the whole range: every entry, flattened');
  t.same(shardLayout(a.entries, { offset: 4, count: 8 }), [['w', [6]], ['n', [2]]], 'a middle range: the end of w and the start of n');
  t.same(shardLayout(a.entries, { offset: 10, count: 3 }), [['n', [3]]], 'exactly one entry');
  t.same(shardLayout(a.entries, { offset: 21, count: 0 }), [], 'an empty range: no entry');
  a.dispose();
});

/** A run of 6 steps with a checkpoint after 3, under `sharding`; returns the losses and the final checkpoint. */
async function run(name: string, sharding: string, precision: string, resumeFrom?: string, checkpointEvery = 0): Promise<{ losses: number[]; dir: string; trainer: Trainer }> {
  const runDir = path.join(dir, name);
  if (resumeFrom) fs.cpSync(resumeFrom, runDir, { recursive: true });
  const tr = await Trainer.create(
    tinyConfig(runDir, train, {
      steps: 6,
      model: { preset: 'tiny', precision, overrides: { nLayers: 2 }, checkpointEvery },
      dist: { sharding },
      checkpoint: { every: 3, keepLast: 3 },
    }),
  );
  const losses: number[] = [];
  tr.on('step', (m) => losses.push(m.loss));
  const r = await tr.fit();
  return { losses, dir: r.checkpoint, trainer: tr };
}

const same = (a: string, b: string, f: string) => fs.readFileSync(path.join(a, f)).equals(fs.readFileSync(path.join(b, f)));

for (const precision of ['fp32', 'bf16']) {
  t.test(`${precision}: in a world of one, sharding 'full' trains as 'none', with activation checkpointing too`, async (t) => {
    // Each micro-batch's unit gradients are summed into a zeroed buffer and then added to the shard, where
    // 'none' accumulates in place: the same values up to the rounding of that addition.
    for (const ck of [0, 1]) {
      const none = await run(`none-f-${precision}-${ck}`, 'none', precision, undefined, ck);
      const full = await run(`full-${precision}-${ck}`, 'full', precision, undefined, ck);
      t.equal(full.losses[0], none.losses[0], `checkpointEvery ${ck}, step 1: the same loss, exactly`);
      const rel = Math.max(...full.losses.map((l, i) => Math.abs(l - none.losses[i]) / none.losses[i]));
      t.ok(rel < 1e-5, `checkpointEvery ${ck}: losses within 1e-5 relative (worst ${rel.toExponential(2)})`);
      const mf = full.trainer.memory();
      const mn = none.trainer.memory();
      const n = none.trainer.model.parameterCount;
      t.equal(mf.optimizerState, mn.optimizerState, 'one rank holds all the moments');
      t.equal(mf.checkpointGather, 12 * n, 'a checkpoint gathers the weights and both moments');
      t.throws(() => full.trainer.model.params, { message: /MptModel.params: this model's parameters are sharded over the ranks \(dist.sharding 'full'\)/ });
      t.throws(() => full.trainer.saveCheckpoint(), { message: /with dist.sharding 'full' the weights and moments are gathered from every rank first/ });
      for (const x of [none, full]) x.trainer.dispose();
    }
  });

  t.test(`${precision}: in a world of one, sharding 'optimizer' trains bit for bit as 'none'`, async (t) => {
    const none = await run(`none-${precision}`, 'none', precision);
    const opt = await run(`opt-${precision}`, 'optimizer', precision);
    t.same(opt.losses, none.losses, 'the same losses, exactly');
    for (const f of ['model.safetensors', 'optimizer.safetensors']) t.ok(same(opt.dir, none.dir, f), `${f} is byte-identical`);
    const mn = none.trainer.memory();
    const mo = opt.trainer.memory();
    t.equal(mo.optimizerState, mn.optimizerState, 'one rank holds all the moments either way');
    t.equal(mo.weights, mn.weights, "one rank: the shard's master is all the master weights, once");
    t.equal(mo.gradients - mn.gradients, 4 * none.trainer.model.params.numel, "'optimizer' adds the shard's reduced gradient (all of it, on one rank)");
    // a bf16 model keeps no f32 master of its own under 'optimizer' (the shard does): a checkpoint gathers it too
    t.equal(mo.checkpointGather, (precision === 'bf16' ? 12 : 8) * none.trainer.model.parameterCount, 'and gathers both moments (and a bf16 model\'s master weights) to write a checkpoint');
    t.equal(opt.trainer.model.hasMasterWeights, precision === 'fp32', 'a bf16 model keeps no f32 master weights of its own');
    t.equal(mn.checkpointGather, 0);
    t.equal(mo.total, mo.weights + mo.gradients + mo.optimizerState + mo.activations + mo.communication);
    t.throws(() => opt.trainer.saveCheckpoint(), { message: /with dist.sharding 'optimizer' the weights and moments are gathered from every rank first; call every rank's await trainer.saveCheckpointAsync\(\)/ });
    const plan = JSON.parse(fs.readFileSync(path.join(dir, `opt-${precision}`, 'metrics.jsonl'), 'utf8').split('\n')[0]);
    t.same(plan.memory, { ...mo }, 'the plan record holds the memory report');
    for (const x of [none, opt]) x.trainer.dispose();
  });
}

t.test("a checkpoint resumes in another mode ('none' <-> 'optimizer'), and 'full' resumes its own, bit for bit", async (t) => {
  const whole = { none: await run('whole', 'none', 'fp32'), full: await run('whole-full', 'full', 'fp32') };
  // each start run's directory cut back to how it was after step 3 (its checkpoint of step 3 as latest)
  for (const [from, to, ref] of [
    ['none', 'optimizer', 'none'],
    ['optimizer', 'none', 'none'],
    ['full', 'full', 'full'],
  ] as const) {
    const src = path.join(dir, `${from}-start-${to}`);
    const first = await run(`${from}-start-${to}`, from, 'fp32');
    first.trainer.dispose();
    const ck = path.join(src, 'checkpoints');
    fs.rmSync(path.join(ck, 'step-000006'), { recursive: true });
    fs.writeFileSync(path.join(ck, 'latest'), 'step-000003\n');
    const metrics = fs.readFileSync(path.join(src, 'metrics.jsonl'), 'utf8').split('\n').filter((l) => l && JSON.parse(l).step <= 3);
    fs.writeFileSync(path.join(src, 'metrics.jsonl'), metrics.join('\n') + '\n');
    const resumed = await run(`${from}-to-${to}`, to, 'fp32', src);
    t.equal(resumed.losses.length, 3, `${from} -> ${to}: resumed at step 3`);
    t.same(resumed.losses, whole[ref].losses.slice(3), `${from} -> ${to}: the last 3 losses of the uninterrupted '${ref}' run`);
    for (const f of ['model.safetensors', 'optimizer.safetensors']) t.ok(same(resumed.dir, whole[ref].dir, f), `${from} -> ${to}: ${f} is byte-identical`);
    resumed.trainer.dispose();
  }
  whole.none.trainer.dispose();
  whole.full.trainer.dispose();
});
