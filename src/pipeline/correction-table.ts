/**
 * An hour's event corrections (src/billing/events/correction-store.ts) as a DuckDB temp table
 * `(id, cancelled, data)`, for the rollup's counts: rollup-count.ts takes cancelled events out of
 * the calls and bytes, meter-count.ts leaves them out of every meter and reads a corrected
 * event's data from here instead of the lake's.
 */
import type { DuckDBConnection } from '@duckdb/node-api';
import type { HourCorrections } from '../billing/events/correction-store.js';

let tempSeq = 0;

/** The table's name, or null when the hour has no corrected event; drop it with dropCorrectionTable. */
export async function correctionTable(c: DuckDBConnection, corrections: HourCorrections): Promise<string | null> {
  if (!corrections.events.length) return null;
  const name = `corrections_${++tempSeq}`;
  await c.run(`CREATE TEMP TABLE ${name} (id VARCHAR PRIMARY KEY, cancelled BOOLEAN NOT NULL, data VARCHAR)`);
  const app = await c.createAppender(name, 'main', 'temp');
  try {
    for (const e of corrections.events) {
      app.appendVarchar(e.eventId);
      app.appendBoolean(e.cancelled);
      if (e.data === null) app.appendNull();
      else app.appendVarchar(e.data);
      app.endRow();
    }
  } finally {
    app.closeSync();
  }
  return name;
}

export async function dropCorrectionTable(c: DuckDBConnection, name: string | null): Promise<void> {
  if (name) await c.run(`DROP TABLE IF EXISTS ${name}`);
}
