/**
 * `POST /v1/events/corrections` and `GET /v1/events/corrections`: cancel an event, or replace its
 * `data`, by its id, for the whole window events are accepted in (35 days), with an audit trail
 * (docs/events-api.md, "Correcting and cancelling events"). The correction is stored
 * (correction-store.ts); the rollup applies it when it recomputes the event's hour, which the
 * correction makes pending. Nothing here writes usage rows.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { HOUR_MS } from '../../lake/layout.js';
import type { Lake } from '../../lake/lake.js';
import { DEFAULT_TIME_BOUNDS } from '../../pipeline/accept.js';
import type { Warehouse } from '../../warehouse/warehouse.js';
import { pageParams, encodeCursor } from '../pagination.js';
import { ParamError, onlyParams } from '../params.js';
import { MAX_DATA_BYTES, MAX_DATA_DEPTH, deeperThan } from './cloud-event.js';
import { type Correction, correctionById, finalInvoiceAt, listCorrections, recordCorrection } from './correction-store.js';
import { eventIdOf } from './event-id.js';
import { findEventInLake } from './event-lookup.js';
import { parseEventTime } from './event-time.js';
import { readBody } from './read-body.js';
import { quote } from '../../ground/text.js';

/** Largest request body: the data bound plus the other fields, with room. */
export const MAX_CORRECTION_BODY = 16 * 1024;
export const MAX_REASON = 500;
export const MAX_CORRECTION_ID = 200;
/** Lake lookups at once (each a DuckDB over an hour's files), and requests waiting for one; more is a 503. */
export const MAX_LOOKUPS = 2;
export const MAX_WAITING = 32;

export interface CorrectionAnswer {
  status: number;
  body: Record<string, unknown>;
  headers?: Record<string, string>;
}

export interface EventCorrectionsOptions {
  db: Warehouse;
  /** Where the event is looked up (its hour's files). */
  lake: Lake;
  now?: () => number;
  onError?: (m: string) => void;
}

/** A checked request. */
interface Request {
  correctionId: string;
  eventId: string;
  source: string | null;
  sourceId: string | null;
  time: number;
  action: 'cancel' | 'correct';
  data: string | null;
  reason: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const CONTROL = /[\u0000-\u001f\u007f]/;
const FIELDS = new Set(['correctionId', 'event', 'time', 'action', 'data', 'reason']);

class Refused extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly parameter?: string,
  ) {
    super(message);
  }
}

function text(o: Record<string, unknown>, name: string, max: number, where = name): string {
  const v = o[name];
  if (v === undefined || v === null) throw new Refused(400, `${where} is required`, where);
  if (typeof v !== 'string') throw new Refused(400, `${where} must be a string`, where);
  if (v.length === 0 || v.length > max) throw new Refused(400, `${where} must be 1 to ${max} characters`, where);
  if (CONTROL.test(v)) throw new Refused(400, `${where} holds a control character`, where);
  return v;
}

/** JSON with object keys sorted: two requests that mean the same hash the same. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (typeof v === 'object' && v !== null)
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(v);
}

/** Shape and bounds of a correction request; throws Refused naming the field. */
export function checkCorrection(v: unknown, now: number): Request & { hash: string } {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Refused(400, 'a correction must be a JSON object');
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (FIELDS.has(k)) continue;
    if (k === 'subject' || k === 'type')
      throw new Refused(400, `${k} cannot be corrected: cancel the event and send a new one (with a new id) under the right ${k}`, k);
    throw new Refused(400, `unknown field ${quote(k)}: a correction has correctionId, event, time, action, data, reason`, k.slice(0, 64));
  }
  const correctionId = text(o, 'correctionId', MAX_CORRECTION_ID);
  const ev = o.event;
  if (typeof ev !== 'object' || ev === null || Array.isArray(ev))
    throw new Refused(400, 'event is required: {"source": …, "id": …} as the event was sent, or {"eventId": …} as the lake holds it', 'event');
  const e = ev as Record<string, unknown>;
  let eventId: string;
  let source: string | null = null;
  let sourceId: string | null = null;
  if (e.eventId !== undefined) {
    if (e.source !== undefined || e.id !== undefined) throw new Refused(400, 'event names the event either by eventId or by source and id, not both', 'event');
    eventId = text(e, 'eventId', 36, 'event.eventId');
    if (!UUID.test(eventId))
      throw new Refused(400, 'event.eventId must be a lowercase UUID, as the events API answered it (eventId) or the lake holds it', 'event.eventId');
  } else {
    source = text(e, 'source', 200, 'event.source');
    sourceId = text(e, 'id', 200, 'event.id');
    eventId = eventIdOf(source, sourceId);
  }
  const rawTime = text(o, 'time', 64);
  const time = parseEventTime(rawTime);
  if (time === null) throw new Refused(400, "time must be the event's time as sent, an RFC 3339 time such as 2026-12-05T06:00:00Z", 'time');
  if (time < now - DEFAULT_TIME_BOUNDS.pastLimitMs)
    throw new Refused(400, `time ${rawTime} is older than 35 days: an event can be corrected only within the 35 days events are accepted for`, 'time');
  if (time > now + DEFAULT_TIME_BOUNDS.futureLimitMs) throw new Refused(400, `time ${rawTime} is in the future: give the event's time as sent`, 'time');
  const action = o.action;
  if (action !== 'cancel' && action !== 'correct')
    throw new Refused(400, `action must be "cancel" or "correct", got ${typeof action === 'string' ? quote(action) : String(action)}`, 'action');
  let data: string | null = null;
  if (action === 'correct') {
    if (typeof o.data !== 'object' || o.data === null || Array.isArray(o.data))
      throw new Refused(400, "a correct needs data, a JSON object: the event's whole new data", 'data');
    if (deeperThan(o.data, MAX_DATA_DEPTH)) throw new Refused(400, `data is nested more than ${MAX_DATA_DEPTH} levels deep`, 'data');
    data = JSON.stringify(o.data);
    if (Buffer.byteLength(data) > MAX_DATA_BYTES)
      throw new Refused(400, `data is ${Buffer.byteLength(data)} bytes of JSON, more than ${MAX_DATA_BYTES}`, 'data');
  } else if (o.data !== undefined) throw new Refused(400, 'a cancel takes no data', 'data');
  const reason = text(o, 'reason', MAX_REASON);
  const hash = createHash('sha256')
    .update(canonical([eventId, time, action, data === null ? null : JSON.parse(data), reason]))
    .digest('hex');
  return { correctionId, eventId, source, sourceId, time, action, data, reason, hash };
}

export class EventCorrections {
  private readonly now: () => number;
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly o: EventCorrectionsOptions) {
    this.now = o.now ?? Date.now;
  }

  /** Answer one POST from `actor` (who, for the trail). Never throws for bad input. */
  async post(req: IncomingMessage, actor: string): Promise<CorrectionAnswer> {
    const type = (req.headers['content-type'] ?? '').split(';', 1)[0]?.trim().toLowerCase();
    if (type !== 'application/json') return { status: 415, body: { error: 'content-type must be application/json' }, headers: { connection: 'close' } };
    const body = await readBody(req, MAX_CORRECTION_BODY);
    if (!body.ok)
      return {
        status: 413,
        body: { error: `the body is larger than ${MAX_CORRECTION_BODY} bytes: one correction per request` },
        headers: { connection: 'close' },
      };
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.bytes.toString('utf8'));
    } catch {
      return { status: 400, body: { error: 'the body is not JSON' } };
    }
    try {
      return await this.apply(checkCorrection(parsed, this.now()), actor);
    } catch (e) {
      if (e instanceof Refused) return { status: e.status, body: { error: e.message, ...(e.parameter ? { parameter: e.parameter } : {}) } };
      throw e;
    }
  }

  private async apply(r: Request & { hash: string }, actor: string): Promise<CorrectionAnswer> {
    const hour = r.time - (r.time % HOUR_MS);
    let found: Awaited<ReturnType<typeof findEventInLake>>;
    if (this.running >= MAX_LOOKUPS && this.waiting.length >= MAX_WAITING)
      return {
        status: 503,
        body: { error: 'too many corrections at once: retry shortly (the same correctionId is applied once)' },
        headers: { 'retry-after': '1' },
      };
    if (this.running >= MAX_LOOKUPS) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.running++;
    try {
      found = await findEventInLake(this.o.lake, r.eventId, hour);
    } catch (e) {
      this.o.onError?.(`corrections: the lake could not be read for hour ${new Date(hour).toISOString()}: ${(e as Error).message}`);
      return {
        status: 503,
        body: { error: 'the lake is unavailable, so the event cannot be looked up; retry (the same correctionId is applied once)' },
        headers: { 'retry-after': '5' },
      };
    } finally {
      // Hand the slot to the next waiting request, or free it.
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    }
    if (!found)
      return {
        status: 404,
        body: {
          error: `no event ${r.eventId} in the lake for the hour of ${new Date(r.time).toISOString()}: give the event's time as sent${r.source === null ? '' : ' and its source and id'}; an event just sent reaches the lake after ingest's next flush`,
          parameter: 'event',
        },
      };
    const outcome = await recordCorrection(this.o.db, {
      correctionId: r.correctionId,
      requestHash: r.hash,
      eventId: r.eventId,
      eventTime: found.time,
      customer: found.customer,
      api: found.api,
      source: r.source,
      sourceId: r.sourceId,
      action: r.action,
      lakeData: found.data,
      data: r.data,
      reason: r.reason,
      actor,
    });
    switch (outcome.kind) {
      case 'conflict':
        return {
          status: 409,
          body: {
            error: `correctionId ${r.correctionId} was used for another correction (of event ${outcome.correction.event.eventId}): choose a new correctionId`,
            parameter: 'correctionId',
          },
        };
      case 'cancelled':
        return {
          status: 409,
          body: {
            error: `event ${r.eventId} was cancelled by correction ${outcome.by.correctionId} at ${outcome.by.createdAt}: a cancelled event is not corrected or cancelled again (send a new event with a new id)`,
            parameter: 'event',
          },
        };
      case 'duplicate':
        return { status: 200, body: { ...(await this.withInvoice(outcome.correction)), duplicate: true } };
      case 'created':
        return { status: 201, body: { ...(await this.withInvoice(outcome.correction)), duplicate: false } };
    }
  }

  /** The correction, and the final invoice it will not change, if one covers the event. */
  private async withInvoice(c: Correction): Promise<Record<string, unknown>> {
    const inv = await finalInvoiceAt(this.o.db, c.event.customer, Date.parse(c.event.time));
    return {
      ...c,
      ...(inv
        ? {
            finalInvoice: {
              ...inv,
              note: 'final invoices never change: the rollup reports the difference in its log once it has recomputed the hour, for a credit note or a correction on the next invoice',
            },
          }
        : {}),
    };
  }

  /** `GET /v1/events/corrections/{correctionId}`: one correction (is it applied yet?). */
  async get(id: string, q: URLSearchParams): Promise<CorrectionAnswer> {
    onlyParams(q, []);
    const c = await correctionById(this.o.db, id);
    if (!c) return { status: 404, body: { error: `no correction ${quote(id)}`, parameter: 'correctionId' } };
    return { status: 200, body: { ...c } };
  }

  /** `GET /v1/events/corrections[?customer][&limit][&cursor]`: the audit trail, newest first. */
  async list(q: URLSearchParams): Promise<CorrectionAnswer> {
    onlyParams(q, ['customer', 'limit', 'cursor']);
    const pg = pageParams(q);
    if (pg.after !== null && !/^\d{1,19}$/.test(pg.after)) throw new ParamError('cursor', 'cursor is not one this list gave out: pass nextCursor unchanged');
    const customer = q.get('customer') || undefined;
    if (customer !== undefined && customer.length > 200) throw new ParamError('customer', 'customer is longer than 200 characters');
    const page = await listCorrections(this.o.db, { customer, after: pg.after, limit: pg.limit });
    return { status: 200, body: { corrections: page.items, nextCursor: page.lastSeq === null ? null : encodeCursor(page.lastSeq) } };
  }
}
