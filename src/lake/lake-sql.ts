/**
 * A short-lived in-memory DuckDB over lake files, for the lake's own checks (lake-check.ts,
 * overlap repair): row and id counts, id containment. Opened only when needed and closed after.
 */
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { OPTIONAL_COLUMNS } from '../events/schema.js';
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

/**
 * `read_parquet([...])` of lake paths (materialized to local files first). By name: files
 * written before an optional column existed (schema.ts) sit beside files that have it.
 */
export async function parquetOf(lake: Lake, paths: string[]): Promise<string> {
  const local = await lake.materialize(paths);
  return `read_parquet([${local.map(sqlString).join(', ')}], union_by_name = true)`;
}

/**
 * A FROM item over local lake files with every lake column: an optional column (schema.ts
 * OPTIONAL_COLUMNS, e.g. `data`) that none of the files has is NULL of its type (union_by_name
 * already gives NULL where only some files lack it). Reads the files' footers only.
 */
export async function lakeSource(c: DuckDBConnection, localFiles: string[]): Promise<string> {
  const src = `read_parquet([${localFiles.map(sqlString).join(', ')}], union_by_name = true)`;
  if (!OPTIONAL_COLUMNS.length) return src;
  const have = new Set((await c.runAndReadAll(`DESCRIBE SELECT * FROM ${src}`)).getRowObjectsJS().map((r) => String(r.column_name)));
  const missing = OPTIONAL_COLUMNS.filter((col) => !have.has(col.name));
  return missing.length ? `(SELECT *, ${missing.map((col) => `NULL::${col.type} AS ${col.name}`).join(', ')} FROM ${src})` : src;
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
