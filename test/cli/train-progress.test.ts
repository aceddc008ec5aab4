// `pajama train`'s progress bar lives in the CLI and listens to the trainer's events: the line it draws for
// a step, where it ends its line, and the CLI drawing it on a terminal (step lines otherwise).
import t from 'tap';
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { TrainingProgressBar } from '../../lib/cli/progress';
import { main } from '../../lib/cli/main';
import type { StepMetrics } from '../../lib/train/metrics';
import { tinyConfig, writeTinyShard } from '../helpers/tiny-run';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pajama-train-progress-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));

function metrics(step: number): StepMetrics {
  return {
    step,
    loss: 5.123456,
    lr: 0.000321,
    weightDecay: 0.5,
    ptwdStage: 1,
    gradNorm: 1,
    skipped: false,
    nonFiniteGradients: 0,
    tokens: 64 * step,
    tokensPerSec: 1234.56,
    mfu: 0.01234,
    stepSec: 0.05,
    elapsedSec: 0.05 * step,
    sources: {},
  };
}

t.test('the bar: one line redrawn per step, ended before an evaluation and by end()', async (t) => {
  const written: string[] = [];
  const stream = { write: (s: string) => written.push(s) } as unknown as NodeJS.WritableStream;
  const events = new EventEmitter();
  const bar = new TrainingProgressBar(events as never, 8, stream);
  events.emit('step', metrics(2));
  t.same(written, ['\r[######------------------] 2/8 loss 5.1235 lr 3.21e-4 wd 0.5 1235 tok/s MFU 1.2%   ']);
  events.emit('step', metrics(8));
  t.match(written[1], /^\r\[#{24}\] 8\/8 /, 'full at the last step');
  events.emit('eval', { step: 8, losses: {} });
  t.equal(written[2], '\n', 'an evaluation starts on a line of its own');
  bar.end();
  t.equal(written.length, 3, 'end() writes nothing when no bar is drawn');
  events.emit('step', metrics(3));
  bar.end();
  t.equal(written[4], '\n', 'end() ends a drawn bar');
});

t.test('pajama train draws the bar on a terminal and prints step lines otherwise', async (t) => {
  const shard = writeTinyShard(path.join(dir, 'train.bin'), 60, 1);
  const run = async (name: string, tty: boolean) => {
    const cfg = path.join(dir, `${name}.json`);
    fs.writeFileSync(cfg, JSON.stringify(tinyConfig(path.join(dir, name), shard, { steps: 3, data: { train: [shard], validation: { v: shard } }, eval: { every: 0, batches: 1 } })));
    const seen: string[] = [];
    const stderr = process.stderr as NodeJS.WriteStream & { isTTY: boolean };
    const saved = { log: console.log, error: console.error, write: stderr.write, isTTY: stderr.isTTY };
    console.log = (...a: unknown[]) => void seen.push(`out ${a.join(' ')}`);
    console.error = (...a: unknown[]) => void seen.push(`err ${a.join(' ')}`);
    stderr.write = ((c: string | Uint8Array) => seen.push(`tty ${String(c)}`) > 0) as typeof stderr.write;
    stderr.isTTY = tty;
    try {
      return { code: await main(['train', '--config', cfg]), seen };
    } finally {
      console.log = saved.log;
      console.error = saved.error;
      stderr.write = saved.write;
      stderr.isTTY = saved.isTTY;
    }
  };

  const tty = await run('tty', true);
  t.equal(tty.code, 0, tty.seen.join('\n'));
  const bars = tty.seen.filter((s) => s.startsWith('tty \r['));
  t.equal(bars.length, 3, 'one bar per step');
  t.match(bars[2], /^tty \r\[#{24}\] 3\/3 loss \d+\.\d{4} lr \S+ wd \S+ \d+ tok\/s MFU \d+\.\d%   $/);
  const evalAt = tty.seen.findIndex((s) => s.startsWith('out eval @ step 3: v '));
  t.ok(evalAt > 0, 'the final evaluation is printed');
  t.equal(tty.seen[evalAt - 1], 'tty \n', 'after the bar ends its line');
  t.notOk(tty.seen.some((s) => s.startsWith('out step ')), 'no step lines on a terminal');
  t.match(tty.seen[tty.seen.length - 1], /^out pajama train: done at step 3, final loss \d+\.\d{4} \(step 3\); checkpoint /);

  const plain = await run('plain', false);
  t.equal(plain.code, 0, plain.seen.join('\n'));
  t.notOk(plain.seen.some((s) => s.startsWith('tty ')), 'nothing drawn without a terminal');
  t.same(
    plain.seen.filter((s) => s.startsWith('out step ')).map((s) => s.split(' loss ')[0]),
    ['out step 1/3', 'out step 2/3', 'out step 3/3'],
    'a step line per step (logEvery 1)',
  );
});
