/**
 * What each DuckDB statement of an hour's count costs (src/pipeline/rollup-count.ts), hour by hour
 * over a lake, beside the floor (GROUP BY customer, api with count(*)): statements rotated, the
 * first round a warm-up, wall time of the later rounds summed over the hours. Bench only.
 *
 *   node dist/bench/rollup-count-statements.js [lake root=/tmp/meter-bench/lake-1000eps-24h-compacted] [rounds=3]
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadavg } from 'node:os';
import { DuckDBInstance } from '@duckdb/node-api';
import { fmt, median } from './lib.js';

const root = join(process.argv[2] ?? '/tmp/meter-bench/lake-1000eps-24h-compacted', 'usage');
const rounds = Number(process.argv[3] ?? 3);
const hours: string[] = [];
for (const d of readdirSync(root).sort()) for (const h of readdirSync(join(root, d)).sort()) hours.push(join(root, d, h));

const src = (l: string) => `read_parquet(${l}, union_by_name = true)`;
const MARKS = (l: string) =>
  `SELECT customer, api, count(*) FILTER (WHERE keep_call) AS calls, count(*) FILTER (WHERE keep_event) AS events, 0::BIGINT AS outside FROM ${src(l)} GROUP BY customer, api`;
const statements: Record<string, (l: string) => string> = {
  'floor: GROUP BY customer, api, count(*)': (l) => `SELECT customer, api, count(*) AS n FROM ${src(l)} GROUP BY customer, api`,
  'by marks, alone (now)': MARKS,
  'by marks under an outer GROUP BY (before)': (l) =>
    `SELECT customer, api, sum(calls) AS calls, sum(events) AS events, sum(outside) AS outside FROM (${MARKS(l)}) GROUP BY customer, api`,
  'by marks, count_if': (l) => `SELECT customer, api, count_if(keep_call) AS calls, count_if(keep_event) AS events FROM ${src(l)} GROUP BY customer, api`,
  'by marks, GROUP BY the marks too': (l) => `SELECT customer, api, keep_event, keep_call, count(*) AS n FROM ${src(l)} GROUP BY ALL`,
  'event_time statistics (parquet_metadata)': (l) =>
    `SELECT file_name, bool_and(coalesce(stats_null_count = 0 AND try_cast(stats_min_value AS TIMESTAMPTZ) >= make_timestamptz(0::BIGINT), false)) AS inside FROM parquet_metadata(${l}) WHERE path_in_schema = 'event_time' GROUP BY file_name`,
  'row count from footers (before: every hour)': (l) => `SELECT count(*) AS n FROM ${src(l)}`,
  'dedupe marks entries (parquet_kv_metadata)': (l) => `SELECT file_name, decode(key) AS k, decode(value) AS v FROM parquet_kv_metadata(${l})`,
};

const inst = await DuckDBInstance.create(':memory:');
const c = await inst.connect();
const lists = hours.map(
  (h) =>
    `[${readdirSync(h)
      .filter((f) => f.endsWith('.parquet'))
      .map((f) => `'${join(h, f)}'`)
      .join(', ')}]`,
);
// Only hours whose every file carries the marks (the stage's lake leaves its newest hour as ingested).
const marked: string[] = [];
for (const l of lists) {
  const r = await c.runAndReadAll(
    `SELECT count(DISTINCT file_name) FILTER (WHERE name = 'keep_call') AS m, count(DISTINCT file_name) AS n FROM parquet_schema(${l})`,
  );
  const row = r.getRowObjectsJS()[0]!;
  if (row.m === row.n) marked.push(l);
}
lists.splice(0, lists.length, ...marked);
const times = new Map<string, number[]>(Object.keys(statements).map((k) => [k, []]));
const load: number[] = [];
for (let round = 0; round <= rounds; round++) {
  const names = Object.keys(statements);
  // Rotated, so no statement always runs right after the same one.
  const order = names.map((_, i) => names[(i + round) % names.length]!);
  for (const name of order) {
    const t0 = performance.now();
    for (const l of lists) (await c.runAndReadAll(statements[name]!(l))).getRowObjectsJS();
    if (round > 0) times.get(name)!.push(performance.now() - t0);
  }
  load.push(loadavg()[0]!);
}
const floor = median(times.get('floor: GROUP BY customer, api, count(*)')!);
console.log(
  `# node dist/bench/rollup-count-statements.js ${process.argv.slice(2).join(' ')}: ${lists.length} of ${hours.length} hours (those compacted), ${rounds} rounds, load ${fmt(Math.min(...load), 1)}-${fmt(Math.max(...load), 1)}`,
);
console.log('| statement, every hour of the lake | median s | ÷ floor |\n| --- | --- | --- |');
for (const [name, t] of times) console.log(`| ${name} | ${fmt(median(t) / 1000, 2)} | ${fmt(median(t) / floor, 2)} |`);
c.closeSync();
inst.closeSync();
