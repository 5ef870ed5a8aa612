/**
 * Hour leases (migration 012): how several rollup processes (followers, backfills) split the
 * hours between them. Before computing an hour a process claims it; the claim is a lease with
 * an expiry that a timer renews while the process lives, so a holder that dies (kill -9, lost
 * machine) frees its hours within `ttlMs`. Finishing the hour clears the lease in the same
 * transaction as the hour's rows, and only if this process still holds it: a holder that was
 * presumed dead (paused past its expiry) and taken over writes nothing.
 *
 * Times are the database's clock (clock_timestamp()), never the processes': one clock for all.
 */
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import { oneRow } from '../warehouse/one-row.js';
import type { Sql, Warehouse } from '../warehouse/warehouse.js';

export type ClaimOutcome = 'claimed' | 'held' | 'done';

/** Thrown (inside the hour's transaction, which then rolls back) when the lease was lost. */
export class LeaseLost extends Error {
  override readonly name = 'LeaseLost';
}

export interface HourLeasesOptions {
  /** Lease length; renewed every ttlMs/3. Default 30 s. */
  ttlMs?: number;
  holder?: string;
}

export class HourLeases {
  readonly holder: string;
  readonly ttlMs: number;
  private readonly held = new Set<number>();
  private timer: NodeJS.Timeout | null = null;
  private renewing: Promise<void> | null = null;

  constructor(
    private readonly db: Warehouse,
    o: HourLeasesOptions = {},
  ) {
    this.ttlMs = o.ttlMs ?? 30_000;
    this.holder = o.holder ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  }

  /** The database's now, for `since` below. */
  async now(): Promise<Date> {
    const r = oneRow(await this.db.query<{ t: unknown }>('SELECT clock_timestamp() AS t'), 'SELECT clock_timestamp()');
    return r.t instanceof Date ? r.t : new Date(String(r.t));
  }

  /**
   * Claim `hour` unless a live lease of another process holds it ('held'), or it was finished by
   * a run that claimed it at or after `claimedSince` / finished at or after `doneSince` ('done').
   */
  async claim(hourMs: number, since: { claimedSince?: Date; doneSince?: Date } = {}): Promise<ClaimOutcome> {
    const hour = new Date(hourMs).toISOString();
    const rows = await this.db.query<{ hour: unknown }>(
      `INSERT INTO rollup_leases AS l (hour, holder, expires_at, claimed_at)
       VALUES ($1, $2, clock_timestamp() + $3 * interval '1 millisecond', clock_timestamp())
       ON CONFLICT (hour) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at, claimed_at = EXCLUDED.claimed_at
        WHERE (l.holder IS NULL OR l.holder = EXCLUDED.holder OR l.expires_at < clock_timestamp())
          AND ($4::timestamptz IS NULL OR l.done_claimed_at IS NULL OR l.done_claimed_at < $4::timestamptz)
          AND ($5::timestamptz IS NULL OR l.done_at IS NULL OR l.done_at < $5::timestamptz)
       RETURNING hour`,
      [hour, this.holder, this.ttlMs, since.claimedSince?.toISOString() ?? null, since.doneSince?.toISOString() ?? null],
    );
    if (rows.length) {
      this.held.add(hourMs);
      this.startRenewing();
      return 'claimed';
    }
    const [r] = await this.db.query<{ live: boolean }>(
      `SELECT (holder IS NOT NULL AND expires_at >= clock_timestamp()) AS live FROM rollup_leases WHERE hour = $1`,
      [hour],
    );
    return r?.live ? 'held' : 'done';
  }

  /**
   * Start a backfill of [from, to), or join one of the same range still running (seen within
   * 2 ttl): returns the job's start, the "done since" for its hours.
   */
  async joinBackfill(from: number, to: number): Promise<Date> {
    const rows = await this.db.query<{ started_at: unknown }>(
      `INSERT INTO rollup_backfills AS b (from_hour, to_hour, started_at, seen_at) VALUES ($1, $2, clock_timestamp(), clock_timestamp())
       ON CONFLICT (from_hour, to_hour) DO UPDATE SET seen_at = EXCLUDED.seen_at,
         started_at = CASE WHEN b.seen_at IS NOT NULL AND b.seen_at > clock_timestamp() - 2 * $3 * interval '1 millisecond' THEN b.started_at ELSE EXCLUDED.started_at END
       RETURNING started_at`,
      [new Date(from).toISOString(), new Date(to).toISOString(), this.ttlMs],
    );
    const r = oneRow(rows, 'the rollup_backfills upsert');
    return r.started_at instanceof Date ? r.started_at : new Date(String(r.started_at));
  }

  /** The backfill is still working (`done`: finished, a new one of the range starts anew). */
  async touchBackfill(from: number, to: number, done = false): Promise<void> {
    await this.db
      // A renewal never revives a finished job (one still in flight when the backfill ended would
      // make the next backfill of the range join it and skip every hour).
      .query(
        `UPDATE rollup_backfills SET seen_at = ${done ? 'NULL' : 'clock_timestamp()'} WHERE from_hour = $1 AND to_hour = $2${done ? '' : ' AND seen_at IS NOT NULL'}`,
        [new Date(from).toISOString(), new Date(to).toISOString()],
      )
      .catch(() => {});
  }

  /** In the hour's write transaction: mark it done, or throw LeaseLost (rolls the write back). */
  finishIn(hourMs: number): (tx: Sql) => Promise<void> {
    return async (tx) => {
      const rows = await tx.query(
        `UPDATE rollup_leases SET holder = NULL, expires_at = NULL, done_at = clock_timestamp(), done_claimed_at = claimed_at
          WHERE hour = $1 AND holder = $2 RETURNING hour`,
        [new Date(hourMs).toISOString(), this.holder],
      );
      if (!rows.length) throw new LeaseLost(`the lease on hour ${new Date(hourMs).toISOString()} passed to another process`);
    };
  }

  /** After the hour's transaction (committed or not): this process no longer holds it. */
  forget(hourMs: number): void {
    this.held.delete(hourMs);
  }

  /** Give an unfinished hour back at once (the work failed), instead of waiting for its expiry. */
  async release(hourMs: number): Promise<void> {
    this.held.delete(hourMs);
    await this.db
      .query('UPDATE rollup_leases SET holder = NULL, expires_at = NULL WHERE hour = $1 AND holder = $2', [new Date(hourMs).toISOString(), this.holder])
      .catch(() => {});
  }

  private startRenewing(): void {
    if (this.timer) return;
    this.timer = setInterval(
      () => {
        if (!this.held.size || this.renewing) return;
        // One statement for every hour held; a failure is retried next tick (and the lease may
        // lapse: finishIn then refuses the write, which is the safe side).
        this.renewing = this.db
          .query(`UPDATE rollup_leases SET expires_at = clock_timestamp() + $2 * interval '1 millisecond' WHERE holder = $1`, [this.holder, this.ttlMs])
          .then(
            () => {},
            () => {},
          )
          .finally(() => (this.renewing = null));
      },
      Math.max(50, Math.floor(this.ttlMs / 3)),
    );
    this.timer.unref();
  }

  /** Stop renewing and hand back whatever is still held. */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.renewing;
    for (const h of [...this.held]) await this.release(h);
  }
}
