// ddp.ts: gradient averaging for data-parallel training without sharding (dist.sharding 'none', DDP).
//
// Every rank holds the whole model and computes the gradient of its share of the global batch, scaled by
// 1 / (global batch tokens): the sum over ranks is then the gradient of the whole global batch, the same sum
// one rank with worldSize x the accumulation computes (only the order of the additions differs). The f32
// gradient arena is one contiguous buffer, so the all-reduce is a handful of collectives over views of it,
// `bucketMB` each, summed in place.
//
// No overlap with the backward pass on the CPU: the addon runs ops and collectives on one worker thread, in
// queue order, so a bucket queued during the backward would only run after the ops queued before it anyway.
// The buckets are queued back to back after the last micro-batch's backward and awaited together; the time
// they take (including the wait for the slowest rank) is the step's communication time. On a GPU with NCCL
// on its own stream, buckets could be launched as their parameters' gradients complete; that is where the
// bucket size starts to matter.
import { invalidArg } from '../core/errors';
import type { Tensor } from '../core/tensor';
import type { Communicator } from './communicator';

/** One bucket of the gradient all-reduce: `count` elements from `offset` of the gradient buffer. */
export interface GradientBucket {
  offset: number;
  count: number;
}

/**
 * The buckets of a gradient buffer of `numel` elements of `bytesPerElement` bytes: consecutive ranges of
 * `bucketMB` MiB (rounded down to whole 64-byte lines when that leaves at least one, and at least one
 * element), the last one shorter. They cover [0, numel) exactly once, in order.
 */
export function gradientBuckets(numel: number, bucketMB: number, bytesPerElement = 4): GradientBucket[] {
  const where = 'gradientBuckets';
  if (!Number.isSafeInteger(numel) || numel < 0) throw invalidArg(`${where}: numel must be a non-negative integer, got ${numel}`);
  if (!(bucketMB > 0) || !Number.isFinite(bucketMB)) throw invalidArg(`${where}: bucketMB must be a positive number, got ${bucketMB}`);
  if (!Number.isSafeInteger(bytesPerElement) || bytesPerElement < 1) throw invalidArg(`${where}: bytesPerElement must be a positive integer, got ${bytesPerElement}`);
  const line = Math.max(1, Math.floor(64 / bytesPerElement));
  let size = Math.floor((bucketMB * 2 ** 20) / bytesPerElement);
  if (size >= line) size -= size % line;
  size = Math.max(1, size);
  const out: GradientBucket[] = [];
  for (let offset = 0; offset < numel; offset += size) out.push({ offset, count: Math.min(size, numel - offset) });
  return out;
}

/**
 * Sums a gradient buffer over every rank, in place, through views of `bucketMB` MiB. Make one per run
 * (the views live until dispose()); a world of one makes no views and reduce() returns at once.
 */
export class GradientAllReduce {
  readonly buckets: readonly GradientBucket[];
  readonly #comm: Communicator;
  readonly #views: Tensor[];

  constructor(comm: Communicator, grads: Tensor, bucketMB: number) {
    if (grads.dtype !== 'f32') throw invalidArg(`GradientAllReduce: gradients are reduced in f32, got ${grads.describe()}`);
    this.#comm = comm;
    this.buckets = gradientBuckets(grads.numel, bucketMB, 4);
    this.#views = comm.worldSize > 1 ? this.buckets.map((b) => grads.view(b.offset, [b.count])) : [];
  }

  /** Sums every bucket over the ranks; resolves when all are in place. Returns the seconds it took. */
  async reduce(): Promise<number> {
    if (this.#views.length === 0) return 0;
    const t0 = performance.now();
    // Queued in order, awaited together: the worker runs them one after another.
    await Promise.all(this.#views.map((v) => this.#comm.allReduce(v, 'sum')));
    return (performance.now() - t0) / 1e3;
  }

  /** Releases the views. Idempotent. */
  dispose(): void {
    for (const v of this.#views) v.dispose();
    this.#views.length = 0;
  }
}
