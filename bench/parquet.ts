/**
 * Stage "Parquet writer": the writer ingest uses (src/pipeline/parquet-writer.ts: DuckDB
 * Appender + COPY zstd) against parquetjs-lite (the design card's choice) and hyparquet-writer,
 * on the same in-memory UsageEvents, each writing one file of the lake's 12 columns.
 * Timed: from the event objects to a closed file on disk (each writer's own conversion included).
 */
import { statSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { ParquetWriter } from '../src/pipeline/parquet-writer.js';
import type { UsageEvent } from '../src/events/usage-event.js';
import { type BenchOptions, type Row, makeEvents, median, rate, ratio, fmt, timeIt } from './lib.js';

const require = createRequire(import.meta.url);

interface Result {
  ms: number;
  size: number;
}

async function meterWrite(w: ParquetWriter, events: UsageEvent[], file: string): Promise<Result> {
  const { ms } = await timeIt(() => w.write(events, file));
  return { ms, size: statSync(file).size };
}

async function parquetjsWrite(events: UsageEvent[], file: string): Promise<Result> {
  const parquet = require('parquetjs-lite');
  const c = { compression: 'SNAPPY' };
  const schema = new parquet.ParquetSchema({
    id: { type: 'UTF8', ...c },
    event_time: { type: 'TIMESTAMP_MILLIS', ...c },
    customer: { type: 'UTF8', ...c },
    key_id: { type: 'UTF8', ...c },
    api: { type: 'UTF8', ...c },
    method: { type: 'UTF8', ...c },
    status: { type: 'INT32', ...c },
    latency_ms: { type: 'INT32', ...c },
    bytes_in: { type: 'INT64', ...c },
    bytes_out: { type: 'INT64', ...c },
    billable: { type: 'BOOLEAN', ...c },
    v: { type: 'INT32', ...c },
  });
  const { ms } = await timeIt(async () => {
    const w = await parquet.ParquetWriter.openFile(schema, file, { rowGroupSize: 100_000 });
    for (const e of events) {
      await w.appendRow({
        id: e.id,
        event_time: new Date(e.time),
        customer: e.customer,
        key_id: e.keyId,
        api: e.api,
        method: e.method,
        status: e.status,
        latency_ms: e.latencyMs,
        bytes_in: e.bytesIn,
        bytes_out: e.bytesOut,
        billable: e.billable,
        v: e.v,
      });
    }
    await w.close();
  });
  return { ms, size: statSync(file).size };
}

async function hyparquetWrite(events: UsageEvent[], file: string): Promise<Result> {
  const { parquetWriteFile } = (await import('hyparquet-writer')) as any;
  const { ms } = await timeIt(async () => {
    const n = events.length;
    const col = <T>(f: (e: UsageEvent) => T) => {
      const a = new Array<T>(n);
      for (let i = 0; i < n; i++) a[i] = f(events[i]!);
      return a;
    };
    const big = (f: (e: UsageEvent) => number) => {
      const a = new BigInt64Array(n);
      for (let i = 0; i < n; i++) a[i] = BigInt(f(events[i]!));
      return a;
    };
    const int = (f: (e: UsageEvent) => number) => {
      const a = new Int32Array(n);
      for (let i = 0; i < n; i++) a[i] = f(events[i]!);
      return a;
    };
    await parquetWriteFile({
      filename: file,
      rowGroupSize: 100_000,
      columnData: [
        { name: 'id', data: col((e) => e.id), type: 'STRING', nullable: false },
        { name: 'event_time', data: big((e) => e.time), type: 'TIMESTAMP', nullable: false },
        { name: 'customer', data: col((e) => e.customer), type: 'STRING', nullable: false },
        { name: 'key_id', data: col((e) => e.keyId), type: 'STRING', nullable: false },
        { name: 'api', data: col((e) => e.api), type: 'STRING', nullable: false },
        { name: 'method', data: col((e) => e.method), type: 'STRING', nullable: false },
        { name: 'status', data: int((e) => e.status), type: 'INT32', nullable: false },
        { name: 'latency_ms', data: int((e) => e.latencyMs), type: 'INT32', nullable: false },
        { name: 'bytes_in', data: big((e) => e.bytesIn), type: 'INT64', nullable: false },
        { name: 'bytes_out', data: big((e) => e.bytesOut), type: 'INT64', nullable: false },
        { name: 'billable', data: col((e) => e.billable), type: 'BOOLEAN', nullable: false },
        { name: 'v', data: int((e) => e.v), type: 'INT32', nullable: false },
      ],
    });
  });
  return { ms, size: statSync(file).size };
}

/** The DuckDB reader must read every file back with all rows (a writer that drops rows wins nothing). */
async function rowCount(file: string): Promise<number> {
  const { DuckDBInstance } = await import('@duckdb/node-api');
  const inst = await DuckDBInstance.create(':memory:');
  const c = await inst.connect();
  const r = await c.runAndReadAll(`SELECT count(*)::BIGINT AS n, count(DISTINCT id)::BIGINT AS d FROM read_parquet('${file}')`);
  const row = r.getRowObjectsJS()[0] as { n: bigint; d: bigint };
  c.closeSync();
  inst.closeSync();
  if (row.n !== row.d) throw new Error(`${file}: ${row.n} rows but ${row.d} distinct ids`);
  return Number(row.n);
}

export async function benchParquet(o: BenchOptions): Promise<Row[]> {
  const n = o.smoke ? 20_000 : 1_000_000;
  o.log(`parquet: generating ${fmt(n)} events`);
  const events = makeEvents(n, 42, Date.UTC(2026, 10, 24, 7));
  const dir = o.workDir;
  const sides: Record<string, Result[]> = { meter: [], parquetjs: [], hyparquet: [] };
  const w = await ParquetWriter.open();
  try {
    for (let i = 0; i < o.runs; i++) {
      // Interleaved so a noisy neighbour hits every side alike.
      const m = join(dir, 'pq-meter.parquet');
      sides.meter!.push(await meterWrite(w, events, m));
      const h = join(dir, 'pq-hyparquet.parquet');
      sides.hyparquet!.push(await hyparquetWrite(events, h));
      const p = join(dir, 'pq-parquetjs.parquet');
      sides.parquetjs!.push(await parquetjsWrite(events, p));
      o.log(
        `parquet run ${i + 1}: meter ${fmt(sides.meter![i]!.ms)} ms, hyparquet ${fmt(sides.hyparquet![i]!.ms)} ms, parquetjs ${fmt(sides.parquetjs![i]!.ms)} ms`,
      );
    }
  } finally {
    w.close();
  }
  for (const f of ['meter', 'hyparquet', 'parquetjs']) {
    const file = join(dir, `pq-${f}.parquet`);
    const rows = await rowCount(file);
    if (rows !== n) throw new Error(`${f} wrote ${rows} rows, expected ${n}`);
    rmSync(file);
  }
  const rps = (k: string) => n / (median(sides[k]!.map((r) => r.ms)) / 1000);
  const bpe = (k: string) => median(sides[k]!.map((r) => r.size)) / n;
  const rows: Row[] = [];
  for (const [k, label] of [
    ['parquetjs', 'parquetjs-lite (SNAPPY)'],
    ['hyparquet', 'hyparquet-writer (SNAPPY)'],
  ] as const) {
    rows.push({
      stage: 'Parquet writer',
      metric: `rows/s, ${fmt(n)} events vs ${label}`,
      meter: rate(rps('meter')),
      baseline: rate(rps(k)),
      ratio: ratio(rps('meter'), rps(k)),
      target: 'side by side',
      met: 'n/a',
    });
    rows.push({
      stage: 'Parquet writer',
      metric: `bytes/event vs ${label}`,
      meter: fmt(bpe('meter'), 1),
      baseline: fmt(bpe(k), 1),
      ratio: ratio(bpe(k), bpe('meter')),
      target: 'side by side',
      met: 'n/a',
    });
  }
  return rows;
}
