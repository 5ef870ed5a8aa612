/**
 * The lake's optional `data` column (schema.ts): a file written before it existed
 * (fixtures/lake-v1, written by the ParquetWriter of commit 1701205) is read beside new files by
 * the rollup, lake-check and compaction, its rows reading data as NULL; the calls counted and
 * the exactly-once rules are unchanged.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { DuckDBInstance } from '@duckdb/node-api';
import { LocalLake } from '../../src/lake/local-lake.js';
import { dataFileName, hourDir } from '../../src/lake/layout.js';
import { lakeSource } from '../../src/lake/lake-sql.js';
import { checkLake } from '../../src/lake/lake-check.js';
import { compact } from '../../src/pipeline/compaction.js';
import { ParquetWriter } from '../../src/pipeline/parquet-writer.js';
import { Rollup } from '../../src/pipeline/rollup.js';
import { PgliteWarehouse } from '../../src/warehouse/pglite-warehouse.js';
import { migrate } from '../../src/warehouse/migrate.js';
import type { UsageEvent } from '../../src/events/usage-event.js';
import { tempDir } from '../support/tmp.js';

const HOUR = Date.UTC(2026, 11, 1, 10);
const OLD_FILE = join(import.meta.dirname, '../../../fixtures/lake-v1/usage-events+0+0+3.parquet');

const event = (n: number, data?: string): UsageEvent => ({
  v: 1,
  id: `0193a000-0000-7000-8000-0000000001${String(n).padStart(2, '0')}`,
  time: HOUR + 600_000 + n,
  customer: 'acme',
  keyId: 'ai-gateway',
  api: 'ai.tokens',
  method: 'EVENT',
  status: 200,
  latencyMs: 0,
  bytesIn: data ? Buffer.byteLength(data) : 0,
  bytesOut: 0,
  billable: true,
  ...(data !== undefined ? { data } : {}),
});

async function calls(db: PgliteWarehouse): Promise<string[]> {
  const rows = await db.query<{ api: string; calls: number; events: number }>(
    'SELECT api, calls::int AS calls, events::int AS events FROM usage_hourly WHERE hour = $1 ORDER BY api',
    [new Date(HOUR).toISOString()],
  );
  return rows.map((r) => `${r.api} ${r.calls}/${r.events}`);
}

test('lake data column: a file from before the column is read beside new files by rollup, lake-check and compaction', async () => {
  const root = tempDir('meter-lake-v1-');
  const lake = new LocalLake(pathToFileURL(root).href);
  await lake.init();
  const dir = join(root, hourDir(HOUR));
  mkdirSync(dir, { recursive: true });
  copyFileSync(OLD_FILE, join(dir, dataFileName('usage-events', 0, 0, 3)));
  const w = await ParquetWriter.open({ connections: 1 });
  try {
    await w.write([event(1, '{"tokens":512,"model":"m-1"}'), event(2, '{"tokens":8}'), event(3)], join(dir, dataFileName('usage-events', 0, 4, 6)));
    // The partition's last range is never compacted (ingest may still rewrite it): one in the next hour.
    const next = join(root, hourDir(HOUR + 3_600_000));
    mkdirSync(next, { recursive: true });
    await w.write([{ ...event(9), time: HOUR + 3_600_000 }], join(next, dataFileName('usage-events', 0, 7, 7)));
  } finally {
    w.close();
  }

  // The old file alone: every lake column, data NULL.
  const duck = await DuckDBInstance.create(':memory:');
  const c = await duck.connect();
  try {
    const old = await lakeSource(c, [OLD_FILE]);
    const r = (await c.runAndReadAll(`SELECT count(*)::INT AS n, count(data)::INT AS d FROM ${old}`)).getRowObjectsJS();
    assert.deepEqual(r, [{ n: 4, d: 0 }]);
    const both = await lakeSource(
      c,
      [dataFileName('usage-events', 0, 0, 3), dataFileName('usage-events', 0, 4, 6)].map((f) => join(dir, f)),
    );
    const rows = (await c.runAndReadAll(`SELECT id, data FROM ${both} WHERE data IS NOT NULL ORDER BY id`)).getRowObjectsJS();
    assert.deepEqual(
      rows.map((x) => JSON.parse(String(x.data)).tokens),
      [512, 8],
    );
  } finally {
    c.closeSync();
    duck.closeSync();
  }

  const db = await PgliteWarehouse.open(null);
  try {
    await migrate(db);
    const rollup = new Rollup({ lake, db });
    try {
      const s = await rollup.run();
      assert.equal(s.hours, 2);
      // old file: 2 distinct billable ids of locations.latest (one written twice), one 500; new: 3 events
      assert.deepEqual(await calls(db), ['ai.tokens 3/3', 'locations.create 0/1', 'locations.latest 2/2']);

      const check = await checkLake(lake, 'usage-events');
      assert.equal(check.rows, 8);
      assert.equal(check.ids, 7);
      assert.equal(check.duplicatedHours.length, 1, 'the old file holds one id twice, and lake-check still says so');

      const merged = await compact({ lake, topic: 'usage-events', targetBytes: 1 << 20, closedBefore: Date.now() });
      assert.equal(merged.merged, 1);
      assert.equal((await rollup.run()).hours, 1, 'the compacted hour is rolled up again');
      assert.deepEqual(await calls(db), ['ai.tokens 3/3', 'locations.create 0/1', 'locations.latest 2/2'], 'the same counts from the merged file');
    } finally {
      await rollup.close();
    }
  } finally {
    await db.close();
  }
});
