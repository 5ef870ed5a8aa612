/** Embedded warehouse: PGlite (Postgres 18 compiled to WASM) in a folder under the data dir. */
import { mkdirSync } from 'node:fs';
import { PGlite } from '@electric-sql/pglite';
import type { Sql, Warehouse } from './warehouse.js';

export class PgliteWarehouse implements Warehouse {
  readonly kind = 'pglite' as const;
  private constructor(private readonly db: PGlite) {}

  /** `dir` null = in memory (tests). */
  static async open(dir: string | null): Promise<PgliteWarehouse> {
    if (dir) mkdirSync(dir, { recursive: true });
    const db = dir ? new PGlite(dir) : new PGlite();
    await db.waitReady;
    return new PgliteWarehouse(db);
  }

  async query<T = Record<string, unknown>>(text: string, params?: unknown[]): Promise<T[]> {
    const r = await this.db.query<T>(text, params as any[]);
    return r.rows;
  }

  async transaction<T>(fn: (tx: Sql) => Promise<T>): Promise<T> {
    return this.db.transaction(async (tx) =>
      fn({ query: async <R,>(text: string, params?: unknown[]) => (await tx.query<R>(text, params as any[])).rows }),
    );
  }

  async close(): Promise<void> {
    await this.db.close();
  }
}
