// The CLI under bad input (issue #8, item 8): every error is one line prefixed once with "pajama <command>:",
// usage errors exit 2 and failures 1; options are checked before any work; file-system failures name the
// action, the path and the meaning; a checkpoint's config errors name the file and the key; generate's
// --max-tokens is bounded by the model's context.
import t, { type Test } from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { errorExitCode, errorLine } from '../../lib/cli/main';
import { invalidArg } from '../../lib/core/errors';
import { FileSystemError } from '../../lib/core/fs-errors';
import { mptConfig } from '../../lib/model/config';
import { MptModel } from '../../lib/model/mpt';
import { mptHfConfig, saveCheckpoint } from '../../lib/train/checkpoint';
import { runCli } from '../helpers/cli-run';
import { tryMountTmpfs } from '../helpers/tmpfs';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pajama-cli-errors-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));

const run = runCli;

/** Runs argv and checks it failed with `code` and exactly one error line `pajama <command>: <message>`. */
async function fails(t: Test, argv: string[], code: number, message: RegExp): Promise<string> {
  const r = await run(argv);
  t.equal(r.code, code, `${argv.join(' ')}: exit ${code}`);
  const lines = r.err.split('\n');
  t.equal(lines.length, 1, `${argv.join(' ')}: one line (${r.err})`);
  const prefix = `pajama ${argv[0]}: `;
  t.ok(r.err.startsWith(prefix), `${argv.join(' ')}: starts with '${prefix}' (${r.err})`);
  t.notOk(r.err.slice(prefix.length).startsWith('pajama '), `${argv.join(' ')}: prefixed once (${r.err})`);
  t.match(r.err.slice(prefix.length), message);
  return r.err;
}

const file = path.join(dir, 'a-file');
fs.writeFileSync(file, 'not a directory');
const folder = path.join(dir, 'a-folder');
fs.mkdirSync(folder);
const text = path.join(dir, 'in.txt');
fs.writeFileSync(text, 'The quick brown fox jumps over the lazy dog.\n'.repeat(20));

t.test('the command name is prefixed once, for usage errors and failures', async (t) => {
  await fails(t, ['train'], 2, /^--config FILE\.json is required$/);
  await fails(t, ['prepare'], 2, /^--config DATA\.json is required$/);
  await fails(t, ['dedup'], 2, /^give --config DATA\.json, or input files/);
  await fails(t, ['tokenize', text], 2, /^--out SHARD\.bin is required$/);
  await fails(t, ['generate', '--prompt', 'x'], 2, /^--checkpoint DIR is required$/);
  await fails(t, ['demo', '--steps', '1'], 2, /^--steps must be an integer >= 3/);
  await fails(t, ['info', '--bogus'], 2, /^unknown option --bogus/);
  t.equal(errorLine('train', new Error('pajama train: pajama train: x')), 'pajama train: x', 'a message that already has the prefix');
});

t.test('commands without positional arguments reject them', async (t) => {
  await fails(t, ['info', 'extra'], 2, /^unexpected argument 'extra'/);
  await fails(t, ['generate', '--checkpoint', dir, '--prompt', 'x', 'stray'], 2, /^unexpected argument 'stray'/);
  await fails(t, ['train', '--config', file, 'stray'], 2, /^unexpected argument 'stray'/);
});

t.test('exit codes: 2 for usage errors, 1 for failures, an error may carry its own', async (t) => {
  t.equal(errorExitCode(invalidArg('bad')), 2);
  t.equal(errorExitCode(new Error('failed')), 1);
  const fsErr = new FileSystemError('writing', '/x', Object.assign(new Error('ENOSPC'), { code: 'ENOSPC', syscall: 'write' }));
  t.equal(errorExitCode(fsErr), 1, 'a file-system failure is not a usage error');
  t.equal(errorExitCode(Object.assign(new Error('stopped'), { exitCode: 143 })), 143);
  t.equal(errorExitCode('a string'), 1);
});

t.test('demo: --steps and --run-dir are checked before the corpus is built', async (t) => {
  const runDir = path.join(dir, 'demo');
  await fails(t, ['demo', '--steps', '2', '--run-dir', runDir], 2, /^--steps must be an integer >= 3 \(the demo's weight decay has 3 PTWD stages, each needs a step\), got 2$/);
  await fails(t, ['demo', '--steps', '4.5', '--run-dir', runDir], 2, /got 4\.5$/);
  t.notOk(fs.existsSync(runDir), 'nothing was built');
  await fails(t, ['demo', '--steps', '3', '--run-dir', file], 2, /^--run-dir .*a-file: cannot write there: it is a file, not a directory$/);
  await fails(t, ['demo', '--steps', '3', '--run-dir', path.join(file, 'run')], 2, new RegExp(`cannot write there: ${file} is a file, not a directory$`));
});

t.test('tokenize: --out is checked before tokenizing, and write failures name the shard', async (t) => {
  const before = fs.readFileSync(text);
  await fails(t, ['tokenize', '--out', folder, text], 2, /^--out .*a-folder: cannot write a file there: it is a directory, not a file$/);
  await fails(t, ['tokenize', '--out', path.join(file, 'x.bin'), text], 2, new RegExp(`cannot write a file there: ${file} is a file, not a directory$`));
  t.same(fs.readdirSync(folder), [], 'no temporary file left in the folder');
  t.same(fs.readFileSync(text), before, 'the input is untouched');
  await fails(t, ['tokenize', '--out', path.join(dir, 'x.bin'), path.join(dir, 'missing.txt')], 2, /missing\.txt does not exist/);
  if (fs.existsSync('/proc/self')) {
    // procfs refuses new files with ENOENT although the directory exists.
    await fails(t, ['tokenize', '--out', '/proc/pajama-x.bin', text], 1, /^writing shard \/proc\/pajama-x\.bin: ENOENT: no such file or directory$/);
  }
});

t.test('a read-only file system and a full disk (tmpfs)', async (t) => {
  const ro = tryMountTmpfs(path.join(dir, 'ro'), ['ro', 'size=64k']);
  if (!ro.mounted) {
    t.plan(0, `cannot mount a tmpfs here (${ro.reason}); test/core/fs-errors.test.ts covers the messages`);
    return;
  }
  t.teardown(ro.unmount);
  await fails(t, ['tokenize', '--out', path.join(ro.dir, 'x.bin'), text], 2, new RegExp(`cannot write a file there: ${ro.dir} is on a read-only file system$`));
  await fails(t, ['dedup', '--output', path.join(ro.dir, 'out'), text], 2, new RegExp(`^output directory ${ro.dir}/out: cannot write there: ${ro.dir} is on a read-only file system$`));
  await fails(t, ['demo', '--steps', '3', '--run-dir', path.join(ro.dir, 'demo')], 2, /read-only file system$/);

  const small = tryMountTmpfs(path.join(dir, 'small'), ['size=16k']);
  if (!small.mounted) {
    t.comment(`no full-disk case: cannot mount a small tmpfs (${small.reason})`);
    return;
  }
  t.teardown(small.unmount);
  const big = path.join(dir, 'big.txt');
  const words = 'alpha beta gamma delta epsilon zeta eta theta'.split(' ');
  fs.writeFileSync(big, Array.from({ length: 30000 }, (_, i) => words[i % 8] + ((i * 7919) % 1000)).join(' '));
  const out = path.join(small.dir, 'x.bin');
  await fails(t, ['tokenize', '--out', out, big], 1, new RegExp(`^writing shard ${out}: ENOSPC: no space left on the device$`));
  t.same(fs.readdirSync(small.dir), [], 'no partial shard or temporary file left behind');
});

t.test('prepare and dedup: a config or output that is not where it should be', async (t) => {
  await fails(t, ['prepare', '--config', folder], 2, /^cannot read config '.*a-folder': EISDIR: it is a directory$/);
  await fails(t, ['prepare', '--config', path.join(dir, 'missing.json')], 2, /^cannot read config '.*missing\.json': ENOENT: no such file or directory$/);
  await fails(t, ['prepare', '--config', path.join(file, 'data.json')], 2, new RegExp(`ENOTDIR: ${file} is a file, not a directory$`));
  await fails(t, ['dedup', '--output', file, text], 2, /^output directory .*a-file: cannot write there: it is a file, not a directory$/);
});

t.test('bench: --out is checked before the benchmark runs', async (t) => {
  await fails(t, ['bench', '--out', folder], 2, /^--out .*a-folder: cannot write a file there: it is a directory, not a file$/);
});

t.test('generate: --max-tokens is a positive integer within the model context; checkpoint config errors name file and key', async (t) => {
  await fails(t, ['generate', '--checkpoint', dir, '--prompt', 'x', '--max-tokens', '1.5'], 2, /^--max-tokens must be a positive integer, got 1\.5$/);
  await fails(t, ['generate', '--checkpoint', dir, '--prompt', 'x', '--max-tokens', '0'], 2, /^--max-tokens must be a positive integer, got 0$/);
  await fails(t, ['generate', '--checkpoint', dir, '--prompt', 'x', '--max-tokens=-3'], 2, /^--max-tokens must be a positive integer, got -3$/);
  await fails(t, ['generate', '--checkpoint', dir, '--prompt', 'x', '--top-k', '0'], 2, /^--top-k must be a positive integer, got 0$/);
  await fails(t, ['generate', '--checkpoint', dir, '--prompt', 'x', '--temperature=-1'], 2, /^--temperature must be >= 0/);
  await fails(t, ['generate', '--checkpoint', file, '--prompt', 'x'], 2, /neither a checkpoint directory nor a run directory with checkpoints \(it is a file\)$/);

  // A tiny model (context 8) saved as a checkpoint without a training config: config.json alone says its shape.
  const shape = { dModel: 16, nHeads: 2, nLayers: 1, maxSeqLen: 8, vocabSize: 50304, realVocabSize: 50257 };
  const model = new MptModel(mptConfig(shape), { precision: 'fp32', seed: 3 });
  const runDir = path.join(dir, 'run');
  let ckpt: string;
  try {
    ckpt = saveCheckpoint(runDir, 1, { params: model.params, config: mptHfConfig({ ...shape, expansionRatio: 4 }), trainerState: { step: 1 }, keepLast: 1 }).dir;
  } finally {
    model.dispose();
  }
  const configPath = path.join(ckpt, 'config.json');
  const ok = await run(['generate', '--checkpoint', runDir, '--prompt', 'Call me', '--max-tokens', '8']);
  t.equal(ok.code, 0, ok.err);
  t.match(ok.out, /^Call me/);
  await fails(t, ['generate', '--checkpoint', runDir, '--prompt', 'x', '--max-tokens', '1e12'], 2, new RegExp(`^--max-tokens 1000000000000 is more than the model's context of 8 tokens \\(max_seq_len in ${configPath}\\)`));
  await fails(t, ['generate', '--checkpoint', ckpt, '--prompt', 'x', '--max-tokens', '9'], 2, /context of 8 tokens/);

  const good = JSON.parse(fs.readFileSync(configPath, 'utf8')) as Record<string, unknown>;
  const withConfig = async (config: unknown, message: RegExp) => {
    fs.writeFileSync(configPath, typeof config === 'string' ? config : JSON.stringify(config));
    await fails(t, ['generate', '--checkpoint', ckpt, '--prompt', 'x'], 1, message);
  };
  const { max_seq_len: _drop, ...noContext } = good;
  await withConfig(noContext, new RegExp(`^${configPath}: 'max_seq_len' must be a positive integer, got nothing \\(the key is missing\\)$`));
  await withConfig({ ...good, d_model: 'wide' }, new RegExp(`^${configPath}: 'd_model' must be a positive integer, got "wide"$`));
  await withConfig('{"d_model": 16,', new RegExp(`^${configPath}: not valid JSON`));
  await withConfig('[1, 2]', new RegExp(`^${configPath}: the top level is \\[1,2\\], not an object$`));
  await withConfig({ ...good, layer_norm_epsilon: -1 }, new RegExp(`^${configPath}: 'layer_norm_epsilon' must be a positive number, got -1$`));
  await withConfig({ ...good, n_heads: 3 }, new RegExp(`^${configPath}: the architecture is not a valid MPT: .*not divisible by nHeads 3`));
  fs.writeFileSync(configPath, JSON.stringify(good));

  const statePath = path.join(ckpt, 'trainer_state.json');
  fs.writeFileSync(statePath, '{"step": 1, "trainConfig": ');
  await fails(t, ['generate', '--checkpoint', ckpt, '--prompt', 'x'], 1, new RegExp(`^${statePath}: not valid JSON`));
  fs.writeFileSync(statePath, JSON.stringify({ step: 1, trainConfig: { model: { preset: 'nope' } } }));
  await fails(t, ['generate', '--checkpoint', ckpt, '--prompt', 'x'], 1, new RegExp(`^${statePath}: its 'trainConfig' is not a valid training config: .*'nope'`));
  fs.writeFileSync(statePath, JSON.stringify({ step: 1, trainConfig: { model: { preset: 'tiny', overrides: shape, precision: 'fp32' } } }));
  await fails(t, ['generate', '--checkpoint', ckpt, '--prompt', 'x', '--max-tokens', '100'], 2, new RegExp(`context of 8 tokens \\(the training config's model\\.maxSeqLen in ${statePath}\\)`));
  fs.rmSync(statePath);
  fs.rmSync(configPath);
  await fails(t, ['generate', '--checkpoint', ckpt, '--prompt', 'x'], 1, /has no config\.json and no trainer_state\.json with a 'trainConfig'/);
});
