// files.ts: which shard files a list of inputs names, and which source the `sources` option maps a file to.
//
// Inputs are files, folders (searched recursively for *.jsonl and *.jsonl.zst, links followed, a link loop
// entered once) and globs (see globToRegExp). The file list is resolved to absolute paths, de-duplicated and
// sorted by path, so the order of documents does not depend on the order or overlap of the inputs. An input
// that matches no shard file is an error (a TypeError naming it).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { invalidArg } from '../../core/errors';

const SHARD_FILE = /\.jsonl(\.zst)?$/;

/**
 * The shard files (*.jsonl, *.jsonl.zst) named by `inputs`: files, folders searched recursively, and globs.
 * Absolute paths, de-duplicated, sorted by path. Throws a TypeError naming an input that matches no shard
 * file, does not exist, or is a file of another kind.
 */
export function listShardFiles(inputs: readonly string[]): string[] {
  if (!Array.isArray(inputs) || inputs.length === 0) throw invalidArg('listShardFiles: inputs must be a non-empty array of paths or globs');
  const found = new Set<string>();
  for (const input of inputs) {
    if (typeof input !== 'string' || input === '') throw invalidArg('listShardFiles: every input must be a non-empty string');
    let matched = 0;
    if (isGlob(input)) {
      matched = expandGlob(input, found);
      if (matched === 0) throw invalidArg(`listShardFiles: the glob ${input} matches no .jsonl or .jsonl.zst file`);
    } else {
      const p = path.resolve(input);
      let st: fs.Stats;
      try {
        st = fs.statSync(p);
      } catch {
        throw invalidArg(`listShardFiles: input ${p} does not exist`);
      }
      if (st.isDirectory()) {
        walkFolder(p, Infinity, (f) => {
          found.add(f);
          matched++;
        });
        if (matched === 0) throw invalidArg(`listShardFiles: the folder ${p} holds no .jsonl or .jsonl.zst file`);
      } else if (SHARD_FILE.test(p)) found.add(p);
      else throw invalidArg(`listShardFiles: input ${p} is neither a folder nor a .jsonl or .jsonl.zst file`);
    }
  }
  return [...found].sort(comparePaths);
}

function comparePaths(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Whether `s` is a glob: it holds `*` or `?`. */
export function isGlob(s: string): boolean {
  return s.includes('*') || s.includes('?');
}

/**
 * A RegExp matching the absolute paths a glob names. The glob is resolved against the working directory;
 * `*` matches any characters but '/' (leading dots included), `?` one such character, and a `**` path
 * segment any number of folders (none included), or any depth of files when it ends the glob. Every other
 * character matches itself. Paths are compared with '/' separators.
 */
export function globToRegExp(glob: string): RegExp {
  const segments = toSlashes(path.resolve(glob)).split('/');
  let re = '';
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i];
    const last = i === segments.length - 1;
    if (seg === '**') {
      re += last ? '.+' : '(?:[^/]+/)*';
      continue;
    }
    for (let j = 0; j < seg.length; j++) {
      const c = seg[j];
      if (c === '*') {
        while (seg[j + 1] === '*') j++;
        re += '[^/]*';
      } else if (c === '?') re += '[^/]';
      else re += c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
    }
    if (!last) re += '/';
  }
  return new RegExp(`^${re}$`);
}

function toSlashes(p: string): string {
  return path.sep === '/' ? p : p.split(path.sep).join('/');
}

/** Adds the shard files matching `glob` to `found`; returns how many matched (before de-duplication). */
function expandGlob(glob: string, found: Set<string>): number {
  const abs = path.resolve(glob);
  const segments = abs.split(path.sep);
  const firstMagic = segments.findIndex(isGlob);
  const base = segments.slice(0, firstMagic).join(path.sep) || path.sep;
  const rest = segments.slice(firstMagic);
  const depth = rest.includes('**') ? Infinity : rest.length;
  const re = globToRegExp(glob);
  let matched = 0;
  let st: fs.Stats | undefined;
  try {
    st = fs.statSync(base);
  } catch {
    return 0;
  }
  if (!st.isDirectory()) return 0;
  walkFolder(base, depth, (f) => {
    if (re.test(toSlashes(f))) {
      found.add(f);
      matched++;
    }
  });
  return matched;
}

/**
 * Calls `onFile` for every shard file under `dir` at most `depth` levels down (1: `dir`'s own files), in
 * name order. Links are followed; a folder already being walked (a link loop) is not entered again.
 */
function walkFolder(dir: string, depth: number, onFile: (file: string) => void, active = new Set<string>()): void {
  const real = fs.realpathSync(dir);
  if (active.has(real)) return;
  active.add(real);
  const entries = fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => comparePaths(a.name, b.name));
  for (const e of entries) {
    const p = path.join(dir, e.name);
    let st: fs.Stats | fs.Dirent = e;
    if (e.isSymbolicLink()) {
      try {
        st = fs.statSync(p);
      } catch {
        continue; // a dangling link names nothing
      }
    }
    if (st.isDirectory()) {
      if (depth > 1) walkFolder(p, depth - 1, onFile, active);
    } else if (st.isFile() && SHARD_FILE.test(e.name)) onFile(p);
  }
  active.delete(real);
}

/**
 * Decides a file's source from JsonlDocumentReader's `sources` option: the first entry (a glob, folder or
 * file, in the object's key order) that matches the file wins. Bad entries are TypeErrors naming the reader.
 */
export class SourceMapping {
  private readonly entries: { name: string; matches: (file: string) => boolean }[] = [];

  constructor(sources: Record<string, string> | undefined) {
    if (sources === undefined) return;
    if (sources === null || typeof sources !== 'object' || Array.isArray(sources)) {
      throw invalidArg('JsonlDocumentReader: sources must be an object mapping globs or folders to source names');
    }
    for (const [key, name] of Object.entries(sources)) {
      if (key === '') throw invalidArg('JsonlDocumentReader: a sources key must be a non-empty glob, folder or file');
      if (typeof name !== 'string' || name === '') {
        throw invalidArg(`JsonlDocumentReader: sources["${key}"] must be a non-empty source name, got ${JSON.stringify(name)}`);
      }
      if (isGlob(key)) {
        const re = globToRegExp(key);
        this.entries.push({ name, matches: (f) => re.test(toSlashes(f)) });
      } else {
        const p = path.resolve(key);
        const under = p.endsWith(path.sep) ? p : p + path.sep;
        this.entries.push({ name, matches: (f) => f === p || f.startsWith(under) });
      }
    }
  }

  sourceOf(file: string): string | undefined {
    for (const e of this.entries) if (e.matches(file)) return e.name;
    return undefined;
  }
}
