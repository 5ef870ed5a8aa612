/**
 * What one partition has read but not yet written: a contiguous offset range [first, last]
 * and its good events grouped by UTC hour of event time (dead-lettered records are in the
 * range but not in any hour). One flush writes one file per hour, all named after the range.
 *
 * Events are not kept as objects: each accepted record is one line of JSON (accept.ts: the
 * record's own bytes when it is a plain event), spooled to local disk per hour (ndjson-chunks.ts), which
 * the Parquet writer's DuckDB reads at flush time. Memory: about STAGE_BYTES per range, whatever
 * the range's or the hour's size; the log's buffers are not held on to.
 */
import { join } from 'node:path';
import { HOUR_MS, hourStart } from '../lake/layout.js';
import type { LogRecord } from '../log/log.js';
import { acceptLine, plainEventTime, scannedCustomer, type EventTimeBounds } from './accept.js';
import { RECHECK, type CustomerCheck } from './customer-check.js';
import { NdjsonChunks } from './ndjson-chunks.js';

/** Staged bytes of a range (all hours) before they are appended to the spool files. */
const STAGE_BYTES = 256 << 10;
/** A range touching more hours than this stages less per hour. */
const MANY_HOURS = 4;

let seq = 0;

export interface SpooledHour {
  hour: number;
  /** The hour's events as JSON lines, in offset order (ndjson-chunks.ts). */
  files: string[];
  events: number;
}

export class HourBuffer {
  first = -1;
  last = -1;
  records = 0;
  events = 0;
  /** Bytes of the spooled lines (newlines included). */
  bytes = 0;
  /** Wall time of the first record, for flushMs rotation. */
  startedAt = 0;
  /**
   * Set when the range is closed (its flush may begin): from then on it must not grow, or a
   * retry would publish files of a longer range next to files of the shorter one.
   */
  sealed = false;
  private readonly spools = new Map<number, NdjsonChunks>();
  private staged = 0;
  private current: NdjsonChunks | null = null;
  private currentHour = NaN;
  private readonly tag: string;

  /** `dir`: a local folder for the spool files (removed by `discard`). */
  constructor(private readonly dir: string) {
    this.tag = `spool-${process.pid}-${++seq}`;
  }

  get empty(): boolean {
    return this.records === 0;
  }

  /**
   * Extend the range by one log record (offsets increase; Kafka may skip some) if it is
   * accepted (accept.ts), and answer null; else answer why, and the caller adds it with
   * `addRecord(offset, 0, null)` once it is in the dead-letter place.
   */
  take(r: LogRecord, limits: EventTimeBounds, customers?: CustomerCheck): string | null | typeof RECHECK {
    const time = plainEventTime(r, limits);
    if (time >= 0) {
      if (customers) {
        const v = customers.verdict(scannedCustomer(r.value, r.key), r.timestamp);
        if (v !== null) return v;
      }
      this.addRecord(r.offset, time, r.value);
      return null;
    }
    const a = acceptLine(r, limits);
    if (!a.ok) return a.reason;
    if (customers) {
      const v = customers.verdict(a.customer, r.timestamp);
      if (v !== null) return v;
    }
    this.addRecord(r.offset, a.time, a.line);
    return null;
  }

  /** `take`, loading the customers again until they decide (customer-check.ts). */
  async takeChecked(r: LogRecord, limits: EventTimeBounds, customers?: CustomerCheck): Promise<string | null> {
    for (;;) {
      const v = this.take(r, limits, customers);
      if (v !== RECHECK) return v;
      await customers!.recheck(r.timestamp);
    }
  }

  /** `takeChecked`, with a rejected record added to the range as one without an event. */
  async takeOrSkip(r: LogRecord, limits: EventTimeBounds, customers?: CustomerCheck): Promise<void> {
    if ((await this.takeChecked(r, limits, customers)) !== null) this.addRecord(r.offset, 0, null);
  }

  /** Extend the range by one record; `line` is its event's line, or null if it was rejected. */
  addRecord(offset: number, time: number, line: Buffer | null): void {
    if (this.sealed) throw new Error('internal: adding to a sealed range');
    if (this.records === 0) {
      this.first = offset;
      this.startedAt = Date.now();
    }
    this.last = offset;
    this.records++;
    if (!line) return;
    let s = this.current;
    if (!s || !(time >= this.currentHour && time < this.currentHour + HOUR_MS)) s = this.spoolFor(time);
    const before = s.staged;
    s.add(line);
    this.events++;
    this.bytes += line.length + 1;
    this.staged += s.staged - before;
    if (this.staged >= STAGE_BYTES) this.sync();
  }

  private spoolFor(time: number): NdjsonChunks {
    const h = hourStart(time);
    let s = this.spools.get(h);
    if (!s) {
      s = new NdjsonChunks(join(this.dir, `${this.tag}-${h}`), this.spools.size >= MANY_HOURS ? STAGE_BYTES >> 4 : STAGE_BYTES);
      this.spools.set(h, s);
    }
    this.current = s;
    this.currentHour = h;
    return s;
  }

  /** Append the staged lines to the spool files. */
  sync(): void {
    const many = this.spools.size > MANY_HOURS;
    for (const s of this.spools.values()) {
      if (many && s !== this.current) s.release();
      else s.flush();
    }
    this.staged = 0;
  }

  /** The hours touched, in order, with their spool files complete on disk. */
  hours(): SpooledHour[] {
    for (const s of this.spools.values()) s.release();
    this.staged = 0;
    return [...this.spools].sort((a, b) => a[0] - b[0]).map(([hour, s]) => ({ hour, files: [...s.files], events: s.events }));
  }

  /** Remove the spool files; the buffer is empty and unsealed again. */
  discard(): void {
    for (const s of this.spools.values()) s.remove();
    this.spools.clear();
    this.current = null;
    this.currentHour = NaN;
    this.first = this.last = -1;
    this.records = this.events = this.bytes = this.staged = 0;
    this.sealed = false;
  }
}
