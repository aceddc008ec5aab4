// progress.ts: one status line for long CLI stages. On a terminal it redraws in place (at most 10 times a
// second); otherwise (CI logs, pipes) it prints a plain line every `everyMs` so logs stay readable. And the
// training bar, drawn from a Trainer's events (the trainer itself draws nothing).
import type { EvalMetrics, StepMetrics } from '../train/metrics';

export interface ProgressLineOptions {
  /** The stream to draw on. Defaults to process.stderr. */
  stream?: NodeJS.WriteStream;
  /** Without a terminal, print at most once per this many ms. Defaults to 10 s. */
  everyMs?: number;
}

export class ProgressLine {
  #stream: NodeJS.WriteStream;
  #tty: boolean;
  #everyMs: number;
  #last = 0;
  #drawn = false;

  constructor(options: ProgressLineOptions = {}) {
    this.#stream = options.stream ?? process.stderr;
    this.#tty = Boolean(this.#stream.isTTY);
    this.#everyMs = options.everyMs ?? 10_000;
  }

  /** Shows `text` unless the last draw was too recent; `force` draws anyway. */
  update(text: string, force = false): void {
    const now = Date.now();
    if (!force && now - this.#last < (this.#tty ? 100 : this.#everyMs)) return;
    this.#last = now;
    if (this.#tty) {
      const width = Math.max(20, (this.#stream.columns ?? 100) - 1);
      this.#stream.write(`\r\x1b[K${text.slice(0, width)}`);
      this.#drawn = true;
    } else {
      this.#stream.write(`${text}\n`);
    }
  }

  /** Ends the line (a terminal's cursor moves to the next one). */
  done(): void {
    if (this.#tty && this.#drawn) this.#stream.write('\n');
    this.#drawn = false;
  }
}

/** A text bar of `width` cells for a fraction in [0, 1]. */
export function bar(fraction: number, width = 24): string {
  const f = Math.min(1, Math.max(0, Number.isFinite(fraction) ? fraction : 0));
  const full = Math.round(f * width);
  return `[${'#'.repeat(full)}${'.'.repeat(width - full)}] ${(100 * f).toFixed(0).padStart(3)}%`;
}

/** What a training progress bar listens to: a Trainer's 'step' and 'eval' events. */
interface TrainingEvents {
  on(event: 'step', listener: (m: StepMetrics) => void): unknown;
  on(event: 'eval', listener: (e: EvalMetrics) => void): unknown;
}

/**
 * `pajama train`'s bar on a terminal: redrawn in place on every step (steps done of `steps`, loss, learning
 * rate, weight decay, tokens/s, MFU). The line ends before an evaluation is printed, and with end().
 */
export class TrainingProgressBar {
  #stream: NodeJS.WritableStream;
  #steps: number;
  #open = false;

  /** Listens to `trainer`'s steps; register it before other 'eval' listeners that print. */
  constructor(trainer: TrainingEvents, steps: number, stream: NodeJS.WritableStream = process.stderr) {
    this.#stream = stream;
    this.#steps = steps;
    trainer.on('step', (m) => this.draw(m));
    trainer.on('eval', () => this.end());
  }

  draw(m: StepMetrics): void {
    const width = 24;
    const done = Math.round((width * m.step) / this.#steps);
    const cells = '#'.repeat(done) + '-'.repeat(width - done);
    this.#stream.write(
      `\r[${cells}] ${m.step}/${this.#steps} loss ${m.loss.toFixed(4)} lr ${m.lr.toExponential(2)} wd ${m.weightDecay} ` +
        `${Math.round(m.tokensPerSec)} tok/s MFU ${(100 * m.mfu).toFixed(1)}%${m.commSeconds > 0 ? ` comm ${m.commSeconds.toFixed(3)}s` : ''}   `,
    );
    this.#open = true;
  }

  /** Ends the bar's line, if one is drawn. */
  end(): void {
    if (this.#open) this.#stream.write('\n');
    this.#open = false;
  }
}
