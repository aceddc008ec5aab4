// demo-chat.ts: the handful of ShareGPT conversations that `npm start`'s instruction-tuning stage writes and
// trains on, written for this project about the demo corpus's three sources (Moby-Dick, the State of the Union
// addresses, the build tools' source code). They are a smoke test of the SFT path (template, assistant-only
// loss, checkpoints), not a data set: a model this small learns the turn format from them, not the answers.

/** One conversation in ShareGPT's format, as `pajama sft` reads it. */
export interface ShareGptConversation {
  conversations: { from: 'system' | 'human' | 'gpt'; value: string }[];
}

/** Question and answer pairs the demo conversations are made of: [question, answer]. */
const DEMO_QA: readonly (readonly [string, string])[] = [
  ['Who tells the story of Moby-Dick?', 'Ishmael, a sailor who signs on to the whaling ship Pequod, tells the story.'],
  ['What is the name of the ship in Moby-Dick?', 'The ship is the Pequod, a whaler sailing out of Nantucket.'],
  ['Who is the captain of the Pequod?', 'Captain Ahab commands the Pequod. He lost a leg to the white whale.'],
  ['What does Ahab hunt?', 'Ahab hunts Moby Dick, the great white sperm whale.'],
  ['Who is Queequeg?', 'Queequeg is a harpooneer from the South Seas and Ishmael\'s close friend.'],
  ['Who is the first mate of the Pequod?', 'Starbuck is the first mate. He is careful and doubts the hunt.'],
  ['How does Moby-Dick begin?', 'It begins with the words "Call me Ishmael."'],
  ['Who wrote Moby-Dick?', 'Herman Melville wrote Moby-Dick. It was published in 1851.'],
  ['What is the State of the Union address?', 'It is the report that the President of the United States gives to Congress on the condition of the nation.'],
  ['Who gave the first State of the Union address?', 'George Washington gave the first one, in 1790.'],
  ['Where is the State of the Union address given?', 'It is usually given before a joint session of Congress in the Capitol.'],
  ['Why does the President give the address?', 'The Constitution asks the President to give Congress information on the state of the Union from time to time.'],
  ['What topics does the address cover?', 'It covers the economy, the budget, foreign affairs, defense and the laws the President asks Congress to pass.'],
  ['What is TypeScript?', 'TypeScript is JavaScript with static types. Its compiler checks the types and writes plain JavaScript.'],
  ['What does a .d.ts file hold?', 'A .d.ts file holds type declarations only: the shapes of values, functions and classes, without their code.'],
  ['What is node-gyp?', 'node-gyp is a tool that builds native addons for Node.js from C and C++ sources.'],
  ['What is cmake-js?', 'cmake-js builds native Node.js addons with CMake instead of gyp.'],
  ['How do you declare a constant in JavaScript?', 'Use const, as in: const answer = 42;'],
];

const DEMO_SYSTEM = 'You are a helpful assistant who answers questions about books, speeches and code in one or two sentences.';

/**
 * The demo's conversations: each question of DEMO_QA once as a single exchange, and consecutive pairs as
 * two-turn conversations, every other one with a system turn. Deterministic.
 */
export function demoConversations(): ShareGptConversation[] {
  const out: ShareGptConversation[] = [];
  DEMO_QA.forEach(([q, a], i) => {
    const turns: ShareGptConversation['conversations'] = [];
    if (i % 2 === 0) turns.push({ from: 'system', value: DEMO_SYSTEM });
    turns.push({ from: 'human', value: q }, { from: 'gpt', value: a });
    out.push({ conversations: turns });
  });
  for (let i = 0; i + 1 < DEMO_QA.length; i += 2) {
    const [[q1, a1], [q2, a2]] = [DEMO_QA[i], DEMO_QA[i + 1]];
    out.push({ conversations: [{ from: 'human', value: q1 }, { from: 'gpt', value: a1 }, { from: 'human', value: q2 }, { from: 'gpt', value: a2 }] });
  }
  return out;
}

/** The conversations as JSON Lines (one ShareGPT object per line), the form the demo writes to disk. */
export function demoConversationsJsonl(): string {
  return demoConversations().map((c) => JSON.stringify(c)).join('\n') + '\n';
}
