/** Embedded warehouse: PGlite (Postgres 18 compiled to WASM) in a folder under the data dir. */
import { mkdirSync, readFileSync } from 'node:fs';
import { PGlite } from '@electric-sql/pglite';
import type { Sql, Warehouse } from './warehouse.js';
import { takeLock, LockedError } from '../ground/pid-lock.js';
import { UserError } from '../ground/errors.js';

/** `meter <command>` of a process from its command line (Linux /proc), or null if unknown. */
function commandOf(pid: number): string | null {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    const i = argv.findIndex((a) => /(^|\/)(meter(\.js)?)$/.test(a));
    // The first bare word: option values before it are paths, numbers or names with dots.
    const cmd = i >= 0 ? argv.slice(i + 1).find((a) => /^[a-z][a-z-]+$/.test(a)) : undefined;
    return cmd ? `meter ${cmd}` : null;
  } catch {
    return null;
  }
}

export class PgliteWarehouse implements Warehouse {
  readonly kind = 'pglite' as const;
  private constructor(
    private readonly db: PGlite,
    private readonly release: () => void,
  ) {}

  /**
   * `dir` null = in memory (tests). `snapshot`: a dump (`dump()`) to start an in-memory database
   * from instead of an empty one: it skips initdb, most of the ~3 s of CPU a new PGlite costs.
   */
  static async open(dir: string | null, snapshot?: Blob): Promise<PgliteWarehouse> {
    if (dir && snapshot) throw new Error('internal: a snapshot seeds an in-memory warehouse only');
    let release = () => {};
    if (dir) {
      mkdirSync(dir, { recursive: true });
      // PGlite is one process's database: a second opener would corrupt it.
      try {
        release = takeLock(`${dir}.lock`);
      } catch (e) {
        if (e instanceof LockedError) {
          const holder = commandOf(e.pid);
          throw new UserError(
            `the embedded warehouse ${dir} is in use by process ${e.pid}${holder ? ` (${holder})` : ''}`,
            holder?.startsWith('meter dev')
              ? 'embedded Postgres (PGlite) serves one process, and `meter dev` holds it: stop it to run this command, or set METER_DATABASE_URL to a Postgres server so commands can run beside it'
              : 'embedded Postgres (PGlite) serves one process: run the parts together with `meter dev`, stop the other process, or set METER_DATABASE_URL to a Postgres server',
          );
        }
        throw e;
      }
    }
    const db = dir ? new PGlite(dir) : new PGlite(snapshot ? { loadDataDir: snapshot } : {});
    await db.waitReady;
    return new PgliteWarehouse(db, release);
  }

  async query<T = Record<string, unknown>>(text: string, params?: unknown[]): Promise<T[]> {
    const r = await this.db.query<T>(text, params);
    return r.rows;
  }

  /**
   * Each statement of a transaction first lets the event loop turn: PGlite runs on this thread
   * and answers without I/O, so a transaction would otherwise run to its end in one stretch of
   * promise callbacks, and work waiting on other threads (the rollup's DuckDB count of the next
   * hour) could not take its results and start its next query until then. Other statements of
   * this warehouse still wait for the transaction (PGlite's own lock).
   */
  async transaction<T>(fn: (tx: Sql) => Promise<T>): Promise<T> {
    return this.db.transaction(async (tx) =>
      fn({
        query: async <R>(text: string, params?: unknown[]) => {
          await turn();
          return (await tx.query<R>(text, params)).rows;
        },
        copyIn: async (table, columns, text) => {
          await turn();
          await tx.query(copyFromBlob(table, columns), [], { blob: new Blob([text]) });
        },
      }),
    );
  }

  async copyIn(table: string, columns: string[], text: string): Promise<void> {
    await this.db.query(copyFromBlob(table, columns), [], { blob: new Blob([text]) });
  }

  /** The whole database as an uncompressed tarball, for `open(null, snapshot)`. */
  async dump(): Promise<Blob> {
    return this.db.dumpDataDir('none');
  }

  async close(): Promise<void> {
    await this.db.close();
    this.release();
  }
}

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** PGlite feeds `COPY ... FROM '/dev/blob'` from the query's `blob` option. Names are the caller's constants, never input. */
function copyFromBlob(table: string, columns: string[]): string {
  return `COPY ${table} (${columns.join(', ')}) FROM '/dev/blob'`;
}
