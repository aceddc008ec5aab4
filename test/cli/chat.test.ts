// pajama chat: a tiny checkpoint with a byte-level tokenizer; a session over piped lines replies to each (empty
// lines skipped, /reset starts over), keeps the conversation and its KV cache across turns (a turn's reply is
// the one generated from scratch for the same prompt), drops the oldest exchanges when the context is full;
// the command itself reads piped stdin in a child process; bad options exit 2.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { Readable } from 'node:stream';
import { MptModel } from '../../lib/model/mpt';
import { mptConfig, padVocab } from '../../lib/model/config';
import { mptHfConfig } from '../../lib/model/hf';
import { saveCheckpoint } from '../../lib/train/checkpoint';
import { loadModelFromCheckpoint } from '../../lib/cli/commands';
import { ChatSession, runChatSession } from '../../lib/cli/chat';
import { CHAT_STOP_STRINGS, renderChatPrompt } from '../../lib/data/chat';
import { generateFromIds } from '../../lib/eval/generate';
import { writeByteTokenizer } from '../helpers/chat-fixtures';
import { runCli } from '../helpers/cli-run';
import { REPO } from '../helpers/tiny-run';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pajama-chat-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));

const tokFile = writeByteTokenizer(path.join(dir, 'tokenizer.json'));
const shape = { dModel: 32, nHeads: 2, nLayers: 2, maxSeqLen: 256, vocabSize: padVocab(257), realVocabSize: 257 };
const runDir = path.join(dir, 'run');
{
  const model = new MptModel(mptConfig(shape), { seed: 11 });
  try {
    saveCheckpoint(runDir, 1, {
      params: model.params,
      config: mptHfConfig({ ...shape, expansionRatio: 4 }),
      trainerState: { step: 1 },
      keepLast: 1,
      tokenizer: { kind: 'hf', path: tokFile },
    });
  } finally {
    model.dispose();
  }
}

const options = { maxTokens: 12, temperature: 0, seed: 0, system: 'Be brief.' };

async function chatOver(lines: string[], o = options): Promise<{ out: string[]; turns: number; cached: number; session: ChatSession }> {
  const { model, tokenizer } = loadModelFromCheckpoint(runDir, { inference: true });
  const session = new ChatSession(model, tokenizer, o);
  t.teardown(() => {
    session.dispose();
    model.dispose();
  });
  const out: string[] = [];
  const replies = await runChatSession(session, Readable.from(lines.map((l) => `${l}\n`)), (s) => out.push(s));
  t.equal(replies, out.length);
  return { out, turns: session.turns.length, cached: session.cachedTokens, session };
}

t.test('a session replies to each line, keeps the conversation and its cache', async (t) => {
  const { out, session, cached } = await chatOver(['hi', '', 'how are you?']);
  t.equal(out.length, 2, 'two replies (the empty line is skipped)');
  t.same(session.turns.map((x) => x.role), ['user', 'assistant', 'user', 'assistant']);
  t.same(out, session.turns.filter((x) => x.role === 'assistant').map((x) => `${x.text}\n`));
  t.ok(cached > 0, `the cache holds ${cached} tokens after two turns`);
  // Each reply is what generation from scratch gives for the same prompt (the cache changes nothing).
  const { model, tokenizer } = session;
  for (const n of [1, 3]) {
    const prompt = Array.from(renderChatPrompt(tokenizer, session.turns.slice(0, n), { system: options.system }));
    const g = await generateFromIds(model, tokenizer, prompt, { maxNewTokens: 12, temperature: 0, seed: (n - 1) / 2, stop: [...CHAT_STOP_STRINGS], cache: false });
    t.equal(session.turns[n].text, g.text.trim(), `turn ${(n + 1) / 2} as from scratch`);
  }
});

t.test('/reset starts a new conversation; sampled replies follow the seed', async (t) => {
  const a = await chatOver(['hi', '/reset', 'hi'], { ...options, temperature: 1, seed: 5 });
  t.equal(a.turns, 2, 'only the turns after /reset');
  const b = await chatOver(['hi', '/reset', 'hi'], { ...options, temperature: 1, seed: 5 });
  t.same(a.out, b.out, 'the same seed, the same replies');
});

t.test('the oldest exchanges are dropped when the conversation outgrows the context', async (t) => {
  const long = 'tell me more about that, please';
  const { session } = await chatOver([long, long, long, long], { ...options, maxTokens: 30 });
  const ids = renderChatPrompt(session.tokenizer, session.turns.slice(0, -1), { system: options.system });
  t.ok(ids.length + 30 <= shape.maxSeqLen, `the last prompt (${ids.length} tokens) left room for a reply`);
  t.ok(session.turns.length < 8, `${session.turns.length} turns kept of 8`);
});

t.test('pajama chat reads piped stdin (child process)', async (t) => {
  const loader = path.join(REPO, 'node_modules/@tapjs/typescript/dist/esm/import.mjs');
  if (!fs.existsSync(loader)) {
    t.skip(`no TypeScript loader at ${loader}`);
    return;
  }
  const args = ['chat', '--checkpoint', runDir, '--temperature', '0', '--max-tokens', '12', '--system', 'Be brief.'];
  const r = spawnSync(process.execPath, [`--import=file://${loader}`, path.join(REPO, 'lib/cli/main.ts'), ...args], {
    cwd: REPO,
    input: 'hi\nhow are you?\n',
    encoding: 'utf8',
    env: { ...process.env, OMP_NUM_THREADS: '1' },
    timeout: 120_000,
  });
  t.equal(r.status, 0, r.stderr);
  const { out } = await chatOver(['hi', 'how are you?']);
  t.equal(r.stdout, out.join(''), 'the replies, one per line, as the session in-process gives them');
});

t.test('bad options exit 2', async (t) => {
  let r = await runCli(['chat']);
  t.equal(r.code, 2);
  t.match(r.err, /--checkpoint DIR is required/);
  r = await runCli(['chat', '--checkpoint', runDir, '--max-tokens', '256']);
  t.equal(r.code, 2);
  t.match(r.err, /--max-tokens 256 leaves no room for the conversation in the model's context of 256 tokens/);
  r = await runCli(['chat', '--checkpoint', runDir, '--top-p', '0']);
  t.equal(r.code, 2);
  t.match(r.err, /--top-p must be a number in \(0, 1\], got 0/);
  r = await runCli(['generate', '--checkpoint', runDir, '--prompt', 'x', '--top-p', '2']);
  t.equal(r.code, 2);
  t.match(r.err, /--top-p must be a number in \(0, 1\], got 2/);
  r = await runCli(['generate', '--checkpoint', runDir, '--prompt', 'x', '--stop', '']);
  t.equal(r.code, 2);
  t.match(r.err, /--stop must not be empty/);
});

t.test('pajama generate: --stop, --top-p and --no-cache', async (t) => {
  const base = ['generate', '--checkpoint', runDir, '--prompt', 'USER: hi', '--max-tokens', '20'];
  const full = await runCli(base);
  t.equal(full.code, 0, full.err);
  const cont = full.out.slice('USER: hi'.length);
  const uncached = await runCli([...base, '--no-cache']);
  t.equal(uncached.out, full.out, 'the same text with and without the cache (greedy, fp32)');
  const piece = cont.slice(4, 6);
  const cut = await runCli([...base, '--stop', 'zzz', '--stop', piece]);
  t.equal(cut.code, 0, cut.err);
  t.equal(cut.out, 'USER: hi' + cont.slice(0, cont.indexOf(piece)), `stops before ${JSON.stringify(piece)}`);
  const sampled = await runCli([...base, '--temperature', '1', '--top-p', '0.5', '--seed', '3']);
  t.equal(sampled.code, 0, sampled.err);
  t.match(sampled.out, /^USER: hi/);
});
