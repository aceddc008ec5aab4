// chat.test.ts: ShareGPT files (JSON array and JSON Lines, and the errors bad ones give), the chat template's
// text and its trained mask, chat prompts, fitting conversations to rows (split, truncate, drop), packing,
// targets, the seeded order with the rank split, and resuming a ChatLoader.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  CHAT_STOP_STRINGS,
  DEFAULT_SYSTEM_PROMPT,
  parseConversations,
  readConversations,
  renderChatPrompt,
  renderConversation,
  type ChatTurn,
} from '../../lib/data/chat';
import { ChatLoader, IGNORE_INDEX, chatEvalBatches, chatItems, type ChatItem } from '../../lib/data/chat-loader';
import { gpt2Tokenizer } from '../../lib/data/tokenizers/gpt2';
import { byteTokenizer, sampleConversations, writeShareGpt } from '../helpers/chat-fixtures';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pajama-chat-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
const bytes = byteTokenizer(path.join(dir, 'tokenizer.json'));
const gpt2 = gpt2Tokenizer();
const EOS = '<|endoftext|>';

const turns = (...pairs: [ChatTurn['role'], string][]): ChatTurn[] => pairs.map(([role, text]) => ({ role, text }));

t.test('ShareGPT files: JSON Lines and a JSON array read the same; roles mapped; a trailing user turn dropped', async (t) => {
  const convs = [
    { id: 'a', conversations: [{ from: 'human', value: 'Hi' }, { from: 'gpt', value: 'Hello!' }] },
    { conversations: [{ from: 'system', value: 'Be terse.' }, { from: 'user', value: 'Q1' }, { from: 'assistant', value: 'A1' }, { from: 'human', value: 'Q2' }, { from: 'chatgpt', value: 'A2' }] },
    { conversations: [{ from: 'human', value: 'Q' }, { from: 'gpt', value: 'A' }, { from: 'human', value: 'unanswered' }] },
  ];
  const expected = [
    turns(['user', 'Hi'], ['assistant', 'Hello!']),
    turns(['system', 'Be terse.'], ['user', 'Q1'], ['assistant', 'A1'], ['user', 'Q2'], ['assistant', 'A2']),
    turns(['user', 'Q'], ['assistant', 'A']),
  ];
  t.same(await readConversations(writeShareGpt(path.join(dir, 'a.jsonl'), convs, 'jsonl')), expected, 'JSON Lines');
  t.same(await readConversations(writeShareGpt(path.join(dir, 'a.json'), convs, 'json')), expected, 'JSON array');
  t.same(parseConversations(`\n${JSON.stringify(convs[0])}\n\n${JSON.stringify(convs[2])}\n`, 'x.jsonl'), [expected[0], expected[2]], 'blank lines are skipped');
  // The array scan: brackets, commas, quotes and backslashes inside strings, nested values, CRLF, an empty array element list.
  const tricky = [
    { meta: { tags: ['a', ['b']], n: [1, 2] }, conversations: [{ from: 'human', value: 'a ] [ } { , "quoted" \\ back\\"slash' }, { from: 'gpt', value: '},{"x": ]' }] },
    { conversations: [{ from: 'human', value: 'line\nbreak, and ünïcödé 🐳' }, { from: 'gpt', value: '' }] },
  ];
  const text = `[\r\n${tricky.map((c) => JSON.stringify(c)).join(' ,\r\n')}\r\n]\r\n`;
  t.same(parseConversations(text, 'x.json'), tricky.map((c) => c.conversations.map((x) => ({ role: x.from === 'human' ? 'user' : 'assistant', text: x.value }))), 'strings and nesting do not cut elements');
  t.throws(() => parseConversations('[ ]', 'e.json'), /e\.json: holds no conversations$/);
});

t.test('bad ShareGPT input: errors name the file, the line or array index, and the field', async (t) => {
  const line = (o: unknown) => JSON.stringify(o);
  const good = line({ conversations: [{ from: 'human', value: 'q' }, { from: 'gpt', value: 'a' }] });
  const cases: [string, string, RegExp][] = [
    ['f.jsonl', `${good}\n{"conversations": [}\n`, /^f\.jsonl: line 2: not valid JSON/],
    ['f.jsonl', `${good}\n${line({ conversations: [{ from: 'bing', value: 'q' }] })}`, /^f\.jsonl: line 2: conversations\[0\]\.from: must be one of "system", "human", "user", "gpt", "assistant", "chatgpt", got "bing"/],
    ['f.jsonl', line({ conversations: [{ from: 'human', value: 7 }] }), /^f\.jsonl: line 1: conversations\[0\]\.value: must be a string, got 7/],
    ['f.jsonl', line({ conversations: [{ from: 'human', value: 'q' }, { from: 'system', value: 's' }] }), /^f\.jsonl: line 1: conversations\[1\]\.from: "system" \(a system turn\) may only be the first turn/],
    ['f.jsonl', line({ conversations: [{ from: 'gpt', value: 'a' }] }), /^f\.jsonl: line 1: conversations\[0\]\.from: "gpt" where a user turn \("human" or "user"\) must come/],
    ['f.jsonl', line({ conversations: [{ from: 'human', value: 'q' }, { from: 'human', value: 'q' }] }), /^f\.jsonl: line 1: conversations\[1\]\.from: "human" where an assistant turn/],
    ['f.jsonl', line({ conversations: [{ from: 'human', value: 'q' }] }), /^f\.jsonl: line 1: conversations: has no assistant reply/],
    ['f.jsonl', line({ turns: [] }), /^f\.jsonl: line 1: conversations: must be an array of \{"from", "value"\} turns, got nothing/],
    ['f.json', `[${good}, {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt"}]}]`, /^f\.json: line 1: \[1\]\.conversations\[1\]\.value: must be a string, got nothing/],
    ['f.json', `[${good},\n\n 3]`, /^f\.json: line 3: \[1\]: must be an object/],
    ['f.json', `[${good},\n{"conversations": x}]`, /^f\.json: line 2: \[1\]: not valid JSON \(/],
    ['f.json', `[${good},,${good}]`, /^f\.json: line 1: \[1\]: not valid JSON \(a missing array element\)/],
    ['f.json', `[${good},]`, /^f\.json: line 1: \[1\]: not valid JSON \(a missing array element\)/],
    ['f.json', `[${good}] x`, /^f\.json: line 1: not valid JSON \(text after the closing '\]'\)/],
    ['f.json', `[${good}, {"conversations": "]`, /^f\.json: line 1: not valid JSON \(the array is not closed: a string runs to the end of the file\)/],
    ['f.jsonl', Buffer.concat([Buffer.from(`${good}\n`), Buffer.from([0x7b, 0xff, 0x7d])]) as unknown as string, /^f\.jsonl: line 2: not valid UTF-8 text/],
    // the line when the engine's message gives the position (Node 22 does, Node 20 not)
    ['f.json', '[\n{"conversations": \n[}]', /^f\.json: (line 3: )?not valid JSON \(/],
    ['f.json', '   ', /^f\.json: holds no conversations \(the file is empty\)/],
    ['f.json', '[]', /^f\.json: holds no conversations$/],
  ];
  for (const [file, text, re] of cases) t.throws(() => parseConversations(text, file), { code: 'ERR_PAJAMA_DATA', message: re }, re.source);
  const missing = path.join(dir, 'missing.jsonl');
  await t.rejects(readConversations(missing), { message: new RegExp(`^${missing}: cannot read the conversations file \\(ENOENT\\)`) });
  const bad = path.join(dir, 'bad-utf8.jsonl');
  fs.writeFileSync(bad, Buffer.from([0x7b, 0xff, 0x7d]));
  await t.rejects(readConversations(bad), { message: `${bad}: line 1: not valid UTF-8 text` });
});

t.test('the template: Vicuna-style text, EOS after each reply, the mask exactly on replies and their EOS', async (t) => {
  const conv = turns(['user', 'Hi there'], ['assistant', 'Hello! How can I help?'], ['user', 'Name a whale.'], ['assistant', 'Moby Dick.']);
  const r = renderConversation(gpt2, conv);
  t.equal(
    gpt2.decode(r.ids),
    `${DEFAULT_SYSTEM_PROMPT}\nUSER: Hi there\nASSISTANT: Hello! How can I help?${EOS}USER: Name a whale.\nASSISTANT: Moby Dick.${EOS}`,
    'the text of the template',
  );
  t.equal(r.ids.length, r.trained.length);
  const trainedIds = [...r.ids].filter((_, i) => r.trained[i] === 1);
  t.equal(gpt2.decode(trainedIds), ` Hello! How can I help?${EOS} Moby Dick.${EOS}`, 'trained: the replies and their EOS, nothing else');
  // The mask's boundaries, from the segments encoded one by one.
  const seg = (s: string) => [...gpt2.encode(s)];
  const layout: [number[], 0 | 1][] = [
    [seg(`${DEFAULT_SYSTEM_PROMPT}\n`), 0],
    [seg('USER: Hi there\nASSISTANT:'), 0],
    [[...seg(' Hello! How can I help?'), gpt2.eosId], 1],
    [seg('USER: Name a whale.\nASSISTANT:'), 0],
    [[...seg(' Moby Dick.'), gpt2.eosId], 1],
  ];
  t.same([...r.ids], layout.flatMap(([ids]) => ids), 'ids: the segments one after another');
  t.same([...r.trained], layout.flatMap(([ids, m]) => ids.map(() => m)), 'mask: 1 exactly on the reply segments');
  t.equal(r.ids[r.ids.length - 1], gpt2.eosId);

  const own = renderConversation(gpt2, turns(['system', 'You are terse.'], ['user', 'Hi'], ['assistant', 'Hi.']));
  t.equal(gpt2.decode(own.ids), `You are terse.\nUSER: Hi\nASSISTANT: Hi.${EOS}`, "a conversation's own system turn replaces the default");
  const none = renderConversation(gpt2, turns(['user', 'Hi'], ['assistant', 'Hi.']), { system: '' });
  t.equal(gpt2.decode(none.ids), `USER: Hi\nASSISTANT: Hi.${EOS}`, "system '' leaves the line out");
  t.throws(() => renderConversation(gpt2, turns(['user', 'Hi'])), /renderConversation: the conversation has no assistant turn/);
  t.throws(() => renderConversation(gpt2, turns(['assistant', 'Hi'])), /renderConversation: turns\[0\] is an assistant turn where a user turn must come/);
  t.throws(() => renderConversation(gpt2, turns(['user', 'a'], ['system', 'b'])), /turns\[1\] is a system turn; only the first turn may be one/);
});

t.test('chat prompts end with the assistant prefix and are a prefix of the rendered conversation', async (t) => {
  const history = turns(['system', 'S'], ['user', 'Q1'], ['assistant', 'A1'], ['user', 'Q2']);
  const prompt = renderChatPrompt(gpt2, history);
  t.equal(gpt2.decode(prompt), `S\nUSER: Q1\nASSISTANT: A1${EOS}USER: Q2\nASSISTANT:`);
  const full = renderConversation(gpt2, [...history, { role: 'assistant', text: 'A2' }]);
  t.same([...full.ids.subarray(0, prompt.length)], [...prompt], 'the prompt is the conversation up to the reply');
  t.equal(gpt2.decode(full.ids.subarray(0, prompt.length).filter((_, i) => full.trained[i] === 1)), ` A1${EOS}`, 'of the prompt, only the earlier reply is trained');
  t.throws(() => renderChatPrompt(gpt2, history.slice(0, 3)), /renderChatPrompt: a chat prompt must end with a user turn/);
  t.ok(CHAT_STOP_STRINGS.includes('USER:'), 'generation stops at the next user turn');
  t.ok(Object.isFrozen(CHAT_STOP_STRINGS));
});

/** A conversation's rendering with the byte tokenizer: token counts are byte counts. */
const sys = (s: string) => ({ system: s });

t.test('conversations longer than a row: split at exchange boundaries, or truncated; pieces without a trained target dropped', async (t) => {
  const conv = turns(['user', 'aaaa'], ['assistant', 'bbbb'], ['user', 'cccc'], ['assistant', 'dddd'], ['user', 'eeee'], ['assistant', 'ffff']);
  const whole = renderConversation(bytes, conv, sys('S'));
  // header "S\n" = 2 tokens; each exchange "USER: xxxx\nASSISTANT:" (21) + " yyyy" (5) + EOS = 27
  t.equal(whole.ids.length, 2 + 3 * 27);
  const fits = chatItems(bytes, [conv], { maxTokens: 83, ...sys('S') });
  t.equal(fits.items.length, 1, 'a conversation that fits is one item');
  t.same([...fits.items[0].ids], [...whole.ids]);
  const split = chatItems(bytes, [conv], { maxTokens: 60, ...sys('S') });
  t.equal(split.items.length, 2, '2 + 27 + 27 = 56 tokens fit in 60: two exchanges, then one');
  t.same([...split.items[0].ids], [...renderConversation(bytes, conv.slice(0, 4), sys('S')).ids], 'each piece is the conversation of its exchanges');
  t.same([...split.items[1].ids], [...renderConversation(bytes, conv.slice(4), sys('S')).ids], 'with the system line again');
  t.same([...split.items[1].trained], [...renderConversation(bytes, conv.slice(4), sys('S')).trained]);
  t.match(split.stats, { conversations: 1, items: 2, split: 1, truncated: 0, dropped: 0, tokens: 56 + 29 });
  const cut = chatItems(bytes, [conv], { maxTokens: 26, ...sys('S') });
  t.equal(cut.items.length, 3, 'an exchange longer than a row is truncated to it');
  t.ok(cut.items.every((it) => it.ids.length === 26));
  t.match(cut.stats, { split: 1, truncated: 3, dropped: 0 });
  t.same([...cut.items[0].trained], [...renderConversation(bytes, conv.slice(0, 2), sys('S')).trained.subarray(0, 26)]);
  const truncated = chatItems(bytes, [conv], { maxTokens: 60, overflow: 'truncate', ...sys('S') });
  t.equal(truncated.items.length, 1);
  t.same([...truncated.items[0].ids], [...whole.ids.subarray(0, 60)], "'truncate' keeps the first seqLen + 1 tokens");
  t.match(truncated.stats, { split: 0, truncated: 1 });
  const dropped = chatItems(bytes, [conv], { maxTokens: 23, ...sys('S') });
  t.equal(dropped.items.length, 0, 'no reply token within 23 tokens (2 + 21 of prompt): nothing to train on');
  t.match(dropped.stats, { dropped: 3, items: 0 });
  t.throws(() => chatItems(bytes, [conv], { maxTokens: 1 }), /maxTokens must be an integer >= 2/);
});

/** Items of exactly the given lengths, trained from the middle on (ids are the item's number). */
function fakeItems(lengths: number[]): ChatItem[] {
  return lengths.map((n, k) => {
    const ids = new Int32Array(n).fill(k);
    const trained = new Uint8Array(n);
    trained.fill(1, Math.floor(n / 2));
    let trainedTargets = 0;
    for (let i = 1; i < n; i++) trainedTargets += trained[i];
    return { ids, trained, trainedTargets };
  });
}

t.test('packing: whole items greedily into seqLen + 1, EOS padding, targets only where the next token is trained', async (t) => {
  const items = fakeItems([5, 4, 6, 3, 9]);
  const batches = chatEvalBatches(items, 8, 2, 99);
  // rows of 9 tokens: [5 4] [6 3] [9]
  t.equal(batches.length, 2);
  const row = (b: number, r: number) => ({ inputs: [...batches[b].inputs.subarray(r * 8, r * 8 + 8)], targets: [...batches[b].targets.subarray(r * 8, r * 8 + 8)] });
  const I = IGNORE_INDEX;
  t.same(row(0, 0), { inputs: [0, 0, 0, 0, 0, 1, 1, 1], targets: [I, 0, 0, 0, I, I, 1, 1] }, 'items 0 and 1; no target across the item boundary');
  t.same(row(0, 1), { inputs: [2, 2, 2, 2, 2, 2, 3, 3], targets: [I, I, 2, 2, 2, I, 3, 3] });
  t.same(row(1, 0), { inputs: [4, 4, 4, 4, 4, 4, 4, 4], targets: [I, I, I, 4, 4, 4, 4, 4] });
  t.same(row(1, 1), { inputs: Array(8).fill(99), targets: Array(8).fill(I) }, 'the last batch is completed with ignored padding rows');
  const single = chatEvalBatches(items, 8, 1, 99, { pack: false });
  t.equal(single.length, 5, 'without packing, one item a row');
  t.same([...single[1].inputs], [1, 1, 1, 1, 99, 99, 99, 99]);
  t.same([...single[1].targets], [I, 1, 1, I, I, I, I, I]);
  t.equal(chatEvalBatches(items, 8, 2, 99, { maxBatches: 1 }).length, 1);
  t.throws(() => chatEvalBatches(fakeItems([10]), 8, 1, 99), /item 0 holds 10 tokens, more than a row of seqLen \+ 1 = 9/);
});

t.test('ChatLoader: seeded epochs, the rank split of TokenLoader, trained-token counts, exact resume', async (t) => {
  const items = chatItems(bytes, sampleConversations(23).map((c) => parseConversations(JSON.stringify(c), 'x')[0]), { maxTokens: 65, system: 'Sys' }).items;
  const make = (o: Partial<ConstructorParameters<typeof ChatLoader>[0]> = {}) => new ChatLoader({ items, seqLen: 64, batchSize: 2, seed: 5, vocabSize: 257, eosId: 256, ...o });
  const a = make();
  const batches = Array.from({ length: 60 }, () => a.next());
  // every item exactly once per epoch
  const placed = batches.flatMap((b) => b.rows.flatMap((r) => r.items));
  t.same([...placed.slice(0, items.length)].sort((x, y) => x - y), items.map((_, i) => i), 'the first epoch places every item once');
  t.notSame(placed.slice(0, items.length), items.map((_, i) => i), 'in a shuffled order');
  t.notSame(placed.slice(items.length, 2 * items.length), placed.slice(0, items.length), 'each epoch has its own order');
  t.ok(a.epochs > 1, `${a.epochs.toFixed(2)} epochs`);
  // packing: rows hold whole items, at most seqLen + 1 tokens, as many as fit in order
  for (const b of batches) {
    for (const r of b.rows) t.ok(r.items.reduce((n, k) => n + items[k].ids.length, 0) <= 65);
  }
  const rows = batches.flatMap((b) => b.rows);
  for (let r = 0; r + 1 < rows.length; r++) {
    const used = rows[r].items.reduce((n, k) => n + items[k].ids.length, 0);
    t.ok(used + items[rows[r + 1].items[0]].ids.length > 65, `row ${r} is closed only when the next item does not fit`);
  }
  // targets and counts
  for (const b of batches) {
    t.equal(b.trainedTokens, b.targets.filter((x) => x !== IGNORE_INDEX).length, 'trainedTokens counts the targets that carry a loss');
    t.equal(b.blockTrainedTokens, b.trainedTokens, 'one rank: the block is the batch');
  }
  t.same(make().next(), batches[0], 'the seed fixes the order');
  t.notSame(make({ seed: 6 }).next().rows, batches[0].rows, 'another seed, another order');
  // two ranks deal each block of 4 rows: rank r takes rows 2r, 2r + 1; the one-rank loader with batch 2 sees the same rows
  const ranks = [0, 1].map((rank) => make({ rank, worldSize: 2 }));
  for (let k = 0; k < 5; k++) {
    const [b0, b1] = ranks.map((l) => l.next());
    t.same(b0.inputs, batches[2 * k].inputs, `rank 0's batch ${k} is batch ${2 * k} of one rank`);
    t.same(b1.targets, batches[2 * k + 1].targets, `rank 1's batch ${k} is batch ${2 * k + 1} of one rank`);
    t.equal(b0.blockTrainedTokens, batches[2 * k].trainedTokens + batches[2 * k + 1].trainedTokens, 'the block counts every rank');
    t.equal(b1.blockTrainedTokens, b0.blockTrainedTokens);
  }
  // resume mid-epoch and across an epoch boundary
  for (const at of [3, 30]) {
    const b = make();
    for (let k = 0; k < at; k++) b.next();
    const state = JSON.parse(JSON.stringify(b.state()));
    const c = make();
    c.restore(state);
    t.same(c.state(), b.state(), `at batch ${at}: the restored state is the saved one`);
    t.ok(at < 20 || c.epochs > 1, `resumed at ${at}: ${c.epochs.toFixed(2)} epochs`);
    for (let k = at; k < 40; k++) t.same(c.next(), batches[k], `resumed at ${at}: batch ${k} as uninterrupted`);
  }
  const unpacked = make({ pack: false });
  const ub = Array.from({ length: 10 }, () => unpacked.next());
  t.ok(ub.every((b) => b.rows.every((r) => r.items.length === 1)), 'pack false: one item a row');
  t.same(ub.flatMap((b) => b.rows.flatMap((r) => r.items)), placed.slice(0, 20), 'in the same seeded order');
  const state = a.state();
  t.throws(() => make({ items: items.slice(1) }).restore(state), new RegExp(`ChatLoader\\.restore: the state is for other conversations \\(${items.length} items`));
  t.throws(() => make({ pack: false }).restore(state), /the state is for pack true, this loader has pack false/);
  t.throws(() => make().restore({ version: 1 } as never), /not a chat loader state \(version 3\): it is a state of a token-shard loader/);
  t.throws(() => make({ items: fakeItems([70]) }), /items\[0\] holds 70 tokens, more than a row of seqLen \+ 1 = 65/);
  a.close();
  t.throws(() => a.next(), { code: 'ERR_PAJAMA_DISPOSED' });
});
