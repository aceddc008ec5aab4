// progress.ts: one status line for long CLI stages. On a terminal it redraws in place (at most 10 times a
// second); otherwise (CI logs, pipes) it prints a plain line every `everyMs` so logs stay readable.
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
