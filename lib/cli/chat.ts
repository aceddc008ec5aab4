// chat.ts: `pajama chat`, an interactive conversation with a checkpoint. Each line read from the input (a
// terminal, or a pipe: `printf 'hi\n' | pajama chat --checkpoint DIR`) is a user turn; the conversation so far
// is rendered with the chat template of data/chat.ts (renderChatPrompt: the system line, the turns, then
// "ASSISTANT:") and the model writes the reply through the key/value cache (eval/generate.ts), stopping at EOS,
// at the template's CHAT_STOP_STRINGS (the model starting the next user turn itself) or after maxTokens.
// The reply (trimmed) joins the conversation as an assistant turn. One cache lives for the whole session: the
// next turn's prompt starts with the tokens the cache already holds, so only the new part is run (generate
// truncates the cache to the longest prefix it shares with the prompt; a reply that re-encodes differently
// from the tokens that were generated costs only the tokens after the difference). When the rendered
// conversation leaves fewer than maxTokens of the model's context, the oldest exchanges are dropped (the system
// line stays), and the cache is filled again from the shortened prompt.
// Lines: an empty line is skipped; "/reset" starts a new conversation. Turn n (from 0) samples with seed + n.
import * as readline from 'node:readline';
import { invalidArg } from '../core/errors';
import { CHAT_STOP_STRINGS, renderChatPrompt, type ChatTurn } from '../data/chat';
import type { Tokenizer } from '../data/tokenizers/base';
import { generateFromIds, type LogitsCache, type LogitsModel } from '../eval/generate';

export interface ChatSessionOptions {
  /** Tokens per reply at most. */
  maxTokens: number;
  temperature: number;
  topK?: number;
  topP?: number;
  seed: number;
  /** The system line; undefined: the template's default (DEFAULT_SYSTEM_PROMPT); '' for none. */
  system?: string;
}

/** A conversation in progress over one model and its cache. */
export class ChatSession {
  readonly turns: ChatTurn[] = [];
  #cache: LogitsCache;
  #replies = 0;

  constructor(
    readonly model: LogitsModel & { createCache(options: { batch?: number; maxLen?: number }): LogitsCache },
    readonly tokenizer: Tokenizer,
    readonly options: ChatSessionOptions,
  ) {
    const context = model.config.maxSeqLen;
    if (!Number.isSafeInteger(options.maxTokens) || options.maxTokens < 1 || options.maxTokens >= context) {
      throw invalidArg(`chat: max tokens must be an integer in 1..${context - 1} (below the model's context of ${context}), got ${options.maxTokens}`);
    }
    this.#cache = model.createCache({ batch: 1, maxLen: context });
  }

  /** Tokens of the conversation the cache holds (prompt and reply tokens run so far). */
  get cachedTokens(): number {
    return this.#cache.length;
  }

  /** The prompt of the turns so far, the oldest exchanges dropped until a reply of maxTokens fits the context. */
  #prompt(): number[] {
    const system = this.options.system;
    const template = system === undefined ? {} : { system };
    const room = this.model.config.maxSeqLen - this.options.maxTokens;
    const head = this.turns[0]?.role === 'system' ? 1 : 0;
    for (;;) {
      const ids = Array.from(renderChatPrompt(this.tokenizer, this.turns, template));
      if (ids.length <= room || this.turns.length - head <= 1) return ids;
      this.turns.splice(head, 2); // the oldest user turn and its reply
    }
  }

  /** The assistant's reply to `text`, added to the conversation with it. */
  async reply(text: string): Promise<string> {
    this.turns.push({ role: 'user', text });
    const o = this.options;
    const g = await generateFromIds(
      this.model,
      this.tokenizer,
      this.#prompt(),
      {
        maxNewTokens: o.maxTokens,
        temperature: o.temperature,
        ...(o.topK !== undefined ? { topK: o.topK } : {}),
        ...(o.topP !== undefined ? { topP: o.topP } : {}),
        seed: o.seed + this.#replies++,
        stop: [...CHAT_STOP_STRINGS],
      },
      this.#cache,
    );
    const answer = g.text.trim();
    this.turns.push({ role: 'assistant', text: answer });
    return answer;
  }

  /** Forgets the conversation (the cache is reused from its start). */
  reset(): void {
    this.turns.length = 0;
    this.#cache.truncate(0);
  }

  dispose(): void {
    this.#cache.dispose();
  }
}

/**
 * Runs a chat over `input` lines, writing each reply with `write` (a prompt "> " first when `interactive`).
 * Resolves when the input ends.
 */
export async function runChatSession(session: ChatSession, input: NodeJS.ReadableStream, write: (text: string) => void, interactive = false): Promise<number> {
  const rl = readline.createInterface({ input, terminal: false, crlfDelay: Infinity });
  let replies = 0;
  if (interactive) write('> ');
  for await (const raw of rl) {
    const line = raw.trim();
    if (line === '/reset') {
      session.reset();
      if (interactive) write('(a new conversation)\n> ');
      continue;
    }
    if (line !== '') {
      const answer = await session.reply(line);
      write(`${answer}\n`);
      replies++;
    }
    if (interactive) write('> ');
  }
  return replies;
}
