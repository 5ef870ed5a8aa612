/**
 * This process's event-loop lateness and GC pauses over a span, with epoch times: what a server
 * in this process was doing when its open-loop p99 stalled (bench/gateway.ts, gateway-stall.ts).
 * A 2 ms interval timer; each turn later than 5 ms past its due time is one gap.
 */
import { PerformanceObserver, constants } from 'node:perf_hooks';

export interface Gap {
  /** Epoch ms the gap began. */
  at: number;
  ms: number;
  /** GC pauses: a full mark-compact (major) or not (scavenge, incremental marking step, weak callbacks). */
  major?: boolean;
}

export interface LoopWatch {
  /** Gaps and GC pauses since the last take (or the start). */
  take(): { loop: Gap[]; gc: Gap[] };
  stop(): void;
}

export function watchLoop(): LoopWatch {
  let loop: Gap[] = [];
  let gc: Gap[] = [];
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    const late = now - last - 2;
    if (late > 5) loop.push({ at: performance.timeOrigin + last, ms: late });
    last = now;
  }, 2);
  timer.unref();
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries())
      gc.push({
        at: performance.timeOrigin + e.startTime,
        ms: e.duration,
        major: (e as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR,
      });
  });
  obs.observe({ entryTypes: ['gc'] });
  return {
    take() {
      const r = { loop, gc };
      loop = [];
      gc = [];
      return r;
    },
    stop() {
      clearInterval(timer);
      obs.disconnect();
    },
  };
}

/** "loop late > 5 ms N times (max M ms), GC K ms (max L; J ms in F full collections)" for a log line. */
export function describeGaps(g: { loop: Gap[]; gc: Gap[] }): string {
  const max = (xs: Gap[]) => xs.reduce((m, x) => Math.max(m, x.ms), 0);
  const sum = (xs: Gap[]) => xs.reduce((m, x) => m + x.ms, 0);
  const major = g.gc.filter((x) => x.major);
  return `loop late > 5 ms ${g.loop.length}x (max ${max(g.loop).toFixed(0)} ms), GC ${sum(g.gc).toFixed(0)} ms (max ${max(g.gc).toFixed(1)}; ${sum(major).toFixed(0)} ms in ${major.length} full collections)`;
}
