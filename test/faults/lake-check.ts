/**
 * The lake half of every scenario's verdict: does the scenario's lake hold each event once?
 * Per partition, overlapping file ranges; per hour, rows against distinct event ids (DuckDB over
 * the Parquet files; src/lake/lake-check.ts). Either one not clean fails the scenario.
 */
import { LocalLake } from '../../src/lake/local-lake.js';
import { WebHdfsLake } from '../../src/lake/webhdfs-lake.js';
import type { Lake } from '../../src/lake/lake.js';
import { checkLake, formatLakeCheck, type LakeCheck } from '../../src/lake/lake-check.js';
import type { Verdict } from './compare.js';
import type { ScenarioWorld } from './scenario.js';

function lakeOf(url: string): Lake {
  return url.startsWith('file:') ? new LocalLake(url) : new WebHdfsLake(url);
}

/**
 * `repeats`: events the scenario's client itself sent to the log more than once (the events API
 * resent after no answer); each may be a second row with the same id, so the rows may exceed the
 * distinct ids by that many and no more. 0 for gateway traffic.
 */
export async function lakeVerdict(w: ScenarioWorld, v: Verdict, repeats = 0): Promise<LakeCheck | null> {
  const lake = lakeOf(w.env.METER_LAKE_URL!);
  try {
    const c = await checkLake(lake, w.env.METER_TOPIC!);
    v.notes.push(formatLakeCheck(c));
    if (c.rows - c.ids > repeats)
      v.failures.push(`lake holds ${c.rows} rows for ${c.ids} distinct ids${repeats ? ` (${repeats} events sent again by the client)` : ''}`);
    else if (c.rows !== c.ids) v.notes.push(`lake rows above distinct ids: ${c.rows - c.ids}, within the ${repeats} events the client sent again`);
    if (c.overlaps.length) v.failures.push(`lake has ${c.overlaps.length} overlapping range pairs`);
    v.lake = { rows: c.rows, ids: c.ids, overlaps: c.overlaps.length };
    return c;
  } catch (e) {
    v.failures.push(`lake check failed: ${(e as Error).message.split('\n')[0]}`);
    return null;
  } finally {
    await lake.close();
  }
}
