// chat.ts: conversations for instruction tuning (`pajama sft`) and chat: ShareGPT-format files read into turns,
// and the chat template that turns them into token ids with a mask of the tokens the loss covers.
//
// Files. ShareGPT's format: objects `{"conversations": [{"from": ..., "value": ...}, ...]}` (other keys, such
// as "id", are ignored), either as one JSON array of them (a file whose first non-blank character is '[') or
// as JSON Lines, one object per line (blank lines skipped). "from" names the role:
//   "system"                          -> system
//   "human" or "user"                 -> user
//   "gpt", "assistant" or "chatgpt"   -> assistant
// "value" must be a string. Errors name the file, the line (and in an array the element's index), and the
// field: `chat.jsonl: line 3: conversations[2].from: ...`, `chat.json: line 40: [4].conversations: ...`.
// An array is cut into its elements by a scan of the bytes and each is parsed on its own, so files larger
// than V8's longest string read too.
//
// Turns. A conversation is an optional system turn (first only), then user and assistant turns alternating,
// starting with a user turn, with at least one assistant turn. A last user turn that has no reply is dropped
// on reading (ShareGPT dumps often end so; nothing follows it to train on).
//
// Template: Vicuna v1.1's layout (the ShareGPT-tuned models of the paper's time used it), one turn to a line:
//
//   {system}\n
//   USER: {user text}\nASSISTANT: {assistant text}<EOS>USER: {user text}\nASSISTANT: {assistant text}<EOS>...
//
// where <EOS> is the tokenizer's end-of-text id (GPT-2's <|endoftext|>). {system} is the conversation's own
// system turn, else the default system prompt (DEFAULT_SYSTEM_PROMPT, Vicuna's; `system: ''` leaves the line
// out, with its '\n'). The text is encoded segment by segment, so the mask boundaries are exact and a prompt
// is a prefix of the conversation it starts:
//   "{system}\n"                        not trained
//   "USER: {text}\nASSISTANT:"          not trained (the role prefixes and the user's text)
//   " {text}" + <EOS>                   trained: the reply (its leading space belongs to its first word, as
//                                       BPE tokenizers merge it) and the EOS that ends it
// A chat prompt (renderChatPrompt) renders the turns so far the same way, ending with "ASSISTANT:"; the model
// then writes " {reply}<EOS>". Generation stops at EOS or at CHAT_STOP_STRINGS (a model that starts the next
// user turn itself).
//
// The tokenizer is taken structurally (ChatTokenizer: what this file uses of data/tokenizers' Tokenizer), so
// this stage of data/ does not import the tokenizers' stage.
import * as fs from 'node:fs';
import { invalidArg } from '../core/errors';
import { PajamaDataError } from './errors';

/** One turn of a conversation. */
export interface ChatTurn {
  role: 'system' | 'user' | 'assistant';
  text: string;
}

/** What the template needs of a tokenizer (data/tokenizers' Tokenizer has it). */
export interface ChatTokenizer {
  /** Ids are in [0, vocabSize). */
  readonly vocabSize: number;
  /** Written after every assistant reply. */
  readonly eosId: number;
  encode(text: string): number[] | Uint32Array;
}

/** Vicuna v1.1's system prompt: the system line of a conversation that has no system turn. */
export const DEFAULT_SYSTEM_PROMPT =
  "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, detailed, and polite answers to the user's questions.";

/** The template's role prefixes. */
export const CHAT_USER_PREFIX = 'USER: ';
export const CHAT_ASSISTANT_PREFIX = 'ASSISTANT:';

/** Where generation stops besides EOS: the start of the next user turn (the newline form first, so it is cut too). */
export const CHAT_STOP_STRINGS: readonly string[] = Object.freeze(['\nUSER:', 'USER:']);

/** ShareGPT's "from" values and the role each means. */
export const SHAREGPT_ROLES: Readonly<Record<string, ChatTurn['role']>> = Object.freeze({
  system: 'system',
  human: 'user',
  user: 'user',
  gpt: 'assistant',
  assistant: 'assistant',
  chatgpt: 'assistant',
});

export interface ChatTemplateOptions {
  /**
   * The system line of a conversation without a system turn; '' for none (no line). Defaults to
   * DEFAULT_SYSTEM_PROMPT.
   */
  system?: string;
}

/** A rendered conversation: its token ids, and 1 where the token is trained (assistant replies and their EOS). */
export interface RenderedConversation {
  ids: Int32Array;
  trained: Uint8Array;
}

/**
 * Checks that `turns` follow the rule above (`where` prefixes the message; the turn's index is named):
 * an optional first system turn, then user and assistant alternating from a user turn. With `ending`
 * 'assistant' (a conversation to train on) there must be an assistant turn; with 'user' (a prompt) the last
 * turn must be a user turn. Returns the index of the first non-system turn.
 */
export function checkTurns(turns: readonly ChatTurn[], where: string, ending: 'assistant' | 'user'): number {
  if (!Array.isArray(turns)) throw invalidArg(`${where}: turns must be an array of { role, text }`);
  let start = 0;
  turns.forEach((turn, i) => {
    if (turn === null || typeof turn !== 'object' || typeof turn.text !== 'string') throw invalidArg(`${where}: turns[${i}] must be { role, text: string }`);
    if (turn.role === 'system') {
      if (i !== 0) throw invalidArg(`${where}: turns[${i}] is a system turn; only the first turn may be one`);
      start = 1;
      return;
    }
    if (turn.role !== 'user' && turn.role !== 'assistant') throw invalidArg(`${where}: turns[${i}].role must be 'system', 'user' or 'assistant', got ${JSON.stringify(turn.role)}`);
    const want = (i - start) % 2 === 0 ? 'user' : 'assistant';
    if (turn.role !== want) throw invalidArg(`${where}: turns[${i}] is a${turn.role === 'user' ? ' user' : 'n assistant'} turn where a${want === 'user' ? ' user' : 'n assistant'} turn must come (user and assistant turns alternate, from a user turn)`);
  });
  if (ending === 'assistant' && turns.length - start < 2) throw invalidArg(`${where}: the conversation has no assistant turn (nothing to train on)`);
  if (ending === 'user' && (turns.length === start || turns[turns.length - 1].role !== 'user')) {
    throw invalidArg(`${where}: a chat prompt must end with a user turn (the assistant answers it)`);
  }
  return start;
}

/** One piece of a rendered conversation: text encoded on its own, trained or not. */
interface Segment {
  text: string;
  trained: boolean;
  /** An assistant reply: the EOS id follows the text, trained. */
  eos: boolean;
}

/** The template's segments of `turns` (checked by the caller), in order. */
function segmentsOf(turns: readonly ChatTurn[], start: number, options: ChatTemplateOptions): Segment[] {
  const system = start === 1 ? turns[0].text : options.system ?? DEFAULT_SYSTEM_PROMPT;
  if (typeof system !== 'string') throw invalidArg(`chat template: system must be a string, got ${JSON.stringify(system)}`);
  const out: Segment[] = [];
  if (system !== '') out.push({ text: `${system}\n`, trained: false, eos: false });
  for (let i = start; i < turns.length; i++) {
    const t = turns[i];
    if (t.role === 'user') out.push({ text: `${CHAT_USER_PREFIX}${t.text}\n${CHAT_ASSISTANT_PREFIX}`, trained: false, eos: false });
    else out.push({ text: ` ${t.text}`, trained: true, eos: true });
  }
  return out;
}

/** The token ids of each segment, checked against the vocabulary. */
function encodeSegments(tokenizer: ChatTokenizer, segments: Segment[], where: string): { ids: number[] | Uint32Array; trained: boolean; eos: boolean }[] {
  if (tokenizer === null || typeof tokenizer !== 'object' || typeof tokenizer.encode !== 'function' || !Number.isInteger(tokenizer.eosId)) {
    throw invalidArg(`${where}: tokenizer must be a Tokenizer (encode, eosId, vocabSize)`);
  }
  return segments.map((s) => ({ ids: s.text === '' ? [] : tokenizer.encode(s.text), trained: s.trained, eos: s.eos }));
}

/** The ids and mask of encoded segments, one after another. */
function concatSegments(tokenizer: ChatTokenizer, parts: { ids: ArrayLike<number>; trained: boolean; eos: boolean }[]): RenderedConversation {
  const n = parts.reduce((a, p) => a + p.ids.length + (p.eos ? 1 : 0), 0);
  const ids = new Int32Array(n);
  const trained = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    ids.set(p.ids, at);
    if (p.trained) trained.fill(1, at, at + p.ids.length);
    at += p.ids.length;
    if (p.eos) {
      ids[at] = tokenizer.eosId;
      trained[at] = 1;
      at++;
    }
  }
  return { ids, trained };
}

/**
 * A conversation rendered with the chat template (see the file header): its ids, and `trained` = 1 exactly on
 * the tokens of assistant replies and the EOS after each, 0 on the system line, the user turns and the role
 * prefixes. The turns must follow checkTurns' rule, with at least one assistant turn.
 */
export function renderConversation(tokenizer: ChatTokenizer, turns: readonly ChatTurn[], options: ChatTemplateOptions = {}): RenderedConversation {
  const where = 'renderConversation';
  const start = checkTurns(turns, where, 'assistant');
  return concatSegments(tokenizer, encodeSegments(tokenizer, segmentsOf(turns, start, options), where));
}

/**
 * The ids of a chat prompt: the turns so far (ending with the user's), rendered as renderConversation
 * renders them, then the assistant's prefix "ASSISTANT:", which the model continues with its reply.
 */
export function renderChatPrompt(tokenizer: ChatTokenizer, turns: readonly ChatTurn[], options: ChatTemplateOptions = {}): Int32Array {
  const where = 'renderChatPrompt';
  const start = checkTurns(turns, where, 'user');
  return concatSegments(tokenizer, encodeSegments(tokenizer, segmentsOf(turns, start, options), where)).ids;
}

/**
 * A conversation split into its template segments, encoded: the system line (possibly empty) and each
 * exchange (a user turn and the assistant's reply). Splitting a long conversation at exchange boundaries
 * (chat-loader.ts) re-renders each piece from these: header + some exchanges is exactly renderConversation of
 * those turns.
 */
export interface ConversationExchanges {
  header: RenderedConversation;
  exchanges: RenderedConversation[];
}

/** `turns` (a conversation to train on) as its header and exchanges; a trailing user turn is left out. */
export function renderExchanges(tokenizer: ChatTokenizer, turns: readonly ChatTurn[], options: ChatTemplateOptions = {}): ConversationExchanges {
  const where = 'renderExchanges';
  const start = checkTurns(turns, where, 'assistant');
  const segs = encodeSegments(tokenizer, segmentsOf(turns, start, options), where);
  const headerCount = segs.length - (turns.length - start); // 1 with a system line, 0 without
  const header = concatSegments(tokenizer, segs.slice(0, headerCount));
  const exchanges: RenderedConversation[] = [];
  for (let i = headerCount; i + 1 < segs.length; i += 2) exchanges.push(concatSegments(tokenizer, segs.slice(i, i + 2)));
  return { header, exchanges };
}

// ---------------------------------------------------------------------------------------------------------
// ShareGPT files

/**
 * One conversation object's turns. `at` names where it is for errors ('line 3', or 'line 3: [4]' for the
 * element of an array), `sep` what joins a field to it (': ' or '.').
 */
function conversationOf(value: unknown, file: string, at: string, sep: string): ChatTurn[] {
  const fail = (field: string, message: string) => new PajamaDataError(file, `${at}${field ? `${sep}${field}` : ''}: ${message}`);
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw fail('', `must be an object {"conversations": [...]}, got ${JSON.stringify(value)?.slice(0, 80)}`);
  const convs = (value as Record<string, unknown>).conversations;
  if (!Array.isArray(convs)) throw fail('conversations', `must be an array of {"from", "value"} turns, got ${JSON.stringify(convs)?.slice(0, 80) ?? 'nothing'}`);
  const turns: ChatTurn[] = [];
  convs.forEach((c, j) => {
    const f = `conversations[${j}]`;
    if (c === null || typeof c !== 'object' || Array.isArray(c)) throw fail(f, `must be an object {"from", "value"}, got ${JSON.stringify(c)?.slice(0, 80)}`);
    const from = (c as Record<string, unknown>).from;
    const text = (c as Record<string, unknown>).value;
    if (typeof from !== 'string' || !Object.hasOwn(SHAREGPT_ROLES, from)) {
      throw fail(`${f}.from`, `must be one of ${Object.keys(SHAREGPT_ROLES).map((k) => `"${k}"`).join(', ')}, got ${JSON.stringify(from) ?? 'nothing'}`);
    }
    if (typeof text !== 'string') throw fail(`${f}.value`, `must be a string, got ${JSON.stringify(text)?.slice(0, 80) ?? 'nothing'}`);
    const role = SHAREGPT_ROLES[from];
    if (role === 'system' && j !== 0) throw fail(`${f}.from`, `"${from}" (a system turn) may only be the first turn`);
    const start = turns.length > 0 && turns[0].role === 'system' ? 1 : 0;
    if (role !== 'system') {
      const want = (turns.length - start) % 2 === 0 ? 'user' : 'assistant';
      if (role !== want) {
        const words = want === 'user' ? 'a user turn ("human" or "user")' : 'an assistant turn ("gpt", "assistant" or "chatgpt")';
        throw fail(`${f}.from`, `"${from}" where ${words} must come (user and assistant turns alternate, from a user turn)`);
      }
    }
    turns.push({ role, text });
  });
  if (turns.length > 0 && turns[turns.length - 1].role === 'user') turns.pop();
  if (!turns.some((t) => t.role === 'assistant')) throw fail('conversations', 'has no assistant reply (nothing to train on)');
  return turns;
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/** One JSON value of the file: its bytes decoded and parsed; `at` names where it is in errors. */
function parseValue(bytes: Uint8Array, file: string, at: string, hint = ''): unknown {
  let text: string;
  try {
    text = UTF8.decode(bytes);
  } catch {
    throw new PajamaDataError(file, `${at}: not valid UTF-8 text`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new PajamaDataError(file, `${at}: not valid JSON (${(e as Error).message})${hint}`);
  }
}

const isSpace = (b: number) => b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;

/**
 * The elements of a top-level JSON array, each as its byte range and the line it starts on, found by a scan
 * that tracks strings and nesting only: each element is then parsed on its own, so a file larger than the
 * longest string V8 can hold (ShareGPT's cleaned dumps are ~670 MB) reads, and an error names its line.
 */
function arrayElements(buf: Uint8Array, open: number, file: string): { start: number; end: number; line: number }[] {
  const out: { start: number; end: number; line: number }[] = [];
  let line = 1;
  for (let i = 0; i < open; i++) if (buf[i] === 0x0a) line++;
  let i = open + 1;
  let depth = 0;
  let inString = false;
  let start = -1;
  let startLine = line;
  for (; i < buf.length; i++) {
    const b = buf[i];
    if (b === 0x0a) line++;
    if (inString) {
      if (b === 0x5c) i++; // a backslash escapes the next byte (never a newline in valid JSON)
      else if (b === 0x22) inString = false;
      continue;
    }
    if (start < 0 && !isSpace(b)) {
      if (b === 0x5d && depth === 0 && out.length === 0) return out; // []
      start = i;
      startLine = line;
    }
    if (b === 0x22) inString = true;
    else if (b === 0x7b || b === 0x5b) depth++;
    else if (b === 0x7d || (b === 0x5d && depth > 0)) depth--;
    else if (depth === 0 && (b === 0x2c || b === 0x5d)) {
      let e = i;
      while (e > start && isSpace(buf[e - 1])) e--;
      if (start === i) throw new PajamaDataError(file, `line ${line}: [${out.length}]: not valid JSON (a missing array element)`);
      out.push({ start, end: e, line: startLine });
      start = -1;
      if (b === 0x5d) {
        for (let k = i + 1; k < buf.length; k++) {
          if (!isSpace(buf[k])) throw new PajamaDataError(file, `line ${line}: not valid JSON (text after the closing ']')`);
        }
        return out;
      }
    }
  }
  throw new PajamaDataError(file, `line ${line}: not valid JSON (the array is not closed: ${inString ? 'a string runs to the end of the file' : "no closing ']'"})`);
}

/**
 * Conversations from the contents of a ShareGPT file (a JSON array, or JSON Lines: see the file header);
 * `file` names it in errors, with the line and, in an array, the element's index.
 */
export function parseConversations(contents: string | Uint8Array, file: string): ChatTurn[][] {
  const buf = typeof contents === 'string' ? Buffer.from(contents, 'utf8') : contents;
  let first = 0;
  while (first < buf.length && isSpace(buf[first])) first++;
  if (first === buf.length) throw new PajamaDataError(file, 'holds no conversations (the file is empty)');
  const out: ChatTurn[][] = [];
  if (buf[first] === 0x5b) {
    arrayElements(buf, first, file).forEach((el, i) => {
      const at = `line ${el.line}: [${i}]`;
      out.push(conversationOf(parseValue(buf.subarray(el.start, el.end), file, at), file, at, '.'));
    });
  } else {
    let line = 0;
    for (let from = 0; from < buf.length; ) {
      let nl = buf.indexOf(0x0a, from);
      if (nl < 0) nl = buf.length;
      line++;
      const bytes = buf.subarray(from, nl);
      from = nl + 1;
      if (bytes.every(isSpace)) continue;
      const at = `line ${line}`;
      out.push(conversationOf(parseValue(bytes, file, at, '; JSON Lines hold one conversation object per line'), file, at, ': '));
    }
  }
  if (out.length === 0) throw new PajamaDataError(file, 'holds no conversations');
  return out;
}

/** Conversations from a ShareGPT file: one JSON array of conversation objects, or JSON Lines (see the header). */
export async function readConversations(path: string): Promise<ChatTurn[][]> {
  checkPath(path);
  let bytes: Uint8Array;
  try {
    bytes = await fs.promises.readFile(path);
  } catch (e) {
    throw readFailure(path, e);
  }
  return parseConversations(bytes, path);
}

/** readConversations, synchronously (the trainer opens its data synchronously). */
export function readConversationsSync(path: string): ChatTurn[][] {
  checkPath(path);
  let bytes: Uint8Array;
  try {
    bytes = fs.readFileSync(path);
  } catch (e) {
    throw readFailure(path, e);
  }
  return parseConversations(bytes, path);
}

function checkPath(path: unknown): void {
  if (typeof path !== 'string' || path === '') throw invalidArg('readConversations: path must be a non-empty string');
}

function readFailure(file: string, e: unknown): Error {
  const code = (e as NodeJS.ErrnoException).code;
  return new PajamaDataError(file, `cannot read the conversations file${code ? ` (${code})` : ''}: ${(e as Error).message}`);
}
