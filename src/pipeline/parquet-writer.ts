/**
 * Writes usage events to one Parquet file with DuckDB: an in-memory DuckDB (one instance for
 * all files) reads a spool of the events as JSON lines (spool.ts; ingest spools the records' own
 * bytes, see accept.ts and hour-buffer.ts) and streams them out with `COPY (SELECT ...) TO ...
 * (FORMAT parquet, COMPRESSION zstd)`: no JS object per row, no table in memory. DuckDB's memory
 * is about a spool file plus a row group per file being written, whatever the file's size.
 * Rows keep the order given (ingest passes log-offset order) and each file is written by one
 * DuckDB thread, so the same events (split into the same spool files) always give the same bytes.
 *
 * Columns (the lake's schema; any Parquet reader reads them): schema.ts's field table, e.g.
 *   id VARCHAR (UUIDv7 text), event_time TIMESTAMPTZ (UTC, ms precision), ..., v SMALLINT
 */
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { MAX_EVENT_BYTES, type UsageEvent } from '../events/usage-event.js';
import { eventLine } from './accept.js';
import { LAKE_SELECT, SPOOL_COLUMNS } from '../events/schema.js';
import { NdjsonChunks } from './ndjson-chunks.js';

// The lake's columns, the spool's fields and the mapping between them: schema.ts's field table.
export { LAKE_COLUMNS_SQL } from '../events/schema.js';
export { unstorableReason } from './accept.js';

/**
 * Rows per row group: DuckDB holds a row group in memory while it writes it (about 30 MB at
 * this size for gateway-like events; the default 122,880 took about 90 MB per file written).
 */
const ROW_GROUP_ROWS = 32_768;

/**
 * zstd level 1 instead of DuckDB's default 3: 13 % less conversion CPU and 6.5 % smaller files
 * on gateway-like events, read back as fast (bench/parquet-level.ts,
 * bench/results/2026-12-05-parquet-level.txt).
 */
const ZSTD_LEVEL = 1;

const sqlString = (s: string) => `'${s.replace(/'/g, "''")}'`;

export interface ParquetWriterOptions {
  /**
   * Files written at the same time, each by one DuckDB connection on one thread (default 2).
   * One thread per file keeps a file's bytes a pure function of its rows.
   */
  connections?: number;
  /**
   * DuckDB's memory limit in MB (default 256); above it DuckDB spills to `tempDir`. 128MB saved no
   * RSS on gateway-like events and cost 8 % of ingest's rate; it does bound rows of the largest
   * fields meter accepts (BENCHMARKS.md "Ingest: DuckDB's memory limit").
   */
  memoryMb?: number;
  /** Where DuckDB may spill (default: a folder in the OS temp dir). */
  tempDir?: string;
}

export class ParquetWriter {
  private readonly idle: DuckDBConnection[];
  private readonly waiting: ((c: DuckDBConnection) => void)[] = [];

  private constructor(
    private readonly instance: DuckDBInstance,
    private readonly conns: DuckDBConnection[],
  ) {
    this.idle = [...conns];
  }

  static async open(o: ParquetWriterOptions = {}): Promise<ParquetWriter> {
    const instance = await DuckDBInstance.create(':memory:', {
      threads: '1',
      memory_limit: `${o.memoryMb ?? 256}MB`,
      temp_directory: o.tempDir ?? join(tmpdir(), `meter-duckdb-${process.pid}`),
      preserve_insertion_order: 'true',
    });
    const conns: DuckDBConnection[] = [];
    for (let i = 0; i < Math.max(1, o.connections ?? 2); i++) {
      const conn = await instance.connect();
      await conn.run(`SET TimeZone = 'UTC'`);
      conns.push(conn);
    }
    return new ParquetWriter(instance, conns);
  }

  private async withConnection<T>(fn: (c: DuckDBConnection) => Promise<T>): Promise<T> {
    const c = this.idle.pop() ?? (await new Promise<DuckDBConnection>((res) => this.waiting.push(res)));
    try {
      return await fn(c);
    } finally {
      const next = this.waiting.shift();
      if (next) next(c);
      else this.idle.push(c);
    }
  }

  /**
   * Write the events of a spool (its files in order, one JSON line per event: accept.ts
   * eventLine, spool.ts) to the Parquet file `file` (replaced if present).
   */
  writeSpool(spool: string[], file: string): Promise<void> {
    if (!spool.length) throw new Error('internal: writeSpool of no files');
    const src = `read_ndjson([${spool.map(sqlString).join(', ')}], columns = ${SPOOL_COLUMNS}, maximum_object_size = ${2 * MAX_EVENT_BYTES})`;
    return this.withConnection((c) =>
      c
        .run(
          `COPY (SELECT ${LAKE_SELECT} FROM ${src}) TO ${sqlString(file)} (FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL ${ZSTD_LEVEL}, ROW_GROUP_SIZE ${ROW_GROUP_ROWS})`,
        )
        .then(() => undefined),
    );
  }

  /** Write `events` (in this order) to the Parquet file `file` (replaced if present). */
  async write(events: UsageEvent[], file: string): Promise<void> {
    const spool = new NdjsonChunks(`${file}.${process.pid}.${++spoolSeq}`, 1 << 20);
    try {
      for (const e of events) spool.add(eventLine(e));
      spool.flush();
      if (!spool.files.length) {
        const empty = `${file}.${process.pid}.${spoolSeq}-none.ndjson`;
        spool.files.push(empty);
        writeFileSync(empty, '');
      }
      await this.writeSpool(spool.files, file);
    } finally {
      spool.remove();
    }
  }

  close(): void {
    for (const c of this.conns) c.closeSync();
    this.instance.closeSync();
  }
}

let spoolSeq = 0;
