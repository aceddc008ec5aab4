// progress.ts: what a running prepare tells its caller: counts while a stage reads the corpus (the scan and
// tokenize stages each read every input file once), and one-line news of the stages.
import type { PrepareStage } from './config';

export interface PrepareProgress {
  stage: PrepareStage;
  /** Documents read in this stage so far. */
  documents: number;
  /** Uncompressed bytes read so far. */
  bytes: number;
  /** Files done and in all. */
  files: number;
  totalFiles: number;
  /** Bytes read from disk (compressed for .zst) and the size of all input files. */
  diskBytes: number;
  diskBytesTotal: number;
}

/** The callbacks of a run; both are optional. */
export interface PrepareEvents {
  onProgress?: (p: PrepareProgress) => void;
  /** A line of news: a stage skipped because it is done, started, or finished. */
  onLog?: (line: string) => void;
}
