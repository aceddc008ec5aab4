// tmpfs.ts: a small tmpfs mounted for a test, to provoke real EROFS (mounted read-only) and ENOSPC (a tiny
// size). Mounting needs root on Linux (and a container that allows it); where it is refused the caller gets
// the reason and skips, covering the code with made-up errors instead.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';

export type TmpfsMount = { mounted: true; dir: string; unmount: () => void } | { mounted: false; dir: string; reason: string };

/** Mounts a tmpfs at `dir` (created if missing) with mount options such as ['ro'] or ['size=16k']. */
export function tryMountTmpfs(dir: string, options: string[]): TmpfsMount {
  if (process.platform !== 'linux') return { mounted: false, dir, reason: `tmpfs needs Linux, this is ${process.platform}` };
  if (process.getuid?.() !== 0) return { mounted: false, dir, reason: 'mounting needs root' };
  fs.mkdirSync(dir, { recursive: true });
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', options.join(','), 'tmpfs', dir], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return { mounted: false, dir, reason: (r.error?.message ?? r.stderr.trim()) || `mount exited with ${r.status}` };
  let done = false;
  const unmount = () => {
    if (done) return;
    done = true;
    // -l: detach even if a file is still open (a failed test), so the test's own cleanup can proceed.
    spawnSync('umount', ['-l', dir]);
  };
  return { mounted: true, dir, unmount };
}
