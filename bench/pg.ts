/**
 * The stack's Postgres for benchmarks, in its own database (`meter_bench`) so bulk bench data
 * never meets the rows tests write into `meter` at the same time.
 */
import pg from 'pg';
import { stackEnv } from '../test/support/stack.js';
import { PgWarehouse } from '../src/warehouse/pg-warehouse.js';
import { migrate } from '../src/warehouse/migrate.js';
import type { BenchOptions } from './lib.js';

export const BENCH_DB = 'meter_bench';

export async function benchDatabaseUrl(o: BenchOptions): Promise<string> {
  const env = process.env.METER_DATABASE_URL ? { METER_DATABASE_URL: process.env.METER_DATABASE_URL } : await stackEnv(['postgres']);
  const url = env.METER_DATABASE_URL;
  if (!url) throw new Error('no METER_DATABASE_URL from `stack/run env`');
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const r = await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [BENCH_DB]);
    if (!r.rowCount) {
      o.log(`postgres: creating database ${BENCH_DB}`);
      await c.query(`CREATE DATABASE ${BENCH_DB}`);
    }
  } finally {
    await c.end();
  }
  const u = new URL(url);
  u.pathname = '/' + BENCH_DB;
  return u.toString();
}

/** A migrated warehouse on the bench database. */
export async function benchPostgres(o: BenchOptions): Promise<PgWarehouse> {
  const db = await PgWarehouse.open(await benchDatabaseUrl(o));
  await migrate(db);
  return db;
}
