/**
 * One partition's open window: the records read from the log since the last applied offset,
 * reduced to the accepted events, deduplicated by (hour, id) inside the window. Rejected
 * records only move the offset (ingest dead-letters them; the live path must not count them).
 */
import type { LogRecord } from '../../log/log.js';
import { hourStart } from '../../lake/layout.js';
import { acceptRecord, type EventTimeBounds } from '../accept.js';
import { isBillable } from '../../events/usage-event.js';
import { RECHECK, type CustomerCheck } from '../customer-check.js';
import type { LiveEvent } from './live-repository.js';

export class LiveWindow {
  /** Offset after the last applied record (as stored in live_offsets). */
  applied: number;
  /** Offset after the last record read. */
  next: number;
  /** Offsets of the records in [applied, next), accepted or not. */
  private offsets: number[] = [];
  rejected = 0;
  /** Wall time of the window's first record, or null when empty. */
  startedAt: number | null = null;
  private readonly events = new Map<string, LiveEvent & { offset: number }>();

  constructor(start: number) {
    this.applied = start;
    this.next = start;
  }

  /**
   * Take one record; records below `next` (redelivered) are ignored. RECHECK: the customer
   * check needs a load first (nothing was taken; call `customers.recheck` and add it again).
   */
  add(r: LogRecord, limits: EventTimeBounds, customers?: CustomerCheck): undefined | typeof RECHECK {
    if (r.offset < this.next) return;
    const a = acceptRecord(r, limits);
    const refused = a.ok && customers ? customers.verdict(a.event.customer, r.timestamp) : null;
    if (refused === RECHECK) return RECHECK;
    if (a.ok && refused === null) {
      const e = a.event;
      const hour = hourStart(e.time);
      const key = `${hour}/${e.id}`;
      if (!this.events.has(key))
        this.events.set(key, {
          id: e.id,
          hour,
          customer: e.customer,
          api: e.api,
          billable: isBillable(e.status),
          // for meters (live-meters.ts)
          bytesIn: e.bytesIn,
          bytesOut: e.bytesOut,
          ...(e.data !== undefined ? { data: e.data } : {}),
          offset: r.offset,
        });
    } else this.rejected++;
    this.offsets.push(r.offset);
    this.next = r.offset + 1;
    this.startedAt ??= Date.now();
  }

  /** Records in [applied, next). */
  get records(): number {
    return this.offsets.length;
  }

  get empty(): boolean {
    return this.offsets.length === 0;
  }

  distinctEvents(): LiveEvent[] {
    return [...this.events.values()].map(({ offset: _o, ...e }) => e);
  }

  /** The window [applied, next) is in the warehouse: start the next one. */
  reset(): void {
    this.applied = this.next;
    this.offsets = [];
    this.rejected = 0;
    this.startedAt = null;
    this.events.clear();
  }

  /**
   * Someone else moved the partition's offsets to `to` (see FencedError): forget what is below
   * it. Returns false if `to` is below what this window covers (offsets were moved back; the
   * caller re-reads from there).
   */
  rebase(to: number): boolean {
    if (to < this.applied) return false;
    for (const [k, e] of this.events) if (e.offset < to) this.events.delete(k);
    this.offsets = this.offsets.filter((o) => o >= to);
    if (to >= this.next) this.next = to;
    if (this.offsets.length === 0) this.startedAt = null;
    this.applied = to;
    return true;
  }
}
