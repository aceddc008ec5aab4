// doc-status.ts: what became of each document in prepare, and the draw that decides its holdout split.
//
// The dedup stage gives every document one status, stored as one byte per document in document-id order
// in the work folder's status.bin; the byte is the status's index in DOC_STATUS (the ST_* codes). The
// tokenize stage writes the documents whose status is train, validation or test (codes up to ST_TEST) to
// the shards of that split and skips the rest.
//
// A document's split draw is a u32 fixed by (split.seed, document id), so the holdout is a pure function of
// the corpus and the config; the scan stage stores it in the document table (doc-table.ts).
import { mix32 } from '../scan';

/** What became of a document; a status byte is an index into this list. */
export const DOC_STATUS = ['train', 'validation', 'test', 'short', 'duplicate', 'decontaminated'] as const;
export type DocStatus = (typeof DOC_STATUS)[number];

// The status bytes (DOC_STATUS indices). The kept documents come first: `status <= ST_TEST` means kept.
export const ST_TRAIN = 0;
export const ST_VALIDATION = 1;
export const ST_TEST = 2;
export const ST_SHORT = 3;
export const ST_DUPLICATE = 4;
export const ST_DECONTAMINATED = 5;

/**
 * Bytes of text per token assumed when split.minValidationTokens is turned into bytes before tokenising.
 * GPT-2 and GPT-NeoX BPE average about 4 bytes a token on English prose and 3 on code; 6 over-estimates
 * both, so the validation set reaches the minimum after tokenising (the tokenize stage logs any that do not).
 */
export const VALIDATION_BYTES_PER_TOKEN = 6;

/** A u32 draw for the holdout split, fixed by (seed, document id). */
export function splitDraw(seed: number, id: number): number {
  return mix32(seed, id >>> 0, Math.floor(id / 2 ** 32));
}
