/**
 * The warehouse on a PostgreSQL server, through a `pg` Pool.
 *
 * Values come back in the same shapes as PGlite gives them, so code and tests see no difference:
 *   int8 (bigint, count(*), sum of int) -> number when it is a safe integer, else bigint
 *   numeric -> string (exact), timestamptz/timestamp -> Date, date -> Date at UTC midnight,
 *   int2/int4/float -> number, bool -> boolean, json/jsonb -> parsed.
 * (pg's defaults differ only for int8, which it returns as a string, and for date, which it
 * parses as local midnight.) Parsers are set on this pool only, not globally.
 */
import pg from 'pg';
import { createHash } from 'node:crypto';
import type { ConnectionOptions } from 'node:tls';
import { explainPgError } from '../security/auth-errors.js';
import { redactUrl } from '../config/config.js';
import { UserError } from '../ground/errors.js';
import type { QueryOptions, Sql, Warehouse } from './warehouse.js';

const INT8 = 20;
const DATE = 1082;
const INT8_ARRAY = 1016;
/** Distinct texts run as named prepared statements per pool (the rest run unnamed). */
const MAX_PREPARED = 200;

function parseInt8(v: string): number | bigint {
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : BigInt(v);
}

function parseDate(v: string): Date | string {
  // 'infinity' and BC dates stay strings, like pg's own parser does for odd values.
  return /^\d{4}-\d{2}-\d{2}$/.test(v) ? new Date(`${v}T00:00:00Z`) : v;
}

// pg's array parser is not in its type definitions.
const arrayParser = (pg.types as unknown as { arrayParser?: { create(s: string, f: (x: string) => unknown): { parse(): unknown[] } } }).arrayParser;

const types = {
  getTypeParser(oid: number, format?: string): (v: string) => unknown {
    if (format !== 'binary') {
      if (oid === INT8) return parseInt8;
      if (oid === DATE) return parseDate;
      if (oid === INT8_ARRAY && arrayParser) return (v: string) => arrayParser.create(v, parseInt8).parse();
    }
    return (pg.types.getTypeParser as (oid: number, format?: string) => (v: string) => unknown)(oid, format);
  },
};

interface PoolOptions {
  max?: number;
  ssl?: ConnectionOptions;
  statementTimeoutMs?: number;
}

export class PgWarehouse implements Warehouse {
  readonly kind = 'postgres' as const;
  private constructor(
    private readonly pool: pg.Pool,
    private readonly url: string,
    private readonly opts: PoolOptions,
  ) {}

  /** Connects (and checks the connection) to `url`, e.g. postgres://meter:meter@127.0.0.1:15432/meter */
  static async open(url: string, opts: PoolOptions = {}): Promise<PgWarehouse> {
    const pool = PgWarehouse.pool(url, opts);
    try {
      await pool.query('SELECT 1');
    } catch (e) {
      await pool.end().catch(() => {});
      // A refused login or a TLS mismatch is a setting to fix (exit 2); anything else an outage.
      const why = explainPgError(e as Error);
      const msg = `cannot connect to ${redact(url)}: ${why}`;
      throw why !== (e as Error).message ? new UserError(msg) : new Error(msg);
    }
    return new PgWarehouse(pool, url, opts);
  }

  private static pool(url: string, opts: PoolOptions): pg.Pool {
    const pool = new pg.Pool({
      connectionString: url,
      max: opts.max ?? 8,
      types,
      connectionTimeoutMillis: 10_000,
      idleTimeoutMillis: 30_000,
      application_name: 'meter',
      ...(opts.ssl ? { ssl: opts.ssl } : {}),
      // Sent at connection start-up, so it costs no round trip per statement.
      ...(opts.statementTimeoutMs ? { statement_timeout: opts.statementTimeoutMs } : {}),
    } as pg.PoolConfig);
    // An idle client losing its server must not crash the process; the next query reconnects.
    pool.on('error', (e) => process.stderr.write(`postgres pool: ${e.message}\n`));
    return pool;
  }

  private readonly timed: PgWarehouse[] = [];

  withStatementTimeout(ms: number): Warehouse {
    const opts = { ...this.opts, statementTimeoutMs: ms };
    const w = new PgWarehouse(PgWarehouse.pool(this.url, opts), this.url, opts);
    this.timed.push(w);
    return w;
  }

  /** Names of the prepared statements (by text); bounded, so the server keeps few plans. */
  private readonly names = new Map<string, string>();

  async query<T = Record<string, unknown>>(text: string, params?: unknown[], opts?: QueryOptions): Promise<T[]> {
    const name = opts?.prepare ? this.statementName(text) : undefined;
    const r = name ? await this.pool.query({ name, text, values: params }) : await this.pool.query(text, params);
    return r.rows as T[];
  }

  private statementName(text: string): string | undefined {
    let name = this.names.get(text);
    if (name === undefined && this.names.size < MAX_PREPARED)
      this.names.set(text, (name = `meter_${createHash('sha256').update(text).digest('hex').slice(0, 24)}`));
    return name;
  }

  /** One dedicated connection for the whole transaction; ROLLBACK on any throw. */
  async transaction<T>(fn: (tx: Sql) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    let broken = false;
    // A checked-out client has no pool listener: if the server ends the connection between our
    // statements (Postgres stopping), pg emits 'error' on it, and unheard that kills the process.
    // The next statement rejects anyway, so note it and drop the connection.
    const onError = () => (broken = true);
    client.on('error', onError);
    try {
      await client.query('BEGIN');
      const tx: Sql = {
        query: async <R>(text: string, params?: unknown[]) => (await client.query(text, params)).rows as R[],
      };
      const out = await fn(tx);
      await client.query('COMMIT');
      return out;
    } catch (e) {
      try {
        await client.query('ROLLBACK');
      } catch {
        broken = true; // connection is gone: drop it from the pool
      }
      throw e;
    } finally {
      client.removeListener('error', onError);
      client.release(broken);
    }
  }

  private closed?: Promise<void>;

  /** Idempotent: a timed warehouse is closed by its user and again by its parent. */
  close(): Promise<void> {
    return (this.closed ??= (async () => {
      await Promise.all(this.timed.splice(0).map((w) => w.close()));
      await this.pool.end();
    })());
  }
}

const redact = redactUrl;
