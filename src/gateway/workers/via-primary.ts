/**
 * A worker's view of the backends only the primary process can hold in embedded mode: PGlite
 * (one process per data dir), the in-process limiter (its buckets must be one set for the limits
 * to stay exact across workers) and the file log (one writer). Each forwards to the primary over
 * the worker's Peer; served by serveBackends() in the primary.
 */
import type { Limit, LimitDecision, RateLimiter } from '../../limiter/limiter.js';
import type { LogConsumer, LogProducer, ProducerRecord, UsageLog } from '../../log/log.js';
import type { QueryOptions, Sql, Warehouse } from '../../warehouse/warehouse.js';
import type { Peer } from './peer.js';

export class LimiterViaPrimary implements RateLimiter {
  readonly kind = 'memory' as const;
  constructor(private readonly peer: Peer) {}
  take(bucket: string, limit: Limit, cost?: number): Promise<LimitDecision> {
    return this.peer.call('limiter.take', bucket, limit, cost);
  }
  async close(): Promise<void> {}
}

class ProducerViaPrimary implements LogProducer {
  constructor(private readonly peer: Peer) {}
  /** Resolves when the primary's log has the records durable (its producer's send resolved). */
  send(records: ProducerRecord[]): Promise<void> {
    return this.peer.call('log.send', records);
  }
  async close(): Promise<void> {}
}

export class LogViaPrimary implements UsageLog {
  readonly kind = 'embedded' as const;
  constructor(
    private readonly peer: Peer,
    readonly topic: string,
  ) {}
  async init(): Promise<void> {}
  partitions(): Promise<number> {
    return this.peer.call('log.partitions');
  }
  async producer(): Promise<LogProducer> {
    return new ProducerViaPrimary(this.peer);
  }
  consumer(_group: string): Promise<LogConsumer> {
    return Promise.reject(new Error('a gateway worker does not consume the log'));
  }
  async close(): Promise<void> {}
}

export class WarehouseViaPrimary implements Warehouse {
  readonly kind = 'pglite' as const;
  constructor(private readonly peer: Peer) {}
  query<T = Record<string, unknown>>(text: string, params?: unknown[], _opts?: QueryOptions): Promise<T[]> {
    return this.peer.call('db.query', text, params ?? []);
  }
  transaction<T>(_fn: (tx: Sql) => Promise<T>): Promise<T> {
    return Promise.reject(new Error('a gateway worker runs no transactions'));
  }
  async close(): Promise<void> {}
}

/** The primary's side: answer a worker's calls with the backends it holds (embedded ones only). */
export function serveBackends(peer: Peer, b: { limiter?: RateLimiter; producer?: () => Promise<LogProducer>; log?: UsageLog; db?: Sql }): void {
  const { limiter, producer, log, db } = b;
  if (limiter) peer.handle('limiter.take', (bucket: string, limit: Limit, cost?: number) => limiter.take(bucket, limit, cost));
  if (producer)
    peer.handle('log.send', async (records: ProducerRecord[]) =>
      (await producer()).send(records.map((r) => (Buffer.isBuffer(r.value) ? r : { key: r.key, value: Buffer.from(r.value) }))),
    );
  if (log) peer.handle('log.partitions', () => log.partitions());
  if (db) peer.handle('db.query', (text: string, params: unknown[]) => db.query(text, params));
}
