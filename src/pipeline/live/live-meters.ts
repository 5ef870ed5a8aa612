/**
 * The live path's meter rows (docs/meters.md "Freshness"): a window's new events aggregated per
 * meter, customer, hour and group, by the rollup's rules (pipeline/meter-count.ts) so an hour
 * billed from the live rows and later from the rollup's agrees: billable events only; the
 * built-in bytes meters sum bytes_in/bytes_out per API; a declared meter reads the events of its
 * type, SUM and MAX the valueProperty as a decimal (event-data.ts decimalValue), UNIQUE_COUNT
 * distinct values (as text), group values of at most MAX_TEXT characters (null when missing).
 *
 * Rows are deltas: live-repository.ts adds them to live_meter_hourly (MAX: the greater), and for
 * UNIQUE_COUNT counts only the values new to the hour's group (live_meter_values).
 */
import { createHash } from 'node:crypto';
import { MAX_TEXT } from '../../events/schema.js';
import { addDecimal, decimalString, maxDecimal, parseDecimal, type Decimal } from '../../billing/money.js';
import { isRolledUp, type Aggregation, type Meter } from '../../billing/meters.js';
import { decimalValue, EventData } from './event-data.js';

/** What the live path keeps of an event for meters. */
export interface MeterEvent {
  hour: number;
  customer: string;
  api: string;
  billable: boolean;
  bytesIn: number;
  bytesOut: number;
  data?: string;
}

export interface LiveMeterRow {
  hour: number;
  customer: string;
  meter: string;
  aggregation: Aggregation;
  /** Group values as JSON object text ({} when not grouped). */
  groups: string;
  /** COUNT, SUM: the window's sum; MAX: its maximum (null: no value yet); UNIQUE_COUNT: unused (see uniques). */
  value: string | null;
  events: bigint;
  /** UNIQUE_COUNT: digests of the distinct values seen (fixed size, whatever the value's). */
  uniques: string[];
}

/** The meters the live path aggregates: those the rollup writes to meter_hourly. */
export const liveMeters = (all: readonly Meter[]): Meter[] => all.filter(isRolledUp);

/** Group values keep at most MAX_TEXT characters, as the rollup's `left(..., MAX_TEXT)`. */
const clip = (s: string | null) => (s === null ? null : [...s].slice(0, MAX_TEXT).join(''));
const digest = (s: string) => createHash('sha256').update(s).digest('base64url').slice(0, 22);

/** A window's events (new to the hour) as meter rows. */
export function liveMeterRows(meters: readonly Meter[], events: readonly MeterEvent[]): LiveMeterRow[] {
  if (!meters.length) return [];
  const byType = new Map<string, Meter[]>();
  const builtIn: Meter[] = [];
  for (const m of meters)
    if (m.builtIn) builtIn.push(m);
    else byType.set(m.eventType!, [...(byType.get(m.eventType!) ?? []), m]);
  const rows = new Map<string, LiveMeterRow & { sum: Decimal | null; seen: Set<string> }>();
  const add = (e: MeterEvent, m: Meter, groups: string, value: string | null, unique: string | null) => {
    const key = `${e.hour}\u0000${e.customer}\u0000${m.slug}\u0000${groups}`;
    let r = rows.get(key);
    if (!r)
      rows.set(
        key,
        (r = {
          hour: e.hour,
          customer: e.customer,
          meter: m.slug,
          aggregation: m.aggregation,
          groups,
          value: null,
          events: 0n,
          uniques: [],
          sum: null,
          seen: new Set(),
        }),
      );
    r.events++;
    if (m.aggregation === 'COUNT') r.sum = addDecimal(r.sum ?? parseDecimal('0'), parseDecimal('1'));
    else if (m.aggregation === 'SUM') r.sum = addDecimal(r.sum ?? parseDecimal('0'), value === null ? parseDecimal('0') : parseDecimal(value));
    else if (m.aggregation === 'MAX' && value !== null) r.sum = r.sum === null ? parseDecimal(value) : maxDecimal(r.sum, parseDecimal(value));
    else if (m.aggregation === 'UNIQUE_COUNT' && unique !== null) r.seen.add(digest(unique));
  };
  for (const e of events) {
    if (!e.billable) continue;
    for (const m of builtIn) add(e, m, JSON.stringify({ api: e.api }), String(m.builtIn?.column === 'bytes_in' ? e.bytesIn : e.bytesOut), null);
    const declared = byType.get(e.api);
    if (!declared) continue;
    const data = new EventData(e.data);
    for (const m of declared) {
      const names = Object.keys(m.groupBy);
      const groups = names.length ? JSON.stringify(Object.fromEntries(names.map((n) => [n, clip(data.read(m.groupBy[n]!))]))) : '{}';
      const raw = m.valueProperty === null ? null : data.read(m.valueProperty);
      add(e, m, groups, m.aggregation === 'SUM' || m.aggregation === 'MAX' ? decimalValue(raw) : null, raw);
    }
  }
  const out: LiveMeterRow[] = [];
  // A MAX row of no value yet keeps value null: its events count, as in the rollup's row, and
  // billing leaves it out while it has none (migration 018), as the rollup makes no row then.
  for (const { sum, seen, ...r } of rows.values()) out.push({ ...r, value: sum === null ? null : decimalString(sum), uniques: [...seen] });
  return out;
}
