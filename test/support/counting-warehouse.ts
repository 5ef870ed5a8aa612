/** A warehouse that records the statements sent through it, for tests of what a cache saves. */
import type { QueryOptions, Sql, Warehouse } from '../../src/warehouse/warehouse.js';

/** The warehouse, counting the statements sent through it (transactions count as one). */
export class CountingWarehouse implements Warehouse {
  statements: string[] = [];
  constructor(private readonly inner: Warehouse) {}
  get kind() {
    return this.inner.kind;
  }
  query<T = Record<string, unknown>>(text: string, params?: unknown[], opts?: QueryOptions): Promise<T[]> {
    this.statements.push(text);
    return this.inner.query<T>(text, params, opts);
  }
  transaction<T>(fn: (tx: Sql) => Promise<T>): Promise<T> {
    this.statements.push('<transaction>');
    return this.inner.transaction(fn);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}
