/**
 * usage_daily's trigger (migrations 008 and 020) and variants of it, by the CPU of the Postgres
 * backend (from /proc) for one statement that writes an hour of 10,000 rows into usage_hourly: an
 * INSERT of the hour (rows in hash order or in key order) and an UPDATE of every row of an hour.
 * Each try runs in a transaction that is rolled back (the triggers swapped inside it), after a
 * VACUUM; variants alternate. Needs the stack's Postgres on this machine (its /proc) and a
 * database the rollup wrote the bench lake's hours into, best with a history:
 *
 *   node dist/bench/rollup-write-trace.js 4 --direct 1 --history 28 --db meter_bench_new
 *   node dist/bench/usage-daily-variants.js [tries=9] [--db meter_bench_new]
 */
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import pg from 'pg';
import { assetPath } from '../src/config/assets.js';
import { namedDatabaseUrl } from './pg.js';
import { argValue, fmt, median } from './lib.js';

const tries = Number(process.argv.slice(2).find((a) => /^\d+$/.test(a)) ?? 9);
const database = argValue('db', 'meter_bench_new');
const SOURCE_HOUR = '2021-03-01T02:00:00Z';
const NEW_HOUR = '2021-03-01T05:00:00Z'; // not in the 4-hour lake: an INSERT of it is a first write (its day rows exist)

/** The CREATE FUNCTION usage_daily_apply of a migration, renamed to usage_daily_apply_<suffix>. */
function migrationFunction(file: string, suffix: string): string {
  const sql = readFileSync(assetPath('src/warehouse/migrations', file), 'utf8');
  const start = sql.indexOf('CREATE OR REPLACE FUNCTION usage_daily_apply()');
  const end = sql.indexOf('$$;', sql.indexOf('$$', start) + 2) + 3;
  if (start < 0 || end < 3) throw new Error(`no usage_daily_apply in ${file}`);
  return sql.slice(start, end).replace('usage_daily_apply()', `usage_daily_apply_${suffix}()`);
}

/** Variants of the INSERT branch only (the statements below that use them are INSERTs). */
const insertOnly = (suffix: string, lock: string, body: string) => `
CREATE OR REPLACE FUNCTION usage_daily_apply_${suffix}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    ${lock}
    ${body}
  END IF;
  RETURN NULL;
END
$$`;
const LOCK_PER_HOUR = `PERFORM pg_advisory_xact_lock(7243906, d.k)
       FROM (SELECT DISTINCT (extract(epoch FROM date_trunc('day', h.hour, 'UTC')) / 86400)::integer AS k FROM (SELECT DISTINCT n.hour FROM new_rows n) h) d
      ORDER BY d.k;`;
const UPSERT_008 = `INSERT INTO usage_daily AS u (customer_id, api, day, calls, events, hours)
    SELECT n.customer_id, n.api, date_trunc('day', n.hour, 'UTC'), sum(n.calls), sum(n.events), count(*) FROM new_rows n GROUP BY 1, 2, 3
    ON CONFLICT (customer_id, day, api) DO UPDATE
      SET calls = u.calls + excluded.calls, events = u.events + excluded.events, hours = u.hours + excluded.hours;`;
const VARIANTS: Record<string, string> = {
  m008: migrationFunction('008_usage_daily.sql', 'm008'),
  m020: migrationFunction('020_usage_hourly_hour.sql', 'm020'),
  lockonly: insertOnly('lockonly', LOCK_PER_HOUR, UPSERT_008),
  merge: insertOnly(
    'merge',
    LOCK_PER_HOUR,
    `MERGE INTO usage_daily u
    USING (SELECT n.customer_id, n.api, date_trunc('day', n.hour, 'UTC') AS day, sum(n.calls) AS calls, sum(n.events) AS events, count(*) AS hours
             FROM new_rows n GROUP BY 1, 2, 3) g
       ON u.customer_id = g.customer_id AND u.day = g.day AND u.api = g.api
     WHEN MATCHED THEN UPDATE SET calls = u.calls + g.calls, events = u.events + g.events, hours = u.hours + g.hours
     WHEN NOT MATCHED THEN INSERT (customer_id, api, day, calls, events, hours) VALUES (g.customer_id, g.api, g.day, g.calls, g.events, g.hours);`,
  ),
  updateinsert: insertOnly(
    'updateinsert',
    LOCK_PER_HOUR,
    `WITH g AS (SELECT n.customer_id, n.api, date_trunc('day', n.hour, 'UTC') AS day, sum(n.calls) AS calls, sum(n.events) AS events, count(*) AS hours
                 FROM new_rows n GROUP BY 1, 2, 3),
         up AS (UPDATE usage_daily u SET calls = u.calls + g.calls, events = u.events + g.events, hours = u.hours + g.hours
                  FROM g WHERE u.customer_id = g.customer_id AND u.day = g.day AND u.api = g.api
                RETURNING u.customer_id, u.api, u.day)
    INSERT INTO usage_daily (customer_id, api, day, calls, events, hours)
    SELECT g.customer_id, g.api, g.day, g.calls, g.events, g.hours FROM g
     WHERE NOT EXISTS (SELECT 1 FROM up WHERE up.customer_id = g.customer_id AND up.api = g.api AND up.day = g.day);`,
  ),
};

const STATEMENTS: { name: string; sql: string; variants: string[] }[] = [
  {
    name: 'INSERT of an hour, rows in hash order',
    sql: 'INSERT INTO usage_hourly (customer_id, api, hour, calls, events) SELECT customer_id, api, hour, calls, events FROM bench_stage ORDER BY md5(customer_id || api)',
    variants: ['m008', 'lockonly', 'merge', 'updateinsert', 'm020', 'off'],
  },
  {
    name: 'INSERT of an hour, rows in key order',
    sql: 'INSERT INTO usage_hourly (customer_id, api, hour, calls, events) SELECT customer_id, api, hour, calls, events FROM bench_stage ORDER BY customer_id, api',
    variants: ['m008', 'm020', 'off'],
  },
  {
    name: 'UPDATE of every row of an hour',
    sql: `UPDATE usage_hourly SET calls = calls + 1, rolled_at = now() WHERE hour = '${SOURCE_HOUR}'`,
    variants: ['m008', 'm020', 'off'],
  },
];

const c = new pg.Client({ connectionString: await namedDatabaseUrl(database) });
await c.connect();
const pid = Number((await c.query('SELECT pg_backend_pid() AS p')).rows[0].p);
/** The backend's user + system CPU, ms (10 ms resolution). */
function backendCpu(): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const a = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(a[11]) + Number(a[12])) * 10;
}
try {
  const n = Number((await c.query('SELECT count(*) AS n FROM usage_hourly WHERE hour = $1', [SOURCE_HOUR])).rows[0].n);
  if (!n) throw new Error(`database ${database} has no rows of ${SOURCE_HOUR}: run rollup-write-trace.js into it first (see the top of this file)`);
  await c.query('DROP TABLE IF EXISTS bench_stage');
  await c.query('CREATE TABLE bench_stage AS SELECT customer_id, api, $2::timestamptz AS hour, calls, events FROM usage_hourly WHERE hour = $1', [
    SOURCE_HOUR,
    NEW_HOUR,
  ]);
  for (const sql of Object.values(VARIANTS)) await c.query(sql);
  const total = Number((await c.query('SELECT count(*) AS n FROM usage_hourly')).rows[0].n);
  console.log(
    `# usage_daily trigger variants: ${database}, usage_hourly ${fmt(total)} rows, an hour of ${fmt(n)}; ${tries} tries each, alternating; load ${loadavg()[0]!.toFixed(1)}`,
  );
  for (const s of STATEMENTS) {
    const out = new Map<string, { ms: number; cpu: number }[]>();
    for (let t = 0; t < tries; t++)
      for (const v of s.variants) {
        await c.query('VACUUM usage_hourly');
        await c.query('VACUUM usage_daily');
        await c.query('BEGIN');
        try {
          if (v === 'off') await c.query('ALTER TABLE usage_hourly DISABLE TRIGGER USER');
          else
            for (const [event, ref] of [
              ['insert', 'NEW TABLE AS new_rows'],
              ['update', 'OLD TABLE AS old_rows NEW TABLE AS new_rows'],
              ['delete', 'OLD TABLE AS old_rows'],
            ] as const)
              await c.query(
                `DROP TRIGGER usage_daily_${event} ON usage_hourly;
                 CREATE TRIGGER usage_daily_${event} AFTER ${event.toUpperCase()} ON usage_hourly REFERENCING ${ref} FOR EACH STATEMENT EXECUTE FUNCTION usage_daily_apply_${v}()`,
              );
          const c0 = backendCpu();
          const t0 = performance.now();
          await c.query(s.sql);
          const ms = performance.now() - t0;
          let l = out.get(v);
          if (!l) out.set(v, (l = []));
          l.push({ ms, cpu: backendCpu() - c0 });
        } finally {
          await c.query('ROLLBACK');
        }
      }
    console.log(`\n## ${s.name}\n| trigger | backend CPU median | wall median | every try (CPU ms) |\n| --- | --- | --- | --- |`);
    for (const [v, l] of out)
      console.log(`| ${v} | ${fmt(median(l.map((x) => x.cpu)))} ms | ${fmt(median(l.map((x) => x.ms)))} ms | ${l.map((x) => x.cpu).join(' ')} |`);
  }
  console.log(`\nload ${loadavg()[0]!.toFixed(1)}`);
} finally {
  await c.query('DROP TABLE IF EXISTS bench_stage').catch(() => {});
  for (const v of Object.keys(VARIANTS)) await c.query(`DROP FUNCTION IF EXISTS usage_daily_apply_${v}()`).catch(() => {});
  await c.end();
}
