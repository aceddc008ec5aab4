// state.ts: prepare-state.json, the record of which stages have finished, so that an interrupted run resumes.
//
// Each finished stage has an entry keyed by a hash of what it depends on: the input files (path, size,
// mtime), the config sections it reads, and the key of the stage before it (so a change upstream re-runs
// everything after it). A stage whose entry's key matches this run's, and whose outputs are all there
// (stage-files.ts), is skipped.
import * as fs from 'node:fs';
import { createHash } from 'node:crypto';
import { PajamaDataError } from '../../errors';
import type { PrepareConfig, PrepareStage } from './config';
import { writeJsonFile } from './stage-files';

export const STATE_FILE = 'prepare-state.json';

export interface StageEntry {
  key: string;
  /** When it finished, as an ISO 8601 time. */
  finished: string;
  seconds: number;
}

export interface PrepareState {
  version: 1;
  stages: Partial<Record<PrepareStage, StageEntry>>;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The state in `file`; an empty one when there is no file, a PajamaDataError when it cannot be read. */
export function readState(file: string): PrepareState {
  if (!fs.existsSync(file)) return { version: 1, stages: {} };
  try {
    const s = JSON.parse(fs.readFileSync(file, 'utf8')) as PrepareState;
    if (s.version !== 1 || !isObject(s.stages)) throw new Error('not a version 1 state');
    return s;
  } catch (e) {
    throw new PajamaDataError(file, `is not a readable prepare state (${(e as Error).message}); rerun with --force to start over`);
  }
}

export function writeState(file: string, state: PrepareState): void {
  writeJsonFile(file, state);
}

/** What each stage depends on: the input files and the config sections it reads, chained. */
export function stageKeys(config: PrepareConfig, files: string[]): Record<PrepareStage, string> {
  const inputs = files.map((f) => {
    const st = fs.statSync(f);
    return [f, st.size, st.mtimeMs];
  });
  const h = (v: unknown) => createHash('sha256').update(JSON.stringify(v)).digest('hex').slice(0, 32);
  const scan = h({ table: 2, inputs, sources: config.sources, defaultSource: config.defaultSource, strict: config.strict, filter: config.filter, dedup: config.dedup, split: config.split.seed });
  const dedup = h({ scan, split: config.split, decontaminate: config.decontaminate, mode: config.dedup.mode });
  const tokenize = h({ dedup, tokenizer: config.tokenizer, tokenizerFile: config.tokenizer === 'gpt2' ? null : fileStamp(config.tokenizer), shardTokens: config.shardTokens });
  return { scan, dedup, tokenize };
}

/** A file's size and mtime, or null when it cannot be read (the tokenizer check reports that). */
function fileStamp(file: string): [number, number] | null {
  try {
    const st = fs.statSync(file);
    return [st.size, st.mtimeMs];
  } catch {
    return null;
  }
}
