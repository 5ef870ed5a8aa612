/**
 * Recording: the one usage event of an admitted call (src/events/usage-event.ts), made once
 * whatever ends the call first (the answer finished, the client gone, an upstream error).
 * Batched: queued on the EventBatcher. Strict: also waits until the event is durable.
 */
import { SCHEMA_VERSION, isBillable, type UsageEvent } from '../events/usage-event.js';
import type { AdmittedCall } from './admit.js';
import type { EventBatcher } from './event-batcher.js';

export function usageEvent(call: AdmittedCall, status: number, latencyMs: number, bytesIn: number, bytesOut: number): UsageEvent {
  return {
    v: SCHEMA_VERSION,
    id: call.eventId,
    time: call.start,
    customer: call.identity.customer,
    keyId: call.identity.keyId,
    api: call.api,
    method: call.method,
    status,
    latencyMs,
    bytesIn,
    bytesOut,
    billable: isBillable(status),
  };
}

/** The event of one call; a class rather than closures (one object per call on the hot path). */
export class CallRecord {
  bytesIn = 0;
  bytesOut = 0;
  private recorded = false;

  constructor(
    readonly call: AdmittedCall,
    private readonly batcher: EventBatcher,
    readonly strict: boolean,
  ) {}

  /**
   * Record the call with this status, once (later calls are no-ops that resolve true). Resolves
   * false only in strict mode when the event could not be made durable. A route marked free
   * records nothing.
   */
  record(status: number): Promise<boolean> {
    if (this.recorded) return Promise.resolve(true);
    this.recorded = true;
    if (this.call.route?.free) return Promise.resolve(true);
    const e = usageEvent(this.call, status, Math.round(performance.now() - this.call.t0), this.bytesIn, this.bytesOut);
    if (!this.strict) return Promise.resolve(this.batcher.add(e));
    return this.batcher.addDurable(e).then(
      () => true,
      () => false,
    );
  }

  /** record() of a batched call, which has nothing to wait for: no promise on the hot path. */
  recordBatched(status: number): void {
    if (this.strict) {
      void this.record(status);
      return;
    }
    if (this.recorded) return;
    this.recorded = true;
    if (this.call.route?.free) return;
    this.batcher.add(usageEvent(this.call, status, Math.round(performance.now() - this.call.t0), this.bytesIn, this.bytesOut));
  }
}
