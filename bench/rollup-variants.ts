/**
 * Why the rollup is as fast as it is: the rollup's DuckDB query for one hour of the bench lake
 * next to variants of it, each timed (median of 3) on the same files:
 *   node dist/bench/rollup-variants.js [lakeRoot] [hour 00-23]
 * Not part of `npm run bench`; BENCHMARKS.md quotes its output.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { benchWorkDir, fmt, median } from './lib.js';

const root = process.argv[2] ?? join(benchWorkDir(), 'lake-1000eps-24h');
const hour = process.argv[3] ?? '07';
const dir = join(root, 'usage/dt=2021-03-01', `hour=${hour}`);
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.parquet'))
  .map((f) => `'${join(dir, f)}'`);
const src = `read_parquet([${files.join(', ')}], union_by_name = true)`;
const from = `TIMESTAMPTZ '2021-03-01 ${hour}:00:00+00'`;
const inHour = `(event_time >= ${from} AND event_time < ${from} + INTERVAL 1 HOUR)`;

const variants: Record<string, string> = {
  'count(*) (metadata only: the floor)': `SELECT count(*) FROM ${src}`,
  'rollup query as in src/pipeline/rollup.ts (3 aggregates, 2 DISTINCT on VARCHAR id)': `SELECT customer, api,
      count(DISTINCT id) FILTER (WHERE billable AND ${inHour}) AS calls,
      count(DISTINCT id) FILTER (WHERE ${inHour}) AS events,
      count(*) FILTER (WHERE NOT coalesce(${inHour}, false)) AS outside
    FROM ${src} GROUP BY customer, api`,
  'one DISTINCT pass: dedupe ids once, then count (same answer)': `SELECT customer, api,
      count(*) FILTER (WHERE billable AND ih) AS calls, count(*) FILTER (WHERE ih) AS events, count(*) FILTER (WHERE NOT coalesce(ih, false)) AS outside
    FROM (SELECT customer, api, bool_or(billable) AS billable, bool_or(${inHour}) AS ih FROM ${src} GROUP BY customer, api, id)
    GROUP BY customer, api`,
  'no dedupe: count(*) per (customer, api) (answer equals rollup only if ids are unique)': `SELECT customer, api,
      count(*) FILTER (WHERE billable AND ${inHour}) AS calls, count(*) FILTER (WHERE ${inHour}) AS events
    FROM ${src} GROUP BY customer, api`,
  'DISTINCT on id cast to UUID (16-byte keys instead of 36-char strings)': `SELECT customer, api,
      count(DISTINCT id::UUID) FILTER (WHERE billable AND ${inHour}) AS calls, count(DISTINCT id::UUID) FILTER (WHERE ${inHour}) AS events
    FROM ${src} GROUP BY customer, api`,
  'read only: sum of string lengths of the 3 columns + event_time': `SELECT sum(length(id) + length(customer) + length(api)), max(event_time) FROM ${src}`,
  'exact dup check only: count(*) - count(DISTINCT id) over the hour': `SELECT count(*) - count(DISTINCT id) FROM ${src}`,
  'hash candidates only: 64-bit hashes of ids seen more than once': `SELECT count(*) FROM (SELECT hash(id) AS h FROM ${src} GROUP BY h HAVING count(*) > 1)`,
  'plain counts + exact dedupe of hash candidates (same answer)': `WITH cand AS (SELECT hash(id) AS h FROM ${src} GROUP BY h HAVING count(*) > 1),
    dups AS (SELECT customer, api, count(*) - 1 AS extra, count(*) FILTER (WHERE billable) - (CASE WHEN bool_or(billable) THEN 1 ELSE 0 END) AS extra_billable
               FROM ${src} WHERE ${inHour} AND hash(id) IN (SELECT h FROM cand) GROUP BY customer, api, id HAVING count(*) > 1),
    plain AS (SELECT customer, api, count(*) FILTER (WHERE billable) AS calls, count(*) AS events FROM ${src} WHERE ${inHour} GROUP BY customer, api)
    SELECT p.customer, p.api, p.calls - coalesce(sum(d.extra_billable), 0) AS calls, p.events - coalesce(sum(d.extra), 0) AS events
      FROM plain p LEFT JOIN dups d USING (customer, api) GROUP BY p.customer, p.api, p.calls, p.events`,
  'hash candidates by sorting the hashes (equal neighbours), not a hash table': `SELECT count(*) FROM (SELECT h, lag(h) OVER (ORDER BY h) AS p FROM (SELECT hash(id) AS h FROM ${src})) WHERE h = p`,
  'plain counts + exact dedupe of sorted-hash candidates (same answer)': `WITH cand AS (SELECT DISTINCT h FROM (SELECT h, lag(h) OVER (ORDER BY h) AS p FROM (SELECT hash(id) AS h FROM ${src})) WHERE h = p),
    dups AS (SELECT customer, api, count(*) - 1 AS extra, count(*) FILTER (WHERE billable) - (CASE WHEN bool_or(billable) THEN 1 ELSE 0 END) AS extra_billable
               FROM ${src} WHERE ${inHour} AND hash(id) IN (SELECT h FROM cand) GROUP BY customer, api, id HAVING count(*) > 1),
    plain AS (SELECT customer, api, count(*) FILTER (WHERE billable) AS calls, count(*) AS events FROM ${src} WHERE ${inHour} GROUP BY customer, api)
    SELECT p.customer, p.api, p.calls - coalesce(sum(d.extra_billable), 0) AS calls, p.events - coalesce(sum(d.extra), 0) AS events
      FROM plain p LEFT JOIN dups d USING (customer, api) GROUP BY p.customer, p.api, p.calls, p.events`,
};

const inst = await DuckDBInstance.create(':memory:');
const c = await inst.connect();
const rows = Number((await c.runAndReadAll(`SELECT count(*) AS n FROM ${src}`)).getRowsJS()[0]![0]);
console.log(
  `hour ${hour}: ${files.length} files, ${fmt(rows)} events, DuckDB threads ${(await c.runAndReadAll(`SELECT current_setting('threads')`)).getRowsJS()[0]![0]}`,
);
for (const [name, sql] of Object.entries(variants)) {
  const ms: number[] = [];
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    await c.runAndReadAll(sql);
    ms.push(performance.now() - t0);
  }
  const m = median(ms);
  console.log(`| ${name} | ${fmt(m)} ms | ${fmt(rows / (m / 1000) / 1e6, 1)} M events/s |`);
}
c.closeSync();
inst.closeSync();
