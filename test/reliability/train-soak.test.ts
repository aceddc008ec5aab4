// A bounded soak for CI: 1,500 training steps of the tiny model through the Trainer (benchmarks/soak.ts, in
// its own process so the test runner's heap is not measured), RSS sampled every 50 steps; the fitted growth
// must stay under a generous bound. `npm run bench:soak` runs the long one (10,000 steps).
import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { REPO, cliProblem } from '../helpers/tiny-run';

// Noise on 2 cores with a collection before each sample: up to about 1,000 KiB per 1,000 steps over 1,500
// steps (a few MiB moving between malloc arenas); a leak of 4 KiB per step is 4,096.
const BOUND_KIB_PER_1K_STEPS = 4096;
const SOAK = path.join(REPO, 'dist/benchmarks/soak.js');

const problem = cliProblem() ?? (fs.existsSync(SOAK) ? null : `${SOAK} is missing: run npx tsc -p tsconfig.json`);
if (problem) {
  t.fail(`the soak runs the compiled benchmark: ${problem}`);
} else {
  t.test('1,500 steps of the tiny model run in flat memory', async (t) => {
    const r = spawnSync(process.execPath, [SOAK, '--steps', '1500', '--every', '50', '--gc', '--json'], { encoding: 'utf8', timeout: 120_000 });
    t.equal(r.status, 0, r.status === 0 ? 'the soak exits 0' : r.stderr);
    const report = JSON.parse(r.stdout) as {
      steps: number;
      samples: { step: number; rssKiB: number }[];
      slopeKiBPer1kSteps: number;
      slopeSecondHalfKiBPer1kSteps: number;
      growthKiB: number;
      stepsPerSec: number;
    };
    t.equal(report.steps, 1500);
    t.equal(report.samples.length, 31, 'a sample at step 0 and every 50 steps');
    const first = report.samples[0].rssKiB;
    const last = report.samples[report.samples.length - 1].rssKiB;
    t.comment(
      `RSS ${(first / 1024).toFixed(1)} -> ${(last / 1024).toFixed(1)} MiB; slope ${report.slopeKiBPer1kSteps.toFixed(1)} KiB per 1,000 steps ` +
        `(second half ${report.slopeSecondHalfKiBPer1kSteps.toFixed(1)}); ${report.stepsPerSec.toFixed(0)} steps/s`,
    );
    t.ok(report.slopeKiBPer1kSteps < BOUND_KIB_PER_1K_STEPS, `slope ${report.slopeKiBPer1kSteps.toFixed(1)} KiB per 1,000 steps < ${BOUND_KIB_PER_1K_STEPS}`);
    t.ok(report.growthKiB < 16 * 1024, `growth after warm-up ${(report.growthKiB / 1024).toFixed(1)} MiB < 16 MiB`);
  });
}
