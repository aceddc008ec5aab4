// entry.ts: the module Jazzer.js loads (scripts/fuzz.js). It exports `fuzz`, the target named by the
// environment variable PAJAMA_FUZZ_TARGET (see targets.ts).
import { targets } from './targets';

const name = process.env.PAJAMA_FUZZ_TARGET ?? '';
const target = targets[name];
if (target === undefined) throw new Error(`PAJAMA_FUZZ_TARGET must be one of ${Object.keys(targets).join(', ')}, got "${name}"`);

export const fuzz = target.run;
