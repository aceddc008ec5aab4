// identity.ts: the start-up check that every rank of a run was started the same way. Each rank hashes each
// part of its identity (the resolved training config, the code version, the data's shard names and sizes);
// rank 0 broadcasts its hashes, every rank compares and the verdicts are gathered, so every rank stops
// together with one error that names the ranks and the parts that differ. For a part that differs, rank 0
// also broadcasts its JSON, so the rank that differs can name the keys (a config key, a shard) and both values.
import { createHash } from 'node:crypto';
import { canonicalJson } from '../core/json-file';
import type { Communicator } from './communicator';

export { canonicalJson };

/** What must be the same on every rank: each part any JSON value. */
export type RunIdentity = Record<string, unknown>;

/** Ranks of one run were started with different configs, code versions or data. */
export class RankMismatchError extends Error {
  readonly code = 'ERR_PAJAMA_RANK_MISMATCH';
  constructor(
    /** For each rank that differs from rank 0, the parts that differ. */
    readonly differing: { rank: number; parts: string[] }[],
    message: string,
  ) {
    super(message);
    this.name = 'RankMismatchError';
  }
}

/** Leaves of a JSON value by key path ('optimizer.lr', 'shards[2].bytes'); '' for a value that is a leaf. */
function leaves(v: unknown, at = '', out = new Map<string, string>()): Map<string, string> {
  if (v !== null && typeof v === 'object') {
    const entries = Array.isArray(v) ? v.map((x, i) => [`[${i}]`, x] as const) : Object.entries(v).map(([k, x]) => [at ? `.${k}` : k, x] as const);
    if (entries.length === 0) out.set(at, canonicalJson(v));
    for (const [k, x] of entries) leaves(x, at + k, out);
  } else {
    out.set(at, canonicalJson(v));
  }
  return out;
}

/** Up to `max` differences between this rank's value and rank 0's, as "'key' is A here and B on rank 0". */
export function describeDifferences(mine: unknown, rank0: unknown, max = 3): string[] {
  const a = leaves(mine);
  const b = leaves(rank0);
  const keys = [...new Set([...a.keys(), ...b.keys()])].sort();
  const out: string[] = [];
  for (const k of keys) {
    const x = a.get(k) ?? 'absent';
    const y = b.get(k) ?? 'absent';
    if (x === y) continue;
    out.push(`${k ? `'${k}' ` : ''}is ${x} here and ${y} on rank 0`);
  }
  return out.length > max ? [...out.slice(0, max), `${out.length - max} more`] : out;
}

async function broadcastJson(comm: Communicator, text: string): Promise<unknown> {
  const bytes = comm.rank === 0 ? Buffer.from(text, 'utf8') : Buffer.alloc(0);
  const len = Float64Array.of(bytes.length);
  await comm.broadcast(len, 0);
  const buf = new Uint8Array(len[0]);
  if (comm.rank === 0) buf.set(bytes);
  await comm.broadcast(buf, 0);
  return JSON.parse(Buffer.from(buf).toString('utf8'));
}

/**
 * Checks that every rank holds the same identity as rank 0, part by part; every rank must call it, with the
 * same part names in the same order. Throws a RankMismatchError on every rank when any rank differs.
 */
export async function checkSameRun(comm: Communicator, identity: RunIdentity): Promise<void> {
  if (comm.worldSize === 1) return;
  const names = Object.keys(identity);
  const texts = names.map((n) => canonicalJson(identity[n]));
  const mine = new Uint8Array(32 * names.length);
  texts.forEach((t, i) => mine.set(createHash('sha256').update(t).digest(), 32 * i));
  const rank0 = mine.slice();
  await comm.broadcast(rank0, 0);
  let mask = 0;
  names.forEach((_, i) => {
    for (let j = 32 * i; j < 32 * (i + 1); j++) {
      if (mine[j] !== rank0[j]) {
        mask |= 1 << i;
        break;
      }
    }
  });
  const masks = new Int32Array(comm.worldSize);
  await comm.allGather(masks, Int32Array.of(mask));
  if (masks.every((m) => m === 0)) return;

  // Name what differs: every rank takes the same branches (the masks are the same everywhere).
  const details: string[] = [];
  for (const [i, name] of names.entries()) {
    if (!masks.some((m) => (m & (1 << i)) !== 0)) continue;
    const theirs = await broadcastJson(comm, texts[i]);
    if ((mask & (1 << i)) !== 0) details.push(`${name}: ${describeDifferences(JSON.parse(texts[i]), theirs).join('; ')}`);
  }
  const differing = [...masks].map((m, rank) => ({ rank, parts: names.filter((_, i) => (m & (1 << i)) !== 0) })).filter((d) => d.parts.length > 0);
  const summary = differing.map((d) => `rank ${d.rank} differs from rank 0 in its ${d.parts.join(', ')}`).join('; ');
  const here = details.length > 0 ? ` (on this rank, ${comm.rank}: ${details.join('; ')})` : '';
  throw new RankMismatchError(
    differing,
    `the ranks of this run were started differently: ${summary}${here}; every rank must run the same config, code version and data`,
  );
}
