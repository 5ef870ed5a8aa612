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
import { kafkaCounts } from './log-counts.js';

function lakeOf(url: string): Lake {
  return url.startsWith('file:') ? new LocalLake(url) : new WebHdfsLake(url);
}

/**
 * The lake must hold each log record once: its rows may exceed its distinct ids only by the
 * records the log itself holds twice (read from Kafka: a producer's resend after a lost
 * acknowledgement, or `repeats`, events the scenario's client sent again after no answer), and
 * by no more.
 */
export async function lakeVerdict(w: ScenarioWorld, v: Verdict, repeats = 0): Promise<LakeCheck | null> {
  const lake = lakeOf(w.env.METER_LAKE_URL!);
  try {
    const c = await checkLake(lake, w.env.METER_TOPIC!);
    v.notes.push(formatLakeCheck(c));
    const log = await kafkaCounts(w);
    const logRepeats = log.records - log.ids;
    if (logRepeats) v.notes.push(`the log holds ${log.records} records for ${log.ids} event ids${repeats ? ` (the client sent ${repeats} again)` : ''}`);
    if (c.rows - c.ids > logRepeats) v.failures.push(`lake holds ${c.rows} rows for ${c.ids} distinct ids, the log ${log.records} records for ${log.ids} ids`);
    else if (c.rows !== c.ids) v.notes.push(`lake rows above distinct ids: ${c.rows - c.ids}, as in the log`);
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
