/**
 * Progress of a long command (backfill, replay) on stderr: a bar with count, percent and ETA
 * redrawn in place on a terminal; periodic plain lines when stderr is not a terminal, is a
 * `dumb` one, or reports fewer than MIN_COLUMNS columns (a 0-column terminal made the former
 * spinner clear "Infinity" lines forever: every write here is one bounded line).
 * No colours at all, so NO_COLOR holds trivially.
 */
import { formatDuration } from './duration.js';

const MIN_COLUMNS = 20;
const REDRAW_MS = 100;

export interface ProgressOptions {
  /** e.g. "backfill" */
  label: string;
  /** e.g. "hours" */
  unit: string;
  stream?: NodeJS.WriteStream;
  /** Without a terminal: a line at least this often (ms; default 5 s), plus the first and the last... */
  lineEveryMs?: number;
  /** ...and one each time `done` is a multiple of this (e.g. 24: each day of hours). */
  lineEveryCount?: number;
  env?: NodeJS.ProcessEnv;
}

export type ProgressMode = 'bar' | 'lines';

export function progressMode(stream: NodeJS.WriteStream, env: NodeJS.ProcessEnv = process.env): ProgressMode {
  if (!stream.isTTY || env.TERM === 'dumb') return 'lines';
  return (stream.columns ?? 0) >= MIN_COLUMNS ? 'bar' : 'lines';
}

export class Progress {
  private readonly stream: NodeJS.WriteStream;
  private readonly env: NodeJS.ProcessEnv;
  private readonly t0 = Date.now();
  private lastDraw = 0;
  private drawn = false; // a bar is on the current line
  private done = 0;
  private total = 0;

  constructor(private readonly o: ProgressOptions) {
    this.stream = o.stream ?? process.stderr;
    this.env = o.env ?? process.env;
  }

  /** The current line: "backfill [#####-----] 12/48 hours 25% ETA 1m20s". */
  render(width: number | null): string {
    const { done, total } = this;
    const pct = total ? Math.floor((done / total) * 100) : 0;
    const elapsed = Date.now() - this.t0;
    const eta =
      done > 0 && done < total
        ? ` ETA ${formatDuration(Math.round((elapsed / done) * (total - done)))}`
        : done >= total && total
          ? ` in ${formatDuration(elapsed)}`
          : '';
    const tail = `${done}/${total} ${this.o.unit} ${pct}%${eta}`;
    if (width === null) return `${this.o.label} ${tail}`;
    const barWidth = Math.max(0, Math.min(30, width - 1 - this.o.label.length - tail.length - 4));
    const fill = total ? Math.round((done / total) * barWidth) : 0;
    const line = barWidth >= 5 ? `${this.o.label} [${'#'.repeat(fill)}${'-'.repeat(barWidth - fill)}] ${tail}` : `${this.o.label} ${tail}`;
    return line.slice(0, width - 1);
  }

  update(done: number, total: number): void {
    this.done = done;
    this.total = total;
    const now = Date.now();
    const last = done >= total;
    if (progressMode(this.stream, this.env) === 'bar') {
      if (!last && this.drawn && now - this.lastDraw < REDRAW_MS) return;
      this.lastDraw = now;
      this.stream.write(`\r${this.render(this.stream.columns)}\x1b[K`);
      this.drawn = true;
      return;
    }
    this.clearBar();
    const step = this.o.lineEveryCount;
    if (!last && this.lastDraw && now - this.lastDraw < (this.o.lineEveryMs ?? 5000) && !(step && done % step === 0)) return;
    this.lastDraw = now;
    this.stream.write(this.render(null) + '\n');
  }

  /** A line of its own (a warning, a retry) above the bar. */
  message(text: string): void {
    this.clearBar();
    this.stream.write(text + '\n');
    if (progressMode(this.stream, this.env) === 'bar' && this.total) {
      this.stream.write(`\r${this.render(this.stream.columns)}\x1b[K`);
      this.drawn = true;
    }
  }

  /** Leave the bar and end with one final line. */
  finish(text: string): void {
    this.clearBar();
    this.stream.write(text + '\n');
  }

  private clearBar(): void {
    if (this.drawn) this.stream.write('\r\x1b[K');
    this.drawn = false;
  }
}

/** Raised from a progress callback after SIGINT/SIGTERM: stop after the unit in flight. */
export class Interrupted extends Error {
  override readonly name = 'Interrupted';
  /** `reported`: the command already said what was done and left. */
  constructor(
    readonly signal: string,
    readonly reported = false,
  ) {
    super(`interrupted by ${signal}`);
  }
  /** The shell's convention: 128 + signal number. */
  get exitCode(): number {
    return this.signal === 'SIGINT' ? 130 : 143;
  }
}

/**
 * SIGINT/SIGTERM handling for a command that can stop between units of work: the first signal
 * asks to stop after the unit in flight (`check()` throws Interrupted); a second exits at once.
 */
export function stopOnSignal(say: (m: string) => void): { check(): void; signal(): string | null; dispose(): void } {
  let got: string | null = null;
  const on = (sig: NodeJS.Signals) => {
    if (got) process.exit(sig === 'SIGINT' ? 130 : 143);
    got = sig;
    say(`${sig}: stopping after the work in flight (send it again to exit now)`);
  };
  process.on('SIGINT', on);
  process.on('SIGTERM', on);
  return {
    check() {
      if (got) throw new Interrupted(got);
    },
    signal: () => got,
    dispose() {
      process.off('SIGINT', on);
      process.off('SIGTERM', on);
    },
  };
}
