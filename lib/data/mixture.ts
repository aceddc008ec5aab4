// mixture.ts: how much of each data source a run trains on. A mixture gives every source a weight; the
// loader (loader.ts) picks the source of each draw with probability weight / sum of weights, and since every
// draw is one window of seqLen + 1 tokens, that probability is also the source's share of the tokens
// trained on. A source smaller than its share is upsampled (its windows repeat); plan() below says by how
// much before a run starts.
//
// Presets are the source proportions of the SlimPajama-DC paper, by the RedPajama set names that SlimPajama
// labels its documents with (meta.redpajama_set_name):
//   Shen, Tao, Ma, Neiswanger, Liu, Wang, Tan, Hestness, Vassilieva, Soboleva, Xing. "SlimPajama-DC:
//   Understanding Data Combinations for LLM Training", arXiv:2309.10818 (2023).
// Table 8 compares the token proportions of SlimPajama, RedPajama, LLaMA-1 and RefinedWeb; Table 10 gives
// the mix of the 7B large-batch run, which adds S2ORC and Markdown and takes CommonCrawl from two places:
// SlimPajama's deduplicated CommonCrawl (here SlimPajamaCommonCrawl) and more of RedPajama's own
// (here RedPajamaCommonCrawl). Everywhere else RedPajamaCommonCrawl names the CommonCrawl set of whatever
// corpus the data came from, SlimPajama's included, as the set name in SlimPajama's metadata does.
import { invalidArg } from '../core/errors';

/** The RedPajama set names, as SlimPajama's meta.redpajama_set_name spells them. */
export const REDPAJAMA_SETS = Object.freeze([
  'RedPajamaCommonCrawl',
  'RedPajamaC4',
  'RedPajamaGithub',
  'RedPajamaBook',
  'RedPajamaArXiv',
  'RedPajamaWikipedia',
  'RedPajamaStackExchange',
] as const);

/**
 * The trainer warns when the plan has a source repeat more than this many times (epochs) over a run:
 * Muennighoff et al. (arXiv:2305.16264) find up to about 4 epochs of repeated data nearly as good as fresh
 * data, and quickly diminishing returns beyond.
 */
export const REPEAT_WARNING_EPOCHS = 4;

export type MixturePresetName = 'slimpajama' | 'redpajama' | 'llama-1' | 'refinedweb' | 'slimpajama-dc-7b';

export interface MixturePreset {
  name: MixturePresetName;
  description: string;
  /** Where the numbers come from. */
  citation: string;
  /** Token proportions in percent by source name, as printed in the paper; they sum to 100. */
  percent: Readonly<Record<string, number>>;
}

const PAPER = 'Shen et al., SlimPajama-DC: Understanding Data Combinations for LLM Training, arXiv:2309.10818';

function preset(p: MixturePreset): MixturePreset {
  return Object.freeze({ ...p, percent: Object.freeze({ ...p.percent }) });
}

export const MIXTURE_PRESETS: Readonly<Record<MixturePresetName, MixturePreset>> = Object.freeze({
  slimpajama: preset({
    name: 'slimpajama',
    description: 'SlimPajama-627B as released (globally deduplicated RedPajama)',
    citation: `${PAPER}, Table 8 (SlimPajama column)`,
    percent: {
      RedPajamaCommonCrawl: 52.2,
      RedPajamaC4: 26.7,
      RedPajamaGithub: 5.2,
      RedPajamaBook: 4.2,
      RedPajamaArXiv: 4.6,
      RedPajamaWikipedia: 3.8,
      RedPajamaStackExchange: 3.3,
    },
  }),
  redpajama: preset({
    name: 'redpajama',
    description: 'RedPajama-1T as released',
    citation: `${PAPER}, Table 8 (RedPajama column)`,
    percent: {
      RedPajamaCommonCrawl: 72.6,
      RedPajamaC4: 14.4,
      RedPajamaGithub: 4.9,
      RedPajamaBook: 2.1,
      RedPajamaArXiv: 2.3,
      RedPajamaWikipedia: 2.0,
      RedPajamaStackExchange: 1.7,
    },
  }),
  'llama-1': preset({
    name: 'llama-1',
    description: "LLaMA-1's pretraining mix (Touvron et al., arXiv:2302.13971), which RedPajama reproduces",
    citation: `${PAPER}, Table 8 (LLaMA-1 column)`,
    percent: {
      RedPajamaCommonCrawl: 67.0,
      RedPajamaC4: 15.0,
      RedPajamaGithub: 4.5,
      RedPajamaBook: 4.5,
      RedPajamaArXiv: 2.5,
      RedPajamaWikipedia: 4.5,
      RedPajamaStackExchange: 2.0,
    },
  }),
  refinedweb: preset({
    name: 'refinedweb',
    description: 'RefinedWeb (Penedo et al., arXiv:2306.01116): CommonCrawl only',
    citation: `${PAPER}, Table 8 (RefinedWeb column)`,
    percent: { RedPajamaCommonCrawl: 100 },
  }),
  'slimpajama-dc-7b': preset({
    name: 'slimpajama-dc-7b',
    description:
      "the paper's 7B large-batch run: SlimPajama's sets, S2ORC and Markdown, and CommonCrawl from both SlimPajama " +
      '(SlimPajamaCommonCrawl) and RedPajama (RedPajamaCommonCrawl)',
    citation: `${PAPER}, Table 10`,
    percent: {
      RedPajamaArXiv: 4,
      RedPajamaStackExchange: 3.2,
      RedPajamaGithub: 4.9,
      RedPajamaWikipedia: 7.5,
      RedPajamaBook: 4.3,
      RedPajamaC4: 17.6,
      S2ORC: 3,
      Markdown: 3,
      SlimPajamaCommonCrawl: 34.5,
      RedPajamaCommonCrawl: 18,
    },
  }),
});

/** Whether `name` is a preset's name. */
export function isMixturePreset(name: string): name is MixturePresetName {
  return Object.prototype.hasOwnProperty.call(MIXTURE_PRESETS, name);
}

/**
 * Checks weights (finite, non-negative, at least one positive, a finite sum) and returns them divided by
 * their sum. `where` and `names` are for the messages.
 */
export function normaliseWeights(weights: readonly number[], names: readonly string[], where: string): number[] {
  weights.forEach((w, i) => {
    if (typeof w !== 'number' || !Number.isFinite(w) || w < 0) {
      throw invalidArg(`${where}: the weight of source '${names[i]}' must be a finite non-negative number, got ${JSON.stringify(w)}`);
    }
  });
  const sum = weights.reduce((a, b) => a + b, 0);
  if (!(sum > 0)) throw invalidArg(`${where}: at least one source needs a positive weight (sources: ${names.join(', ') || 'none'})`);
  if (!Number.isFinite(sum)) throw invalidArg(`${where}: the weights sum to ${sum}; scale them down`);
  return weights.map((w) => w / sum);
}

/** A mixture resolved against the sources a data set has. */
export interface ResolvedMixture {
  /** The preset's name, or null for weights given by the user. */
  preset: MixturePresetName | null;
  /** The preset's citation, or null. */
  citation: string | null;
  /** Normalised weight of every available source, in the order given; 0 for those the mixture leaves out. */
  weights: Record<string, number>;
  /** Available sources the mixture does not draw from (left out, or given weight 0). */
  notDrawn: string[];
  /**
   * Sources the mixture names but the data lacks, with the share the mixture gave each (of the mixture's
   * total): empty unless resolved with missing: 'renormalize', which draws from the others in proportion.
   */
  missing: { name: string; weight: number }[];
}

/** What to do when a mixture names sources the data lacks (TrainConfig's data.mixtureMissing). */
export type MixtureMissing = 'error' | 'renormalize';
export const MIXTURE_MISSING: readonly MixtureMissing[] = ['error', 'renormalize'];

export interface ResolveMixtureOptions {
  /**
   * 'error' (the default): a source the mixture names but the data lacks is an error. 'renormalize': such
   * sources are left out and the weights of the others are divided by their sum (listed in `missing`).
   */
  missing?: MixtureMissing;
}

/**
 * A preset name or user weights (by source name, any positive scale) against the data's sources. A source
 * the mixture names with any weight but the data lacks is an error naming the missing and the available
 * sources, unless options.missing is 'renormalize' (then the present ones are renormalised, and the missing
 * ones listed); data sources the mixture does not name get weight 0 and are listed in notDrawn.
 */
export function resolveMixture(spec: string | Record<string, number>, available: readonly string[], options: ResolveMixtureOptions = {}): ResolvedMixture {
  const where = 'resolveMixture';
  const onMissing = options.missing ?? 'error';
  if (!MIXTURE_MISSING.includes(onMissing)) throw invalidArg(`${where}: options.missing must be one of ${MIXTURE_MISSING.join(', ')}, got ${JSON.stringify(onMissing)}`);
  if (!Array.isArray(available) || !available.every((s) => typeof s === 'string')) {
    throw invalidArg(`${where}: available must be an array of source names`);
  }
  let given: Record<string, number>;
  let presetName: MixturePresetName | null = null;
  let citation: string | null = null;
  if (typeof spec === 'string') {
    if (!isMixturePreset(spec)) {
      throw invalidArg(`${where}: unknown mixture preset '${spec}' (presets: ${Object.keys(MIXTURE_PRESETS).join(', ')})`);
    }
    const p = MIXTURE_PRESETS[spec];
    given = p.percent;
    presetName = p.name;
    citation = p.citation;
  } else if (typeof spec === 'object' && spec !== null && !Array.isArray(spec)) {
    given = spec;
  } else {
    throw invalidArg(`${where}: a mixture is a preset name or an object of weights by source name, got ${JSON.stringify(spec)}`);
  }
  const named = Object.keys(given);
  if (named.length === 0) throw invalidArg(`${where}: the mixture names no sources`);
  const shares = normaliseWeights(
    named.map((n) => given[n]),
    named,
    presetName ? `${where} (preset '${presetName}')` : where,
  );
  const missing = named.filter((n) => !available.includes(n));
  const what = presetName ? `the mixture preset '${presetName}'` : 'the mixture';
  if (missing.length > 0 && (onMissing === 'error' || !named.some((n) => available.includes(n) && given[n] > 0))) {
    const way =
      onMissing === 'error'
        ? "; set data.mixtureMissing to 'renormalize' to draw from the sources present in proportion to their weights"
        : '; there is nothing left to renormalise over';
    throw invalidArg(
      `${where}: ${what} draws from ${missing.length === 1 ? 'source' : 'sources'} ${missing.join(', ')}, which the data does not have ` +
        `(available: ${available.join(', ') || 'none'})${way}`,
    );
  }
  const raw = available.map((n) => (Object.prototype.hasOwnProperty.call(given, n) ? given[n] : 0));
  const normalised = normaliseWeights(raw, available, where);
  const weights: Record<string, number> = {};
  available.forEach((n, i) => (weights[n] = normalised[i]));
  return {
    preset: presetName,
    citation,
    weights,
    notDrawn: available.filter((n) => weights[n] === 0),
    missing: missing.map((n) => ({ name: n, weight: shares[named.indexOf(n)] })),
  };
}

/** One source in a plan. */
export interface MixturePlanSource {
  name: string;
  /** Normalised weight: the expected share of draws and of tokens. */
  weight: number;
  /** Training tokens the source holds. */
  tokens: number;
  /** Tokens expected to be trained on from it over the run: weight * totalTokens. */
  expectedTokens: number;
  /** expectedTokens / tokens: how many times the run is expected to go over the source. */
  expectedEpochs: number;
}

/** What a whole run is expected to draw from each source. */
export interface MixturePlan {
  seqLen: number;
  /** Sequences (draws) in the run, over all ranks. */
  totalSequences: number;
  /** totalSequences * seqLen: the tokens trained on (targets). */
  totalTokens: number;
  sources: MixturePlanSource[];
  /** Sources with weight 0, never drawn. */
  notDrawn: string[];
  /** One message per source expected to repeat more than REPEAT_WARNING_EPOCHS times. */
  warnings: string[];
  /** Sources the mixture named that the data lacks, with their share of the mixture (data.mixtureMissing 'renormalize'). */
  missing?: { name: string; weight: number }[];
}

/** The expected tokens and epochs of every source over a run of `totalSequences` draws of seqLen tokens. */
export function planMixture(
  sources: readonly { name: string; weight: number; tokens: number }[],
  totalSequences: number,
  seqLen: number,
): MixturePlan {
  if (!Number.isSafeInteger(totalSequences) || totalSequences < 0) {
    throw invalidArg(`planMixture: totalSequences must be a non-negative integer, got ${totalSequences}`);
  }
  if (!Number.isSafeInteger(seqLen) || seqLen < 1) throw invalidArg(`planMixture: seqLen must be a positive integer, got ${seqLen}`);
  const totalTokens = totalSequences * seqLen;
  const planned = sources.map((s) => {
    const expectedTokens = s.weight * totalTokens;
    return { name: s.name, weight: s.weight, tokens: s.tokens, expectedTokens, expectedEpochs: s.tokens > 0 ? expectedTokens / s.tokens : 0 };
  });
  const warnings = planned
    .filter((s) => s.expectedEpochs > REPEAT_WARNING_EPOCHS)
    .map(
      (s) =>
        `source '${s.name}' (${s.tokens} tokens, weight ${(100 * s.weight).toFixed(2)}%) is expected to repeat ` +
        `${s.expectedEpochs.toFixed(1)} times over the run's ${totalTokens} tokens, more than ${REPEAT_WARNING_EPOCHS}`,
    );
  return { seqLen, totalSequences, totalTokens, sources: planned, notDrawn: planned.filter((s) => s.weight === 0).map((s) => s.name), warnings };
}

/** The plan as lines of text for a log: one line per source, then what is not drawn, then the warnings. */
export function formatMixturePlan(plan: MixturePlan): string[] {
  const width = Math.max(6, ...plan.sources.map((s) => s.name.length));
  const lines = [`mixture over ${plan.totalTokens} tokens (${plan.totalSequences} sequences of ${plan.seqLen}):`];
  for (const s of plan.sources) {
    if (s.weight === 0) continue;
    lines.push(
      `  ${s.name.padEnd(width)} ${(100 * s.weight).toFixed(2).padStart(6)}%  ${s.tokens} tokens  ` +
        `${s.expectedEpochs.toFixed(2)} epochs expected`,
    );
  }
  if (plan.notDrawn.length > 0) lines.push(`  not drawn (weight 0 or not in the mixture): ${plan.notDrawn.join(', ')}`);
  if (plan.missing && plan.missing.length > 0) {
    const gone = plan.missing.reduce((a, m) => a + m.weight, 0);
    lines.push(
      `  named by the mixture but not in the data (data.mixtureMissing 'renormalize'): ` +
        `${plan.missing.map((m) => `${m.name} ${(100 * m.weight).toFixed(2)}%`).join(', ')}; ` +
        `the percentages above are the remaining ${(100 * (1 - gone)).toFixed(2)}% renormalised to 100%`,
    );
  }
  for (const w of plan.warnings) lines.push(`  warning: ${w}`);
  return lines;
}
