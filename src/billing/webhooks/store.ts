/**
 * The webhook tables (migration 013_webhooks.sql), written only here: endpoints, the outbox of
 * events, deliveries (one per event and endpoint, with the retry schedule) and the attempt log.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Sql, Warehouse } from '../../warehouse/warehouse.js';
import { toMs } from '../../warehouse/values.js';
import { newSecret } from './signer.js';
import { quote } from '../../ground/text.js';

/** Event types an endpoint can subscribe to. */
export const EVENT_TYPES = ['invoice.finalized', 'usage.threshold'] as const;
export type EventType = (typeof EVENT_TYPES)[number];

export const MAX_URL_LENGTH = 2048;

export class WebhookInputError extends Error {
  override name = 'WebhookInputError';
}

/** Only absolute http(s) URLs without credentials; anything else is refused with the reason. */
export function checkUrl(raw: string): string {
  if (raw.length > MAX_URL_LENGTH) throw new WebhookInputError(`the URL is longer than ${MAX_URL_LENGTH} characters`);
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new WebhookInputError(`${quote(raw)} is not an absolute URL (e.g. https://pay.example.com/hooks/meter)`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    throw new WebhookInputError(`only http and https URLs can receive webhooks, not ${u.protocol.slice(0, 20)}`);
  if (u.username || u.password) throw new WebhookInputError('the URL holds a user name or password: the signature authenticates meter, leave credentials out');
  u.hash = '';
  return u.toString();
}

export function checkEvents(raw: string[]): EventType[] {
  const out = new Set<EventType>();
  for (const e of raw
    .flatMap((s) => s.split(','))
    .map((s) => s.trim())
    .filter(Boolean)) {
    if (!(EVENT_TYPES as readonly string[]).includes(e)) throw new WebhookInputError(`unknown event type ${quote(e)}: known are ${EVENT_TYPES.join(', ')}`);
    out.add(e as EventType);
  }
  if (!out.size) throw new WebhookInputError(`no event types given: known are ${EVENT_TYPES.join(', ')}`);
  return [...out];
}

export interface Endpoint {
  id: string;
  url: string;
  events: string[];
  createdAt: string;
  disabledAt: string | null;
}

interface EndpointRow {
  id: string;
  url: string;
  events: string[] | string;
  created_at: unknown;
  disabled_at: unknown;
}

function iso(v: unknown): string | null {
  return v === null || v === undefined ? null : new Date(toMs(v)).toISOString();
}

/** text[] comes back as an array from pg and PGlite; as '{a,b}' if a driver leaves it as text. */
function eventList(v: string[] | string): string[] {
  return Array.isArray(v)
    ? v
    : v
        .replace(/^\{|\}$/g, '')
        .split(',')
        .filter(Boolean);
}

function endpointOf(r: EndpointRow): Endpoint {
  return { id: r.id, url: r.url, events: eventList(r.events), createdAt: iso(r.created_at)!, disabledAt: iso(r.disabled_at) };
}

/** A new endpoint; its secret is returned here only (list never shows it). */
export async function addEndpoint(db: Sql, url: string, events: string[], now = Date.now()): Promise<Endpoint & { secret: string }> {
  const u = checkUrl(url);
  const ev = checkEvents(events);
  const id = 'we_' + randomBytes(8).toString('hex');
  const secret = newSecret();
  await db.query("INSERT INTO webhook_endpoints (id, url, events, secret, created_at) VALUES ($1, $2, string_to_array($3, ','), $4, $5)", [
    id,
    u,
    ev.join(','),
    secret,
    new Date(now).toISOString(),
  ]);
  return { id, url: u, events: ev, createdAt: new Date(now).toISOString(), disabledAt: null, secret };
}

export async function listEndpoints(db: Sql): Promise<Endpoint[]> {
  const rows = await db.query<EndpointRow>('SELECT id, url, events, created_at, disabled_at FROM webhook_endpoints ORDER BY created_at, id');
  return rows.map(endpointOf);
}

/** Stop sending to an endpoint (its pending deliveries are cancelled); false if unknown or already off. */
export async function disableEndpoint(db: Warehouse, id: string, now = Date.now()): Promise<boolean> {
  return db.transaction(async (tx) => {
    const r = await tx.query('UPDATE webhook_endpoints SET disabled_at = $2 WHERE id = $1 AND disabled_at IS NULL RETURNING id', [
      id,
      new Date(now).toISOString(),
    ]);
    if (!r.length) return false;
    await tx.query(`UPDATE webhook_deliveries SET status = 'cancelled', last_error = 'endpoint removed' WHERE endpoint_id = $1 AND status = 'pending'`, [id]);
    return true;
  });
}

/** Deliveries sort by id newest first: the id starts with its creation time. */
function deliveryId(now: number): string {
  return 'dlv_' + now.toString(36).padStart(9, '0') + randomBytes(6).toString('hex');
}

/** The event id of `type` about `subject` (an invoice id): the same however often it is emitted. */
export function eventId(type: string, subject: string): string {
  return 'evt_' + createHash('sha256').update(`${type}\0${subject}`).digest('hex').slice(0, 24);
}

/**
 * Put an event in the outbox, with one delivery per enabled endpoint subscribed to its type. Call
 * it inside the transaction of the change it announces (invariant: no event for a rollback, none
 * lost for a commit). An event id already there is not queued again. Returns the event id.
 */
export async function emitEvent(tx: Sql, type: EventType, subject: string, object: unknown, now: number): Promise<string> {
  const id = eventId(type, subject);
  const body = JSON.stringify({ id, type, created: Math.floor(now / 1000), data: { object } });
  const at = new Date(now).toISOString();
  const ins = await tx.query('INSERT INTO webhook_events (id, type, created_at, body) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING id', [
    id,
    type,
    at,
    body,
  ]);
  if (!ins.length) return id;
  const endpoints = await tx.query<{ id: string }>('SELECT id FROM webhook_endpoints WHERE disabled_at IS NULL AND $1 = ANY(events) ORDER BY id', [type]);
  for (const e of endpoints)
    await tx.query('INSERT INTO webhook_deliveries (id, event_id, endpoint_id, created_at, next_attempt_at) VALUES ($1, $2, $3, $4, $4)', [
      deliveryId(now),
      id,
      e.id,
      at,
    ]);
  return id;
}

/** A delivery taken by one deliverer for one attempt. */
export interface Claim {
  id: string;
  eventId: string;
  type: string;
  body: string;
  url: string;
  secret: string;
  /** This attempt's number, from 1. */
  attempt: number;
  createdAt: number;
}

/**
 * Take up to `limit` due deliveries for an attempt each. The claim moves next_attempt_at to
 * `leaseUntil`, so another deliverer skips them, and a deliverer that dies mid-attempt leaves
 * them due again once the lease passes (the receiver may then see the event twice: it dedupes
 * by event id).
 */
export async function claimDue(db: Warehouse, now: number, leaseUntil: number, limit: number): Promise<Claim[]> {
  return db.transaction(async (tx) => {
    await tx.query(
      `UPDATE webhook_deliveries d SET status = 'cancelled', last_error = 'endpoint removed' FROM webhook_endpoints w
       WHERE w.id = d.endpoint_id AND w.disabled_at IS NOT NULL AND d.status = 'pending'`,
    );
    const rows = await tx.query<{
      id: string;
      attempts: number;
      created_at: unknown;
      event_id: string;
      type: string;
      body: string;
      url: string;
      secret: string;
    }>(
      `UPDATE webhook_deliveries d SET next_attempt_at = $2, attempts = d.attempts + 1
       FROM webhook_events e, webhook_endpoints w
       WHERE d.id IN (SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= $1 ORDER BY next_attempt_at, id LIMIT $3 FOR UPDATE SKIP LOCKED)
         AND e.id = d.event_id AND w.id = d.endpoint_id
       RETURNING d.id, d.attempts, d.created_at, e.id AS event_id, e.type, e.body, w.url, w.secret`,
      [new Date(now).toISOString(), new Date(leaseUntil).toISOString(), limit],
    );
    return rows.map((r) => ({
      id: r.id,
      eventId: r.event_id,
      type: r.type,
      body: r.body,
      url: r.url,
      secret: r.secret,
      attempt: Number(r.attempts),
      createdAt: toMs(r.created_at),
    }));
  });
}

export interface AttemptOutcome {
  status: number | null;
  error: string | null;
  durationMs: number;
}

/** Log an attempt and set what follows: delivered, retry at `retryAt`, or failed (retryAt null). */
export async function recordAttempt(
  db: Warehouse,
  c: Claim,
  o: AttemptOutcome,
  at: number,
  retryAt: number | null,
): Promise<'delivered' | 'pending' | 'failed'> {
  const ok = o.error === null && o.status !== null && o.status >= 200 && o.status < 300;
  const state = ok ? 'delivered' : retryAt === null ? 'failed' : 'pending';
  const when = new Date(at).toISOString();
  await db.transaction(async (tx) => {
    await tx.query(
      'INSERT INTO webhook_attempts (delivery_id, attempt, attempted_at, duration_ms, status, error) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING',
      [c.id, c.attempt, when, Math.round(o.durationMs), o.status, o.error],
    );
    await tx.query(
      `UPDATE webhook_deliveries SET status = $2, last_attempt_at = $3, last_status = $4, last_error = $5,
         delivered_at = CASE WHEN $2 = 'delivered' THEN $3::timestamptz ELSE delivered_at END,
         next_attempt_at = COALESCE($6::timestamptz, next_attempt_at)
       WHERE id = $1 AND status = 'pending'`,
      [c.id, state, when, o.status, o.error, retryAt === null ? null : new Date(retryAt).toISOString()],
    );
  });
  return state;
}

export interface Delivery {
  id: string;
  eventId: string;
  eventType: string;
  endpointId: string;
  url: string;
  status: string;
  attempts: number;
  createdAt: string;
  nextAttemptAt: string | null;
  lastAttemptAt: string | null;
  lastStatus: number | null;
  lastError: string | null;
  deliveredAt: string | null;
}

export interface DeliveryFilter {
  id?: string;
  status?: string;
  endpoint?: string;
  event?: string;
  /** Delivery id after which the page starts (newest first). */
  after?: string | null;
  limit: number;
}

export const DELIVERY_STATES = ['pending', 'delivered', 'failed', 'cancelled'] as const;

/** A page of deliveries, newest first (LIMIT limit + 1: the caller pages with pageOf). */
export async function listDeliveries(db: Sql, f: DeliveryFilter): Promise<Delivery[]> {
  const where: string[] = [];
  const params: unknown[] = [];
  if (f.id) where.push(`d.id = $${params.push(f.id)}`);
  if (f.status) where.push(`d.status = $${params.push(f.status)}`);
  if (f.endpoint) where.push(`d.endpoint_id = $${params.push(f.endpoint)}`);
  if (f.event) where.push(`d.event_id = $${params.push(f.event)}`);
  if (f.after) where.push(`d.id < $${params.push(f.after)}`);
  const rows = await db.query<Record<string, unknown>>(
    `SELECT d.id, d.event_id, e.type, d.endpoint_id, w.url, d.status, d.attempts, d.created_at, d.next_attempt_at, d.last_attempt_at, d.last_status, d.last_error, d.delivered_at
     FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id JOIN webhook_endpoints w ON w.id = d.endpoint_id
     ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY d.id DESC LIMIT $${params.push(f.limit + 1)}`,
    params,
  );
  return rows.map((r) => ({
    id: String(r.id),
    eventId: String(r.event_id),
    eventType: String(r.type),
    endpointId: String(r.endpoint_id),
    url: String(r.url),
    status: String(r.status),
    attempts: Number(r.attempts),
    createdAt: iso(r.created_at)!,
    nextAttemptAt: r.status === 'pending' ? iso(r.next_attempt_at) : null,
    lastAttemptAt: iso(r.last_attempt_at),
    lastStatus: r.last_status === null ? null : Number(r.last_status),
    lastError: r.last_error === null ? null : String(r.last_error),
    deliveredAt: iso(r.delivered_at),
  }));
}

export interface Attempt {
  attempt: number;
  attemptedAt: string;
  durationMs: number;
  status: number | null;
  error: string | null;
}

export async function attemptsOf(db: Sql, deliveryId: string): Promise<Attempt[]> {
  const rows = await db.query<Record<string, unknown>>(
    'SELECT attempt, attempted_at, duration_ms, status, error FROM webhook_attempts WHERE delivery_id = $1 ORDER BY attempt',
    [deliveryId],
  );
  return rows.map((r) => ({
    attempt: Number(r.attempt),
    attemptedAt: iso(r.attempted_at)!,
    durationMs: Number(r.duration_ms),
    status: r.status === null ? null : Number(r.status),
    error: r.error === null ? null : String(r.error),
  }));
}

/**
 * Queue one more attempt now: for a failed or cancelled delivery (of an endpoint still enabled)
 * or a pending one waiting for its backoff. A failed delivery that fails again stays failed (its
 * day of retries is over). Returns the new state, or null for an unknown id.
 */
export async function retryDelivery(db: Sql, id: string, now = Date.now()): Promise<{ retried: boolean; reason?: string } | null> {
  const rows = await db.query<{ status: string; disabled: boolean }>(
    'SELECT d.status, w.disabled_at IS NOT NULL AS disabled FROM webhook_deliveries d JOIN webhook_endpoints w ON w.id = d.endpoint_id WHERE d.id = $1',
    [id],
  );
  const [row] = rows;
  if (!row) return null;
  if (row.disabled) return { retried: false, reason: 'its endpoint was removed' };
  if (row.status === 'delivered') return { retried: false, reason: 'it was delivered already' };
  await db.query(`UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $2 WHERE id = $1 AND status <> 'delivered'`, [
    id,
    new Date(now).toISOString(),
  ]);
  return { retried: true };
}
