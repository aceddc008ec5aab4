// identity.ts: what must be the same on every rank of a data-parallel run, checked at start-up by
// dist/identity.ts's checkSameRun: the resolved training config, the code version (the package's version),
// and the data (the manifest, and every training and validation shard by path and size in bytes).
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { RunIdentity } from '../dist/identity';
import type { TrainConfig } from './config';
import type { TrainingData } from './data';

let version: string | undefined;

/** The version in pajama-train's package.json (found above this file, from lib/ or dist/lib/). */
export function packageVersion(): string {
  if (version !== undefined) return version;
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    const file = path.join(dir, 'package.json');
    if (fs.existsSync(file)) {
      const pkg = JSON.parse(fs.readFileSync(file, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'pajama-train') return (version = String(pkg.version));
    }
    if (path.dirname(dir) === dir) return (version = 'unknown');
  }
}

function sizeOf(file: string): number | null {
  try {
    return fs.statSync(file).size;
  } catch {
    return null;
  }
}

/** The config, the code version and the data of this rank, as checkSameRun compares them. */
export function runIdentity(config: TrainConfig, data: TrainingData): RunIdentity {
  const files = (paths: Iterable<string>) => [...paths].map((p) => ({ path: p, bytes: sizeOf(p) }));
  return {
    config: JSON.parse(JSON.stringify(config)),
    'code version': packageVersion(),
    data: {
      manifest: data.manifest === null ? null : { path: data.manifest, bytes: sizeOf(data.manifest) },
      train: files(data.loader.shards),
      validation: Object.fromEntries(Object.entries(data.validation).map(([k, p]) => [k, { path: p, bytes: sizeOf(p) }])),
    },
  };
}
