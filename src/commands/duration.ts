/**
 * The one duration syntax of the CLI: a whole number with a unit, `500ms`, `30s`, `2m`, `1h`,
 * `30d`. A bare number keeps the meaning its flag had before units were accepted (milliseconds
 * for `<ms>` flags, seconds for `demo --duration`; none where a unit was always required), so
 * existing scripts keep working.
 */
import { UserError } from '../ground/errors.js';
import { quote } from '../ground/text.js';
import { MAX_TIMER_FLAG_MS } from '../ground/timers.js';

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const RE = /^(\d{1,12})(ms|s|m|h|d)?$/;

export interface DurationRules {
  /** What a bare number counts (default ms); 'none': a unit is required. */
  bare?: 'ms' | 's' | 'none';
  /** Smallest accepted value in ms (default 0). */
  minMs?: number;
  /** Largest accepted value in ms (default: any); TIMER for a flag whose value goes into a timer. */
  maxMs?: number;
}

/** maxMs of a flag whose value ends up in setTimeout/setInterval (ground/timers.ts). */
export const TIMER = MAX_TIMER_FLAG_MS;

/** `--name` value -> ms, or a UserError (exit 2) naming the flag, the syntax and the bounds. */
export function parseDurationFlag(name: string, raw: string, rules: DurationRules = {}): number {
  const m = RE.exec(String(raw).trim());
  const example = durationHint(name, rules);
  const bad = (why: string) => new UserError(`--${name} ${quote(raw)} ${why}`, example);
  const unit = m?.[2] ?? (rules.bare === 'none' ? undefined : (rules.bare ?? 'ms'));
  if (!m || unit === undefined) throw bad('is not a duration');
  // RE's unit group is one of UNIT_MS's keys, as is rules.bare
  const ms = Number(m[1]) * (UNIT_MS[unit] ?? Number.NaN);
  const max = rules.maxMs ?? Number.MAX_SAFE_INTEGER;
  if (!Number.isSafeInteger(ms) || ms > max) throw bad(rules.maxMs === undefined ? 'is too long' : `is longer than ${exactDuration(max)}`);
  const min = rules.minMs ?? 0;
  if (ms < min) throw bad(`is shorter than ${exactDuration(min)}`);
  return ms;
}

/**
 * "e.g. --timeout 500ms, 30s, 2m, 1h or 1d (from 1ms to 24d; a bare number is milliseconds)":
 * only examples the flag accepts (the hint of a timer flag offered 30d, which it cannot hold).
 */
function durationHint(name: string, rules: DurationRules): string {
  const min = rules.minMs ?? 0;
  const max = rules.maxMs ?? Infinity;
  const examples = ['500ms', '30s', '2m', '1h', max >= 30 * UNIT_MS.d! ? '30d' : '1d'].filter((e) => {
    const v = Number(/^\d+/.exec(e)![0]) * UNIT_MS[e.replace(/^\d+/, '')]!;
    return v >= min && v <= max;
  });
  const list = examples.length > 1 ? `${examples.slice(0, -1).join(', ')} or ${examples.at(-1)}` : (examples[0] ?? exactDuration(min));
  const bounds =
    max < Infinity
      ? min > 0
        ? `from ${exactDuration(min)} to ${exactDuration(max)}`
        : `at most ${exactDuration(max)}`
      : min > 0
        ? `at least ${exactDuration(min)}`
        : '';
  const bare = rules.bare === 'none' ? 'a unit is required' : `a bare number is ${rules.bare === 's' ? 'seconds' : 'milliseconds'}`;
  return `e.g. --${name} ${list} (${bounds ? `${bounds}; ` : ''}${bare})`;
}

/** ms -> the largest unit that holds it exactly: 86400000 -> "1d", 100 -> "100ms" (for bounds). */
export function exactDuration(ms: number): string {
  for (const unit of ['d', 'h', 'm', 's'] as const) if (ms >= UNIT_MS[unit]! && ms % UNIT_MS[unit]! === 0) return `${ms / UNIT_MS[unit]!}${unit}`;
  return `${ms}ms`;
}

/** ms -> "1h2m", "3m20s", "4.2s", "350ms" (for progress and messages). */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '?';
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return ms % 1000 === 0 ? `${ms / 1000}s` : `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)}s`;
  const s = Math.round(ms / 1000);
  const d = Math.floor(s / 86_400);
  const h = Math.floor((s % 86_400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (d) return `${d}d${h}h`;
  if (h) return `${h}h${m}m`;
  return `${m}m${sec}s`;
}
