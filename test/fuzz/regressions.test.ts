// regressions.test.ts: the faults the fuzzer found (scripts/fuzz.js; inputs kept in test/fuzz/crashes/), each
// checked by its message, so that the test fails on the old behaviour even where it was only slow.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PajamaDataError } from '../../lib/data/errors';
import { JsonlDocumentReader } from '../../lib/data/corpus/jsonl';
import { resolvePrepareConfig } from '../../lib/data/corpus/prepare/prepare';
import { resolveTrainConfig } from '../../lib/train/config';

t.test('configs reject the keys every object inherits, like any unknown key', async (t) => {
  for (const key of ['valueOf', 'constructor', 'toString', '__proto__']) {
    const top = JSON.parse(`{"${key}": {"x": 1}}`);
    t.throws(() => resolveTrainConfig(top), { code: 'ERR_PAJAMA_INVALID_ARG', message: new RegExp(`unknown key '${key}'`) }, `train config: ${key}`);
    const nested = JSON.parse(`{"optimizer": {"${key}": 1}}`);
    t.throws(() => resolveTrainConfig(nested), { message: new RegExp(`unknown key 'optimizer.${key}'`) }, `train config: optimizer.${key}`);
    const prepare = JSON.parse(`{"inputs": ["a.jsonl"], "dedup": {"${key}": "global"}}`);
    t.throws(() => resolvePrepareConfig(prepare, os.tmpdir()), { code: 'ERR_PAJAMA_INVALID_ARG', message: new RegExp(`unknown key 'dedup.${key}'`) }, `prepare config: dedup.${key}`);
  }
});

t.test('a zstd frame asking for a huge window is corrupt, not a giant allocation', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pajama-zstd-window-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  // The fuzzer's 24-byte input: frame header with window descriptor 0xa4 (1.5 GiB), then an RLE block.
  const file = path.join(dir, 'big-window.jsonl.zst');
  fs.writeFileSync(file, Buffer.from('28b52ffd00a4920000000000020000000000000000004128', 'hex'));
  const read = async (strict: boolean) => {
    const it = new JsonlDocumentReader({ inputs: [file], defaultSource: 'x', strict })[Symbol.asyncIterator]();
    let r;
    while (!(r = await it.next()).done);
    return r.value;
  };
  const rss = process.memoryUsage().rss;
  const stats = await read(false);
  t.equal(stats.corruptFiles, 1);
  t.match(stats.malformedSamples[0].reason, /frame 1 needs a 1610612736-byte window, more than the 134217728 bytes \(128 MiB\) that zstd -d decodes/);
  t.ok(process.memoryUsage().rss - rss < 256 * 2 ** 20, 'no window was allocated');
  await t.rejects(read(true), PajamaDataError);
  // A single-segment frame whose content size is the window: 2^32 bytes claimed in a 16-byte file.
  fs.writeFileSync(file, Buffer.concat([Buffer.from('28b52ffde0', 'hex'), Buffer.from('0000000001000000', 'hex'), Buffer.from('010000', 'hex')]));
  const single = await read(false);
  t.match(single.malformedSamples[0].reason, /frame 1 needs a 4294967296-byte buffer \(its content size\)/);
});
