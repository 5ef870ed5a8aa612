/**
 * Ways to write an hour's usage_hourly rows into PGlite (the embedded warehouse), measured by this
 * process's CPU (PGlite runs in it): `hours` hours of 10,000 rows (200 customers x 50 APIs, as the
 * bench lake), each written in its own transaction, in three cases: the first write (hours
 * emptied before), a rerun with the same counts, and a rerun after a tenth of the rows changed.
 * Every variant leaves the same rows (checked against the first); the triggers of migrations 008
 * and 014 run as in production.
 *
 *   node dist/bench/pglite-write-variants.js [hours=8] [rounds=3] [--memory] [--variants a,b]
 */
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import type { PGlite, Transaction } from '@electric-sql/pglite';
import { PgliteWarehouse } from '../src/warehouse/pglite-warehouse.js';
import { migrate } from '../src/warehouse/migrate.js';
import { type HourlyRow, replaceHour } from '../src/warehouse/usage-repository.js';
import { argValue, benchWorkDir, fmt, median } from './lib.js';

const args = process.argv.slice(2);
const positional = args.filter((a) => /^\d+$/.test(a));
const hours = Number(positional[0] ?? 8);
const rounds = Number(positional[1] ?? 3);
const memory = args.includes('--memory');
const only = argValue('variants', '')
  .split(',')
  .filter((s) => s);
const FROM = Date.UTC(2021, 2, 1);
const HOUR = 3_600_000;

function hourRows(h: number, bump: boolean): HourlyRow[] {
  const out: HourlyRow[] = [];
  for (let c = 0; c < 200; c++)
    for (let a = 0; a < 50; a++) {
      const calls = BigInt(((c * 7919 + a * 104729 + h / HOUR) % 600) + 1);
      const changed = bump && (c * 50 + a) % 10 === 0;
      out.push({
        customer: `cust-${String(c).padStart(4, '0')}`,
        api: `svc${String(a >> 3).padStart(2, '0')}.op${a & 7}`,
        calls: changed ? calls + 1n : calls,
        events: calls + 3n,
      });
    }
  // DuckDB's hash order, not key order
  return out.sort((x, y) => (hash(x) < hash(y) ? -1 : 1));
}

function hash(r: HourlyRow): number {
  let h = 2166136261;
  for (const ch of r.customer + r.api) h = Math.imul(h ^ ch.charCodeAt(0), 16777619);
  return h >>> 0;
}

type Write = (w: PgliteWarehouse, pg: PGlite, hour: number, rows: HourlyRow[]) => Promise<void>;
/** Several hours in one transaction. */
type BatchWrite = (pg: PGlite, hours: { hour: number; rows: HourlyRow[] }[]) => Promise<void>;

function tsv(hour: string, rows: HourlyRow[]): Blob {
  const lines = rows.map((r) => `${r.customer}\t${r.api}\t${hour}\t${r.calls}\t${r.events}\n`);
  return new Blob([lines.join('')]);
}

const TEMP = `CREATE TEMP TABLE IF NOT EXISTS hour_rows (customer_id text NOT NULL, api text NOT NULL, hour timestamptz NOT NULL, calls bigint NOT NULL, events bigint NOT NULL) ON COMMIT DELETE ROWS`;

/** New rows in the temp table; the differences computed by Postgres; only statements with rows sent. */
async function sqlDiff(tx: Transaction, hour: string): Promise<void> {
  const [c] = (
    await tx.query<{ ins: number; del: number; upd: number }>(
      `SELECT count(*) FILTER (WHERE u.customer_id IS NULL)::int AS ins,
              count(*) FILTER (WHERE n.customer_id IS NULL)::int AS del,
              count(*) FILTER (WHERE u.calls <> n.calls OR u.events <> n.events)::int AS upd
         FROM (SELECT customer_id, api, calls, events FROM usage_hourly WHERE hour = $1) u
         FULL JOIN hour_rows n ON n.customer_id = u.customer_id AND n.api = u.api`,
      [hour],
    )
  ).rows;
  if (c!.del)
    await tx.query(
      `DELETE FROM usage_hourly u WHERE u.hour = $1 AND NOT EXISTS (SELECT 1 FROM hour_rows n WHERE n.customer_id = u.customer_id AND n.api = u.api)`,
      [hour],
    );
  if (c!.upd)
    await tx.query(
      `UPDATE usage_hourly u SET calls = n.calls, events = n.events, rolled_at = now()
         FROM hour_rows n
        WHERE u.hour = $1 AND u.customer_id = n.customer_id AND u.api = n.api AND (u.calls <> n.calls OR u.events <> n.events)`,
      [hour],
    );
  if (c!.ins)
    await tx.query(
      `INSERT INTO usage_hourly (customer_id, api, hour, calls, events)
       SELECT n.customer_id, n.api, n.hour, n.calls, n.events FROM hour_rows n
        WHERE NOT EXISTS (SELECT 1 FROM usage_hourly u WHERE u.customer_id = n.customer_id AND u.hour = $1 AND u.api = n.api)
        ORDER BY 1, 2`,
      [hour],
    );
}

const variants: Record<string, Write> = {
  // usage-repository.ts replaceHour as it is (on PGlite: COPY, differences in SQL)
  current: async (w, _pg, hour, rows) => replaceHour(w, hour, rows, [], 0n),
  // replaceHour without Sql.copyIn: the hour read into JS, rows as array parameters (the Postgres path; PGlite's before COPY)
  params: async (w, _pg, hour, rows) =>
    replaceHour(
      {
        kind: w.kind,
        query: (t, p) => w.query(t, p),
        transaction: (fn) => w.transaction((tx) => fn({ query: (t, p, o) => tx.query(t, p, o) })),
        close: () => w.close(),
      },
      hour,
      rows,
      [],
      0n,
    ),
  // COPY of the rows (tab-separated, from a Blob) into a temp table, differences in SQL
  copyTemp: async (_w, pg, hour, rows) => {
    const at = new Date(hour).toISOString();
    await pg.transaction(async (tx) => {
      await tx.query(TEMP);
      await tx.query(`COPY hour_rows FROM '/dev/blob'`, [], { blob: tsv(at, rows) });
      await sqlDiff(tx, at);
    });
  },
  // as copyTemp, and an hour with no rows yet is COPYed into usage_hourly itself
  copyDirect: async (_w, pg, hour, rows) => {
    const at = new Date(hour).toISOString();
    await pg.transaction(async (tx) => {
      const [e] = (await tx.query<{ any: boolean }>('SELECT EXISTS (SELECT 1 FROM usage_hourly WHERE hour = $1) AS any', [at])).rows;
      const sorted = [...rows].sort((a, b) => (a.customer < b.customer ? -1 : a.customer > b.customer ? 1 : a.api < b.api ? -1 : a.api > b.api ? 1 : 0));
      if (!e!.any) {
        await tx.query(`COPY usage_hourly (customer_id, api, hour, calls, events) FROM '/dev/blob'`, [], { blob: tsv(at, sorted) });
        return;
      }
      await tx.query(TEMP);
      await tx.query(`COPY hour_rows FROM '/dev/blob'`, [], { blob: tsv(at, sorted) });
      await sqlDiff(tx, at);
    });
  },
  // the differences in SQL, the rows passed as unnest parameters as now
  unnestDiff: async (_w, pg, hour, rows) => {
    const at = new Date(hour).toISOString();
    await pg.transaction(async (tx) => {
      await tx.query(TEMP);
      await tx.query(
        `INSERT INTO hour_rows SELECT n.c, n.a, $1, n.calls, n.events FROM unnest($2::text[], $3::text[], $4::bigint[], $5::bigint[]) AS n(c, a, calls, events)`,
        [at, rows.map((r) => r.customer), rows.map((r) => r.api), rows.map((r) => r.calls.toString()), rows.map((r) => r.events.toString())],
      );
      await sqlDiff(tx, at);
    });
  },
  // the trigger's share: current with usage_hourly's triggers off (NOT a valid write: usage_daily goes stale)
  noTriggers: async (w, _pg, hour, rows) => {
    await w.query('ALTER TABLE usage_hourly DISABLE TRIGGER USER');
    try {
      await replaceHour(w, hour, rows, [], 0n);
    } finally {
      await w.query('ALTER TABLE usage_hourly ENABLE TRIGGER USER');
    }
  },
};

const batchVariants: Record<string, BatchWrite> = {
  // all the hours' rows COPYed into the temp table at once, differences in SQL over all of them
  copyBatch: async (pg, list) => {
    const at = list.map((h) => new Date(h.hour).toISOString());
    await pg.transaction(async (tx) => {
      await tx.query(TEMP);
      const blob = new Blob(list.map((h, i) => tsv(at[i]!, h.rows)));
      const [e] = (await tx.query<{ any: boolean }>('SELECT EXISTS (SELECT 1 FROM usage_hourly WHERE hour = ANY($1::timestamptz[])) AS any', [at])).rows;
      if (!e!.any) {
        await tx.query(`COPY usage_hourly (customer_id, api, hour, calls, events) FROM '/dev/blob'`, [], { blob });
        return;
      }
      await tx.query(`COPY hour_rows FROM '/dev/blob'`, [], { blob });
      await sqlDiffMany(tx, at);
    });
  },
};

async function sqlDiffMany(tx: Transaction, hours: string[]): Promise<void> {
  const [c] = (
    await tx.query<{ ins: number; del: number; upd: number }>(
      `SELECT count(*) FILTER (WHERE u.customer_id IS NULL)::int AS ins,
              count(*) FILTER (WHERE n.customer_id IS NULL)::int AS del,
              count(*) FILTER (WHERE u.calls <> n.calls OR u.events <> n.events)::int AS upd
         FROM (SELECT customer_id, api, hour, calls, events FROM usage_hourly WHERE hour = ANY($1::timestamptz[])) u
         FULL JOIN hour_rows n ON n.customer_id = u.customer_id AND n.api = u.api AND n.hour = u.hour`,
      [hours],
    )
  ).rows;
  if (c!.del)
    await tx.query(
      `DELETE FROM usage_hourly u WHERE u.hour = ANY($1::timestamptz[]) AND NOT EXISTS (SELECT 1 FROM hour_rows n WHERE n.customer_id = u.customer_id AND n.api = u.api AND n.hour = u.hour)`,
      [hours],
    );
  if (c!.upd)
    await tx.query(
      `UPDATE usage_hourly u SET calls = n.calls, events = n.events, rolled_at = now()
         FROM hour_rows n
        WHERE u.hour = ANY($1::timestamptz[]) AND u.customer_id = n.customer_id AND u.hour = n.hour AND u.api = n.api AND (u.calls <> n.calls OR u.events <> n.events)`,
      [hours],
    );
  if (c!.ins)
    await tx.query(
      `INSERT INTO usage_hourly (customer_id, api, hour, calls, events)
       SELECT n.customer_id, n.api, n.hour, n.calls, n.events FROM hour_rows n
        WHERE NOT EXISTS (SELECT 1 FROM usage_hourly u WHERE u.customer_id = n.customer_id AND u.hour = n.hour AND u.api = n.api)
        ORDER BY 1, 3, 2`,
    );
}

async function snapshot(w: PgliteWarehouse): Promise<string> {
  const [h] = await w.query<{ s: string }>(
    `SELECT md5(string_agg(customer_id || api || hour::text || calls || ':' || events, ',' ORDER BY customer_id, hour, api)) AS s FROM usage_hourly`,
  );
  const [d] = await w.query<{ s: string }>(
    `SELECT md5(string_agg(customer_id || api || day::text || calls || ':' || events || ':' || hours, ',' ORDER BY customer_id, day, api)) AS s FROM usage_daily`,
  );
  return `${h?.s}/${d?.s}`;
}

const names = [...Object.keys(variants), ...Object.keys(batchVariants)].filter((n) => !only.length || only.includes(n));
const dir = join(benchWorkDir(), 'pglite-write-variants');
const results = new Map<string, Map<string, number[]>>();
let reference: string[] | null = null;
for (let round = 0; round < rounds; round++) {
  for (const name of round % 2 ? [...names].reverse() : names) {
    rmSync(dir, { recursive: true, force: true });
    rmSync(`${dir}.lock`, { recursive: true, force: true });
    const w = await PgliteWarehouse.open(memory ? null : dir);
    try {
      await migrate(w);
      const pg = (w as unknown as { db: PGlite }).db;
      const states: string[] = [];
      for (const [kase, bump] of [
        ['first write', false],
        ['rerun, same counts', false],
        ['rerun, a tenth changed', true],
      ] as const) {
        const list = Array.from({ length: hours }, (_, i) => ({ hour: FROM + i * HOUR, rows: hourRows(FROM + i * HOUR, bump) }));
        const c0 = process.cpuUsage();
        const t0 = performance.now();
        const batch = batchVariants[name];
        if (batch) await batch(pg, list);
        else for (const h of list) await variants[name]!(w, pg, h.hour, h.rows);
        const c = process.cpuUsage(c0);
        const wall = performance.now() - t0;
        const byCase = results.get(name) ?? new Map<string, number[]>();
        results.set(name, byCase);
        byCase.set(`${kase} cpu`, [...(byCase.get(`${kase} cpu`) ?? []), (c.user + c.system) / 1000 / hours]);
        byCase.set(`${kase} wall`, [...(byCase.get(`${kase} wall`) ?? []), wall / hours]);
        states.push(await snapshot(w));
      }
      if (!reference) reference = states;
      else if (states.join() !== reference.join() && name !== 'noTriggers') throw new Error(`${name} left other rows than ${names[0]}`);
    } finally {
      await w.close();
    }
  }
  console.error(`round ${round + 1} done (load ${loadavg()[0]!.toFixed(1)})`);
}
console.log(
  `# PGlite ${memory ? 'in memory' : 'on disk'}: ${hours} hours of 10,000 rows, ${rounds} rounds; per hour, median ms (CPU of this process / wall); load ${loadavg()[0]!.toFixed(1)}`,
);
console.log('| variant | first write | rerun, same counts | rerun, a tenth changed |');
console.log('| --- | --- | --- | --- |');
for (const [name, m] of results) {
  const cell = (k: string) => `${fmt(median(m.get(`${k} cpu`)!), 1)} / ${fmt(median(m.get(`${k} wall`)!), 1)}`;
  console.log(`| ${name} | ${cell('first write')} | ${cell('rerun, same counts')} | ${cell('rerun, a tenth changed')} |`);
}
