/**
 * The rollup: makes an hour final. DuckDB reads the hour's Parquet files from the lake and
 * counts distinct event ids per (customer, api); the result replaces the hour's rows in the
 * warehouse in one transaction, together with the list of files it was built from. An hour is
 * pending when the lake's visible files for it (path + size) differ from that list, so a late
 * file, a rewritten file or a removed file all cause exactly that hour to be redone.
 * Re-running an hour is idempotent (only rows whose counts changed are written, usage-repository.ts);
 * a backfill is the same operation per hour.
 */
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { hoursDisagreeing } from './rollup-verify.js';
import type { Lake } from '../lake/lake.js';
import { HOUR_MS, hourDir, hourStart } from '../lake/layout.js';
import { hourFolders } from '../lake/hour-folders.js';
import { hoursWithRows } from '../warehouse/hours-with-rows.js';
import { countedEntries } from '../lake/data-files.js';
import type { Warehouse } from '../warehouse/warehouse.js';
import { type FileRef, type HourlyRow, type HourWrite, replaceHours, rolledFilesByHour } from '../warehouse/usage-repository.js';
import type { Logger } from '../ground/logger.js';
import { countHour, type CountedRow, type DedupeMethod } from './rollup-count.js';
import { markedFiles } from './dedupe-marks.js';
import { HourLeases, LeaseLost } from './hour-leases.js';
import { compact } from './compaction.js';
import { countMeters } from './meter-count.js';
import { loadMeters } from '../billing/meter-store.js';
import { isRolledUp, type Meter } from '../billing/meters.js';
import { type MeterHourlyRow, replaceMeterHour } from '../warehouse/meter-repository.js';
import { correctedCustomers, hourCorrections, hoursWithNewCorrections, markCorrectionsApplied } from '../billing/events/correction-store.js';
import { driftSentence, finalInvoiceDrift } from '../billing/final-invoice-drift.js';
import { correctionTable, dropCorrectionTable } from './correction-table.js';

export interface RollupOptions {
  lake: Lake;
  db: Warehouse;
  logger?: Logger;
  /** Lease length for claimed hours (hour-leases.ts). Default 30 s. */
  leaseTtlMs?: number;
  /** follow(): compact hours `afterMs` after they end, after a round that did not fail (compaction.ts). */
  compaction?: { topic: string; targetBytes: number; afterMs: number };
  /** How duplicate ids are found (rollup-count.ts); default 'sort'. */
  dedupe?: DedupeMethod;
  /**
   * Hours written per warehouse transaction when several are rolled up in a row (a backfill, a
   * round with many pending hours). Default: 8 on PGlite, where one statement for several hours
   * runs usage_daily's trigger once for them (usage-repository.ts replaceHours); 1 on Postgres,
   * whose server writes an hour while DuckDB counts the next.
   */
  hoursPerWrite?: number;
}

/** What one pass over a list of hours did, when other processes share the work. */
export interface ClaimedRound {
  /** Hours this process rolled up, in hour order. */
  results: HourResult[];
  /** Hours another process finished meanwhile (skipped here). */
  doneElsewhere: number[];
  /** Hours another live process is working on now. */
  heldElsewhere: number[];
}

interface HourInputs {
  hour: number;
  files: FileRef[];
  meters: Meter[];
  corrections: Awaited<ReturnType<typeof hourCorrections>>;
  /** Time spent reading them (counted in duckMs, as before they were read apart). */
  readMs: number;
}

interface ComputedHour {
  hour: number;
  files: FileRef[];
  rows: HourlyRow[];
  /** Slugs of the meters computed, and their rows (meter-count.ts). */
  meters: string[];
  meterRows: MeterHourlyRow[];
  /** Corrections of the hour included in the rows (correction-store.ts). */
  corrections: number;
  outside: number;
  duckMs: number;
  countMs: number;
  dedupeMs: number;
  /** Files counted by compaction's dedupe marks, without reading their ids (dedupe-marks.ts). */
  markedFiles: number;
}

export interface HourResult {
  /** Hour start, epoch ms (UTC). */
  hour: number;
  files: number;
  /** Distinct events (billable or not) with event time in the hour. */
  events: number;
  /** usage_hourly rows written. */
  rows: number;
  /** Rows in the files whose event time is outside the hour (not counted; should be 0). */
  outside: number;
  /** Wall time spent in DuckDB (listing + reading + counting) and in the warehouse transaction. */
  duckMs: number;
  writeMs: number;
  /** Parts of duckMs: plain counts per (customer, api), and finding and removing duplicate ids. */
  countMs: number;
  dedupeMs: number;
  /** Files counted by compaction's dedupe marks, without reading their ids (dedupe-marks.ts). */
  markedFiles: number;
}

export interface RollupSummary {
  hours: number;
  files: number;
  events: number;
  rows: number;
  ms: number;
  results: HourResult[];
  /** Hours skipped because another process had them (finished or in progress). */
  skipped?: number;
}

export class Rollup {
  private readonly lake: Lake;
  private readonly db: Warehouse;
  private readonly logger?: Logger;
  private readonly compaction?: RollupOptions['compaction'];
  private compactedAt = 0;
  private readonly dedupe: DedupeMethod;
  private readonly hoursPerWrite: number;
  private duck: Promise<DuckDBConnection> | null = null;
  private instance: DuckDBInstance | null = null;
  /** Connections beyond the first (connectionAt). */
  private more: Promise<DuckDBConnection>[] = [];
  /** Hours are claimed before they are computed, so N processes split them (docs/scaling.md). */
  readonly leases: HourLeases;

  constructor(opts: RollupOptions) {
    this.lake = opts.lake;
    this.db = opts.db;
    this.logger = opts.logger;
    this.compaction = opts.compaction;
    this.dedupe = opts.dedupe ?? 'sort';
    this.hoursPerWrite = Math.max(1, opts.hoursPerWrite ?? (opts.db.kind === 'pglite' ? 8 : 1));
    this.leases = new HourLeases(opts.db, { ttlMs: opts.leaseTtlMs });
  }

  /** One in-memory DuckDB for the life of this Rollup. */
  private connection(): Promise<DuckDBConnection> {
    this.duck ??= (async () => {
      this.instance = await DuckDBInstance.create(':memory:');
      return this.instance.connect();
    })();
    return this.duck;
  }

  /**
   * The `i`th connection to the same DuckDB: hours counted side by side (computeHours) each need
   * their own, since a connection runs one statement at a time and an hour's temp tables
   * (candidates, corrections) live on its connection.
   */
  private connectionAt(i: number): Promise<DuckDBConnection> {
    if (i === 0) return this.connection();
    // Promises pushed without a wait between: hours asking at once get one connection each, no more.
    while (this.more.length < i) this.more.push(this.connection().then(() => this.instance!.connect()));
    return this.more[i - 1]!;
  }

  /** Visible Parquet files of one hour folder. */
  private async hourFiles(hour: number): Promise<FileRef[]> {
    const entries = await this.lake.list(hourDir(hour));
    return countedEntries(entries)
      .map((e) => ({ path: e.path, size: e.size }))
      .sort(byPath);
  }

  /** Every hour folder of the lake with its visible data files. */
  private async lakeHours(): Promise<Map<number, FileRef[]>> {
    const out = new Map<number, FileRef[]>();
    for (const { hour, dir } of await hourFolders(this.lake)) {
      const files = countedEntries(await this.lake.list(dir));
      if (files.length) out.set(hour, files.map((e) => ({ path: e.path, size: e.size })).sort(byPath));
    }
    return out;
  }

  /**
   * Hours (epoch ms, ascending) whose visible lake files differ from what they were rolled up
   * from, or that hold event corrections their rows do not include yet (correction-store.ts).
   */
  async pendingHours(): Promise<number[]> {
    const [lake, done, corrected] = await Promise.all([this.lakeHours(), rolledFilesByHour(this.db), hoursWithNewCorrections(this.db)]);
    const pending = new Set<number>(corrected);
    for (const hour of new Set([...lake.keys(), ...done.keys()])) {
      if (!sameFiles(lake.get(hour) ?? [], done.get(hour) ?? [])) pending.add(hour);
    }
    return [...pending].sort((a, b) => a - b);
  }

  /**
   * The hours of [from, to) (`from` floored to its hour) a backfill visits, in order: those with a
   * folder in the lake and those the warehouse holds rows, files or corrections for (an hour whose
   * files were removed is cleared). Any other hour has nothing to count and nothing to clear;
   * visiting each one cost a transaction that wrote nothing (an empty 10-year range: 87,672 of
   * them, 160 s of CPU), and a range of centuries never ended.
   */
  async hoursToBackfill(from: number, to: number): Promise<number[]> {
    const start = hourStart(from);
    const [lake, warehouse] = await Promise.all([hourFolders(this.lake, { from: start, to }), hoursWithRows(this.db, start, to)]);
    return [...new Set([...lake.map((f) => f.hour), ...warehouse])].sort((a, b) => a - b);
  }

  /** Recompute one hour from the lake and replace it in the warehouse. */
  async rollupHour(hourMs: number): Promise<HourResult> {
    const hour = hourStart(hourMs);
    if ((await this.leases.claim(hour)) !== 'claimed') throw new Error(`hour ${iso(hour)} is being rolled up by another process right now`);
    try {
      return await this.writeHour(await this.computeHour(await this.hourInputs(hour), await this.connection()));
    } catch (e) {
      await this.leases.release(hour);
      throw e;
    }
  }

  /**
   * What counting the hour needs from the warehouse and the lake, read before DuckDB starts: on
   * PGlite every statement waits for the transaction in flight, so rollupClaimed reads the next
   * hour's inputs before it starts the current hour's write, and the count then runs beside it.
   */
  private async hourInputs(hourMs: number): Promise<HourInputs> {
    const hour = hourStart(hourMs);
    const t0 = performance.now();
    const files = await this.hourFiles(hour);
    const meters = await this.meters();
    // Read before the lake's files are counted, in one snapshot: a correction committed later
    // is not in `corrections.count`, so the hour stays pending for it (markCorrectionsApplied).
    const corrections = await hourCorrections(this.db, hour);
    return { hour, files, meters, corrections, readMs: performance.now() - t0 };
  }

  /**
   * computeHour of each hour, side by side on connections of their own. On PGlite the write of
   * the hours before runs on this thread in long statements (the COPY and usage_daily's trigger,
   * ~0.5 s for 8 hours): DuckDB goes on during them only with statements already started, and
   * one hour at a time had one short statement in flight (the count and the write added up:
   * bench/results/2026-12-06-rollup-overlap.md). Every hour is settled before this returns or
   * throws (the first failure), so no count is left running.
   */
  private async computeHours(list: HourInputs[]): Promise<ComputedHour[]> {
    const settled = await Promise.allSettled(list.map(async (inputs, i) => this.computeHour(inputs, await this.connectionAt(i))));
    const failed = settled.find((s) => s.status === 'rejected');
    if (failed) throw failed.reason;
    return settled.map((s) => (s as PromiseFulfilledResult<ComputedHour>).value);
  }

  /** The hour's files and their counts (DuckDB); nothing written yet, nothing read from the warehouse. */
  private async computeHour(inputs: HourInputs, c: DuckDBConnection): Promise<ComputedHour> {
    const { hour, files, meters, corrections } = inputs;
    const t0 = performance.now() - inputs.readMs;
    let rows: HourlyRow[] = [];
    let meterRows: MeterHourlyRow[] = [];
    let outside = 0;
    let countMs = 0;
    let dedupeMs = 0;
    let marked = 0;
    if (files.length) {
      const local = await this.lake.materialize(files.map((f) => f.path));
      try {
        const declared = meters.filter((m) => !m.builtIn);
        const fixes = await correctionTable(c, corrections);
        try {
          let counted: CountedRow[];
          ({
            rows: counted,
            outside,
            countMs,
            dedupeMs,
            markedFiles: marked,
          } = await countHour(c, local, hour, this.dedupe, {
            bytes: meters.some((m) => m.builtIn?.column),
            // Declared meters dedupe by the candidates (meter-count.ts), which the marks skip.
            ...(declared.length === 0
              ? {
                  marked: markedLocal(
                    local,
                    await markedFiles(
                      c,
                      files.map((f) => f.path),
                      local,
                    ),
                  ),
                }
              : {}),
            ...(fixes ? { corrections: fixes } : {}),
            // Only with declared meters: without them an hour counted by its marks ends with its
            // counts, no candidate table made and dropped (two statements more per hour).
            ...(declared.length
              ? {
                  alsoWith: async (candidates: { table: string; count: number }) => {
                    meterRows = await countMeters(c, local, hour, declared, { candidates, corrections: fixes });
                  },
                }
              : {}),
          }));
          rows = counted;
          // The built-in bytes meters from the calls' own scan (no second pass over the hour).
          meterRows = [...bytesRows(counted, meters), ...meterRows];
        } finally {
          await dropCorrectionTable(c, fixes);
        }
      } finally {
        this.lake.release?.(local);
      }
    }
    return {
      hour,
      files,
      rows,
      meters: meters.map((m) => m.slug),
      meterRows,
      corrections: corrections.count,
      outside,
      duckMs: Math.round(performance.now() - t0),
      countMs: Math.round(countMs),
      dedupeMs: Math.round(dedupeMs),
      markedFiles: marked,
    };
  }

  /** The meters the rollup aggregates (built-in and declared), as stored now (meter-store.ts). */
  private async meters(): Promise<Meter[]> {
    return (await loadMeters(this.db, (m) => this.logger?.warn(m))).filter(isRolledUp);
  }

  /** Replace the hour in the warehouse (one transaction). */
  private async writeHour(c: ComputedHour): Promise<HourResult> {
    const t1 = performance.now();
    try {
      await replaceHours(this.db, [this.hourWrite(c)]);
    } finally {
      this.leases.forget(c.hour);
    }
    return this.hourResult(c, performance.now() - t1);
  }

  /**
   * Replace the hours in the warehouse in one transaction (replaceHours): what an hour written
   * alone would leave, each hour whole or not at all. When one hour's lease passed to another
   * process (LeaseLost rolls the transaction back), the others are written one by one and that
   * one is left to its new holder.
   */
  private async writeHours(list: ComputedHour[]): Promise<{ results: HourResult[]; lost: number[] }> {
    const results: HourResult[] = [];
    const lost: number[] = [];
    const alone = async (c: ComputedHour) => {
      try {
        results.push(await this.writeHour(c));
      } catch (e) {
        // Taken over while paused past the lease: the new holder finishes the hour.
        if (!(e instanceof LeaseLost)) throw e;
        this.logger?.warn(e.message);
        lost.push(c.hour);
      }
    };
    const [only] = list;
    if (list.length === 1 && only) await alone(only);
    else if (list.length > 1) {
      const t1 = performance.now();
      try {
        await replaceHours(
          this.db,
          list.map((c) => this.hourWrite(c)),
        );
      } catch (e) {
        if (!(e instanceof LeaseLost)) {
          for (const c of list) this.leases.forget(c.hour);
          throw e;
        }
        for (const c of list) await alone(c);
        return { results, lost };
      }
      for (const c of list) this.leases.forget(c.hour);
      // The transaction's time shared out, so the hours' writeMs still add up to the time spent writing.
      const ms = (performance.now() - t1) / list.length;
      for (const c of list) results.push(this.hourResult(c, ms));
    }
    return { results, lost };
  }

  /** The hour's rows, files and, in the same transaction, its lease, meter rows and corrections. */
  private hourWrite(c: ComputedHour): HourWrite {
    const finish = this.leases.finishIn(c.hour);
    return {
      hourMs: c.hour,
      rows: c.rows,
      files: c.files,
      events: c.rows.reduce((s, r) => s + r.events, 0n),
      inTx: async (tx) => {
        await finish(tx);
        await replaceMeterHour(tx, c.hour, c.meters, c.meterRows);
        await markCorrectionsApplied(tx, c.hour, c.corrections);
      },
    };
  }

  private hourResult(c: ComputedHour, writeMs: number): HourResult {
    const { hour, files, rows, outside } = c;
    const events = rows.reduce((s, r) => s + r.events, 0n);
    if (outside) this.logger?.warn(`hour ${iso(hour)}: ${outside} rows have an event time outside the hour and were not counted`);
    this.logger?.debug(`hour ${iso(hour)}: ${files.length} files (${c.markedFiles} counted by dedupe marks), ${events} events, ${rows.length} rows`);
    return {
      hour,
      files: files.length,
      events: Number(events),
      rows: rows.length,
      outside,
      duckMs: c.duckMs,
      writeMs: Math.round(writeMs),
      countMs: c.countMs,
      dedupeMs: c.dedupeMs,
      markedFiles: c.markedFiles,
    };
  }

  /**
   * Roll up `hours` in order, a batch at a time: DuckDB counts the next batch while the warehouse
   * writes this one (the write was ~45 % of the stage's time on Postgres, and runs on the server
   * or on PGlite's thread, not on DuckDB's). A batch is one hour on Postgres and up to
   * `hoursPerWrite` on PGlite, written in one transaction and counted side by side
   * (computeHours). Writes stay one at a time and in hour order; the first failure stops the
   * rest, after the write and the counts in flight have settled. Each hour is claimed first
   * (hour-leases.ts): one held by another live process, or finished by one since `since`, is
   * left to it.
   */
  async rollupClaimed(hours: number[], since: { claimedSince?: Date; doneSince?: Date }, onDone?: (r: HourResult) => void): Promise<ClaimedRound> {
    const round: ClaimedRound = { results: [], doneElsewhere: [], heldElsewhere: [] };
    const claimed: number[] = [];
    const left = hours[Symbol.iterator]();
    /** The next hour this process claims, with its inputs; null when none is left. */
    const claimNext = async (): Promise<HourInputs | null> => {
      for (let n = left.next(); !n.done; n = left.next()) {
        const h = n.value;
        const outcome = await this.leases.claim(h, since);
        if (outcome !== 'claimed') {
          (outcome === 'held' ? round.heldElsewhere : round.doneElsewhere).push(h);
          continue;
        }
        claimed.push(h);
        return this.hourInputs(h);
      }
      return null;
    };
    /**
     * The next batch, claimed and its inputs read while no write is in flight: on PGlite these
     * reads would wait for the write's transaction, and the batch's count with them
     * (bench/results/2026-12-05-rollup-pglite.md).
     */
    const claimBatch = async (): Promise<HourInputs[]> => {
      const batch: HourInputs[] = [];
      while (batch.length < this.hoursPerWrite) {
        const next = await claimNext();
        if (!next) break;
        batch.push(next);
      }
      return batch;
    };
    try {
      for (let counted = await this.computeHours(await claimBatch()); counted.length; ) {
        const next = await claimBatch();
        const [written, nextCounted] = await Promise.allSettled([this.writeHours(counted), this.computeHours(next)]);
        if (written.status === 'rejected') throw written.reason;
        round.heldElsewhere.push(...written.value.lost);
        for (const x of written.value.results) {
          round.results.push(x);
          onDone?.(x);
        }
        if (nextCounted.status === 'rejected') throw nextCounted.reason;
        counted = nextCounted.value;
      }
    } catch (e) {
      // Hand back the unfinished hours now rather than after their expiry.
      const done = new Set(round.results.map((r) => r.hour));
      for (const h of claimed) if (!done.has(h)) await this.leases.release(h);
      throw e;
    }
    return round;
  }

  private async rollupInOrder(hours: number[], since: { claimedSince?: Date; doneSince?: Date }): Promise<{ results: HourResult[]; skipped: number }> {
    const r = await this.rollupClaimed(hours, since);
    return { results: r.results, skipped: r.doneElsewhere.length + r.heldElsewhere.length };
  }

  /**
   * Roll up every pending hour, oldest first. An hour another process finished after this
   * listing began is skipped (its rows are as new as this listing), one it is working on too:
   * the next round lists it again if it is still pending then.
   */
  async run(): Promise<RollupSummary> {
    const t0 = Date.now();
    const doneSince = await this.leases.now();
    const corrected = new Set(await hoursWithNewCorrections(this.db));
    const { results, skipped } = await this.rollupInOrder(await this.pendingHours(), { doneSince });
    for (const r of results) if (corrected.has(r.hour)) await this.reportDrift(r.hour);
    return { ...summarise(results, Date.now() - t0), skipped };
  }

  /**
   * After an hour was recomputed for event corrections: final invoices are never recomputed
   * (docs/architecture.md invariant 6), so each one of the corrected customers that the hour's
   * new rows would change is logged, for a credit note (as `rollup --backfill --meter` prints).
   */
  private async reportDrift(hour: number): Promise<void> {
    try {
      const drift = await finalInvoiceDrift(this.db, hour, hour + HOUR_MS, await correctedCustomers(this.db, hour));
      for (const d of drift.drifts) this.logger?.warn(`event corrections in hour ${iso(hour)}: ${driftSentence(d)}`);
    } catch (e) {
      this.logger?.warn(`event corrections in hour ${iso(hour)}: final invoices not compared: ${(e as Error).message}`);
    }
  }

  /**
   * Recompute every hour in [from, to) (epoch ms; `from` is floored to its hour) that can hold
   * anything (hoursToBackfill), pending or not. Hours another process finished after this backfill began count as done (a file landing
   * later makes the hour pending for the follower); hours another holds are waited for. No retry (pipeline/backfill.ts retries).
   */
  async backfill(from: number, to: number, onProgress?: (done: number, total: number, hour: number) => void): Promise<RollupSummary> {
    if (!Number.isFinite(from) || !Number.isFinite(to) || from >= to) throw new RangeError('backfill: from must be before to');
    const t0 = Date.now();
    let left = await this.hoursToBackfill(from, to);
    const doneSince = await this.leases.joinBackfill(hourStart(from), to);
    const total = left.length;
    const results: HourResult[] = [];
    let skipped = 0;
    let done = 0;
    while (left.length) {
      const r = await this.rollupClaimed(left, { doneSince }, (x) => {
        results.push(x);
        void this.leases.touchBackfill(hourStart(from), to);
        onProgress?.(++done, total, x.hour);
      });
      done += r.doneElsewhere.length;
      skipped += r.doneElsewhere.length;
      left = r.heldElsewhere.sort((a, b) => a - b);
      if (left.length) await sleep(Math.min(1000, this.leases.ttlMs / 4), new AbortController().signal);
    }
    await this.leases.touchBackfill(hourStart(from), to, true);
    return { ...summarise(results, Date.now() - t0), skipped };
  }

  /**
   * Compute one meter for every hour in [from, to) (`from` floored to its hour; those that can
   * hold anything, hoursToBackfill) from the lake:
   * a meter declared or changed after the hours were rolled up (docs/meters.md, "Retroactive").
   * Only that meter's rows of each hour are replaced (one transaction per hour); calls and other
   * meters are left as they are. Final invoices are stored and never recomputed, so they keep
   * their lines; drafts and usage answers show the new rows at once.
   */
  async backfillMeter(
    meter: Meter,
    from: number,
    to: number,
    onProgress?: (done: number, total: number, hour: number) => void,
  ): Promise<{ meter: string; hours: number; files: number; rows: number; events: number; ms: number }> {
    if (!Number.isFinite(from) || !Number.isFinite(to) || from >= to) throw new RangeError('backfill: from must be before to');
    if (!isRolledUp(meter)) throw new RangeError(`meter ${meter.slug} is the calls of usage_hourly: backfill it without --meter`);
    const t0 = Date.now();
    const hours = await this.hoursToBackfill(from, to);
    let files = 0;
    let rows = 0;
    let events = 0n;
    for (const [i, hour] of hours.entries()) {
      const refs = await this.hourFiles(hour);
      let computed: MeterHourlyRow[] = [];
      if (refs.length) {
        const local = await this.lake.materialize(refs.map((f) => f.path));
        try {
          const c = await this.connection();
          // The hour's corrections apply to this meter too (the hour's other rows already have them, or will).
          const fixes = await correctionTable(c, await hourCorrections(this.db, hour));
          try {
            computed = await countMeters(c, local, hour, [meter], { corrections: fixes });
          } finally {
            await dropCorrectionTable(c, fixes);
          }
        } finally {
          this.lake.release?.(local);
        }
      }
      await this.db.transaction((tx) => replaceMeterHour(tx, hour, [meter.slug], computed));
      files += refs.length;
      rows += computed.length;
      events += computed.reduce((n, r) => n + r.events, 0n);
      onProgress?.(i + 1, hours.length, hour);
    }
    return { meter: meter.slug, hours: hours.length, files, rows, events: Number(events), ms: Date.now() - t0 };
  }

  /**
   * Keep rolling up as files land, every `intervalMs`, until `signal` aborts. A failed round is
   * logged and retried next round (the lake and the warehouse may be down for a while).
   */
  async follow(intervalMs: number, signal: AbortSignal, onRound?: (s: RollupSummary) => void, verifyEveryMs = 600_000): Promise<void> {
    let verifiedAt = 0;
    while (!signal.aborted) {
      try {
        const s = await this.run();
        if (s.hours) this.logger?.info(`rolled up ${s.hours} hours: ${s.events} events, ${s.rows} rows in ${s.ms} ms`);
        // Hours whose rows no longer match their rollup record (a backfill cut short, rows
        // changed by hand): the file check above cannot see them. One pass every verifyEveryMs.
        if (Date.now() - verifiedAt >= verifyEveryMs) {
          const checkedFrom = await this.leases.now();
          const bad = await hoursDisagreeing(this.db);
          verifiedAt = Date.now();
          const [firstBad] = bad;
          if (firstBad !== undefined) {
            this.logger?.warn(`${bad.length} hours hold rows that disagree with what they were rolled up to (first ${iso(firstBad)}): rolling them up again`);
            await this.rollupInOrder(bad, { doneSince: checkedFrom });
          }
        }
        await this.compactClosed();
        onRound?.(s);
      } catch (e) {
        this.logger?.error(`rollup round failed: ${(e as Error).message}`);
      }
      await sleep(intervalMs, signal);
    }
  }

  /**
   * At most once a minute, after a round that did not fail: merge the files of
   * hours that ended `afterMs` ago. The hours it changes are pending again and the next round
   * rolls them up (same rows: docs/lake.md "Compaction"). Bounded per round.
   */
  private async compactClosed(): Promise<void> {
    const c = this.compaction;
    if (!c?.afterMs || Date.now() - this.compactedAt < 60_000) return;
    this.compactedAt = Date.now();
    const s = await compact({ lake: this.lake, topic: c.topic, targetBytes: c.targetBytes, closedBefore: Date.now() - c.afterMs, maxMerges: 200 });
    if (s.merged || s.leftoversRemoved)
      this.logger?.info(
        `compacted ${s.hours.length} hours: ${s.filesBefore} files into ${s.merged} (${s.bytesBefore} -> ${s.bytesAfter} bytes), ${s.leftoversRemoved} left-over parts removed, ${s.ms} ms`,
      );
  }

  /** Release DuckDB. */
  async close(): Promise<void> {
    await this.leases.close();
    if (this.duck) {
      const c = await this.duck.catch(() => null);
      for (const m of this.more) (await m.catch(() => null))?.closeSync();
      this.more = [];
      c?.closeSync();
      this.instance?.closeSync();
      this.duck = null;
      this.instance = null;
    }
  }
}

/** The built-in bytes meters' rows (billing/meters.ts) from the counted (customer, api) rows: billable events only. */
function bytesRows(rows: CountedRow[], meters: Meter[]): MeterHourlyRow[] {
  const out: MeterHourlyRow[] = [];
  for (const m of meters) {
    const column = m.builtIn?.column;
    if (!column) continue;
    for (const r of rows)
      if (r.calls > 0n)
        out.push({
          customer: r.customer,
          meter: m.slug,
          groups: JSON.stringify({ api: r.api }),
          value: String(column === 'bytes_in' ? r.bytesIn : r.bytesOut),
          events: r.calls,
        });
  }
  return out;
}

function markedLocal(local: string[], marked: Set<number>): Set<string> {
  return new Set([...marked].map((i) => local[i]!));
}

function byPath(a: FileRef, b: FileRef): number {
  return a.path < b.path ? -1 : a.path > b.path ? 1 : 0;
}

function sameFiles(a: FileRef[], b: FileRef[]): boolean {
  if (a.length !== b.length) return false;
  const m = new Map(a.map((f) => [f.path, f.size]));
  return b.every((f) => m.get(f.path) === f.size);
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function summarise(results: HourResult[], ms: number): RollupSummary {
  return {
    hours: results.length,
    files: results.reduce((s, r) => s + r.files, 0),
    events: results.reduce((s, r) => s + r.events, 0),
    rows: results.reduce((s, r) => s + r.rows, 0),
    ms,
    results,
  };
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
