/**
 * Dedupe marks: compaction, which reads every row of an hour's partition anyway, marks in the
 * merged file the one copy of each event that counts, so the rollup counts such a file with a
 * plain GROUP BY and never reads its 36-character ids (of an hour's 87 MiB they are 52 MiB, and
 * sorting their hashes was two thirds of the rollup's time: BENCHMARKS.md "Rollup 20 M/s").
 *
 * Two BOOLEAN columns, per (customer, api, id), the rollup's unit of one event (rollup-count.ts):
 * - `keep_event`: the one copy kept: the billable copy (by status, usage-event.ts billableSql)
 *   with the least bytes_in, then bytes_out, then offset, whose bytes the rollup keeps; without a
 *   billable copy, the first in offset order;
 * - `keep_call`: the kept copy when it is billable.
 * One window over (customer, api, id) makes both: two took 1.4x its CPU (2.5 vs 1.8 s for 900 k
 * rows, bench/results/2026-12-05-compaction-marks.txt).
 *
 * The marks only speak of copies inside the file. Copies of one event normally share a partition
 * (events/event-spread.ts) but need not (producers with the other `partitionBy`, a changed
 * partition count: docs/scaling.md), and an hour's partition also keeps small files compaction
 * does not merge (ranges across the hour's ends: compaction-plan.ts). So compaction also looks for
 * the merged file's events in every other file of the hour, and writes the footer entries
 * MARK_KEY = MARK_VERSION and CHECKED_KEY = the names of those files only when none holds one.
 *
 * The rollup (markedFiles) counts a compacted file by its marks when every other file of the hour
 * is named in its entry, or is itself counted so and names it: then no event has copies in it and
 * another file. The hour's other files are counted by id, as before. A file that appears later (a
 * late event) is in no entry, so the files it meets are counted by id until compacted again.
 */
import type { DuckDBConnection } from '@duckdb/node-api';
import { billableSql } from '../events/usage-event.js';
import { isVisible, parseDataFileName } from '../lake/layout.js';
import { sqlString } from '../lake/lake-sql.js';

export const MARK_KEY = 'meter_dedupe';
export const MARK_VERSION = '1';
/** The footer entry naming the other files of the hour the file's events were checked against. */
export const CHECKED_KEY = 'meter_dedupe_checked';
export const MARK_COLUMNS = ['keep_event', 'keep_call'] as const;

const BILLABLE = `coalesce(${billableSql('status')}, false)`;

/**
 * A SELECT of `source`'s columns (`columns`, without any marks it may already carry: a part that
 * was itself compacted is marked afresh) plus the two marks, rows in `source`'s scan order (one
 * DuckDB thread: the parts' offset order, as compaction.ts writes them).
 */
export function markedSelect(source: string, columns: string[]): string {
  const cols = columns
    .filter((c) => !(MARK_COLUMNS as readonly string[]).includes(c))
    .map(quoteIdent)
    .join(', ');
  return `SELECT ${cols}, _rn = 1 AS keep_event, _rn = 1 AND ${BILLABLE} AS keep_call
            FROM (SELECT ${cols}, _ord,
                         row_number() OVER (PARTITION BY customer, api, id ORDER BY ${BILLABLE} DESC, bytes_in, bytes_out, _ord) AS _rn
                    FROM (SELECT ${cols}, row_number() OVER () AS _ord FROM ${source}))
           ORDER BY _ord`;
}

/**
 * The COPY option recording the marks in the file's footer, with the names of the hour's other
 * files, none of which holds a copy of the file's events; `null`: one does, so the marks are
 * written but not to be used (no entry).
 */
export function markKv(checked: string[] | null): string {
  if (!checked) return `KV_METADATA {${MARK_KEY}: 'none'}`;
  return `KV_METADATA {${MARK_KEY}: '${MARK_VERSION}', ${CHECKED_KEY}: ${sqlString(namesValue(checked))}}`;
}

/**
 * Rows of `source` whose id also occurs in `others` (SQL sources). By id alone, not (customer, api,
 * id): a shared id under another customer or API only makes the file counted by id, and the id
 * alone is read half as dearly (0.45 vs 0.8 s of CPU for 900 k rows against 2.7 M).
 */
export async function copiesIn(c: DuckDBConnection, source: string, others: string): Promise<number> {
  const r = await c.runAndReadAll(`SELECT count(*) AS n FROM ${source} WHERE id IN (SELECT id FROM ${others})`);
  return Number(r.getRowObjectsJS()[0]?.n ?? 0);
}

/**
 * Which of an hour's counted files (`lakePaths`; `localPaths` their copies, same order) the rollup
 * may count by their marks (indices): compacted files (layout.ts COMPACTED) whose footer entry
 * says the marks hold and names every other file of the hour, except files counted so that name
 * it in turn (read from the footers only).
 */
export async function markedFiles(c: DuckDBConnection, lakePaths: string[], localPaths: string[]): Promise<Set<number>> {
  const out = new Set<number>();
  if (lakePaths.length !== localPaths.length) return out;
  const candidates = lakePaths.flatMap((p, i) => (parseDataFileName(p)?.compacted && isVisible(p) ? [i] : []));
  if (!candidates.length) return out;
  const r = await c.runAndReadAll(
    `SELECT file_name, decode(key) AS k, decode(value) AS v FROM parquet_kv_metadata([${candidates.map((i) => sqlString(localPaths[i]!)).join(', ')}])
      WHERE decode(key) IN ('${MARK_KEY}', '${CHECKED_KEY}')`,
  );
  const kv = new Map<string, Map<string, string>>();
  for (const row of r.getRowObjectsJS()) {
    const f = String(row.file_name);
    kv.set(f, (kv.get(f) ?? new Map()).set(String(row.k), String(row.v)));
  }
  const names = lakePaths.map(baseName);
  const checked = new Map<number, Set<string>>();
  for (const i of candidates) {
    const e = kv.get(localPaths[i]!);
    if (e?.get(MARK_KEY) !== MARK_VERSION) continue;
    const list = parseNames(e.get(CHECKED_KEY));
    if (list) checked.set(i, list);
  }
  // Drop files until each left names every other file, or is named by it (both counted by marks).
  for (let changed = true; changed; ) {
    changed = false;
    for (const [i, list] of checked) {
      const ok = names.every((n, j) => j === i || list.has(n) || checked.get(j)?.has(names[i]!) === true);
      if (!ok) {
        checked.delete(i);
        changed = true;
      }
    }
  }
  for (const i of checked.keys()) out.add(i);
  return out;
}

function parseNames(v: string | undefined): Set<string> | null {
  if (v === undefined) return null;
  try {
    const list: unknown = JSON.parse(v);
    return Array.isArray(list) && list.every((x) => typeof x === 'string') ? new Set(list as string[]) : null;
  } catch {
    return null;
  }
}

function baseName(p: string): string {
  return p.slice(p.lastIndexOf('/') + 1);
}

function namesValue(paths: string[]): string {
  return JSON.stringify(paths.map(baseName).sort());
}

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}
