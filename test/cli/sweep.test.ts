// `pajama sweep`: usage errors in-process; then, in a child process, a tiny two-group sweep end to end (each
// run's directory, sweep.json, progress with run i of n and an ETA), and the same sweep stopped by SIGTERM
// inside a run (exit 143) and killed with SIGKILL between runs, resumed by the same command: finished runs
// are skipped, the half-finished one resumes from its checkpoint, and the final weights, moments and losses
// equal the uninterrupted sweep's.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { latestCheckpoint } from '../../lib/train/checkpoint';
import { readLossCurveRecords } from '../../lib/eval/plot';
import { runCli } from '../helpers/cli-run';
import { CLI, REPO, cliProblem, tinyConfig, writeTinyShard } from '../helpers/tiny-run';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pajama-sweep-cli-'));
const children = new Set<ReturnType<typeof spawn>>();
t.teardown(() => {
  for (const c of children) c.kill('SIGKILL');
  fs.rmSync(dir, { recursive: true, force: true });
});

const shard = writeTinyShard(path.join(dir, 'train.bin'), 200, 1);
const baseFile = path.join(dir, 'base.json');
fs.writeFileSync(baseFile, JSON.stringify(tinyConfig('runs/unused', shard, { steps: 8, checkpoint: { every: 2, keepLast: 2 } })));
const gridFile = path.join(dir, 'grid.json');
fs.writeFileSync(gridFile, JSON.stringify({ groups: { wd0: { 'weightDecay.mode': 'constant', 'weightDecay.value': 0 }, ptwd: { 'weightDecay.mode': 'ptwd' } } }));

t.test('usage errors exit 2 naming what is wrong', async (t) => {
  let r = await runCli(['sweep', '--config', baseFile]);
  t.equal(r.code, 2);
  t.match(r.err, /--grid GRID.json is required/);
  r = await runCli(['sweep', '--grid', gridFile]);
  t.match(r.err, /--config BASE.json is required/);
  r = await runCli(['sweep', '--config', baseFile, '--grid', gridFile, '--seeds', 'two']);
  t.equal(r.code, 2);
  t.match(r.err, /--seeds 'two': 'two' is not a non-negative integer/);
  const bad = path.join(dir, 'bad-grid.json');
  fs.writeFileSync(bad, JSON.stringify({ 'optimizer.lr': 0.001 }));
  r = await runCli(['sweep', '--config', baseFile, '--grid', bad, '--out', path.join(dir, 'bad')]);
  t.equal(r.code, 2);
  t.match(r.err, /grid: 'optimizer.lr' must be a non-empty array of the values to try/);
  r = await runCli(['sweep', '--config', baseFile, '--grid', path.join(dir, 'missing.json')]);
  t.equal(r.code, 2);
  t.match(r.err, /cannot read grid '.*missing.json'/);
  t.notOk(fs.existsSync(path.join(dir, 'bad')), 'nothing written');
});

interface Child {
  out: () => string;
  waitFor: (re: RegExp) => Promise<void>;
  kill: (sig: NodeJS.Signals) => void;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** `pajama sweep` over the compiled CLI in a child process. */
function sweep(out: string): Child {
  const child = spawn(process.execPath, [CLI, 'sweep', '--config', baseFile, '--grid', gridFile, '--seeds', '2', '--out', out], {
    cwd: REPO,
    env: { ...process.env, OMP_NUM_THREADS: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let text = '';
  const waiters: { re: RegExp; resolve: () => void }[] = [];
  const check = () => {
    for (const w of [...waiters]) if (w.re.test(text)) (waiters.splice(waiters.indexOf(w), 1), w.resolve());
  };
  child.stdout!.on('data', (d) => ((text += d), check()));
  child.stderr!.on('data', (d) => ((text += d), check()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('close', (code, signal) => {
      children.delete(child);
      resolve({ code, signal });
    }),
  );
  const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
  void exited.then(() => clearTimeout(timer));
  return {
    out: () => text,
    waitFor: (re) =>
      new Promise((resolve, reject) => {
        waiters.push({ re, resolve });
        check();
        void exited.then(() => setImmediate(() => waiters.some((w) => w.re === re) && reject(new Error(`exited before ${re}:\n${text}`))));
      }),
    kill: (sig) => child.kill(sig),
    exited,
  };
}

function finals(out: string) {
  return fs.readdirSync(path.join(out, 'runs')).sort().map((name) => {
    const runDir = path.join(out, 'runs', name);
    const c = latestCheckpoint(runDir)!;
    return {
      name,
      step: c.step,
      model: fs.readFileSync(path.join(c.dir, 'model.safetensors')),
      optimizer: fs.readFileSync(path.join(c.dir, 'optimizer.safetensors')),
      losses: readLossCurveRecords(path.join(runDir, 'metrics.jsonl')).steps,
    };
  });
}

const problem = cliProblem();
if (problem) {
  t.fail(`the child-process tests need the compiled CLI: ${problem}`);
} else {
  t.test('a two-group sweep end to end; stopped inside a run and killed between runs, it resumes to the same result', async (t) => {
    const straight = path.join(dir, 'straight');
    const s = sweep(straight);
    const rs = await s.exited;
    t.equal(rs.code, 0, s.out());
    t.match(s.out(), /pajama sweep: run 1\/4 wd0-s1 \(wd0, seed 1\): starting\n/);
    t.match(s.out(), /run 2\/4 ptwd-s1 \(ptwd, seed 1\): starting, ETA \d/, 'an ETA once a run finished');
    t.match(s.out(), /ptwd-s2 step 8\/8 loss \d/);
    t.match(s.out(), /pajama sweep: 4 runs in /);
    t.same(JSON.parse(fs.readFileSync(path.join(straight, 'sweep.json'), 'utf8')).runs.map((r: { name: string }) => r.name), ['wd0-s1', 'ptwd-s1', 'wd0-s2', 'ptwd-s2']);
    const want = finals(straight);
    t.same(want.map((w) => w.step), [8, 8, 8, 8]);

    const broken = path.join(dir, 'broken');
    // SIGTERM inside the second run: the step finishes, a checkpoint is written, exit 143.
    const a = sweep(broken);
    await a.waitFor(/ptwd-s1 step 3\/8/);
    a.kill('SIGTERM');
    const ra = await a.exited;
    t.equal(ra.code, 143, a.out());
    t.match(a.out(), /stopped by SIGTERM: the sweep stopped in run 2 of 4 \(ptwd-s1\) at step \d of 8; run the same sweep again to resume it/);
    // Resumed, then killed outright as the third run starts.
    const b = sweep(broken);
    await b.waitFor(/run 3\/4 wd0-s2 \(wd0, seed 2\): starting/);
    b.kill('SIGKILL');
    t.equal((await b.exited).signal, 'SIGKILL');
    t.match(b.out(), /run 1\/4 wd0-s1 \(wd0, seed 1\): finished already, skipped/);
    t.match(b.out(), /run 2\/4 ptwd-s1 \(ptwd, seed 1\): resuming from its latest checkpoint/);
    const c = sweep(broken);
    const rc = await c.exited;
    t.equal(rc.code, 0, c.out());
    t.match(c.out(), /run 2\/4 ptwd-s1 \(ptwd, seed 1\): finished already, skipped/);
    t.match(c.out(), /run 3\/4 wd0-s2 \(wd0, seed 2\): (starting|resuming)/);
    const got = finals(broken);
    t.same(got.map((g) => g.name), want.map((w) => w.name));
    for (const [i, g] of got.entries()) {
      t.equal(g.step, 8, `${g.name}: finished`);
      t.ok(g.model.equals(want[i].model), `${g.name}: model.safetensors bit-identical to the uninterrupted sweep's`);
      t.ok(g.optimizer.equals(want[i].optimizer), `${g.name}: optimizer.safetensors bit-identical`);
      t.same(g.losses, want[i].losses, `${g.name}: the loss of every step`);
    }
    // Another grid into the same directory is refused.
    const other = path.join(dir, 'other-grid.json');
    fs.writeFileSync(other, JSON.stringify({ groups: { wd0: { 'weightDecay.mode': 'constant', 'weightDecay.value': 0 } } }));
    const r = await runCli(['sweep', '--config', baseFile, '--grid', other, '--seeds', '2', '--out', broken]);
    t.equal(r.code, 2);
    t.match(r.err, /records another grid: 'groups.ptwd' is \{"weightDecay.mode":"ptwd"\} there and unset now/);
  });
}
