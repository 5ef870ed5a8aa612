/**
 * Compaction: the small files of closed hours merged into few large ones (docs/lake.md
 * "Compaction"; what may be merged: compaction-plan.ts). For each merge:
 *   1. DuckDB writes the parts, in offset order, to one local Parquet file;
 *   2. the file is checked against the parts: same rows, same distinct ids, no id missing;
 *   3. it is published under the union range's name (upload to `_tmp/`, rename: invariant 11);
 *   4. the parts are deleted.
 * A crash before 3 leaves the lake as it was (the next run starts over). A crash after 3 leaves
 * the merged file beside (some of) its parts: readers count the wider file only (layout.ts
 * coveredNames), and the next run (or ingest's overlap repair, which keeps the same file)
 * deletes the parts after checking their ids are in it. Two compactors of the same hour make the
 * same file from the same parts (one DuckDB thread: same bytes) and delete the same parts.
 */
import { rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { DuckDBConnection } from '@duckdb/node-api';
import type { Lake } from '../lake/lake.js';
import { HOUR_MS, dataFileName, parseHourDir } from '../lake/layout.js';
import { countedEntries, listDataFiles } from '../lake/data-files.js';
import { idsMissing, sqlString, withDuck } from '../lake/lake-sql.js';
import { planCompaction, type Merge } from './compaction-plan.js';
import { ownScratchDir } from './scratch-dir.js';
import { copiesIn, markKv, markedSelect } from './dedupe-marks.js';
import { billableSql } from '../events/usage-event.js';

/** Where a test may stop a run, as a crash would: after each step of a merge. */
export type CompactionStep = 'written' | 'verified' | 'published' | 'deleted-one';

export class CompactionCrash extends Error {
  constructor(readonly step: CompactionStep) {
    super(`compaction stopped after step "${step}" (injected)`);
  }
}

export interface CompactionOptions {
  lake: Lake;
  topic: string;
  /** Merged files are made up to about this many bytes. */
  targetBytes: number;
  /** Only hours (epoch ms of their start) ending at or before this time are compacted. */
  closedBefore: number;
  /** Only these hours (starts, epoch ms); default every closed hour. */
  hours?: { from: number; to: number };
  /** At most this many merges in one run (the follower bounds its round); default all. */
  maxMerges?: number;
  logger?: (msg: string) => void;
  /** Tests: stop as a crash would after this step of the first merge. */
  failAfter?: CompactionStep;
}

export interface CompactionSummary {
  /** Hours (epoch ms) whose files changed: the rollup redoes them (same answer). */
  hours: number[];
  merged: number;
  partsRemoved: number;
  /** Left-over parts of an earlier, interrupted run, removed now. */
  leftoversRemoved: number;
  /** Files and bytes of the merged parts, and of what replaced them. */
  filesBefore: number;
  bytesBefore: number;
  filesAfter: number;
  bytesAfter: number;
  ms: number;
}

export async function compact(o: CompactionOptions): Promise<CompactionSummary> {
  const t0 = performance.now();
  const s: CompactionSummary = {
    hours: [],
    merged: 0,
    partsRemoved: 0,
    leftoversRemoved: 0,
    filesBefore: 0,
    bytesBefore: 0,
    filesAfter: 0,
    bytesAfter: 0,
    ms: 0,
  };
  const log = o.logger ?? (() => {});
  const eligible = (dir: string) => {
    const h = parseHourDir(dir);
    if (h === null || h + HOUR_MS > o.closedBefore) return false;
    return !o.hours || (h >= o.hours.from && h < o.hours.to);
  };
  const files = await listDataFiles(o.lake, o.topic);
  const plan = planCompaction(files, { eligible, targetBytes: o.targetBytes });
  const hours = new Set<number>();
  const tmp = ownScratchDir('meter-compact-');
  try {
    await withDuck(async (c) => {
      // Marking sorts (dedupe-marks.ts): what does not fit DuckDB's memory spills here, not to the working directory.
      await c.run(`SET temp_directory = ${sqlString(tmp)}`);
      for (const l of plan.leftovers) {
        const missing = await idsMissing(
          c,
          o.lake,
          l.parts.map((f) => f.path),
          [l.cover.path],
        );
        if (missing) {
          log(
            `${l.dir} partition ${l.partition}: ${missing} event ids of files inside ${l.cover.first}..${l.cover.last} are not in it; left in place (meter doctor --lake-check reports it)`,
          );
          continue;
        }
        for (const f of l.parts) await o.lake.delete(f.path);
        s.leftoversRemoved += l.parts.length;
        hours.add(parseHourDir(l.dir)!);
        log(`${l.dir} partition ${l.partition}: removed ${l.parts.length} files already merged into ${l.cover.first}..${l.cover.last}`);
      }
      const merges = plan.merges.slice(0, o.maxMerges ?? Infinity);
      for (const m of merges) {
        const out = await mergeOne(c, o, m, join(tmp, `${m.partition}-${m.first}.parquet`));
        s.merged++;
        s.partsRemoved += m.parts.length;
        s.filesBefore += m.parts.length;
        s.bytesBefore += m.parts.reduce((n, f) => n + (f.size ?? 0), 0);
        s.filesAfter++;
        s.bytesAfter += out.bytes;
        hours.add(parseHourDir(m.dir)!);
        log(`${m.dir} partition ${m.partition}: merged ${m.parts.length} files (${out.rows} rows) into ${m.first}..${m.last}`);
      }
    });
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  s.hours = [...hours].sort((a, b) => a - b);
  s.ms = Math.round(performance.now() - t0);
  return s;
}

async function mergeOne(c: DuckDBConnection, o: CompactionOptions, m: Merge, local: string): Promise<{ rows: number; bytes: number }> {
  const crash = (step: CompactionStep) => {
    if (o.failAfter === step) throw new CompactionCrash(step);
  };
  const parts = await o.lake.materialize(m.parts.map((f) => f.path));
  try {
    const src = `read_parquet([${parts.map(sqlString).join(', ')}], union_by_name = true)`;
    // Same writer settings as ingest's (parquet-writer.ts); rows keep the parts' offset order,
    // with the dedupe marks the rollup counts a compacted hour by (dedupe-marks.ts).
    const columns = (await c.runAndReadAll(`DESCRIBE SELECT * FROM ${src}`)).getRowObjectsJS().map((r) => String(r.column_name));
    const checked = await checkedOthers(c, o, m, src);
    await c.run(`COPY (${markedSelect(src, columns)}) TO ${sqlString(local)} (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 32768, ${markKv(checked)})`);
    crash('written');
    const count = async (from: string) => {
      const r = (await c.runAndReadAll(`SELECT count(*) AS rows, count(DISTINCT id) AS ids FROM ${from}`)).getRowObjectsJS()[0] as {
        rows: bigint;
        ids: bigint;
      };
      return { rows: Number(r.rows), ids: Number(r.ids) };
    };
    const merged = `read_parquet(${sqlString(local)})`;
    const [a, b] = [await count(src), await count(merged)];
    const lost = Number(
      ((await c.runAndReadAll(`SELECT count(*) AS n FROM (SELECT id FROM ${src} EXCEPT SELECT id FROM ${merged})`)).getRowObjectsJS()[0] as { n: bigint }).n,
    );
    const wrong = await wrongMarks(c, merged);
    if (a.rows !== b.rows || a.ids !== b.ids || lost || wrong)
      throw new Error(
        `compaction of ${m.dir} partition ${m.partition} ${m.first}..${m.last}: the merged file does not match its parts (rows ${b.rows} vs ${a.rows}, ids ${b.ids} vs ${a.ids}, ${lost} missing, ${wrong} events wrongly marked); nothing published`,
      );
    crash('verified');
    const bytes = statSync(local).size;
    await o.lake.publish(local, `${m.dir}/${dataFileName(o.topic, m.partition, m.first, m.last, { compacted: true })}`);
    crash('published');
    for (const [i, f] of m.parts.entries()) {
      await o.lake.delete(f.path);
      if (i === 0) crash('deleted-one');
    }
    return { rows: b.rows, bytes };
  } finally {
    o.lake.release?.(parts);
  }
}

/**
 * Groups (customer, api, id) of the merged file whose marks are wrong: not exactly one kept event,
 * or not exactly one kept call when a copy is billable (none when none is). The rollup trusts the
 * marks of a compacted hour, so a file with any is not published.
 */
async function wrongMarks(c: DuckDBConnection, merged: string): Promise<number> {
  const r = await c.runAndReadAll(
    `SELECT count(*) AS n
       FROM (SELECT count(*) FILTER (WHERE keep_event) AS e, count(*) FILTER (WHERE keep_call) AS k,
                    bool_or(coalesce(${billableSql('status')}, false))::INTEGER AS b
               FROM ${merged} GROUP BY customer, api, id)
      WHERE e <> 1 OR k <> b`,
  );
  return Number((r.getRowObjectsJS()[0] as { n: bigint }).n);
}

/**
 * The hour's other counted files (any partition; not the merge's parts), when none holds a copy
 * of an event of `src` (dedupe-marks.ts); null when one does: the merged file's marks are then
 * not to be used, and the rollup counts it by id.
 */
async function checkedOthers(c: DuckDBConnection, o: CompactionOptions, m: Merge, src: string): Promise<string[] | null> {
  const parts = new Set(m.parts.map((f) => f.path));
  // What the rollup will count beside the merged file (the parts are covered by it once published).
  const others = countedEntries(await o.lake.list(m.dir))
    .map((e) => e.path)
    .filter((p) => !parts.has(p));
  if (!others.length) return [];
  const local = await o.lake.materialize(others);
  try {
    const copies = await copiesIn(c, src, `read_parquet([${local.map(sqlString).join(', ')}], union_by_name = true)`);
    if (copies) o.logger?.(`${m.dir} partition ${m.partition}: ${copies} events also in other files of the hour; the merged file is counted by id`);
    return copies ? null : others;
  } finally {
    o.lake.release?.(local);
  }
}
