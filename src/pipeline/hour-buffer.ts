/**
 * What one partition has read but not yet written: a contiguous offset range [first, last]
 * and its good events grouped by UTC hour of event time (dead-lettered records are in the
 * range but not in any hour). One flush writes one file per hour, all named after the range.
 */
import type { UsageEvent } from '../events/usage-event.js';
import { hourStart } from '../lake/layout.js';

export class HourBuffer {
  first = -1;
  last = -1;
  records = 0;
  events = 0;
  /** Wall time of the first record, for flushMs rotation. */
  startedAt = 0;
  /**
   * Set when a flush of this range began: from then on the range must not grow, or a retry
   * would publish files of a longer range next to files of the shorter one.
   */
  sealed = false;
  readonly hours = new Map<number, UsageEvent[]>();

  get empty(): boolean {
    return this.records === 0;
  }

  /** Extend the range by one record (offsets increase; Kafka may skip some). */
  addRecord(offset: number, event: UsageEvent | null): void {
    if (this.sealed) throw new Error('internal: adding to a sealed range');
    if (this.records === 0) {
      this.first = offset;
      this.startedAt = Date.now();
    }
    this.last = offset;
    this.records++;
    if (event) {
      const h = hourStart(event.time);
      let list = this.hours.get(h);
      if (!list) this.hours.set(h, (list = []));
      list.push(event);
      this.events++;
    }
  }

  reset(): void {
    this.first = this.last = -1;
    this.records = this.events = 0;
    this.sealed = false;
    this.hours.clear();
  }
}
