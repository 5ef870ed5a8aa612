/**
 * The stack's Postgres for benchmarks, in its own database (`meter_bench`) so bulk bench data
 * never meets the rows tests write into `meter` at the same time.
 */
import pg from 'pg';
import { stackEnv } from '../test/support/stack.js';
import { PgWarehouse } from '../src/warehouse/pg-warehouse.js';
import { migrate } from '../src/warehouse/migrate.js';
import { PgliteWarehouse } from '../src/warehouse/pglite-warehouse.js';
import type { Warehouse } from '../src/warehouse/warehouse.js';
import type { BenchOptions } from './lib.js';

export const BENCH_DB = 'meter_bench';

/**
 * The URL of database `name` on the stack's Postgres (METER_DATABASE_URL, else `stack/run env`),
 * created if missing; with `fresh`, dropped and created anew.
 */
export async function namedDatabaseUrl(name: string, o: { fresh?: boolean; log?: (msg: string) => void } = {}): Promise<string> {
  const env = process.env.METER_DATABASE_URL ? { METER_DATABASE_URL: process.env.METER_DATABASE_URL } : await stackEnv(['postgres']);
  const url = env.METER_DATABASE_URL;
  if (!url) throw new Error('no METER_DATABASE_URL from `stack/run env`');
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    if (o.fresh) await c.query(`DROP DATABASE IF EXISTS ${name}`);
    const r = await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (!r.rowCount) {
      o.log?.(`postgres: creating database ${name}`);
      await c.query(`CREATE DATABASE ${name}`);
    }
  } finally {
    await c.end();
  }
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

export function benchDatabaseUrl(o: BenchOptions): Promise<string> {
  return namedDatabaseUrl(BENCH_DB, { log: o.log });
}

/** A migrated warehouse on database `name` of the stack's Postgres (see namedDatabaseUrl). */
export async function namedPostgres(name: string, o: { fresh?: boolean; log?: (msg: string) => void } = {}): Promise<PgWarehouse> {
  const db = await PgWarehouse.open(await namedDatabaseUrl(name, o));
  await migrate(db);
  return db;
}

/** A migrated warehouse on the bench database. */
export function benchPostgres(o: BenchOptions): Promise<PgWarehouse> {
  return namedPostgres(BENCH_DB, { log: o.log });
}

/** A benchmark's warehouse: PGlite in memory when `embedded`, else `namedPostgres(name, o)`. */
export async function benchWarehouse(name: string, o: { embedded: boolean; fresh?: boolean }): Promise<Warehouse> {
  if (!o.embedded) return namedPostgres(name, o);
  const db = await PgliteWarehouse.open(null);
  await migrate(db);
  return db;
}
