// prepare.ts: raw SlimPajama/RedPajama shards -> per-source token shards and a manifest, as SlimPajama did:
//
//   scan      read every document (jsonl.zst reader), NFC-normalise, drop short documents, compute the
//             MinHash band keys of the rest (native): one file per worker thread (scan.ts), merged in file
//             order into the LSH index (spilled to disk) and a 24-byte table of every document (doc-table.ts):
//             source, short or not, split draw, bytes, line, exact hash                        (scan-stage.ts)
//   dedup     join candidates with union-find (global: across sources, local: within each), keep the first
//             document of every cluster, carve validation/test documents per source by ratio and seed, and
//             remove training documents whose exact hash matches a holdout document (decontamination)
//                                                                                             (dedup-stage.ts)
//   tokenize  read the corpus again and write the kept documents' tokens into per-source shards (worker
//             threads), then the manifest (manifest.ts) and the report                    (tokenize-stage.ts)
//
// Every stage ends by writing its outputs (stage-files.ts) and then its entry in prepare-state.json
// (state.ts), keyed by a hash of the configuration it depends on and of the input files (paths, sizes,
// mtimes): an interrupted run resumes at the first stage that did not finish, and changing an option re-runs
// the stages it affects. This file runs the stages in order and writes the report (report.ts); the config
// and its validation are in config.ts.
//
// Document ids are ordinals in the reader's order (sorted files, then lines), so every decision is a pure
// function of the input files and the config.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { listShardFiles } from '../files';
import { createTokenizer } from '../../tokenizers/create';
import { checkInputsOutsideFolder, checkOutputsAreNotInputs, removeStaleTempFiles } from '../../../core/outputs';
import { PREPARE_STAGES, tokenizerSpecOf, type PrepareConfig, type PrepareStage } from './config';
import type { PrepareEvents } from './progress';
import { buildReport, type PrepareReport } from './report';
import { readState, stageKeys, writeState, STATE_FILE } from './state';
import { DUPLICATES_FILE, stageOutputsExist, writeJsonFile } from './stage-files';
import { runScan } from './scan-stage';
import { runDedup } from './dedup-stage';
import { runTokenize } from './tokenize-stage';

export { DEFAULT_PREPARE_CONFIG, PREPARE_STAGES, resolvePrepareConfig, tokenizerSpecOf, type PrepareConfig, type PrepareStage } from './config';
export { DOC_STATUS, VALIDATION_BYTES_PER_TOKEN, splitDraw, type DocStatus } from './doc-status';
export { DUPLICATES_FILE, type DocumentLocation, type RemovalRecord } from './stage-files';
export { formatPrepareReport, type PrepareReport, type SourceReport } from './report';
export type { PrepareEvents, PrepareProgress } from './progress';
export { exactHash } from '../scan';

export interface PrepareOptions extends PrepareEvents {
  /** Start over: remove the state of an earlier run in the output folder. */
  force?: boolean;
  /** Stop after this stage (`pajama dedup` stops after 'dedup'). */
  until?: PrepareStage;
}

export interface PrepareResult {
  report: PrepareReport;
  /** The manifest path (null when stopped before tokenize). */
  manifest: string | null;
  /** Stages run now, and stages found done. */
  ran: PrepareStage[];
  skipped: PrepareStage[];
}

/** Runs the pipeline (or resumes it); see the file header. */
export async function prepareData(config: PrepareConfig, options: PrepareOptions = {}): Promise<PrepareResult> {
  const log = options.onLog ?? (() => undefined);
  const out = config.output;
  const work = path.join(out, 'work');
  const stateFile = path.join(out, STATE_FILE);
  const files = listShardFiles(config.inputs);
  // Nothing this run writes or clears may be an input (the output folder may hold or be inside the inputs).
  const outputFiles = ['manifest.json', 'report.json', 'dedup-report.json', STATE_FILE, DUPLICATES_FILE].map((f) => path.join(out, f));
  checkOutputsAreNotInputs('prepare', outputFiles, files);
  for (const sub of ['shards', 'work']) checkInputsOutsideFolder('prepare', path.join(out, sub), files, 'output');
  for (const f of outputFiles) removeStaleTempFiles(f); // left by a run killed while writing them
  if (options.force) {
    fs.rmSync(work, { recursive: true, force: true });
    fs.rmSync(stateFile, { force: true });
  }
  fs.mkdirSync(work, { recursive: true });
  const until = options.until ?? 'tokenize';
  // A bad tokenizer file fails now, not after hours of scanning.
  if (until === 'tokenize') createTokenizer(tokenizerSpecOf(config));
  const keys = stageKeys(config, files);
  const state = readState(stateFile);
  const ran: PrepareStage[] = [];
  const skipped: PrepareStage[] = [];
  const seconds: Partial<Record<PrepareStage, number>> = {};
  let upstreamRan = false;
  for (const stage of PREPARE_STAGES) {
    const entry = state.stages[stage];
    if (!upstreamRan && entry && entry.key === keys[stage] && stageOutputsExist(stage, out)) {
      skipped.push(stage);
      seconds[stage] = entry.seconds;
      log(`${stage}: done on ${entry.finished}, skipped`);
    } else {
      upstreamRan = true;
      delete state.stages[stage];
      for (const later of PREPARE_STAGES.slice(PREPARE_STAGES.indexOf(stage) + 1)) delete state.stages[later];
      writeState(stateFile, state);
      log(`${stage}: running`);
      const t0 = performance.now();
      if (stage === 'scan') await runScan(config, files, work, options);
      else if (stage === 'dedup') await runDedup(config, work);
      else await runTokenize(config, files, out, work, options);
      const s = (performance.now() - t0) / 1000;
      seconds[stage] = s;
      state.stages[stage] = { key: keys[stage], finished: new Date().toISOString(), seconds: s };
      writeState(stateFile, state);
      ran.push(stage);
      log(`${stage}: finished in ${s.toFixed(1)} s`);
    }
    if (stage === until) break;
  }
  const report = buildReport(config, out, work, until, seconds);
  writeJsonFile(path.join(out, until === 'tokenize' ? 'report.json' : 'dedup-report.json'), report);
  return { report, manifest: until === 'tokenize' ? path.join(out, 'manifest.json') : null, ran, skipped };
}
