/**
 * Counts one hour of lake files with DuckDB: distinct event ids per (customer, api), exact.
 *
 * Three steps, each reading only the columns it needs (bench/rollup-variants.ts measures them):
 * 1. plain counts per (customer, api), and the rows outside the hour: one scan per kind of file
 *    (counted by marks, proven inside the hour, checked row by row), summed here. A file whose
 *    Parquet statistics (min, max and null count of event_time, every row group) prove all its
 *    rows lie in the hour is read without event_time (the widest column after id);
 * 2. duplicate candidates: ids whose 64-bit hash occurs more than once (a hash collision only
 *    adds a candidate);
 * 3. only when there are candidates: the exact copies among them, grouped by the id itself,
 *    subtracted from step 1. Duplicates are rare (a resend after a timeout), so step 3 seldom runs.
 * Compacted files carrying compaction's dedupe marks (dedupe-marks.ts) are counted in step 1 by
 * their marks and left out of steps 2 and 3: their ids are not read.
 */
import type { DuckDBConnection, DuckDBUIntegerVector } from '@duckdb/node-api';
import { HOUR_MS } from '../lake/layout.js';
import { billableSql } from '../events/usage-event.js';
import type { HourlyRow } from '../warehouse/usage-repository.js';
import { toBigInt } from '../warehouse/values.js';

/** By status (usage-event.ts, the one rule), not by the lake's `billable` column. */
const BILLABLE = billableSql('status');

/**
 * How step 2 finds repeated hashes. `sort` (the default): DuckDB sorts the hashes and compares
 * neighbours (spills to disk, any size). `table`: hashes streamed into an open-addressing table
 * in this process (up to 16 bytes per row, so hours above TABLE_MAX_ROWS use `sort`); it took
 * 1.5x the CPU of `sort` and no less wall time on 8 hours of the bench lake
 * (bench/results/2026-12-05-rollup.md), and stays for that comparison.
 */
export type DedupeMethod = 'table' | 'sort';

/** Rows per hour up to which `table` is used: its table is then at most 2^25 slots of 8 bytes (256 MiB). */
export const TABLE_MAX_ROWS = 1 << 24;

/** A (customer, api) of the hour: its calls and events, and the bytes of its billable events (0 unless `bytes` was asked for). */
export type CountedRow = HourlyRow & { bytesIn: bigint; bytesOut: bigint };

export interface CountMore {
  /** Also sum bytes_in and bytes_out of billable events (the built-in bytes meters, when declared). */
  bytes?: boolean;
  /**
   * More work over the same files while the candidate table (repeated id hashes, and how many)
   * still exists: the meters (meter-count.ts) dedupe by it rather than hash again.
   */
  alsoWith?: (candidates: { table: string; count: number }) => Promise<void>;
  /**
   * A temp table of the hour's corrected events (correction-table.ts): the cancelled ones are
   * taken out of calls and bytes, as one copy of each id (the copy kept above). They stay in
   * `events`, the hour's distinct ids, which the live path and rollup-verify.ts compare against.
   */
  corrections?: string;
  /**
   * Files (of `files`) the caller found may be counted by compaction's dedupe marks
   * (dedupe-marks.ts markedFiles; none when a declared meter needs the candidates): they are,
   * when their statistics also prove every row inside the hour.
   */
  marked?: ReadonlySet<string>;
}

export interface HourCount {
  rows: CountedRow[];
  /** Rows whose event time is outside the hour or NULL (not counted). */
  outside: number;
  /** Files whose statistics proved every event_time inside the hour (read without event_time). */
  provenFiles: number;
  /** Distinct hashes seen more than once (0: step 3 did not run). */
  candidates: number;
  /** Files counted by compaction's dedupe marks (dedupe-marks.ts): their ids were not read. */
  markedFiles: number;
  /** Wall time of step 1 (plain counts) and of steps 2-3 (dedupe), ms. */
  countMs: number;
  dedupeMs: number;
}

let tempSeq = 0;

export async function countHour(c: DuckDBConnection, files: string[], hour: number, method: DedupeMethod = 'sort', more: CountMore = {}): Promise<HourCount> {
  // Without the bytes meters, the statements are the calls' alone (no column more is read).
  const bytes = (sql: string) => (more.bytes ? sql : '');
  const from = BigInt(hour) * 1000n;
  const to = BigInt(hour + HOUR_MS) * 1000n;
  // Bounds as literals (integers computed here): a statement without the checked part has no parameters.
  const inHour = `(event_time >= make_timestamptz(${from}::BIGINT) AND event_time < make_timestamptz(${to}::BIGINT))`;
  const t0 = performance.now();
  const proven = await provenInside(c, files, from, to);
  // Counted by their marks: files the caller found so (dedupe-marks.ts markedFiles) whose rows all
  // lie in the hour (a mark may sit on a copy outside it). The rest by id, as below.
  const byMarks = files.filter((f) => more.marked?.has(f) && proven.has(f));
  const rest = byMarks.length ? files.filter((f) => !byMarks.includes(f)) : files;
  const inside = rest.filter((f) => proven.has(f));
  const checked = rest.filter((f) => !proven.has(f));
  const parts: string[] = [];
  if (byMarks.length)
    parts.push(`SELECT customer, api, count(*) FILTER (WHERE keep_call) AS calls, count(*) FILTER (WHERE keep_event) AS events, 0::BIGINT AS outside
                       ${bytes(', sum(bytes_in) FILTER (WHERE keep_call) AS bytes_in, sum(bytes_out) FILTER (WHERE keep_call) AS bytes_out')}
                  FROM ${parquet(byMarks)} GROUP BY customer, api`);
  if (inside.length)
    parts.push(`SELECT customer, api, count(*) FILTER (WHERE ${BILLABLE}) AS calls, count(*) AS events, 0::BIGINT AS outside
                       ${bytes(`, sum(bytes_in) FILTER (WHERE ${BILLABLE}) AS bytes_in, sum(bytes_out) FILTER (WHERE ${BILLABLE}) AS bytes_out`)}
                  FROM ${parquet(inside)} GROUP BY customer, api`);
  if (checked.length)
    parts.push(`SELECT customer, api, count(*) FILTER (WHERE ${inHour} AND ${BILLABLE}) AS calls, count(*) FILTER (WHERE ${inHour}) AS events,
                       count(*) FILTER (WHERE NOT coalesce(${inHour}, false)) AS outside
                       ${bytes(`, sum(bytes_in) FILTER (WHERE ${inHour} AND ${BILLABLE}) AS bytes_in, sum(bytes_out) FILTER (WHERE ${inHour} AND ${BILLABLE}) AS bytes_out`)}
                  FROM ${parquet(checked)} GROUP BY customer, api`);
  // Each part is its own statement, summed here by (customer, api): one statement of the parts
  // under an outer GROUP BY took 1.18x the time of the part alone on a compacted day
  // (bench/results/2026-12-06-rollup-count.md), and an hour has ~10,000 groups to add up.
  const counts = new Map<string, CountedRow>();
  let outside = 0n;
  for (const part of parts) {
    // Read by columns: for an hour's ~10,000 groups a third of the JavaScript of row objects
    // (~5 vs ~13 ms per hour, on the rollup's one thread, which PGlite's writes also need).
    const r = (await c.runAndReadAll(part)).getColumnsObjectJS();
    const [customers, apis, calls, events] = [r.customer ?? [], r.api ?? [], r.calls ?? [], r.events ?? []];
    for (let i = 0; i < customers.length; i++) {
      outside += toBigInt(r.outside?.[i]);
      const k = key(customers[i], apis[i]);
      const bytesIn = more.bytes ? BigInt(String(r.bytes_in?.[i] ?? 0)) : 0n;
      const bytesOut = more.bytes ? BigInt(String(r.bytes_out?.[i] ?? 0)) : 0n;
      const row = counts.get(k);
      if (row) {
        row.calls += toBigInt(calls[i]);
        row.events += toBigInt(events[i]);
        row.bytesIn += bytesIn;
        row.bytesOut += bytesOut;
      } else {
        counts.set(k, { customer: String(customers[i]), api: String(apis[i]), calls: toBigInt(calls[i]), events: toBigInt(events[i]), bytesIn, bytesOut });
      }
    }
  }
  const t1 = performance.now();

  // An hour counted wholly by its marks with no corrections and no meters has nothing more to do.
  if (!rest.length && !more.corrections && !more.alsoWith) return done(counts, outside, inside.length + byMarks.length, 0, byMarks.length, t0, t1);
  const cand = `rollup_cand_${++tempSeq}`;
  await c.run(`CREATE TEMP TABLE ${cand} (h UBIGINT)`);
  let candidates = 0;
  try {
    // Files counted by marks share no event with any other file: copies are looked for in the rest.
    if (rest.length) {
      const total = method === 'table' ? await rowCount(c, rest) : 0;
      candidates = method === 'table' && total <= TABLE_MAX_ROWS ? await candidatesByTable(c, rest, total, cand) : await candidatesBySort(c, rest, cand);
    }
    if (candidates) {
      // The extra copies per (customer, api): an id's rows beyond its first; billable ones beyond
      // the first billable (an id counts as a call when any of its copies is billable), and their
      // bytes beyond those of the billable copy kept (least bytes_in, then bytes_out: as meter-count.ts).
      const extra = await c.runAndReadAll(
        `SELECT customer, api, sum(n - 1) AS events, sum(b - CASE WHEN b > 0 THEN 1 ELSE 0 END) AS calls
                ${bytes(', coalesce(sum(bi - bi1), 0)::VARCHAR AS bytes_in, coalesce(sum(bo - bo1), 0)::VARCHAR AS bytes_out')}
           FROM (SELECT customer, api, id, count(*) AS n, count(*) FILTER (WHERE ${BILLABLE}) AS b
                        ${bytes(`, sum(bytes_in) FILTER (WHERE ${BILLABLE}) AS bi, min(bytes_in) FILTER (WHERE ${BILLABLE}) AS bi1,
                        sum(bytes_out) FILTER (WHERE ${BILLABLE}) AS bo, arg_min(bytes_out, [bytes_in, bytes_out]) FILTER (WHERE ${BILLABLE}) AS bo1`)}
                   FROM ${parquet(rest)} WHERE ${inHour} AND hash(id) IN (SELECT h FROM ${cand})
                  GROUP BY customer, api, id HAVING count(*) > 1)
          GROUP BY customer, api`,
      );
      for (const r of extra.getRowObjectsJS()) {
        const row = counts.get(key(r.customer, r.api));
        if (!row) throw new Error(`rollup: copies of ids in (${String(r.customer)}, ${String(r.api)}) but no count for it`);
        row.events -= toBigInt(r.events);
        row.calls -= toBigInt(r.calls);
        if (more.bytes) {
          row.bytesIn -= BigInt(String(r.bytes_in));
          row.bytesOut -= BigInt(String(r.bytes_out));
        }
      }
    }
    if (more.corrections) {
      // Per (customer, api) and cancelled id: a call when any copy is billable; the kept billable copy's bytes.
      const gone = await c.runAndReadAll(
        `SELECT customer, api, count(*) FILTER (WHERE b > 0) AS calls
                ${bytes(', coalesce(sum(bi), 0)::VARCHAR AS bytes_in, coalesce(sum(bo), 0)::VARCHAR AS bytes_out')}
           FROM (SELECT customer, api, id, count(*) FILTER (WHERE ${BILLABLE}) AS b
                        ${bytes(`, min(bytes_in) FILTER (WHERE ${BILLABLE}) AS bi, arg_min(bytes_out, [bytes_in, bytes_out]) FILTER (WHERE ${BILLABLE}) AS bo`)}
                   FROM ${parquet(files)} WHERE ${inHour} AND id IN (SELECT id FROM ${more.corrections} WHERE cancelled)
                  GROUP BY customer, api, id)
          GROUP BY customer, api`,
      );
      for (const r of gone.getRowObjectsJS()) {
        const row = counts.get(key(r.customer, r.api));
        if (!row) continue;
        row.calls -= toBigInt(r.calls);
        if (more.bytes) {
          row.bytesIn -= BigInt(String(r.bytes_in));
          row.bytesOut -= BigInt(String(r.bytes_out));
        }
      }
    }
    await more.alsoWith?.({ table: cand, count: candidates });
  } finally {
    await c.run(`DROP TABLE IF EXISTS ${cand}`);
  }
  return done(counts, outside, inside.length + byMarks.length, candidates, byMarks.length, t0, t1);
}

function done(
  counts: Map<string, CountedRow>,
  outside: bigint,
  provenFiles: number,
  candidates: number,
  markedFiles: number,
  t0: number,
  t1: number,
): HourCount {
  return {
    rows: [...counts.values()].filter((r) => r.events !== 0n).sort(byGroup),
    outside: Number(outside),
    provenFiles,
    candidates,
    markedFiles,
    countMs: t1 - t0,
    dedupeMs: performance.now() - t1,
  };
}

/**
 * Files whose every row group has event_time statistics within [from, to) and no NULLs. A file
 * without event_time, or a row group without statistics, is not proven and is read with the time check.
 */
async function provenInside(c: DuckDBConnection, files: string[], from: bigint, to: bigint): Promise<Set<string>> {
  const r = await c.runAndReadAll(
    `SELECT file_name,
            bool_and(coalesce(stats_null_count = 0
                              AND try_cast(stats_min_value AS TIMESTAMPTZ) >= make_timestamptz($1::BIGINT)
                              AND try_cast(stats_max_value AS TIMESTAMPTZ) < make_timestamptz($2::BIGINT), false)) AS inside
       FROM parquet_metadata(${list(files)}) WHERE path_in_schema = 'event_time' GROUP BY file_name`,
    [from, to],
  );
  const proven = new Set<string>();
  for (const row of r.getRowObjectsJS()) if (row.inside === true) proven.add(String(row.file_name));
  return proven;
}

/** Rows of `files`, from their footers (the `table` method sizes its table by it). */
async function rowCount(c: DuckDBConnection, files: string[]): Promise<number> {
  const n = await c.runAndReadAll(`SELECT count(*) AS n FROM ${parquet(files)}`);
  return Number(n.getRowObjectsJS()[0]?.n ?? 0);
}

/** Step 2 in DuckDB: sorted hashes, equal neighbours. */
async function candidatesBySort(c: DuckDBConnection, files: string[], cand: string): Promise<number> {
  await c.run(
    `INSERT INTO ${cand} SELECT DISTINCT h FROM (SELECT h, lag(h) OVER (ORDER BY h) AS prev FROM (SELECT hash(id) AS h FROM ${parquet(files)})) WHERE h = prev`,
  );
  const n = await c.runAndReadAll(`SELECT count(*) AS n FROM ${cand}`);
  return Number(n.getRowObjectsJS()[0]?.n ?? 0);
}

/**
 * Step 2 here: DuckDB streams each id's 64-bit hash as two 32-bit halves into an open-addressing
 * table of twice the hour's row count (linear probing, the pair (0, 0) marks an empty slot and
 * is tracked apart). Repeated hashes go to the candidate table.
 */
async function candidatesByTable(c: DuckDBConnection, files: string[], total: number, cand: string): Promise<number> {
  let bits = 4;
  while (1 << bits < total * 2) bits++;
  const mask = (1 << bits) - 1;
  const slots = new Uint32Array(2 << bits);
  let zeroSeen = false;
  const repeated = new Set<bigint>();
  const res = await c.stream(`SELECT (h >> 32)::UINTEGER AS hi, (h & 4294967295)::UINTEGER AS lo FROM (SELECT hash(id) AS h FROM ${parquet(files)})`);
  for (;;) {
    const chunk = await res.fetchChunk();
    if (!chunk || chunk.rowCount === 0) break;
    const his = chunk.getColumnVector(0) as DuckDBUIntegerVector;
    const los = chunk.getColumnVector(1) as DuckDBUIntegerVector;
    for (let i = 0, n = chunk.rowCount; i < n; i++) {
      // hash() never gives NULL, and ids are never NULL in the lake; ?? 0 keeps the types honest.
      const hi = his.getItem(i) ?? 0;
      const lo = los.getItem(i) ?? 0;
      if (hi === 0 && lo === 0) {
        if (zeroSeen) repeated.add(0n);
        zeroSeen = true;
        continue;
      }
      let s = (lo & mask) << 1;
      for (;;) {
        const a = slots[s];
        const b = slots[s + 1];
        if (a === 0 && b === 0) {
          slots[s] = hi;
          slots[s + 1] = lo;
          break;
        }
        if (a === hi && b === lo) {
          repeated.add((BigInt(hi) << 32n) | BigInt(lo));
          break;
        }
        s = (s + 2) & ((mask << 1) | 1);
      }
    }
  }
  if (repeated.size) {
    const app = await c.createAppender(cand, 'main', 'temp');
    for (const h of repeated) {
      app.appendUBigInt(h);
      app.endRow();
    }
    app.closeSync();
  }
  return repeated.size;
}

function parquet(files: string[]): string {
  return `read_parquet(${list(files)}, union_by_name = true)`;
}

function list(files: string[]): string {
  return `[${files.map((f) => `'${f.replaceAll("'", "''")}'`).join(', ')}]`;
}

function key(customer: unknown, api: unknown): string {
  return JSON.stringify([customer ?? null, api ?? null]);
}

function byGroup(a: HourlyRow, b: HourlyRow): number {
  return a.customer < b.customer ? -1 : a.customer > b.customer ? 1 : a.api < b.api ? -1 : a.api > b.api ? 1 : 0;
}
