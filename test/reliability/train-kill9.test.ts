// kill -9 at random times during training, with a checkpoint written every step (so many kills land in a
// checkpoint write), then resume: the final weights and optimizer moments are bit-identical to those of an
// unbroken run. Each restart also finds the killed process's lock and takes it over as stale.
// The kill times come from a seeded generator; the seed is printed (PAJAMA_KILL_SEED=<seed> replays it).
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { latestCheckpoint } from '../../lib/train/checkpoint';
import { cliProblem, tinyConfig, writeTinyShard } from '../helpers/tiny-run';
import { killAllChildren, spawnTrain } from '../helpers/train-child';
import { Mulberry32, uniform } from '../../lib/core/rng';

const STEPS = 60; // 6 kills of at most 7 steps each leave the end of the run to the last resume
const KILLS = 6;

/** Uniform doubles in [0, 1) from Mulberry32 (lib/core/rng.ts), seeded: a failure names a reproducible case. */
function rng(seed: number): () => number {
  const source = new Mulberry32(seed);
  return () => uniform(source);
}

const problem = cliProblem();
if (problem) {
  t.fail(`the child-process tests need the compiled CLI: ${problem}`);
} else {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pajama-kill9-'));
  t.teardown(() => {
    killAllChildren();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const shard = writeTinyShard(path.join(dir, 'train.bin'), 200, 1);
  const seed = Number(process.env.PAJAMA_KILL_SEED ?? Math.floor(Math.random() * 2 ** 31));
  t.comment(`kill seed ${seed} (PAJAMA_KILL_SEED=${seed} replays these kill times)`);
  const random = rng(seed);

  function configFile(name: string): { file: string; runDir: string } {
    const runDir = path.join(dir, name);
    const file = path.join(dir, `${name}.json`);
    fs.writeFileSync(file, JSON.stringify(tinyConfig(runDir, shard, { steps: STEPS, checkpoint: { every: 1, keepLast: 2 } })));
    return { file, runDir };
  }

  /** The bytes that must match: the weights, the moments, and the trainer state less its wall-clock time. */
  function finalState(runDir: string): { step: number; model: Buffer; optimizer: Buffer; state: unknown } {
    const c = latestCheckpoint(runDir)!;
    const state = JSON.parse(fs.readFileSync(path.join(c.dir, 'trainer_state.json'), 'utf8'));
    delete state.elapsedSec;
    delete state.trainConfig.runDir;
    return {
      step: c.step,
      model: fs.readFileSync(path.join(c.dir, 'model.safetensors')),
      optimizer: fs.readFileSync(path.join(c.dir, 'optimizer.safetensors')),
      state,
    };
  }

  t.test(`${KILLS} random kill -9s, each followed by a resume, end bit-identical to an unbroken run`, async (t) => {
    const straight = configFile('straight');
    const s = spawnTrain(straight.file);
    const rs = await s.exitedWithin(120_000);
    t.equal(rs.code, 0, s.err());
    const want = finalState(straight.runDir);
    t.equal(want.step, STEPS);

    const broken = configFile('broken');
    const killedAt: string[] = [];
    for (let k = 0; k < KILLS; k++) {
      const c = spawnTrain(broken.file);
      // Wait for the first step of this attempt, then for 1-6 more steps (so the kills spread over the run
      // whatever the machine's speed), then a random few milliseconds: often inside the step's checkpoint save.
      const first = await c.waitFor(/step (\d+)\/\d+/).catch(() => null);
      if (!first) break; // the run finished before a step line was seen
      const target = Number(first[1]) + 1 + Math.floor(random() * 6);
      const reached = await c.waitFor(new RegExp(`step ${target}/`)).catch(() => null);
      if (!reached) break;
      await new Promise((r) => setTimeout(r, Math.floor(random() * 30)));
      c.child.kill('SIGKILL');
      const r = await c.exitedWithin(60_000);
      if (r.code === 0) break; // it finished before the kill landed
      t.equal(r.signal, 'SIGKILL');
      const latest = latestCheckpoint(broken.runDir);
      // An unfinished checkpoint directory (or file) left behind means the kill landed inside a save.
      const midWrite = fs.existsSync(path.join(broken.runDir, 'checkpoints')) && fs.readdirSync(path.join(broken.runDir, 'checkpoints'), { recursive: true }).some((f) => String(f).includes('.tmp-'));
      killedAt.push(`${latest ? latest.step : 'none'}${midWrite ? ' (mid-save)' : ''}`);
      if (latest && latest.step >= STEPS) break;
    }
    t.comment(`latest checkpoint after each kill: ${killedAt.join(', ')}`);
    t.equal(killedAt.length, KILLS, `${KILLS} kills landed mid-run`);
    const last = spawnTrain(broken.file);
    const rl = await last.exitedWithin(120_000);
    t.equal(rl.code, 0, last.err());
    if (killedAt.length > 0) t.match(last.err() + last.out(), /took over the stale lock|resumed at step/, 'the resume found the killed run');
    const got = finalState(broken.runDir);
    t.equal(got.step, STEPS);
    t.ok(got.model.equals(want.model), 'model.safetensors is bit-identical');
    t.ok(got.optimizer.equals(want.optimizer), 'optimizer.safetensors is bit-identical');
    t.same(got.state, want.state, 'trainer_state.json matches (but for elapsed time)');
    t.same(
      fs.readdirSync(path.join(broken.runDir, 'checkpoints')).filter((f) => f.includes('.tmp-')),
      [],
      'no unfinished checkpoint directories are left',
    );
    t.notOk(fs.existsSync(path.join(broken.runDir, '.lock')), 'the lock is released');
  });
}
