/**
 * Writes usage events to one Parquet file with DuckDB: an in-memory DuckDB (one instance for
 * all files), a typed table filled by the Appender (whole data chunks of 2048 rows: fewer native
 * calls than row by row), then `COPY ... (FORMAT parquet,
 * COMPRESSION zstd)`. Rows keep the order given (ingest passes log-offset order), so the same
 * events always give the same rows.
 *
 * Columns (the lake's schema; any Parquet reader reads them):
 *   id VARCHAR (UUIDv7 text), event_time TIMESTAMPTZ (UTC, ms precision), customer, key_id,
 *   api, method VARCHAR, status SMALLINT, latency_ms INTEGER, bytes_in, bytes_out BIGINT,
 *   billable BOOLEAN, v SMALLINT
 */
import {
  DuckDBInstance,
  DuckDBDataChunk,
  DuckDBTimestampTZValue,
  VARCHAR,
  TIMESTAMPTZ,
  SMALLINT,
  INTEGER,
  BIGINT,
  BOOLEAN,
  type DuckDBConnection,
  type DuckDBVector,
} from '@duckdb/node-api';
import type { UsageEvent } from '../events/usage-event.js';

export const LAKE_COLUMNS_SQL = `id VARCHAR NOT NULL, event_time TIMESTAMPTZ NOT NULL, customer VARCHAR NOT NULL, key_id VARCHAR NOT NULL,
  api VARCHAR NOT NULL, method VARCHAR NOT NULL, status SMALLINT NOT NULL, latency_ms INTEGER NOT NULL,
  bytes_in BIGINT NOT NULL, bytes_out BIGINT NOT NULL, billable BOOLEAN NOT NULL, v SMALLINT NOT NULL`;

export { unstorableReason } from './accept.js';

const CHUNK_ROWS = 2048;
const TYPES = [VARCHAR, TIMESTAMPTZ, VARCHAR, VARCHAR, VARCHAR, VARCHAR, SMALLINT, INTEGER, BIGINT, BIGINT, BOOLEAN, SMALLINT];

type Appender = Awaited<ReturnType<DuckDBConnection['createAppender']>>;

function appendChunk(app: Appender, events: UsageEvent[], off: number, n: number): void {
  const chunk = DuckDBDataChunk.create(TYPES, n);
  const c = TYPES.map((_, i) => chunk.getColumnVector(i)) as DuckDBVector<any>[];
  for (let r = 0; r < n; r++) {
    const e = events[off + r];
    c[0].setItem(r, e.id);
    c[1].setItem(r, new DuckDBTimestampTZValue(BigInt(e.time) * 1000n));
    c[2].setItem(r, e.customer);
    c[3].setItem(r, e.keyId);
    c[4].setItem(r, e.api);
    c[5].setItem(r, e.method);
    c[6].setItem(r, e.status);
    c[7].setItem(r, Math.round(e.latencyMs));
    c[8].setItem(r, BigInt(e.bytesIn));
    c[9].setItem(r, BigInt(e.bytesOut));
    c[10].setItem(r, e.billable);
    c[11].setItem(r, e.v);
  }
  for (const v of c) v.flush();
  app.appendDataChunk(chunk);
}

export class ParquetWriter {
  private chain: Promise<unknown> = Promise.resolve();
  private seq = 0;

  private constructor(
    private readonly instance: DuckDBInstance,
    private readonly conn: DuckDBConnection,
  ) {}

  static async open(): Promise<ParquetWriter> {
    const instance = await DuckDBInstance.create(':memory:');
    const conn = await instance.connect();
    await conn.run(`SET TimeZone = 'UTC'`);
    return new ParquetWriter(instance, conn);
  }

  /** Write `events` (in this order) to the Parquet file `file` (replaced if present). */
  write(events: UsageEvent[], file: string): Promise<void> {
    // one connection: files are written one after another
    const run = this.chain.then(() => this.writeNow(events, file));
    this.chain = run.catch(() => undefined);
    return run;
  }

  private async writeNow(events: UsageEvent[], file: string): Promise<void> {
    const table = `ev_${++this.seq}`;
    await this.conn.run(`CREATE TABLE ${table} (${LAKE_COLUMNS_SQL})`);
    try {
      const app = await this.conn.createAppender(table);
      try {
        for (let off = 0; off < events.length; off += CHUNK_ROWS) appendChunk(app, events, off, Math.min(CHUNK_ROWS, events.length - off));
        app.flushSync();
      } finally {
        app.closeSync();
      }
      await this.conn.run(`COPY ${table} TO '${file.replace(/'/g, "''")}' (FORMAT parquet, COMPRESSION zstd)`);
    } finally {
      await this.conn.run(`DROP TABLE IF EXISTS ${table}`);
    }
  }

  close(): void {
    this.conn.closeSync();
    this.instance.closeSync();
  }
}
