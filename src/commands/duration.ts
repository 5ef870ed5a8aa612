/**
 * The one duration syntax of the CLI: a whole number with a unit, `500ms`, `30s`, `2m`, `1h`,
 * `30d`. A bare number keeps the meaning its flag had before units were accepted (milliseconds
 * for `<ms>` flags, seconds for `demo --duration`), so existing scripts keep working.
 */
import { UserError } from '../ground/errors.js';
import { quote } from '../ground/text.js';

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const RE = /^(\d{1,12})(ms|s|m|h|d)?$/;

export interface DurationRules {
  /** What a bare number counts (default ms). */
  bare?: 'ms' | 's';
  /** Smallest accepted value in ms (default 0). */
  minMs?: number;
}

/** `--name` value -> ms, or a UserError (exit 2) naming the flag and the syntax. */
export function parseDurationFlag(name: string, raw: string, rules: DurationRules = {}): number {
  const m = RE.exec(String(raw).trim());
  const example = `e.g. --${name} 500ms, 30s, 2m, 1h or 30d (a bare number is ${rules.bare === 's' ? 'seconds' : 'milliseconds'})`;
  if (!m) throw new UserError(`--${name} ${quote(raw)} is not a duration`, example);
  // RE's unit group is one of UNIT_MS's keys, as is rules.bare
  const ms = Number(m[1]) * (UNIT_MS[m[2] ?? rules.bare ?? 'ms'] ?? Number.NaN);
  if (!Number.isSafeInteger(ms)) throw new UserError(`--${name} ${quote(raw)} is too long`, example);
  const min = rules.minMs ?? 0;
  if (ms < min) throw new UserError(`--${name} ${quote(raw)} is shorter than ${formatDuration(min)}`, example);
  return ms;
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
