/**
 * The warehouse: PostgreSQL through `pg` on the real stack, PGlite (Postgres in WASM) when
 * embedded. Same SQL on both; migrations in ./migrations run on open (versioned, idempotent).
 * Parameters use $1, $2 ... placeholders.
 */
export interface QueryOptions {
  /**
   * The same text runs often (a hot read): the server may keep its plan. On Postgres a named
   * prepared statement per connection (planning a view-heavy query costs more than running it);
   * elsewhere ignored.
   */
  prepare?: boolean;
}

export interface Sql {
  query<T = Record<string, unknown>>(text: string, params?: unknown[], opts?: QueryOptions): Promise<T[]>;
  /**
   * `COPY table (columns) FROM` the given text (COPY's text format: one row a line, columns
   * separated by tabs, escaped by copyText in copy-text.ts): many rows with no parameter to
   * serialize or array to parse. Only where the driver can feed COPY (PGlite, from a Blob);
   * callers fall back to other statements when absent.
   */
  copyIn?(table: string, columns: string[], text: string): Promise<void>;
}

export interface Warehouse extends Sql {
  readonly kind: 'pglite' | 'postgres';
  /** Run `fn` in one transaction; rolls back if it throws. */
  transaction<T>(fn: (tx: Sql) => Promise<T>): Promise<T>;
  close(): Promise<void>;
  /**
   * The same warehouse whose every statement the server cancels after `ms` (Postgres
   * statement_timeout, on connections of its own; closed with this one). Absent where a
   * server-side timeout cannot apply (PGlite runs in this process).
   */
  withStatementTimeout?(ms: number): Warehouse;
}
