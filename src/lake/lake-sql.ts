/**
 * A short-lived in-memory DuckDB over lake files, for the lake's own checks (lake-check.ts,
 * overlap repair): row and id counts, id containment. Opened only when needed and closed after.
 */
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import type { Lake } from './lake.js';

export const sqlString = (s: string) => `'${s.replace(/'/g, "''")}'`;

export async function withDuck<T>(fn: (c: DuckDBConnection) => Promise<T>): Promise<T> {
  const instance = await DuckDBInstance.create(':memory:', { threads: '1', memory_limit: '256MB' });
  const c = await instance.connect();
  try {
    return await fn(c);
  } finally {
    c.closeSync();
    instance.closeSync();
  }
}

/** `read_parquet([...])` of lake paths (materialized to local files first). */
export async function parquetOf(lake: Lake, paths: string[]): Promise<string> {
  const local = await lake.materialize(paths);
  return `read_parquet([${local.map(sqlString).join(', ')}])`;
}

/** Rows and distinct ids of these lake files. */
export async function rowsAndIds(c: DuckDBConnection, lake: Lake, paths: string[]): Promise<{ rows: number; ids: number }> {
  if (!paths.length) return { rows: 0, ids: 0 };
  const r = await c.runAndReadAll(`SELECT count(*) AS rows, count(DISTINCT id) AS ids FROM ${await parquetOf(lake, paths)}`);
  const o = r.getRowObjectsJS()[0] as { rows: bigint | number; ids: bigint | number };
  return { rows: Number(o.rows), ids: Number(o.ids) };
}

/** Ids of the files `inner` missing from the files `outer` (0: every event of `inner` is also in `outer`). */
export async function idsMissing(c: DuckDBConnection, lake: Lake, inner: string[], outer: string[]): Promise<number> {
  if (!inner.length) return 0;
  if (!outer.length) return (await rowsAndIds(c, lake, inner)).ids;
  const a = await parquetOf(lake, inner);
  const b = await parquetOf(lake, outer);
  const r = await c.runAndReadAll(`SELECT count(DISTINCT id) AS n FROM ${a} WHERE id NOT IN (SELECT id FROM ${b})`);
  return Number((r.getRowObjectsJS()[0] as { n: bigint | number }).n);
}
