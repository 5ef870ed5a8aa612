import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { ParquetWriter, unstorableReason } from '../../src/pipeline/parquet-writer.js';
import { encodeEvent, uuidv7, type UsageEvent } from '../../src/events/usage-event.js';
import { HourBuffer } from '../../src/pipeline/hour-buffer.js';
import { acceptLine, acceptRecord, eventLine, scanPlainEvent } from '../../src/pipeline/accept.js';
import { tempDir } from '../support/tmp.js';

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
  const dir = tempDir('meter-pq-');
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
      'data VARCHAR',
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
      [e!.id, e!.time, e!.customer, e!.keyId, e!.api, e!.method, e!.status, e!.latencyMs, e!.bytesIn, BigInt(e!.bytesOut), e!.billable, e!.v],
    );
  });
  assert.equal(rows[0]!.utc, '2026-11-24 23:59:00.123');
  const meta = (await conn.runAndReadAll(`SELECT DISTINCT compression FROM parquet_metadata('${file}')`)).getRows();
  assert.deepEqual(meta, [['ZSTD']]);
  const n = (await conn.runAndReadAll(`SELECT count(*)::INT FROM read_parquet('${join(dir, 'b.parquet')}')`)).getRows();
  assert.deepEqual(n, [[10]]);
  conn.closeSync();
  db.closeSync();
});

test('parquet writer: the same events give the same file bytes (a rewrite of a range is identical)', async () => {
  const dir = tempDir('meter-pq-');
  const evs = events(3000, Date.UTC(2026, 0, 1));
  const w1 = await ParquetWriter.open();
  await w1.write(evs, join(dir, '1.parquet'));
  w1.close();
  const w2 = await ParquetWriter.open();
  await w2.write(evs, join(dir, '2.parquet'));
  w2.close();
  assert.ok(readFileSync(join(dir, '1.parquet')).equals(readFileSync(join(dir, '2.parquet'))));
});

test('parquet writer: the largest rows meter accepts (four 200-character non-ASCII names) write, two files at once, at the default memory limit and at 128 MB', async () => {
  // Each row is about 2.5 KB, so a row group (32,768 rows) is about 80 MB per file, two files
  // at once: more than DuckDB's memory limit holds without spilling.
  const dir = tempDir('meter-pq-');
  const n = 33_000; // just over one row group
  const name = (p: string, i: number) => `${p}${i}-${'가'.repeat(200)}`.slice(0, 200);
  const big = (k: number): UsageEvent[] =>
    events(n, Date.UTC(2026, 0, 1)).map((e, i) => ({
      ...e,
      customer: name(`c${k}-`, i % 97),
      keyId: name('k', i % 89),
      api: name('a', i % 50),
      method: name('m', i % 7),
    }));
  const db = await DuckDBInstance.create(':memory:');
  const conn = await db.connect();
  for (const memoryMb of [undefined, 128]) {
    const w = await ParquetWriter.open({ tempDir: join(dir, 'duckdb'), memoryMb });
    try {
      await Promise.all([w.write(big(0), join(dir, '0.parquet')), w.write(big(1), join(dir, '1.parquet'))]);
    } finally {
      w.close();
    }
    for (const k of [0, 1]) {
      const [r] = (
        await conn.runAndReadAll(
          `SELECT count(*)::INTEGER AS n, max(length(customer))::INTEGER AS len, min(customer) AS first FROM read_parquet('${join(dir, `${k}.parquet`)}')`,
        )
      ).getRowObjects();
      assert.deepEqual({ n: r!.n, len: r!.len }, { n, len: 200 }, `memory limit ${memoryMb ?? 'default'}`);
      assert.equal(r!.first, name(`c${k}-`, 0));
    }
  }
});

test('parquet writer: values that do not fit the typed columns are named, not written', () => {
  const e = events(1, Date.UTC(2026, 0, 1))[0]!;
  assert.equal(unstorableReason(e), null);
  assert.match(unstorableReason({ ...e, status: 70000 })!, /status/);
  assert.match(unstorableReason({ ...e, status: 200.5 })!, /status/);
  assert.match(unstorableReason({ ...e, bytesIn: 1.5 })!, /bytesIn/);
  assert.match(unstorableReason({ ...e, latencyMs: 1e12 })!, /latencyMs/);
});

test('parquet writer: a spool of plain records and one of the same events spelled otherwise give the same bytes, in order, over several spool files', async () => {
  const dir = tempDir('meter-pq-');
  const t0 = Date.UTC(2026, 0, 1);
  const evs = events(30_000, t0).map((e) => ({ ...e, time: t0 + (e.time % 3_600_000) }));
  const limits = { pastLimitMs: 86_400_000 * 400, futureLimitMs: 86_400_000 * 400 };
  const plain = new HourBuffer(dir);
  const other = new HourBuffer(dir);
  evs.forEach((e, i) => {
    const r = { partition: 0, offset: i, key: e.customer, timestamp: t0, value: encodeEvent(e) };
    assert.equal(plain.take(r, limits), null);
    // keys reversed, spaces, an escape: not the gateway's spelling, so acceptRecord decides and eventLine spells it
    const fields = Object.entries({ ...e, customer: e.customer }).reverse();
    const text = `{ ${fields.map(([k, v]) => `${JSON.stringify(k)} : ${JSON.stringify(v)}`).join(' , ')} }`.replace('"cust-', '"\\u0063ust-');
    assert.equal(other.take({ ...r, value: Buffer.from(text) }, limits), null);
  });
  const [a] = plain.hours();
  const [b] = other.hours();
  assert.ok(a!.files.length >= 2, 'several spool files');
  const w = await ParquetWriter.open();
  await w.write(evs, join(dir, 'w.parquet'));
  await w.writeSpool(a!.files, join(dir, 'a.parquet'));
  await w.writeSpool(b!.files, join(dir, 'b.parquet'));
  w.close();
  plain.discard();
  other.discard();
  const bytes = readFileSync(join(dir, 'a.parquet'));
  assert.ok(bytes.equals(readFileSync(join(dir, 'b.parquet'))));
  assert.ok(bytes.equals(readFileSync(join(dir, 'w.parquet'))));
  const db = await DuckDBInstance.create(':memory:');
  const conn = await db.connect();
  const ids = (await conn.runAndReadAll(`SELECT id FROM read_parquet('${join(dir, 'a.parquet')}')`)).getRows().map((r) => r[0]);
  assert.deepEqual(
    ids,
    evs.map((e) => e.id),
  );
  conn.closeSync();
  db.closeSync();
});

test('accept: the fast path for plain records decides and stores exactly as acceptRecord does', () => {
  const now = Date.UTC(2026, 5, 1, 12);
  const limits = { pastLimitMs: 86_400_000, futureLimitMs: 300_000 };
  const base = events(200, now - 3_600_000);
  const variants: Buffer[] = [];
  const rnd = (() => {
    let s = 42;
    return () => (s = (s * 1103515245 + 12345) & 0x7fffffff) / 0x80000000;
  })();
  for (const e of base) {
    const plainText = encodeEvent(e).toString();
    variants.push(Buffer.from(plainText));
    for (const [k, v] of [
      ['status', 0],
      ['status', 999],
      ['status', 1000],
      ['latencyMs', 12.5],
      ['latencyMs', 2_147_483_647],
      ['latencyMs', 2_147_483_648],
      ['bytesIn', 2 ** 53 - 1],
      ['bytesIn', 2 ** 53],
      ['bytesIn', -1],
      ['time', 0],
      ['time', now + 400_000],
      ['customer', ''],
      ['customer', 'x'.repeat(200)],
      ['customer', 'x'.repeat(201)],
      ['customer', 'é'],
      ['customer', 'a"b'],
      ['api', 'a\\b'],
      ['method', 5],
      ['billable', 'yes'],
      ['v', 2],
      ['id', e.id.toUpperCase()],
    ] as [string, unknown][])
      variants.push(Buffer.from(JSON.stringify({ ...e, [k]: v })));
    variants.push(Buffer.from(plainText.replace('"time":', '"time": ')));
    variants.push(Buffer.from(plainText.replace('"status":', '"status":0')));
    variants.push(Buffer.from(plainText.slice(0, -1) + ',"extra":1}'));
    variants.push(Buffer.from(plainText.slice(0, -1) + ',"status":201}'));
    variants.push(Buffer.from(plainText.replace(/,"method":"[A-Z]+"/, '')));
    variants.push(Buffer.from(JSON.stringify(Object.fromEntries(Object.entries(e).reverse()))));
    for (let j = 0; j < 20; j++) {
      const b = Buffer.from(plainText);
      b[Math.floor(rnd() * b.length)] = Math.floor(rnd() * 256);
      variants.push(b);
    }
  }
  let fast = 0;
  for (const value of variants) {
    const r = { partition: 0, offset: 0, key: '', timestamp: now, value };
    const slow = acceptRecord(r, limits);
    const line = acceptLine(r, limits);
    if (scanPlainEvent(value) >= 0 && line.ok) fast++;
    assert.equal(line.ok, slow.ok, value.toString());
    if (line.ok && slow.ok) {
      assert.equal(line.time, slow.event.time);
      assert.deepEqual(JSON.parse(line.line.toString()), JSON.parse(eventLine(slow.event).toString()), value.toString());
    } else if (!line.ok && !slow.ok) assert.equal(line.reason, slow.reason);
  }
  assert.ok(fast >= base.length, `plain records take the fast path (${fast})`);
});
