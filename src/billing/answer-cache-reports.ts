/**
 * Cost and usage answers of the billing API, kept in memory (answer-cache.ts) while nothing they
 * were computed from has moved. An answer is a function of the catalog (catalog_version: plans,
 * prices, the customer's zone and currency) and of billable_hourly over the hours it reads,
 * which is usage_hourly and rollup_hours (usage_version 'rollup') and live_hourly where the
 * live path is ahead (usage_version 'live'). So an answer is tagged with those numbers as the
 * answer's own CatalogView read them (catalog-cache.ts: a read that started after the request
 * came, so every change committed before it is seen, by every billing server on the warehouse).
 * The live number is part of the tag only when live_hourly holds an hour inside the range the
 * answer reads: a closed period holds while the live path counts the open hour, and an answer
 * over the open hour is computed again when the live path moves it.
 *
 * dataCompleteUntil moves every second and says nothing about the rows: it is not kept, but
 * added to the kept text per answer, from the answer's own view.
 */
import { createHash } from 'node:crypto';
import type { Sql } from '../warehouse/warehouse.js';
import type { BillingCustomer } from './customers.js';
import type { CatalogView, UsageVersion } from './catalog-cache.js';
import { AnswerCache } from './answer-cache.js';
import { costAnswer, usageAnswer, type CostParams, type UsageParams } from './reports.js';
import { formatInZone } from '../ground/time.js';

/**
 * How far before `from` a cost reads: the start of from's billing period (a calendar month in
 * the customer's zone; cost.ts costPieces), never more than 31 days plus a zone's offset.
 */
const COST_READS_BEFORE_MS = 32 * 86_400_000;

/**
 * A whole answer as sent: its bytes and their entity tag (a strong ETag: a digest of the bytes,
 * so equal tags mean equal answers; a client that sends it back in If-None-Match gets a 304).
 */
export interface KeptAnswer {
  bytes: Buffer;
  etag: string;
}

/** Zones whose last printed dataCompleteUntil is kept (a zone name comes from a request). */
const MAX_ZONES = 256;

export class CachedReports {
  /** Per zone, the last instant printed and the tail it makes: every answer of a second prints the same. */
  private readonly printed = new Map<string, { ms: number | null; tail: string }>();
  /**
   * Per kept answer, its last whole bytes (the kept part and a tail): while the tail holds, every
   * answer sends the same bytes, with nothing copied or allocated. Goes with its kept answer (a
   * WeakMap entry lives as long as its key), so at most doubles what the cache's bounds count.
   */
  private readonly whole = new WeakMap<Buffer, { tail: string; answer: KeptAnswer }>();
  /** Per view (one versions statement), the start of its answers' tags. */
  private readonly tags = new WeakMap<CatalogView, string>();

  constructor(
    private readonly db: Sql,
    readonly cache = new AnswerCache<Buffer>(),
  ) {}

  /** GET .../cost as JSON bytes. */
  async cost(customer: BillingCustomer, p: CostParams, view: CatalogView): Promise<KeptAnswer> {
    const key = `cost\u0000${customer.id}\u0000${p.from}\u0000${p.to}\u0000${p.timeZone}`;
    const head = await this.cache.get(key, this.tag(view, p.from - COST_READS_BEFORE_MS, p.to), async () => open(await costAnswer(this.db, customer, p, view)));
    return this.close(head, view, p.timeZone);
  }

  /** GET .../usage as JSON bytes. */
  async usage(customer: BillingCustomer, p: UsageParams, view: CatalogView): Promise<KeptAnswer> {
    const key = `usage\u0000${customer.id}\u0000${p.from}\u0000${p.to}\u0000${p.timeZone}\u0000${p.granularity}`;
    const head = await this.cache.get(key, this.tag(view, p.from, p.to), async () => open(await usageAnswer(this.db, customer, p, view)));
    return this.close(head, view, p.timeZone);
  }

  /**
   * The kept bytes with dataCompleteUntil (the report's last field) from this answer's view.
   * Bytes, encoded once when kept: encoding a ~14 KB answer per request was a visible share of
   * the server's CPU.
   */
  private async close(head: Buffer, view: CatalogView, timeZone: string): Promise<KeptAnswer> {
    const until = await view.completeUntil();
    const tail = this.tail(until ? until.getTime() : null, timeZone);
    const last = this.whole.get(head);
    if (last && last.tail === tail) return last.answer;
    const bytes = Buffer.concat([head, Buffer.from(tail)], head.length + Buffer.byteLength(tail));
    const answer = { bytes, etag: `"${createHash('sha256').update(bytes).digest('base64url')}"` };
    this.whole.set(head, { tail, answer });
    return answer;
  }

  /** `,"dataCompleteUntil":…}` for an instant (null: none yet) in a zone. */
  private tail(ms: number | null, timeZone: string): string {
    const last = this.printed.get(timeZone);
    if (last && last.ms === ms) return last.tail;
    if (!last && this.printed.size >= MAX_ZONES) this.printed.clear();
    const tail = `,"dataCompleteUntil":${ms === null ? 'null' : JSON.stringify(formatInZone(ms, timeZone))}}`;
    this.printed.set(timeZone, { ms, tail });
    return tail;
  }

  /** tag() below, with the view's numbers printed once per view rather than per answer. */
  private tag(view: CatalogView, from: number, to: number): string {
    let start = this.tags.get(view);
    if (start === undefined) this.tags.set(view, (start = `${view.version}:${view.usage.rollup}:`));
    return start + (liveInside(view.usage, from, to) ? String(view.usage.live) : '-');
  }
}

/** An answer's JSON without its closing brace, ready for one more field. */
function open(report: object): Buffer {
  const text = JSON.stringify(report);
  return Buffer.from(text.slice(0, -1));
}

/** The versions an answer reading [from, to) depends on. */
export function tag(view: CatalogView, from: number, to: number): string {
  return `${view.version}:${view.usage.rollup}:${liveInside(view.usage, from, to) ? view.usage.live : '-'}`;
}

/** Whether live_hourly holds an hour that may lie in [from, to) (its first and last hours say). */
function liveInside(u: UsageVersion, from: number, to: number): boolean {
  return u.liveFrom !== null && u.liveTo !== null && u.liveFrom < to && u.liveTo >= from - 3_600_000;
}
