// The run-directory lock: one trainer per run directory, the holder named when a second one starts; the
// lock is released by dispose() and on process exit; a stale lock of a dead process is taken over with a
// warning; a lock from another host or an unknown file is never taken silently.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { Trainer } from '../../lib/train/trainer';
import { LOCK_FILE, RunLock, RunLockedError } from '../../lib/train/lock';
import { writeTinyShard, tinyConfig } from '../helpers/tiny-run';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pajama-lock-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
const shard = writeTinyShard(path.join(dir, 'train.bin'), 60, 1);

/** The pid of a process that has exited (and so is not alive). */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(r.stdout);
}

t.test('a second trainer on the same run directory fails naming the holder; dispose releases', async (t) => {
  const runDir = path.join(dir, 'two');
  const a = await Trainer.create(tinyConfig(runDir, shard, { steps: 4 }), { progress: false });
  const lockFile = path.join(runDir, LOCK_FILE);
  const info = JSON.parse(fs.readFileSync(lockFile, 'utf8'));
  t.equal(info.pid, process.pid);
  t.equal(info.hostname, os.hostname());
  t.type(info.startedAt, 'string');
  await t.rejects(Trainer.create(tinyConfig(runDir, shard, { steps: 4 }), { progress: false }), {
    name: 'RunLockedError',
    code: 'ERR_PAJAMA_RUN_LOCKED',
    message: new RegExp(`run directory .*two is in use by this process \\(pid ${process.pid}\\), by another trainer, since ${info.startedAt.replace(/\./g, '\\.')}`),
  });
  await a.step();
  const metrics = fs.readFileSync(path.join(runDir, 'metrics.jsonl'), 'utf8');
  t.equal(metrics.split('\n').filter((l) => l.includes('"type":"plan"')).length, 1, 'the refused trainer wrote nothing to metrics.jsonl');
  a.dispose();
  t.notOk(fs.existsSync(lockFile), 'dispose() removed the lock');
  const b = await Trainer.create(tinyConfig(runDir, shard, { steps: 4 }), { progress: false });
  t.ok(fs.existsSync(lockFile), 'the next trainer takes it');
  b.dispose();
});

t.test('a live holder in another process is named with pid, host, start time and command', async (t) => {
  const runDir = path.join(dir, 'live');
  fs.mkdirSync(runDir);
  const holder = { pid: process.ppid, hostname: os.hostname(), startedAt: '2026-01-02T03:04:05.000Z', command: 'pajama train --config x.json', token: 'feed' };
  fs.writeFileSync(path.join(runDir, LOCK_FILE), JSON.stringify(holder));
  const e = t.throws(() => RunLock.acquire(runDir)) as unknown as RunLockedError;
  t.type(e, RunLockedError);
  t.match(e.message, `is in use by pid ${process.ppid} on ${os.hostname()}, started 2026-01-02T03:04:05.000Z (pajama train --config x.json)`);
  t.same(e.holder, holder);
  t.same(JSON.parse(fs.readFileSync(path.join(runDir, LOCK_FILE), 'utf8')), holder, 'the holder keeps its lock');
});

t.test('a stale lock (same host, dead pid) is taken over with a warning', async (t) => {
  const runDir = path.join(dir, 'stale');
  fs.mkdirSync(runDir);
  const pid = deadPid();
  fs.writeFileSync(path.join(runDir, LOCK_FILE), JSON.stringify({ pid, hostname: os.hostname(), startedAt: '2026-01-01T00:00:00.000Z', command: 'killed', token: 'dead' }));
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(w.message);
  process.on('warning', onWarning);
  const tr = await Trainer.create(tinyConfig(runDir, shard, { steps: 4 }), { progress: false });
  await new Promise((r) => setImmediate(r));
  process.removeListener('warning', onWarning);
  t.match(warnings.join('\n'), new RegExp(`took over the stale lock .*pid ${pid} on ${os.hostname()}.*no longer running`));
  t.equal(JSON.parse(fs.readFileSync(path.join(runDir, LOCK_FILE), 'utf8')).pid, process.pid);
  t.same(fs.readdirSync(runDir).filter((f) => f.includes('.tmp-')), [], 'no temporary lock files are left');
  tr.dispose();
});

t.test('a lock from another host, or a file that is not a lock, is not taken', async (t) => {
  const runDir = path.join(dir, 'foreign');
  fs.mkdirSync(runDir);
  const lock = path.join(runDir, LOCK_FILE);
  fs.writeFileSync(lock, JSON.stringify({ pid: deadPid(), hostname: 'node-17.cluster', startedAt: '2026-01-01T00:00:00.000Z', command: 'pajama train', token: 'x' }));
  t.throws(() => RunLock.acquire(runDir), { code: 'ERR_PAJAMA_RUN_LOCKED', message: /in use by pid \d+ on node-17\.cluster.*cannot be checked from .*delete .*\.lock if that process is gone/ });
  fs.writeFileSync(lock, 'garbage');
  t.throws(() => RunLock.acquire(runDir), { message: /\.lock exists but is not a pajama lock file/ });
  t.equal(fs.readFileSync(lock, 'utf8'), 'garbage');
});

t.test('release only removes its own lock, and the process exit releases a lock still held', async (t) => {
  const runDir = path.join(dir, 'own');
  fs.mkdirSync(runDir);
  const l = RunLock.acquire(runDir, 'test');
  fs.rmSync(l.file);
  const other = RunLock.acquire(runDir, 'another');
  l.release();
  t.ok(fs.existsSync(other.file), "an old holder's release leaves the new holder's lock");
  other.release();
  t.notOk(fs.existsSync(other.file));
  const script = `const { RunLock } = require(${JSON.stringify(path.resolve(__dirname, '../../dist/lib/train/lock.js'))}); RunLock.acquire(${JSON.stringify(runDir)}); process.exit(3);`;
  if (!fs.existsSync(path.resolve(__dirname, '../../dist/lib/train/lock.js'))) return t.skip('dist is not built');
  const r = spawnSync(process.execPath, ['-e', script]);
  t.equal(r.status, 3);
  t.notOk(fs.existsSync(path.join(runDir, LOCK_FILE)), 'process.exit released it');
});
