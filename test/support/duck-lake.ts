/** Lake files written straight from DuckDB, for tests that need exact rows in the lake's Parquet layout. */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { after, before } from 'node:test';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';

/** One in-memory DuckDB connection for a test file: opened before its tests, closed after them. */
export function fileDuck(): { readonly conn: DuckDBConnection } {
  let instance: DuckDBInstance | null = null;
  let conn: DuckDBConnection | null = null;
  before(async () => {
    instance = await DuckDBInstance.create(':memory:');
    conn = await instance.connect();
  });
  after(() => {
    conn?.closeSync();
    instance?.closeSync();
  });
  return {
    get conn() {
      if (!conn) throw new Error('fileDuck: used outside the tests of its file');
      return conn;
    },
  };
}

/** A SQL string literal. */
export const sqlString = (s: string) => `'${s.replaceAll("'", "''")}'`;

/** An event as a lake row: the rest is fixed (key_1, GET, 200 or 500 when not billable, 12 ms, 100/200 bytes, v 1). */
export interface LakeRow {
  id: string;
  time: number;
  customer: string;
  api: string;
  billable?: boolean;
}

/**
 * `rows` as a Parquet file at `file` (folders made) with the ingest's columns and types;
 * `latencyType` INTEGER as older files had it, `compression` as the writer's (DuckDB's default otherwise).
 */
export async function writeLakeFile(
  conn: DuckDBConnection,
  file: string,
  rows: LakeRow[],
  o: { latencyType?: 'DOUBLE' | 'INTEGER'; compression?: 'zstd' } = {},
): Promise<void> {
  mkdirSync(dirname(file), { recursive: true });
  const values = rows
    .map(
      (e) =>
        `(${sqlString(e.id)}, make_timestamptz(${e.time * 1000}::BIGINT), ${sqlString(e.customer)}, 'key_1', ${sqlString(e.api)}, 'GET', ${e.billable === false ? 500 : 200}, 12, 100, 200, ${e.billable !== false}, 1)`,
    )
    .join(',\n');
  await conn.run(`COPY (SELECT id::VARCHAR AS id, event_time, customer::VARCHAR AS customer, key_id::VARCHAR AS key_id, api::VARCHAR AS api,
      method::VARCHAR AS method, status::INTEGER AS status, latency_ms::${o.latencyType ?? 'DOUBLE'} AS latency_ms, bytes_in::BIGINT AS bytes_in,
      bytes_out::BIGINT AS bytes_out, billable::BOOLEAN AS billable, v::SMALLINT AS v
    FROM (VALUES ${values}) t(id, event_time, customer, key_id, api, method, status, latency_ms, bytes_in, bytes_out, billable, v))
    TO ${sqlString(file)} (FORMAT parquet${o.compression ? `, COMPRESSION ${o.compression}` : ''})`);
}
