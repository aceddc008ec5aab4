// json-file.ts: reading a JSON file, with each way it can fail told apart so that every caller can word the
// error for its own users (a checkpoint, a config file named on the command line, a prepare stage's output)
// while the reading and parsing live in one place.
//
// readJsonFile hands a JsonFileProblem to the caller's `fail`, which returns the error to throw. Without
// `fail`, the error names the file: a FileSystemError ("reading /x/config.json: ENOENT: no such file or
// directory") for a file that cannot be read, a TypeError for bad JSON or a top level of the wrong kind.
import * as fs from 'node:fs';
import { invalidArg } from './errors';
import { toFileSystemError } from './fs-errors';

/** Why a JSON file could not be read. */
export type JsonFileProblem =
  /** The file could not be read; `error` is what fs threw (a Node system error, usually). */
  | { kind: 'unreadable'; file: string; error: unknown }
  /** The text is not JSON; `error` is JSON.parse's SyntaxError. */
  | { kind: 'syntax'; file: string; error: Error }
  /** The top level is not a JSON object (only with `object: true`). */
  | { kind: 'not-object'; file: string };

export interface ReadJsonFileOptions {
  /** Require the top level to be a JSON object (not an array, null or a scalar). Defaults to false. */
  object?: boolean;
  /** The error to throw for a problem. Defaults to defaultJsonFileError. */
  fail?: (problem: JsonFileProblem) => unknown;
}

/** The default error for a JsonFileProblem: each names the file. */
export function defaultJsonFileError(p: JsonFileProblem): unknown {
  if (p.kind === 'unreadable') return toFileSystemError(p.error, 'reading', p.file);
  if (p.kind === 'syntax') return invalidArg(`${p.file} is not valid JSON: ${p.error.message}`);
  return invalidArg(`${p.file} must hold a JSON object`);
}

/** The parsed contents of `file` (a JSON object when `options.object`); failures go through `options.fail`. */
export function readJsonFile(file: string, options: ReadJsonFileOptions & { object: true }): Record<string, unknown>;
export function readJsonFile(file: string, options?: ReadJsonFileOptions): unknown;
export function readJsonFile(file: string, options: ReadJsonFileOptions = {}): unknown {
  const fail = options.fail ?? defaultJsonFileError;
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw fail({ kind: 'unreadable', file, error });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw fail({ kind: 'syntax', file, error: error as Error });
  }
  if (options.object && (value === null || typeof value !== 'object' || Array.isArray(value))) throw fail({ kind: 'not-object', file });
  return value;
}

/**
 * JSON with object keys sorted at every level, so that key order never reads as a difference. `undefined`
 * (at the top or as a value) is written as `undefinedText`.
 */
export function canonicalJson(v: unknown, undefinedText = 'null'): string {
  if (v === undefined) return undefinedText;
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map((e) => canonicalJson(e, undefinedText)).join(',')}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k], undefinedText)}`)
    .join(',')}}`;
}
