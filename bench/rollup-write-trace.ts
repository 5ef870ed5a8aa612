/**
 * Where the rollup's warehouse write goes: `Rollup.backfill` of hours of the bench lake into the
 * stack's Postgres (database meter_bench, or --db NAME) through a warehouse that times every statement, in
 * three cases per hour: the first write (tables emptied before), a rerun that finds the same
 * counts, and a rerun after a tenth of the hour's rows were changed, one removed and one added
 * by hand (so the rerun updates, inserts and deletes). Prints per case each statement's median
 * time per hour, its share of the write, and the Postgres server's CPU (postmaster and
 * backends, from /proc) beside this process's.
 *
 * With --direct, the same three cases call replaceHour (usage-repository.ts) directly with each
 * hour's rows, read back from the first write, with no DuckDB running beside it: the write's own
 * cost, without the next hour's count competing for the cores.
 *
 * With --history DAYS, the warehouse also holds DAYS days of hours before the lake's (each a copy
 * of the lake's first hour, with their usage_daily and rollup_hours rows), made once and kept:
 * a warehouse in use is not empty, and a statement that reads all of usage_hourly shows here.
 *
 * With --pglite, the warehouse is PGlite in memory instead (its work is this process's CPU).
 *
 * With --explain, auto_explain logs every statement of the write transactions, the triggers'
 * statements too, with ANALYZE and BUFFERS, into the server's log (postgres/postgres.log in the
 * stack folder).
 *
 *   node dist/bench/rollup-write-trace.js [hours=4] [--lake DIR] [--direct [rounds=3]] [--history DAYS] [--db NAME | --pglite] [--explain]
 */
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { loadavg } from 'node:os';
import { LocalLake } from '../src/lake/local-lake.js';
import { Rollup, type RollupSummary } from '../src/pipeline/rollup.js';
import { type FileRef, type HourlyRow, replaceHour } from '../src/warehouse/usage-repository.js';
import type { QueryOptions, Sql, Warehouse } from '../src/warehouse/warehouse.js';
import { benchWarehouse, namedPostgres } from './pg.js';
import { postgresMs as postgresCpuMs, postmasterPid } from './billing-cpu.js';
import { argValue, benchWorkDir, fmt, median } from './lib.js';
import { emptyFrom, ensureHistory } from './warehouse-history.js';

const FROM = Date.UTC(2021, 2, 1); // the bench lake's day
const HOUR = 3_600_000;

const args = process.argv.slice(2);
const hours = Number(args.find((a) => /^\d+$/.test(a)) ?? 4);
const root = argValue('lake', join(benchWorkDir(), hours <= 4 ? 'lake-1000eps-4h' : 'lake-1000eps-8h'));
const explain = args.includes('--explain');
const direct = args.includes('--direct');
const rounds = Number(argValue('direct', '3')) || 3;
const historyDays = Number(argValue('history', '0'));
const database = argValue('db', 'meter_bench');
const pglite = args.includes('--pglite');

/** Statement text cut to a label: whitespace folded, first 80 characters. */
function label(text: string): string {
  return text.replace(/\s+/g, ' ').trim().slice(0, 80);
}

class Timings {
  readonly byLabel = new Map<string, number[]>();
  add(text: string, ms: number): void {
    const k = label(text);
    let l = this.byLabel.get(k);
    if (!l) this.byLabel.set(k, (l = []));
    l.push(ms);
  }
}

async function timed<T>(t: Timings, text: string, run: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  try {
    return await run();
  } finally {
    t.add(text, performance.now() - t0);
  }
}

/** The warehouse with every statement of a transaction timed (statements outside one are timed as `outside:`). */
class TracingWarehouse implements Warehouse {
  readonly kind: Warehouse['kind'];
  tx = new Timings();
  outside = new Timings();
  constructor(private readonly inner: Warehouse) {
    this.kind = inner.kind;
  }
  query<T = Record<string, unknown>>(text: string, params?: unknown[], opts?: QueryOptions): Promise<T[]> {
    return timed(this.outside, text, () => this.inner.query<T>(text, params, opts));
  }
  transaction<T>(fn: (tx: Sql) => Promise<T>): Promise<T> {
    const t0 = performance.now();
    return this.inner
      .transaction(async (tx) => {
        if (explain)
          for (const s of [
            "LOAD 'auto_explain'",
            'SET LOCAL auto_explain.log_min_duration = 0',
            'SET LOCAL auto_explain.log_analyze = on',
            'SET LOCAL auto_explain.log_buffers = on',
            'SET LOCAL auto_explain.log_nested_statements = on',
            'SET LOCAL auto_explain.log_timing = on',
          ])
            await tx.query(s);
        const copyIn = tx.copyIn?.bind(tx);
        return fn({
          query: <R>(text: string, params?: unknown[]) => timed(this.tx, text, () => tx.query<R>(text, params)),
          ...(copyIn
            ? { copyIn: (table: string, columns: string[], text: string) => timed(this.tx, `COPY ${table}`, () => copyIn(table, columns, text)) }
            : {}),
        });
      })
      .finally(() => this.tx.add('(whole transaction: BEGIN to COMMIT)', performance.now() - t0));
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

function report(name: string, t: TracingWarehouse, s: RollupSummary, cpu: { me: number; pg: number }): void {
  const whole = median(t.tx.byLabel.get('(whole transaction: BEGIN to COMMIT)') ?? [0]);
  const writeMs = s.results.map((r) => r.writeMs);
  console.log(
    `\n## ${name}: ${s.hours} hours, ${fmt(s.rows)} rows, ${fmt(s.events)} events; writeMs per hour median ${fmt(median(writeMs))} (${writeMs.join(', ')}); ` +
      `CPU: rollup process ${fmt(cpu.me)} ms${pglite ? ' (PGlite included)' : `, Postgres ${fmt(cpu.pg)} ms (${fmt(cpu.pg / s.hours)} ms per hour)`}; load ${loadavg()[0]!.toFixed(1)}`,
  );
  console.log('| statement (in the hour transaction) | calls | median ms | sum ms | share of the transaction |');
  console.log('| --- | --- | --- | --- | --- |');
  for (const [k, l] of t.tx.byLabel) {
    const sum = l.reduce((a, b) => a + b, 0);
    console.log(`| \`${k}\` | ${l.length} | ${fmt(median(l), 1)} | ${fmt(sum, 0)} | ${fmt((100 * median(l)) / whole, 0)} % |`);
  }
  console.log('| statement (outside it) | calls | median ms | sum ms | |');
  for (const [k, l] of t.outside.byLabel)
    console.log(
      `| \`${k}\` | ${l.length} | ${fmt(median(l), 1)} | ${fmt(
        l.reduce((a, b) => a + b, 0),
        0,
      )} | |`,
    );
}

async function backfill(db: TracingWarehouse, lake: LocalLake): Promise<{ s: RollupSummary; cpu: { me: number; pg: number } }> {
  db.tx = new Timings();
  db.outside = new Timings();
  const pm = pglite ? null : postmasterPid(join(process.env.METER_STACK_DIR ?? '/tmp/meter-stack', 'postgres', 'data'));
  const r = new Rollup({ lake, db });
  const c0 = process.cpuUsage();
  const p0 = postgresCpuMs(pm);
  try {
    const s = await r.backfill(FROM, FROM + hours * HOUR);
    const c = process.cpuUsage(c0);
    return { s, cpu: { me: (c.user + c.system) / 1000, pg: postgresCpuMs(pm) - p0 } };
  } finally {
    await r.close();
  }
}

interface SavedHour {
  hour: number;
  rows: HourlyRow[];
  files: FileRef[];
  events: bigint;
}

/** Each hour's rows as the first write left them, in a fixed pseudo-random order (DuckDB's hash order is not sorted either). */
async function savedHours(pg: Warehouse): Promise<SavedHour[]> {
  const out: SavedHour[] = [];
  for (let h = FROM; h < FROM + hours * HOUR; h += HOUR) {
    const at = new Date(h).toISOString();
    const rows = await pg.query<{ customer_id: string; api: string; calls: unknown; events: unknown }>(
      'SELECT customer_id, api, calls, events FROM usage_hourly WHERE hour = $1 ORDER BY md5(customer_id || api)',
      [at],
    );
    const files = await pg.query<{ path: string; size: unknown }>('SELECT path, size FROM rollup_files WHERE hour = $1 ORDER BY path', [at]);
    const hourly = rows.map((r) => ({ customer: r.customer_id, api: r.api, calls: BigInt(String(r.calls)), events: BigInt(String(r.events)) }));
    out.push({ hour: h, rows: hourly, files: files.map((f) => ({ path: f.path, size: Number(f.size) })), events: hourly.reduce((a, r) => a + r.events, 0n) });
  }
  return out;
}

/** replaceHour of every saved hour, one after the other, as a summary like the rollup's. */
async function writeDirect(db: TracingWarehouse, saved: SavedHour[]): Promise<{ s: RollupSummary; cpu: { me: number; pg: number } }> {
  db.tx = new Timings();
  db.outside = new Timings();
  const pm = pglite ? null : postmasterPid(join(process.env.METER_STACK_DIR ?? '/tmp/meter-stack', 'postgres', 'data'));
  const c0 = process.cpuUsage();
  const p0 = postgresCpuMs(pm);
  const t0 = performance.now();
  const results: RollupSummary['results'] = [];
  for (const h of saved) {
    const t = performance.now();
    await replaceHour(db, h.hour, h.rows, h.files, h.events);
    const writeMs = Math.round(performance.now() - t);
    results.push({
      hour: h.hour,
      files: h.files.length,
      events: Number(h.events),
      rows: h.rows.length,
      outside: 0,
      duckMs: 0,
      writeMs,
      countMs: 0,
      dedupeMs: 0,
      markedFiles: 0,
    });
  }
  const c = process.cpuUsage(c0);
  const s: RollupSummary = {
    hours: results.length,
    files: results.reduce((a, r) => a + r.files, 0),
    events: results.reduce((a, r) => a + r.events, 0),
    rows: results.reduce((a, r) => a + r.rows, 0),
    ms: performance.now() - t0,
    results,
  };
  return { s, cpu: { me: (c.user + c.system) / 1000, pg: postgresCpuMs(pm) - p0 } };
}

const CHANGE = [
  // In the lake's hours: a tenth of the rows off by one, one row gone, one row that the lake does not have.
  `UPDATE usage_hourly SET calls = calls + 1 WHERE hour >= '${new Date(FROM).toISOString()}' AND hashtext(customer_id || api) % 10 = 0`,
  `DELETE FROM usage_hourly WHERE (customer_id, api, hour) IN (SELECT customer_id, api, hour FROM usage_hourly WHERE hour >= '${new Date(FROM).toISOString()}' ORDER BY 1, 2, 3 LIMIT 1)`,
  `INSERT INTO usage_hourly (customer_id, api, hour, calls, events) SELECT 'nobody', 'none', hour, 1, 1 FROM rollup_hours WHERE hour >= '${new Date(FROM).toISOString()}'`,
];

/** History before the lake's hours (warehouse-history.ts), made from its first hour once rolled up. */
async function history(pg: Warehouse, lake: LocalLake, days: number): Promise<void> {
  const [have] = await pg.query<{ n: unknown }>('SELECT count(*) AS n FROM rollup_hours WHERE hour < $1', [new Date(FROM).toISOString()]);
  if (Number(have?.n) === days * 24) return;
  const r = new Rollup({ lake, db: pg });
  try {
    await r.backfill(FROM, FROM + HOUR);
  } finally {
    await r.close();
  }
  if (await ensureHistory(pg, FROM, days)) console.log(`made ${days} days of history before ${new Date(FROM).toISOString()}`);
}

const pg = pglite ? await benchWarehouse('', { embedded: true }) : await namedPostgres(database);
const db = new TracingWarehouse(pg);
const lake = new LocalLake(pathToFileURL(root).href);
await lake.init();
try {
  if (historyDays > 0) await history(pg, lake, historyDays);
  await emptyFrom(pg, FROM);
  const [size] = await pg.query<{ n: unknown }>('SELECT count(*) AS n FROM usage_hourly');
  console.log(`usage_hourly holds ${fmt(Number(size?.n))} rows of other hours`);
  console.log(
    `# rollup write trace: ${hours} hours of ${root}, ${pglite ? "PGlite (in memory, in this process: its CPU is the rollup process's)" : `Postgres (${database})`}${explain ? ', auto_explain on' : ''}${direct ? `, replaceHour directly, ${rounds} rounds` : ''}`,
  );
  if (!direct) {
    let r = await backfill(db, lake);
    report('first write (tables emptied)', db, r.s, r.cpu);
    r = await backfill(db, lake);
    report('rerun, same counts', db, r.s, r.cpu);
    for (const q of CHANGE) await pg.query(q);
    r = await backfill(db, lake);
    report('rerun after a tenth of the rows changed', db, r.s, r.cpu);
  } else {
    await backfill(db, lake);
    const saved = await savedHours(pg);
    for (let i = 1; i <= rounds; i++) {
      await emptyFrom(pg, FROM);
      let r = await writeDirect(db, saved);
      report(`round ${i}: first write (tables emptied)`, db, r.s, r.cpu);
      r = await writeDirect(db, saved);
      report(`round ${i}: rerun, same counts`, db, r.s, r.cpu);
      for (const q of CHANGE) await pg.query(q);
      r = await writeDirect(db, saved);
      report(`round ${i}: rerun after a tenth of the rows changed`, db, r.s, r.cpu);
    }
  }
} finally {
  await lake.close();
  await db.close();
}
