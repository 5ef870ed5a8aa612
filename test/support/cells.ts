/** What a test expects billed, per (customer, api, hour), and what a table holds, in one shape. */
import { hourStart } from '../../src/lake/layout.js';
import type { UsageEvent } from '../../src/events/usage-event.js';
import type { Sql } from '../../src/warehouse/warehouse.js';

/** Counts by `customer \t api \t hour ISO`. */
export type Cells = Map<string, { calls: number; events: number }>;

/** The truth: distinct event ids per (customer, api, hour); a billable one is also a call. */
export function truthOf(events: Iterable<UsageEvent>): Cells {
  const seen = new Set<string>();
  const out: Cells = new Map();
  for (const e of events) {
    if (seen.has(e.id)) continue;
    seen.add(e.id);
    const k = `${e.customer}\t${e.api}\t${new Date(hourStart(e.time)).toISOString()}`;
    const c = out.get(k) ?? { calls: 0, events: 0 };
    c.events++;
    if (e.billable) c.calls++;
    out.set(k, c);
  }
  return out;
}

/** The rows of an hourly table (`usage_hourly`, `live_hourly`, `billable_hourly`), optionally filtered by `where`. */
export async function tableCells(db: Sql, from: string, where = ''): Promise<Cells> {
  const rows = await db.query<{ customer_id: string; api: string; hour: Date; calls: number; events: number }>(
    `SELECT customer_id, api, hour, calls, events FROM ${from} ${where}`,
  );
  const out: Cells = new Map();
  for (const r of rows) out.set(`${r.customer_id}\t${r.api}\t${new Date(r.hour).toISOString()}`, { calls: Number(r.calls), events: Number(r.events) });
  return out;
}

/** The entries in key order, for deepEqual. */
export const sortedCells = <V>(m: Map<string, V>): [string, V][] => [...m.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1));
