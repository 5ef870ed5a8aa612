/**
 * The verdict of a scenario: billed (per customer, API and hour, from the billing API) against
 * the ground truth (per event id, from the gateway's answers). A cell billed below the truth
 * has lost events; above it (beyond the calls whose fate the client could not know, e.g. cut
 * by a gateway kill), duplicated ones. Both billable calls and all metered events are checked.
 */
import type { Cells, TrafficResult } from './traffic.js';

export interface Verdict {
  scenario: string;
  /** Metered events the client saw (answered with an event id). */
  sent: number;
  sentBillable: number;
  /** Events / billable calls the billing API reports. */
  billed: number;
  billedBillable: number;
  lost: number;
  duplicated: number;
  /** Calls without a complete answer (may or may not be billed). */
  uncertain: number;
  /** Lost events tolerated by a stated bound (batched gateway kill); 0 = none tolerated. */
  lossBound: number;
  notes: string[];
  /** Cells that differ (first few), for the log. */
  diffs: string[];
  failures: string[];
  /** The scenario's lake at the end (lake-check.ts): rows, distinct ids, overlapping range pairs. */
  lake?: { rows: number; ids: number; overlaps: number };
}

/** A verdict with nothing counted yet. */
export function emptyVerdict(scenario: string, lossBound = 0): Verdict {
  return {
    scenario,
    sent: 0,
    sentBillable: 0,
    billed: 0,
    billedBillable: 0,
    lost: 0,
    duplicated: 0,
    uncertain: 0,
    lossBound,
    notes: [],
    diffs: [],
    failures: [],
  };
}

export function compare(scenario: string, truth: TrafficResult, billed: Cells, opts: { lossBound?: number } = {}): Verdict {
  const v = emptyVerdict(scenario, opts.lossBound);
  for (const c of truth.cells.values()) {
    v.sent += c.events;
    v.sentBillable += c.calls;
  }
  for (const c of truth.uncertain.values()) v.uncertain += c.events;
  for (const c of billed.values()) {
    v.billed += c.events;
    v.billedBillable += c.calls;
  }
  const keys = new Set([...truth.cells.keys(), ...billed.keys(), ...truth.uncertain.keys()]);
  for (const k of [...keys].sort()) {
    const t = truth.cells.get(k) ?? { calls: 0, events: 0 };
    const b = billed.get(k) ?? { calls: 0, events: 0 };
    const u = truth.uncertain.get(k) ?? { calls: 0, events: 0 };
    const lost = Math.max(0, t.events - b.events, t.calls - b.calls);
    const dup = Math.max(0, b.events - t.events - u.events, b.calls - t.calls - u.calls);
    v.lost += lost;
    v.duplicated += dup;
    if ((lost || dup) && v.diffs.length < 8)
      v.diffs.push(`${k.replaceAll('\t', ' ')}: truth ${t.calls}/${t.events} billed ${b.calls}/${b.events} uncertain ${u.events}`);
  }
  if (v.lost > v.lossBound) v.failures.push(`${v.lost} events lost${v.lossBound ? ` (bound ${v.lossBound})` : ''}`);
  if (v.duplicated) v.failures.push(`${v.duplicated} events counted twice`);
  if (truth.gateway5xx) v.notes.push(`gateway 5xx: ${truth.gateway5xx} (${truth.gateway5xxSamples.join(' | ')})`);
  return v;
}

export function formatRow(v: Verdict): string {
  const cols = [
    v.scenario.padEnd(22),
    `events sent ${String(v.sent).padStart(6)} (billable ${v.sentBillable})`,
    `billed ${String(v.billed).padStart(6)} (billable ${v.billedBillable})`,
    `lost ${v.lost}${v.lossBound ? ` (bound ${v.lossBound})` : ''}`,
    `duplicated ${v.duplicated}`,
  ];
  if (v.uncertain) cols.push(`uncertain ${v.uncertain}`);
  if (v.lake) cols.push(`lake rows/ids ${v.lake.rows}/${v.lake.ids}, overlaps ${v.lake.overlaps}`);
  return cols.join(' | ') + (v.failures.length ? `  FAIL: ${v.failures.join('; ')}` : '  ok');
}
