// The CUDA backend's checks (benchmarks/gpu-checks.ts: every op forward and backward against the CPU op and the
// float64 references, bad ids and targets, mixed devices, memory, training on CUDA against the CPU), one
// subtest each, where a GPU is present. Elsewhere the file is one visible skip that says why (no CUDA build,
// no driver, no device), so CI shows it. On a GPU machine without tap, scripts/gpu-check.sh runs the same
// checks with plain node.
import t from 'tap';
import { synchronize } from '../../lib/index';
import { DEVICE, GPU_CHECKS, cudaUnavailable } from '../../benchmarks/gpu-checks';
import { seed } from '../helpers/reference';

const unavailable = cudaUnavailable();

if (unavailable !== null) {
  t.test(`CUDA checks (${GPU_CHECKS.length})`, { skip: `CUDA is not available: ${unavailable}` }, async () => {});
} else {
  t.comment(`seed ${seed} (PAJAMA_TEST_SEED replays it)`);
  for (const check of GPU_CHECKS) {
    t.test(check.name, async (t) => {
      await check.run({ ok: (condition, message) => void t.ok(condition, message), comment: (m) => void t.comment(m) });
      synchronize(DEVICE); // a failure of a kernel still queued surfaces inside its check
    });
  }
}
