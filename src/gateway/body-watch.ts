/**
 * Request bodies that come too slowly are cut: a body must keep coming (no pause longer than
 * `idleMs`) and, once `idleMs` have passed since it started, arrive at `minBytesPerSec` on
 * average from its start. Otherwise the watcher calls `onSlow` with the reason, and the gateway
 * answers 408 and closes the connection (server.ts). A client sending one byte every few seconds
 * would otherwise hold a gateway socket and an upstream connection for as long as it likes.
 * (The header phase is bounded by Node's own headersTimeout, set in server.ts.)
 *
 * One timer for all bodies (checked every `checkEveryMs`), not one per request: a body that
 * ends within the first check costs a Set insert and delete.
 */
export interface BodyWatchOptions {
  /** Longest pause between two parts of a body, and the grace before the average rate counts (ms). */
  idleMs: number;
  /** Least average rate of a body after the grace (bytes per second); 0 = no minimum. */
  minBytesPerSec: number;
  checkEveryMs?: number;
  now?: () => number;
}

interface Watched {
  start: number;
  lastCheck: number;
  held: () => boolean;
  lastBytes: number;
  lastProgress: number;
  bytes: () => number;
  onSlow: (reason: string) => void;
}

export interface BodyWatchStats {
  watching: number;
  /** Bodies cut for a pause longer than idleMs. */
  idleCut: number;
  /** Bodies cut for an average rate under minBytesPerSec. */
  slowCut: number;
}

export class BodyWatch {
  private readonly watched = new Set<Watched>();
  private timer: NodeJS.Timeout | null = null;
  private readonly now: () => number;
  private idleCut = 0;
  private slowCut = 0;

  constructor(private readonly opts: BodyWatchOptions) {
    this.now = opts.now ?? (() => performance.now());
  }

  /**
   * Watch one body; `bytes()` reads how much of it has arrived; `held()` says the gateway itself
   * is not reading it (backpressure from the upstream): such time counts against nobody.
   * Returns the function that stops watching it.
   */
  watch(bytes: () => number, onSlow: (reason: string) => void, held: () => boolean = () => false): () => void {
    const t = this.now();
    const w: Watched = { start: t, lastCheck: t, held, lastBytes: 0, lastProgress: t, bytes, onSlow };
    this.watched.add(w);
    if (!this.timer) {
      this.timer = setInterval(() => this.check(), this.opts.checkEveryMs ?? Math.min(500, Math.max(10, this.opts.idleMs / 4)));
      this.timer.unref();
    }
    return () => this.unwatch(w);
  }

  private unwatch(w: Watched): void {
    this.watched.delete(w);
    if (this.watched.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  private check(): void {
    const now = this.now();
    const { idleMs, minBytesPerSec } = this.opts;
    for (const w of this.watched) {
      if (w.held()) {
        w.start += now - w.lastCheck;
        w.lastProgress = now;
        w.lastCheck = now;
        continue;
      }
      w.lastCheck = now;
      const b = w.bytes();
      if (b > w.lastBytes) {
        w.lastBytes = b;
        w.lastProgress = now;
      }
      const elapsed = now - w.start;
      let reason: string | null = null;
      if (now - w.lastProgress > idleMs) {
        this.idleCut++;
        reason = `no part of the request body arrived for ${Math.round((now - w.lastProgress) / 1000)} s (the limit is ${idleMs / 1000} s)`;
      } else if (minBytesPerSec > 0 && elapsed > idleMs && (b * 1000) / elapsed < minBytesPerSec) {
        this.slowCut++;
        reason = `the request body arrived at ${((b * 1000) / elapsed).toFixed(1)} bytes/s (${b} bytes in ${(elapsed / 1000).toFixed(1)} s); the minimum is ${minBytesPerSec} bytes/s`;
      }
      if (reason) {
        this.unwatch(w);
        w.onSlow(reason);
      }
    }
  }

  stats(): BodyWatchStats {
    return { watching: this.watched.size, idleCut: this.idleCut, slowCut: this.slowCut };
  }

  close(): void {
    this.watched.clear();
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
