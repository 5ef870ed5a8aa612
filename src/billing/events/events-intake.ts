/**
 * `POST /v1/events`: usage that does not pass the gateway, as CloudEvents 1.0 (JSON format), one
 * event (`application/cloudevents+json` or `application/json`) or a batch
 * (`application/cloudevents-batch+json`, an array). Each event is checked (cloud-event.ts); the
 * accepted ones are appended to the usage log, keyed by customer like the gateway's, and the
 * answer (202) comes once they are durable there. Ingest, rollup and the live path then count
 * them as they count gateway events. docs/events-api.md.
 */
import type { IncomingMessage } from 'node:http';
import { encodeEvent } from '../../events/usage-event.js';
import type { LogProducer, ProducerRecord } from '../../log/log.js';
import { CustomerCheck, customerVerdict } from '../../pipeline/customer-check.js';
import type { Sql } from '../../warehouse/warehouse.js';
import { checkEvent } from './cloud-event.js';
import { LogAppender } from './log-appender.js';
import { readBody } from './read-body.js';

/** Largest request body (a full batch of small events is ~300 KB). */
export const MAX_BODY_BYTES = 1024 * 1024;
/** Most events in one batch. */
export const MAX_BATCH = 1000;
/**
 * Longest wait for the usage log to take a request's events; then the answer is a 503. With Kafka
 * down, the producer's own retries held a request 20-30 s (fault scenario events-api-kafka-down),
 * past a client's timeout. log-appender.ts: what happens to a send still running then.
 */
export const LOG_WAIT_MS = 10_000;

export type EventResult = { index: number; status: 'accepted'; eventId: string; duplicate?: true } | { index: number; status: 'rejected'; reason: string };

export interface IntakeAnswer {
  status: number;
  body: Record<string, unknown>;
  headers?: Record<string, string>;
}

export interface EventsIntakeOptions {
  /** Where the customers are (read by a CustomerCheck: no statement per request for a known customer). */
  db: Sql;
  /** The usage log's producer, opened on the first request (a billing server whose log is down still serves reads). */
  openProducer: () => Promise<LogProducer>;
  now?: () => number;
  maxBodyBytes?: number;
  maxBatch?: number;
  /** LOG_WAIT_MS unless given. */
  logWaitMs?: number;
  onError?: (m: string) => void;
}

const err = (status: number, error: string, headers?: Record<string, string>): IntakeAnswer => ({ status, body: { error }, ...(headers ? { headers } : {}) });

type Mode = 'single' | 'batch' | 'either';

function modeOf(contentType: string | undefined): Mode | null {
  const t = (contentType ?? '').split(';', 1)[0]?.trim().toLowerCase();
  if (t === 'application/cloudevents+json') return 'single';
  if (t === 'application/cloudevents-batch+json') return 'batch';
  if (t === 'application/json') return 'either';
  return null;
}

export class EventsIntake {
  private readonly appender: LogAppender;
  private readonly now: () => number;
  private readonly maxBody: number;
  private readonly maxBatch: number;
  /**
   * Ingest's own rule and cache for "the customer exists at this time": customers are never
   * deleted, so a known one needs no statement, and a flood of unknown ones costs at most one
   * load per second (customer-check.ts). The same rule as ingest's, so an accepted event is not
   * dead-lettered for its customer.
   */
  private readonly customers: CustomerCheck;

  constructor(private readonly o: EventsIntakeOptions) {
    this.now = o.now ?? Date.now;
    this.maxBody = o.maxBodyBytes ?? MAX_BODY_BYTES;
    this.maxBatch = o.maxBatch ?? MAX_BATCH;
    this.appender = new LogAppender({ openProducer: o.openProducer, waitMs: o.logWaitMs ?? LOG_WAIT_MS, maxBytes: this.maxBody });
    this.customers = new CustomerCheck(o.db);
  }

  /** Answer one POST. Never throws for bad input. */
  async post(req: IncomingMessage): Promise<IntakeAnswer> {
    const mode = modeOf(req.headers['content-type']);
    if (!mode) {
      // Unread: the answer closes the connection.
      return err(415, 'content-type must be application/cloudevents+json (one event), application/cloudevents-batch+json (an array) or application/json', {
        connection: 'close',
      });
    }
    const body = await readBody(req, this.maxBody);
    if (!body.ok) return err(413, `the body is larger than ${this.maxBody} bytes: send at most ${this.maxBatch} events per request`, { connection: 'close' });
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.bytes.toString('utf8'));
    } catch {
      return err(400, 'the body is not JSON');
    }
    const batch = Array.isArray(parsed);
    if (mode === 'batch' && !batch) return err(400, 'a batch (application/cloudevents-batch+json) must be a JSON array of events');
    if (mode === 'single' && batch) return err(400, 'an array needs content-type application/cloudevents-batch+json');
    const items: unknown[] = batch ? (parsed as unknown[]) : [parsed];
    if (items.length > this.maxBatch) return err(413, `a batch holds at most ${this.maxBatch} events, got ${items.length}`);
    if (items.length === 0) return err(400, 'the batch is empty');

    const now = this.now();
    const customerRefusal = (c: string) => customerVerdict(this.customers, c, now);
    const results: EventResult[] = [];
    const records: ProducerRecord[] = [];
    const seen = new Map<string, string>();
    for (let i = 0; i < items.length; i++) {
      const c = await checkEvent(items[i], { now, customerRefusal });
      if (!c.ok) {
        results.push({ index: i, status: 'rejected', reason: c.reason });
        continue;
      }
      // The same (source, id) twice in one request is one event: sent once, both answered accepted.
      const first = seen.get(c.key);
      if (first !== undefined) {
        results.push({ index: i, status: 'accepted', eventId: first, duplicate: true });
        continue;
      }
      seen.set(c.key, c.event.id);
      records.push({ key: c.event.customer, value: encodeEvent(c.event) });
      results.push({ index: i, status: 'accepted', eventId: c.event.id });
    }
    const [only] = results;
    if (!batch && only?.status === 'rejected') return err(400, only.reason);
    if (records.length) {
      try {
        await this.appender.append(records);
      } catch (e) {
        this.o.onError?.(`events: the usage log refused a send of ${records.length} events: ${(e as Error).message}`);
        return err(
          503,
          'the usage log is unavailable, so no event of this request is known to be stored; retry (a resend is billed once: events are deduplicated by source and id)',
          { 'retry-after': '5' },
        );
      }
    }
    const accepted = results.filter((r) => r.status === 'accepted').length;
    return { status: 202, body: { accepted, rejected: results.length - accepted, results } };
  }

  close(): Promise<void> {
    return this.appender.close();
  }
}
