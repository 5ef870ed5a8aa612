/**
 * The Parquet writer's zstd level (src/pipeline/parquet-writer.ts): DuckDB's CPU to convert the
 * same spool (gateway-spelled JSON lines, as ingest spools them) to a lake file at each level,
 * the file's size, and the CPU to read it back the way the rollup does (distinct ids per
 * customer and api). Interleaved rounds, medians; CPU of every thread of this process.
 *
 *   node dist/bench/parquet-level.js [events=1000000] [levels=3,1,2] [rounds=5]
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { encodeEvent } from '../src/events/usage-event.js';
import { LAKE_SELECT, SPOOL_COLUMNS } from '../src/events/schema.js';
import { NdjsonChunks } from '../src/pipeline/ndjson-chunks.js';
import { makeEvents, median } from './lib.js';

const n = Number(process.argv[2] ?? 1_000_000);
const levels = (process.argv[3] ?? '3,1,2').split(',').map(Number);
const rounds = Number(process.argv[4] ?? 5);
const dir = mkdtempSync(join(tmpdir(), 'meter-parquet-level-'));
const cpuUs = () => {
  const c = process.cpuUsage();
  return c.user + c.system;
};
try {
  const spool = new NdjsonChunks(join(dir, 'spool'), 256 << 10);
  for (const e of makeEvents(n, 7, Date.UTC(2026, 11, 5, 10))) spool.add(encodeEvent(e));
  spool.flush();
  const inst = await DuckDBInstance.create(':memory:', { threads: '1', memory_limit: '256MB', preserve_insertion_order: 'true' });
  const c = await inst.connect();
  await c.run(`SET TimeZone = 'UTC'`);
  const src = `read_ndjson([${spool.files.map((f) => `'${f}'`).join(', ')}], columns = ${SPOOL_COLUMNS})`;
  const res = new Map(levels.map((l) => [l, { write: [] as number[], read: [] as number[], size: 0 }]));
  for (let r = 0; r < rounds; r++)
    for (const l of levels) {
      const out = join(dir, `level${l}.parquet`);
      const x = res.get(l)!;
      let t = cpuUs();
      await c.run(`COPY (SELECT ${LAKE_SELECT} FROM ${src}) TO '${out}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 32768, COMPRESSION_LEVEL ${l})`);
      x.write.push((cpuUs() - t) / n);
      t = cpuUs();
      await c.run(`SELECT customer, api, count(DISTINCT id) FROM read_parquet('${out}') GROUP BY ALL`);
      x.read.push((cpuUs() - t) / n);
      x.size = statSync(out).size;
    }
  c.closeSync();
  inst.closeSync();
  console.log(`${n} gateway-like events, ${rounds} interleaved rounds, CPU µs per event (median), load ${(await import('node:os')).loadavg()[0]!.toFixed(1)}`);
  for (const [l, x] of res)
    console.log(
      `zstd level ${l}: convert ${median(x.write).toFixed(3)} µs, read back ${median(x.read).toFixed(3)} µs, ${(x.size / n).toFixed(1)} B/event (${x.write.map((v) => v.toFixed(2)).join(', ')})`,
    );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
