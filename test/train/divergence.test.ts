// Divergence: a run whose steps keep being skipped for non-finite values stops with ERR_PAJAMA_DIVERGED
// naming the step and what was non-finite; no checkpoint with NaN/Inf weights or moments is written or
// loaded; the final loss reported is the last finite one.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Trainer, TrainingDivergedError } from '../../lib/train/trainer';
import { NonFiniteCheckpointError, latestCheckpoint, listCheckpoints, loadCheckpoint, loadModelWeights, saveCheckpoint, mptHfConfig } from '../../lib/train/checkpoint';
import { writeSafetensors, arenaTensorsToWrite } from '../../lib/train/safetensors';
import { writeTinyShard, tinyConfig } from '../helpers/tiny-run';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pajama-diverge-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
const shard = writeTinyShard(path.join(dir, 'train.bin'), 100, 1);

t.test('a huge learning rate stops the run after divergence.maxConsecutiveSkips skipped steps', async (t) => {
  const runDir = path.join(dir, 'huge-lr');
  // Checkpoint every step: the skipped steps must never produce a checkpoint that becomes `latest` with bad weights.
  const tr = await Trainer.create(
    tinyConfig(runDir, shard, { optimizer: { lr: 1e8, warmupSteps: 1 }, steps: 40, checkpoint: { every: 1, keepLast: 50 }, divergence: { maxConsecutiveSkips: 4 } }),
    { progress: false },
  );
  const steps: { step: number; skipped: boolean; loss: number }[] = [];
  tr.on('step', (m) => steps.push({ step: m.step, skipped: m.skipped, loss: m.loss }));
  const err = await tr.fit().then(
    () => null,
    (e: unknown) => e,
  );
  t.type(err, TrainingDivergedError);
  const e = err as TrainingDivergedError;
  t.equal(e.code, 'ERR_PAJAMA_DIVERGED');
  t.equal(e.consecutiveSkips, 4);
  t.ok(steps.length < 40, `stopped at step ${e.step} of 40`);
  t.equal(e.step, steps[steps.length - 1].step);
  t.ok(steps.slice(-4).every((s) => s.skipped), 'the last 4 steps were skipped');
  t.match(e.message, new RegExp(`4 consecutive steps \\(${e.step - 3}-${e.step}\\) were skipped`));
  t.match(e.message, /'divergence.maxConsecutiveSkips' is 4/);
  t.match(e.message, /the loss was NaN|gradient values were NaN\/Inf/);
  const lastFinite = steps.filter((s) => !s.skipped).pop();
  t.ok(lastFinite, 'the first step is finite');
  t.match(e.message, `the last finite loss was ${lastFinite!.loss.toFixed(4)} at step ${lastFinite!.step}`);
  t.same(tr.lastFiniteLoss, { step: lastFinite!.step, loss: lastFinite!.loss });
  const firstSkipped = e.step - 3;
  t.match(e.message, `the last one before the skipped steps is ${path.join(runDir, 'checkpoints', `step-${String(firstSkipped - 1).padStart(6, '0')}`)}`);
  const records = fs.readFileSync(path.join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  t.equal(records[records.length - 1].type, 'diverged', 'metrics.jsonl ends with a diverged record');
  // Every checkpoint written loads (loading refuses NaN/Inf), and latest is one of them.
  const latest = latestCheckpoint(runDir);
  t.ok(latest, 'checkpoints of the finite steps exist');
  for (const c of listCheckpoints(runDir)) {
    t.doesNotThrow(() => loadCheckpoint(c.dir, { params: tr.model.params, m: tr.optimizer.m, v: tr.optimizer.v }), `${path.basename(c.dir)} is finite`);
  }
  tr.dispose();
});

t.test('divergence.maxConsecutiveSkips 0 never stops; the final loss is the last finite one', async (t) => {
  const runDir = path.join(dir, 'never');
  const tr = await Trainer.create(tinyConfig(runDir, shard, { optimizer: { lr: 1e8, warmupSteps: 1 }, steps: 8, divergence: { maxConsecutiveSkips: 0 } }), {
    progress: false,
  });
  const losses: number[] = [];
  const skipped: boolean[] = [];
  tr.on('step', (m) => {
    losses.push(m.loss);
    skipped.push(m.skipped);
  });
  const r = await tr.fit();
  t.equal(r.steps, 8);
  t.ok(skipped.slice(1).every(Boolean), 'every step after the first was skipped');
  t.ok(r.finalLoss && Number.isFinite(r.finalLoss.loss), `final loss ${JSON.stringify(r.finalLoss)} is the last finite one`);
  t.same(r.finalLoss, { step: 1, loss: losses[0] });
  tr.dispose();
});

t.test('saveCheckpoint refuses NaN/Inf weights and moments; loading refuses them naming file and tensor', async (t) => {
  const runDir = path.join(dir, 'nan');
  const tr = await Trainer.create(tinyConfig(runDir, shard, { steps: 4 }), { progress: false });
  await tr.step();
  const good = tr.saveCheckpoint();
  const params = tr.model.params;
  const name = params.entries[1].name;
  const view = params.get(name);
  const saved = view.toFloat32();
  const poisoned = saved.slice();
  poisoned[3] = NaN;
  view.copyFrom(poisoned);
  await tr.step();
  t.throws(() => tr.saveCheckpoint(), { name: 'NonFiniteCheckpointError', code: 'ERR_PAJAMA_NON_FINITE', message: new RegExp(`model.safetensors tensor '${name.replace(/\./g, '\\.')}' holds 1 NaN/Inf value`) });
  t.equal(latestCheckpoint(runDir)!.dir, good, 'latest still names the finite checkpoint');
  t.equal(listCheckpoints(runDir).length, 1, 'nothing was written');
  view.copyFrom(saved);
  const m = tr.optimizer.m.get(name);
  const mSaved = m.toFloat32();
  const mBad = mSaved.slice();
  mBad[0] = Infinity;
  m.copyFrom(mBad);
  t.throws(() => tr.saveCheckpoint(), { message: new RegExp(`optimizer.safetensors tensor 'm\\.${name.replace(/\./g, '\\.')}' holds 1 NaN/Inf`) });
  m.copyFrom(mSaved);

  // A checkpoint on disk with a NaN weight (written behind the trainer's back) is refused at load.
  const bad = path.join(runDir, 'checkpoints', 'step-000099');
  fs.cpSync(good, bad, { recursive: true });
  view.copyFrom(poisoned);
  writeSafetensors(path.join(bad, 'model.safetensors'), arenaTensorsToWrite(params), { format: 'pt' });
  view.copyFrom(saved);
  const state = JSON.parse(fs.readFileSync(path.join(bad, 'trainer_state.json'), 'utf8'));
  fs.writeFileSync(path.join(bad, 'trainer_state.json'), JSON.stringify({ ...state, step: 99 }));
  t.throws(() => loadCheckpoint(bad, { params, m: tr.optimizer.m, v: tr.optimizer.v }), {
    name: 'NonFiniteCheckpointError',
    message: new RegExp(`step-000099: model.safetensors tensor '${name.replace(/\./g, '\\.')}' holds 1 NaN/Inf value.*refusing to resume`),
  });
  t.doesNotThrow(() => loadCheckpoint(bad, { params, allowNonFinite: true }), 'allowNonFinite loads it for inspection');
  t.ok(Number.isNaN(params.get(name).toFloat32()[3]));
  t.throws(() => loadModelWeights(bad, params), NonFiniteCheckpointError, 'model.init from it is refused too');
  tr.dispose();
  // Resuming a run whose latest checkpoint holds NaN fails before any step, naming the file.
  fs.writeFileSync(path.join(runDir, 'checkpoints', 'latest'), 'step-000099\n');
  await t.rejects(Trainer.create(tinyConfig(runDir, shard, { steps: 200 }), { progress: false }), { code: 'ERR_PAJAMA_NON_FINITE', message: /step-000099.*model\.safetensors/ });
  t.notOk(fs.existsSync(path.join(runDir, '.lock')), 'the failed start released the run lock');
});

t.test('saveCheckpoint checks the arrays it is given, not only the trainer', async (t) => {
  const tr = await Trainer.create(tinyConfig(path.join(dir, 'direct'), shard, { steps: 4 }), { progress: false });
  const p = tr.model.params;
  const w = p.get(p.entries[0].name);
  const a = w.toFloat32();
  a[a.length - 1] = -Infinity;
  w.copyFrom(a);
  t.throws(() => saveCheckpoint(path.join(dir, 'direct-save'), 1, { config: mptHfConfig(tr.modelConfig), params: p, trainerState: {}, keepLast: 2 }), NonFiniteCheckpointError);
  t.notOk(fs.existsSync(path.join(dir, 'direct-save', 'checkpoints')), 'refused before touching the disk');
  tr.dispose();
});
