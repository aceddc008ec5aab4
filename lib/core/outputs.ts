// outputs.ts: the two rules every command that writes data files keeps.
//
// 1. No output may be one of the command's inputs. Paths are compared as files, not as strings: the same
//    file reached through a symbolic link, a hard link, "..", or a bind mount has the same device and inode
//    numbers, and an output that does not exist yet is compared by the real path of its folder.
// 2. Outputs are written under a temporary name next to the final one (`<final>.tmp-<pid>-<random>`, the
//    checkpoint writer's convention, lib/core/atomic.ts) and renamed into place when complete. A process
//    killed mid-write leaves its temporary file behind; the next writer of the same output removes the
//    temporary files of processes that are no longer running (never those of a live process: two writers
//    in one folder do not delete each other's work).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { invalidArg } from './errors';
import { TMP_MARKER, processAlive } from './atomic';


/**
 * Removes `<finalPath>.tmp-<pid>-*` files and folders left in finalPath's folder by processes that are no
 * longer running, and returns the paths removed. Temporary files of live processes are left alone.
 */
export function removeStaleTempFiles(finalPath: string): string[] {
  const dir = path.dirname(path.resolve(finalPath));
  const prefix = `${path.basename(finalPath)}${TMP_MARKER}`;
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return []; // no folder yet: nothing stale
  }
  const removed: string[] = [];
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const m = /^(\d+)(?:-|$)/.exec(name.slice(prefix.length));
    if (!m || processAlive(Number(m[1]))) continue;
    const p = path.join(dir, name);
    fs.rmSync(p, { recursive: true, force: true });
    removed.push(p);
  }
  return removed;
}

/** The identity of an existing file (device and inode), or null when there is nothing at `p`. */
function fileId(p: string): string | null {
  try {
    const st = fs.statSync(p, { bigint: true }); // follows links
    return `${st.dev}:${st.ino}`;
  } catch {
    return null;
  }
}

/** `p` with links resolved as far as it exists (an output usually does not exist yet, its folder does). */
function realPathOf(p: string): string {
  const abs = path.resolve(p);
  try {
    return fs.realpathSync(abs);
  } catch {
    const parent = path.dirname(abs);
    return parent === abs ? abs : path.join(realPathOf(parent), path.basename(abs));
  }
}

/**
 * Throws when an output is one of the inputs: the same real path, or the same file through a hard link.
 * `what` names the command for the message (e.g. 'pajama tokenize').
 */
export function checkOutputsAreNotInputs(what: string, outputs: readonly string[], inputs: readonly string[]): void {
  const byId = new Map<string, string>();
  const byReal = new Map<string, string>();
  for (const input of inputs) {
    const id = fileId(input);
    if (id !== null) byId.set(id, input);
    byReal.set(realPathOf(input), input);
  }
  for (const output of outputs) {
    const id = fileId(output);
    const input = (id !== null ? byId.get(id) : undefined) ?? byReal.get(realPathOf(output));
    if (input !== undefined) {
      const same = path.resolve(input) === path.resolve(output) ? 'is' : 'is the same file as';
      throw invalidArg(`${what}: the output ${path.resolve(output)} ${same} the input ${path.resolve(input)}; writing it would destroy the input (choose another output path)`);
    }
  }
}

/**
 * Throws when an input file lies inside an output folder that the command clears or fills (prepare's
 * `output`): `inputs` are files, `outputDir` a folder that may not exist yet.
 */
export function checkInputsOutsideFolder(what: string, outputDir: string, inputs: readonly string[], key: string): void {
  const dir = realPathOf(outputDir);
  for (const input of inputs) {
    const real = realPathOf(input);
    if (real === dir || real.startsWith(dir + path.sep)) {
      throw invalidArg(`${what}: the input ${path.resolve(input)} lies inside the output folder ${path.resolve(outputDir)} ('${key}'), which the command writes and clears; move one of them`);
    }
  }
}
