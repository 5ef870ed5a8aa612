import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { ParquetWriter, unstorableReason } from '../src/pipeline/parquet-writer.js';
import { uuidv7, type UsageEvent } from '../src/events/usage-event.js';

function events(n: number, t0: number): UsageEvent[] {
  return Array.from({ length: n }, (_, i) => ({
    v: 1,
    id: uuidv7(t0 + i),
    time: t0 + i * 1000 + (i % 1000),
    customer: `cust-${i % 3}`,
    keyId: `key-${i % 5}`,
    api: i % 2 ? 'locations.create' : 'devices.get',
    method: i % 2 ? 'POST' : 'GET',
    status: i % 7 === 0 ? 503 : 200,
    latencyMs: 3 + i,
    bytesIn: i * 10,
    bytesOut: 2 ** 40 + i, // needs BIGINT
    billable: i % 7 !== 0,
  }));
}

test('parquet writer: DuckDB read_parquet gives back the same rows with typed columns and UTC times', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'meter-pq-'));
  const w = await ParquetWriter.open();
  const t0 = Date.UTC(2026, 10, 24, 23, 59, 0, 123);
  const evs = events(5000, t0);
  const file = join(dir, 'a.parquet');
  await w.write(evs, file);
  await w.write(evs.slice(0, 10), join(dir, 'b.parquet')); // one instance, many files
  w.close();

  const db = await DuckDBInstance.create(':memory:');
  const conn = await db.connect();
  await conn.run(`SET TimeZone = 'America/Los_Angeles'`); // the reader's zone must not matter
  const types = (await conn.runAndReadAll(`DESCRIBE SELECT * FROM read_parquet('${file}')`)).getRowObjects();
  assert.deepEqual(
    types.map((r) => `${r.column_name} ${r.column_type}`),
    [
      'id VARCHAR',
      'event_time TIMESTAMP WITH TIME ZONE',
      'customer VARCHAR',
      'key_id VARCHAR',
      'api VARCHAR',
      'method VARCHAR',
      'status SMALLINT',
      'latency_ms INTEGER',
      'bytes_in BIGINT',
      'bytes_out BIGINT',
      'billable BOOLEAN',
      'v SMALLINT',
    ],
  );
  const rows = (
    await conn.runAndReadAll(
      `SELECT id, epoch_ms(event_time)::BIGINT AS ms, strftime(timezone('UTC', event_time), '%Y-%m-%d %H:%M:%S.%g') AS utc,
              customer, key_id, api, method, status, latency_ms, bytes_in, bytes_out, billable, v
       FROM read_parquet('${file}')`,
    )
  ).getRowObjects();
  assert.equal(rows.length, 5000);
  rows.forEach((r, i) => {
    const e = evs[i];
    assert.deepEqual(
      [r.id, Number(r.ms), r.customer, r.key_id, r.api, r.method, r.status, r.latency_ms, Number(r.bytes_in), r.bytes_out, r.billable, r.v],
      [e.id, e.time, e.customer, e.keyId, e.api, e.method, e.status, e.latencyMs, e.bytesIn, BigInt(e.bytesOut), e.billable, e.v],
    );
  });
  assert.equal(rows[0].utc, '2026-11-24 23:59:00.123');
  const meta = (await conn.runAndReadAll(`SELECT DISTINCT compression FROM parquet_metadata('${file}')`)).getRows();
  assert.deepEqual(meta, [['ZSTD']]);
  const n = (await conn.runAndReadAll(`SELECT count(*)::INT FROM read_parquet('${join(dir, 'b.parquet')}')`)).getRows();
  assert.deepEqual(n, [[10]]);
  conn.closeSync();
  db.closeSync();
});

test('parquet writer: the same events give the same file bytes (a rewrite of a range is identical)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'meter-pq-'));
  const evs = events(3000, Date.UTC(2026, 0, 1));
  const w1 = await ParquetWriter.open();
  await w1.write(evs, join(dir, '1.parquet'));
  w1.close();
  const w2 = await ParquetWriter.open();
  await w2.write(evs, join(dir, '2.parquet'));
  w2.close();
  assert.ok(readFileSync(join(dir, '1.parquet')).equals(readFileSync(join(dir, '2.parquet'))));
});

test('parquet writer: values that do not fit the typed columns are named, not written', () => {
  const e = events(1, Date.UTC(2026, 0, 1))[0];
  assert.equal(unstorableReason(e), null);
  assert.match(unstorableReason({ ...e, status: 70000 })!, /status/);
  assert.match(unstorableReason({ ...e, status: 200.5 })!, /status/);
  assert.match(unstorableReason({ ...e, bytesIn: 1.5 })!, /bytesIn/);
  assert.match(unstorableReason({ ...e, latencyMs: 1e12 })!, /latencyMs/);
});
