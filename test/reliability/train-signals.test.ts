// `pajama train` in a child process under signals, divergence and a second writer: SIGINT, SIGTERM and
// SIGHUP each stop after the step in flight with a checkpoint and exit 130, 143 and 129; the run resumes
// from that checkpoint; the same signal again exits at once leaving only complete checkpoints; a diverged
// run exits non-zero; a second trainer on the same run directory is refused naming the first.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { latestCheckpoint, listCheckpoints } from '../../lib/train/checkpoint';
import { cliProblem, tinyConfig, writeTinyShard } from '../helpers/tiny-run';
import { killAllChildren, spawnTrain } from '../helpers/train-child';

const problem = cliProblem();
if (problem) {
  t.fail(`the child-process tests need the compiled CLI: ${problem}`);
} else {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pajama-signals-'));
  t.teardown(() => {
    killAllChildren();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const shard = writeTinyShard(path.join(dir, 'train.bin'), 200, 1);

  function configFile(name: string, extra: Record<string, unknown> = {}): { file: string; runDir: string } {
    const runDir = path.join(dir, name);
    const file = path.join(dir, `${name}.json`);
    // Far more steps than the test waits for: the run only ends by the signal.
    fs.writeFileSync(file, JSON.stringify(tinyConfig(runDir, shard, { steps: 1_000_000, ...extra })));
    return { file, runDir };
  }

  const codes = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 } as const;
  for (const sig of Object.keys(codes) as (keyof typeof codes)[]) {
    t.test(`${sig}: the step finishes, a checkpoint is written, exit ${codes[sig]}, and the run resumes`, async (t) => {
      const { file, runDir } = configFile(sig.toLowerCase());
      const a = spawnTrain(file);
      await a.waitFor(/step 3\/1000000/);
      a.child.kill(sig);
      const r = await a.exitedWithin(60_000);
      t.equal(r.code, codes[sig], a.err());
      const m = /stopped by (\w+) at step (\d+) of 1000000; checkpoint (\S+); run the same command to resume/.exec(a.err());
      t.ok(m, a.err());
      t.equal(m![1], sig);
      const step = Number(m![2]);
      t.ok(step >= 3, `stopped at step ${step}`);
      t.equal(latestCheckpoint(runDir)?.step, step, 'latest is the checkpoint of the step it stopped at');
      t.notOk(fs.existsSync(path.join(runDir, '.lock')), 'the lock is released');
      const b = spawnTrain(file);
      await b.waitFor(new RegExp(`resumed at step ${step} `));
      await b.waitFor(new RegExp(`step ${step + 2}/1000000`));
      b.child.kill('SIGTERM');
      const rb = await b.exitedWithin(60_000);
      t.equal(rb.code, 143, b.err());
      t.ok(latestCheckpoint(runDir)!.step >= step + 2, 'the resumed run went on');
    });
  }

  t.test('a second signal while stopping exits at once; the checkpoints left are complete', async (t) => {
    // Slow steps (about a second on 2 cores), so the second signal arrives while the first is being honoured.
    const { file, runDir } = configFile('twice', {
      model: { preset: 'tiny', precision: 'fp32', overrides: { dModel: 256, nHeads: 4, nLayers: 4 } },
      batch: { seqLen: 64, microBatchSize: 16, globalBatchTokens: 64 * 16 * 4 },
      checkpoint: { every: 1, keepLast: 3 },
    });
    const a = spawnTrain(file);
    await a.waitFor(/step 2\/1000000/);
    a.child.kill('SIGTERM');
    await a.waitFor(/SIGTERM: stopping after this step/);
    a.child.kill('SIGTERM');
    const r = await a.exitedWithin(60_000);
    t.equal(r.code, 143, a.err());
    t.match(a.err(), /SIGTERM while stopping: exiting now; the last complete checkpoint is kept/);
    t.notMatch(a.err(), /stopped by SIGTERM at step/, 'it did not wait for the step');
    t.notOk(fs.existsSync(path.join(runDir, '.lock')), 'the lock is released');
    for (const c of listCheckpoints(runDir)) {
      for (const f of ['config.json', 'model.safetensors', 'optimizer.safetensors', 'trainer_state.json']) t.ok(fs.existsSync(path.join(c.dir, f)), `${path.basename(c.dir)}/${f}`);
    }
    const b = spawnTrain(file);
    await b.waitFor(/step \d+\/1000000/);
    b.child.kill('SIGINT');
    t.equal((await b.exitedWithin(60_000)).code, 130, b.err());
  });

  t.test('a diverged run exits 1 naming the steps and what was non-finite', async (t) => {
    const { file, runDir } = configFile('diverged', { steps: 40, optimizer: { lr: 1e8, warmupSteps: 1 }, divergence: { maxConsecutiveSkips: 3 } });
    const a = spawnTrain(file);
    const r = await a.exitedWithin(60_000);
    t.equal(r.code, 1, a.out() + a.err());
    t.match(a.err(), /pajama train: training diverged: 3 consecutive steps \(2-4\) were skipped for non-finite values .*at step 4 .*NaN/);
    t.match(a.out(), /step 2\/40 loss .*\(skipped: /, 'skipped steps are printed whatever logEvery');
    t.notMatch(a.out(), /done at step/);
    t.notOk(fs.existsSync(path.join(runDir, '.lock')));
  });

  t.test('two trainers on one run directory: the second is refused naming the first', async (t) => {
    const { file, runDir } = configFile('two');
    const a = spawnTrain(file);
    await a.waitFor(/step 2\/1000000/);
    const b = spawnTrain(file);
    const rb = await b.exitedWithin(60_000);
    t.equal(rb.code, 1, b.err());
    t.match(b.err(), new RegExp(`the run directory .*two is in use by pid ${a.child.pid} on ${os.hostname()}, started \\S+ \\(.*train --config .*two\\.json\\)`));
    await a.waitFor(/step 5\/1000000/);
    a.child.kill('SIGTERM');
    t.equal((await a.exitedWithin(60_000)).code, 143, a.err());
    const metrics = fs.readFileSync(path.join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n');
    t.equal(metrics.filter((l) => l.includes('"type":"plan"')).length, 1, 'only the first trainer wrote metrics');
    let prev = 0;
    for (const l of metrics.filter((l) => l.includes('"type":"step"'))) {
      const s = JSON.parse(l).step;
      t.equal(s, prev + 1, 'steps in order, no interleaving');
      prev = s;
      if (s !== prev) break;
    }
  });
}
