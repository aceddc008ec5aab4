// Sweeps (lib/train/sweep.ts): grid expansion (order, groups x keys, seeds outermost), run names (stable,
// filesystem-safe, unique), bad grids and seeds named by key, the seed changing both the initialisation and
// the data order, and runSweep on tiny runs: a sweep stopped inside a run resumes to the bytes of an
// uninterrupted sweep (finished runs skipped, the half-finished one resumed from its checkpoint), and a sweep
// directory or run directory made with another spec is refused naming the key.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expandGrid, parseSeeds, runSweep, sweepRunConfig, SweepStoppedError, type SweepProgress, type SweepSpec } from '../../lib/train/sweep';
import { latestCheckpoint } from '../../lib/train/checkpoint';
import { readLossCurveRecords } from '../../lib/eval/plot';
import { Trainer } from '../../lib/train/trainer';
import { WorldOfOne } from '../../lib/dist/communicator';
import { tinyConfig, writeTinyShard } from '../helpers/tiny-run';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pajama-sweep-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));

t.test('expandGrid: axes in the grid order (first slowest), groups as one axis, seeds outermost', async (t) => {
  const grid = {
    'batch.globalBatchTokens': [16384, 65536],
    groups: { ptwd: { 'weightDecay.mode': 'ptwd' }, 'wd0.1': { 'weightDecay.mode': 'constant', 'weightDecay.value': 0.1 } },
  };
  const runs = expandGrid(grid, [3, 1], 'out');
  t.same(
    runs.map((r) => r.name),
    [
      'batch.globalBatchTokens=16384_ptwd-s3',
      'batch.globalBatchTokens=16384_wd0.1-s3',
      'batch.globalBatchTokens=65536_ptwd-s3',
      'batch.globalBatchTokens=65536_wd0.1-s3',
      'batch.globalBatchTokens=16384_ptwd-s1',
      'batch.globalBatchTokens=16384_wd0.1-s1',
      'batch.globalBatchTokens=65536_ptwd-s1',
      'batch.globalBatchTokens=65536_wd0.1-s1',
    ],
  );
  t.same(runs.map((r) => r.index), [0, 1, 2, 3, 4, 5, 6, 7]);
  t.equal(runs[1].group, 'batch.globalBatchTokens=16384 wd0.1');
  t.same(runs[1].overrides, { 'batch.globalBatchTokens': 16384, 'weightDecay.mode': 'constant', 'weightDecay.value': 0.1 });
  t.equal(runs[1].seed, 3);
  t.equal(runs[1].dir, path.join('out', 'runs', 'batch.globalBatchTokens=16384_wd0.1-s3'));
  t.equal(runs[5].group, runs[1].group, 'the same group at another seed');
  t.same(expandGrid(grid, [3, 1], 'out'), runs, 'stable');
  // The order of the grid's keys is the order of the axes.
  const swapped = expandGrid({ groups: grid.groups, 'batch.globalBatchTokens': grid['batch.globalBatchTokens'] }, [1], 'o');
  t.same(swapped.map((r) => r.group), ['ptwd batch.globalBatchTokens=16384', 'ptwd batch.globalBatchTokens=65536', 'wd0.1 batch.globalBatchTokens=16384', 'wd0.1 batch.globalBatchTokens=65536']);
  // An empty grid is the base config at each seed.
  t.same(expandGrid({}, [1, 2], 'o').map((r) => [r.name, r.group]), [['base-s1', 'base'], ['base-s2', 'base']]);
  // Values that are not strings are labelled as canonical JSON.
  t.same(expandGrid({ 'weightDecay.stages': [[0, 0.5, 0.1], [0.1]] }, [1], 'o').map((r) => r.group), ['weightDecay.stages=[0,0.5,0.1]', 'weightDecay.stages=[0.1]']);
});

t.test('run names: unsafe or long labels become safe names with a hash; names stay unique', async (t) => {
  const runs = expandGrid({ 'data.manifest': ['/data/global/manifest.json', '/data/local/manifest.json'], groups: { ['a very long group name '.repeat(5)]: {}, b: { steps: 3 } } }, [1], 'o');
  for (const r of runs) {
    t.match(r.name, /^[A-Za-z0-9._=+-]+-s1$/, `${r.name} is filesystem-safe`);
    t.ok(r.name.length <= 64 + 3, `${r.name} is short`);
    t.notMatch(r.name, /^[.-]/);
  }
  t.equal(new Set(runs.map((r) => r.name)).size, runs.length, 'unique');
  t.match(runs[0].name, /^data.manifest=_data_global_manifest.json_a_very_long.*-[0-9a-f]{8}-s1$/);
  t.equal(runs[0].group, 'data.manifest=/data/global/manifest.json ' + 'a very long group name '.repeat(5), 'the label keeps the values as they are');
  t.same(expandGrid({ 'data.manifest': ['/data/global/manifest.json'] }, [1], 'o')[0].name, expandGrid({ 'data.manifest': ['/data/global/manifest.json'] }, [1], 'p')[0].name, 'the name depends on the label only');
  // Names differing only in case would be one directory on a case-insensitive file system.
  const cased = expandGrid({ groups: { A: { steps: 3 }, a: { steps: 4 } } }, [1], 'o');
  t.equal(new Set(cased.map((r) => r.name.toLowerCase())).size, 2, cased.map((r) => r.name).join(', '));
  // A label that is safe already is kept as it is.
  t.equal(expandGrid({ 'optimizer.lr': [0.001] }, [7], 'o')[0].name, 'optimizer.lr=0.001-s7');
});

t.test('bad grids and seeds: errors name the key', async (t) => {
  const bad: [unknown, RegExp][] = [
    [[1, 2], /grid: must be a JSON object/],
    [{ 'optimizer.lr': 0.001 }, /'optimizer.lr' must be a non-empty array of the values to try, got 0.001/],
    [{ 'optimizer.lr': [] }, /'optimizer.lr' must be a non-empty array/],
    [{ 'optimizer.lr': [0.001, 0.002, 0.001] }, /'optimizer.lr' lists the value 0.001 twice/],
    [{ seed: [1, 2] }, /key 'seed' cannot be swept: 'seed' is set by the sweep's seeds \(--seeds\)/],
    [{ runDir: ['a'] }, /key 'runDir' cannot be swept/],
    [{ 'optimizer..lr': [1] }, /key 'optimizer..lr' is not a dotted config key/],
    [{ groups: {} }, /'groups' must be a non-empty object of named groups/],
    [{ groups: { a: 1 } }, /group 'a' must be an object of dotted config keys and values, got 1/],
    [{ groups: { a: { seed: 3 } } }, /group 'a': key 'seed' cannot be swept/],
    [{ groups: { a: { steps: 3 }, b: { steps: 3 } } }, /groups 'a' and 'b' have the same settings/],
    [{ 'weightDecay.mode': ['ptwd'], groups: { a: { 'weightDecay.mode': 'constant' } } }, /'weightDecay.mode' is both an axis of the grid and set in group 'a'/],
    [{ weightDecay: [{ mode: 'ptwd' }], 'weightDecay.mode': ['constant'] }, /'weightDecay.mode' is inside 'weightDecay' \(both axes of the grid\)/],
    [{ groups: { a: { optimizer: { lr: 1 }, 'optimizer.lr': 2 } } }, /'optimizer.lr' \(group 'a'\) is inside 'optimizer' \(group 'a'\)/],
  ];
  for (const [grid, re] of bad) t.throws(() => expandGrid(grid, [1], 'o'), re, JSON.stringify(grid));
  // The same key in two different groups is what groups are for.
  t.equal(expandGrid({ groups: { a: { optimizer: { lr: 1 } }, b: { 'optimizer.lr': 2 } } }, [1], 'o').length, 2);
  t.throws(() => expandGrid({}, [], 'o'), /seeds must be a non-empty array/);
  t.throws(() => expandGrid({}, [1, 1], 'o'), /seed 1 is listed twice/);
  t.throws(() => expandGrid({}, [-1], 'o'), /seed -1 is not a non-negative integer/);
  t.same(parseSeeds('3'), [1, 2, 3]);
  t.same(parseSeeds('5,2'), [5, 2]);
  t.same(parseSeeds('7..9'), [7, 8, 9]);
  t.same(parseSeeds('4..4'), [4]);
  t.throws(() => parseSeeds('0'), /a count of seeds must be 1 to 10000 \(for the single seed 0, give 0..0\)/);
  t.throws(() => parseSeeds('1,x'), /'x' is not a non-negative integer/);
  t.throws(() => parseSeeds('2,2'), /seed 2 is listed twice/);
  t.throws(() => parseSeeds('9..3'), /the range ends before it starts/);
});

const shard = writeTinyShard(path.join(dir, 'train.bin'), 200, 1);

t.test('the seed changes both the initialisation and the data order', async (t) => {
  let k = 0;
  const open = (seed: number) => Trainer.fromConfig(tinyConfig(path.join(dir, `seed-${seed}-${k++}`), shard, { seed }), { resume: false, communicator: new WorldOfOne() });
  const [a, b, a2] = [await open(1), await open(2), await open(1)];
  try {
    const bytes = (v: ArrayBufferView) => Buffer.from(v.buffer, v.byteOffset, v.byteLength);
    const [wa, wb, wa2] = [a, b, a2].map((x) => bytes(x.model.params.buffer.toFloat32()));
    t.notOk(wa.equals(wb), 'other initial weights');
    t.ok(wa.equals(wa2), 'the same seed, the same weights');
    const [ba, bb, ba2] = [a, b, a2].map((x) => bytes(x.loader.next().inputs));
    t.notOk(ba.equals(bb), 'another first batch');
    t.ok(ba.equals(ba2), 'the same seed, the same batch');
  } finally {
    for (const x of [a, b, a2]) x.dispose();
  }
});

// A two-group sweep of tiny runs, two seeds: 4 runs of 6 steps, a checkpoint every 2 steps.
const grid = { groups: { wd0: { 'weightDecay.mode': 'constant', 'weightDecay.value': 0 }, ptwd: { 'weightDecay.mode': 'ptwd' } } };
const base = tinyConfig('ignored', shard, { steps: 6, checkpoint: { every: 2, keepLast: 2 } });
const spec = (extra: Partial<SweepSpec> = {}): SweepSpec => ({ base, baseDir: dir, grid, seeds: [1, 2], ...extra });
const options = { communicator: new WorldOfOne() };

/** What must match between two sweeps' runs: the final weights, moments and the loss records. */
function finals(out: string): { name: string; model: Buffer; optimizer: Buffer; losses: unknown; evals: unknown }[] {
  return fs.readdirSync(path.join(out, 'runs')).sort().map((name) => {
    const runDir = path.join(out, 'runs', name);
    const c = latestCheckpoint(runDir)!;
    const rec = readLossCurveRecords(path.join(runDir, 'metrics.jsonl'));
    return {
      name,
      model: fs.readFileSync(path.join(c.dir, 'model.safetensors')),
      optimizer: fs.readFileSync(path.join(c.dir, 'optimizer.safetensors')),
      losses: rec.steps,
      evals: rec.evals,
    };
  });
}

t.test('runSweep: runs, records, and a sweep stopped inside a run resumes to the same bytes', async (t) => {
  const straight = path.join(dir, 'straight');
  const seen: SweepProgress[] = [];
  const runs = await runSweep(spec(), straight, { ...options, onProgress: (p) => seen.push(p) });
  t.equal(runs.length, 4);
  t.same(seen.map((p) => `${p.i}/${p.n} ${p.state}`), ['1/4 start', '1/4 done', '2/4 start', '2/4 done', '3/4 start', '3/4 done', '4/4 start', '4/4 done']);
  t.equal(seen[0].etaSeconds, null, 'no ETA before a run finished');
  t.ok(seen[2].etaSeconds! > 0, `ETA after one run: ${seen[2].etaSeconds}`);
  t.equal(seen[7].etaSeconds, 0, 'nothing left');
  const record = JSON.parse(fs.readFileSync(path.join(straight, 'sweep.json'), 'utf8'));
  t.same(record.seeds, [1, 2]);
  t.same(record.grid, grid);
  t.same(record.runs.map((r: { dir: string }) => r.dir), runs.map((r) => path.join('runs', r.name)), 'run directories relative to the sweep');
  for (const r of runs) {
    const cfg = JSON.parse(fs.readFileSync(path.join(r.dir, 'config.json'), 'utf8'));
    t.equal(cfg.seed, r.seed, `${r.name}: seed`);
    t.equal(cfg.runDir, path.resolve(r.dir), `${r.name}: runDir`);
    t.equal(cfg.weightDecay.mode, r.overrides['weightDecay.mode'], `${r.name}: its group's setting`);
    t.same(cfg.data.train, [path.resolve(dir, shard)], 'paths resolved against baseDir');
    t.same(cfg, JSON.parse(JSON.stringify(sweepRunConfig(spec(), r))));
    t.equal(latestCheckpoint(r.dir)!.step, 6);
  }
  const want = finals(straight);
  t.notSame(want[0].model, want[2].model, 'the seeds differ');

  // Stopped at step 3 of the second run (its checkpoint is at step 2): the first run is finished.
  const broken = path.join(dir, 'broken');
  const err = await runSweep(spec(), broken, {
    ...options,
    onTraining: (trainer, run) => {
      if (run.index === 1) trainer.on('step', (m) => m.step === 3 && trainer.requestStop());
    },
  }).catch((e: unknown) => e);
  t.type(err, SweepStoppedError);
  t.match((err as Error).message, /the sweep stopped in run 2 of 4 \(ptwd-s1\) at step 3 of 6; run the same sweep again to resume it/);
  t.equal(latestCheckpoint(runs[1].dir.replace(straight, broken))!.step, 3, 'the stop wrote a checkpoint');
  // Kill-like: lose the stop's checkpoint, so the run resumes from step 2 and logs step 3 twice.
  fs.rmSync(path.join(broken, 'runs', 'ptwd-s1', 'checkpoints', 'step-000003'), { recursive: true });
  fs.rmSync(path.join(broken, 'runs', 'ptwd-s1', 'checkpoints', 'latest'));
  const resumed: string[] = [];
  await runSweep(spec(), broken, { ...options, onProgress: (p) => resumed.push(`${p.i} ${p.state}`) });
  t.same(resumed, ['1 skip', '2 resume', '2 done', '3 start', '3 done', '4 start', '4 done']);
  const got = finals(broken);
  t.same(got.map((g) => g.name), want.map((w) => w.name));
  for (const [i, g] of got.entries()) {
    t.ok(g.model.equals(want[i].model), `${g.name}: model.safetensors bit-identical`);
    t.ok(g.optimizer.equals(want[i].optimizer), `${g.name}: optimizer.safetensors bit-identical`);
    t.same(g.losses, want[i].losses, `${g.name}: the loss of every step`);
    t.same(g.evals, want[i].evals, `${g.name}: evaluations`);
  }
  // A finished sweep run again trains nothing.
  const again: string[] = [];
  await runSweep(spec(), broken, { ...options, onProgress: (p) => again.push(p.state) });
  t.same(again, ['skip', 'skip', 'skip', 'skip']);
});

t.test('runSweep: another spec or a changed run directory is refused, naming the key; seeds may grow', async (t) => {
  const out = path.join(dir, 'straight'); // the finished sweep of the test above
  await t.rejects(runSweep(spec({ base: { ...base, optimizer: { lr: 1e-3, warmupSteps: 1 } } }), out, options), /records another base config: 'optimizer.lr' is 0.003 there and 0.001 now; use another --out/);
  await t.rejects(runSweep(spec({ grid: { groups: { ...grid.groups, wd0: { 'weightDecay.mode': 'constant', 'weightDecay.value': 0.2 } } } }), out, options), /records another grid: 'groups.wd0.weightDecay.value' is 0 there and 0.2 now/);
  await t.rejects(runSweep(spec({ seeds: [2, 1] }), out, options), /records the seeds \[1,2\] and this sweep has \[2,1\]; the seeds may only grow at the end/);
  // A run directory holding another config (edited by hand, or left from another sweep).
  const cfgFile = path.join(out, 'runs', 'wd0-s2', 'config.json');
  const saved = fs.readFileSync(cfgFile, 'utf8');
  const edited = JSON.parse(saved);
  edited.optimizer.lr = 0.01;
  fs.writeFileSync(cfgFile, JSON.stringify(edited));
  await t.rejects(runSweep(spec(), out, options), /run 'wd0-s2' in \S+ was started with another config: 'optimizer.lr' is 0.01 there and 0.003 in this sweep/);
  fs.writeFileSync(cfgFile, saved);
  // One more seed: the runs of seeds 1 and 2 are skipped, the new ones run, sweep.json records the seeds.
  const states: string[] = [];
  const runs = await runSweep(spec({ seeds: [1, 2, 3] }), out, { ...options, onProgress: (p) => p.state !== 'done' && states.push(`${p.run.name} ${p.state}`) });
  t.same(states, ['wd0-s1 skip', 'ptwd-s1 skip', 'wd0-s2 skip', 'ptwd-s2 skip', 'wd0-s3 start', 'ptwd-s3 start']);
  t.equal(runs.length, 6);
  t.same(JSON.parse(fs.readFileSync(path.join(out, 'sweep.json'), 'utf8')).seeds, [1, 2, 3]);
});

t.test('runSweep: an invalid combination fails before any run, naming the run and the key', async (t) => {
  const out = path.join(dir, 'invalid');
  await t.rejects(runSweep(spec({ grid: { 'optimizer.lr': [0.001, -1] } }), out, options), /sweep: run 'optimizer.lr=-1-s1' \(optimizer.lr=-1, seed 1\) has an invalid config: config: 'optimizer.lr' must be a positive number, got -1/);
  t.notOk(fs.existsSync(out), 'nothing was written');
  await t.rejects(runSweep(spec({ grid: { 'model.preset.x': [1] } }), out, options), /cannot set 'model.preset.x': 'model.preset' is "tiny" in the base config, not an object/);
  await t.rejects(runSweep(spec({ base: { ...base, steps: 1 } }), out, options), /sweep: the base config is invalid: config: 'steps' must be/);
});
