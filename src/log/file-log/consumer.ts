/**
 * A consumer of the file log. A group has one member (the embedded log has no rebalancing):
 * `run` takes `_consumers/<group>.lock`, so a second ingest on the same group fails fast
 * instead of writing overlapping files. Each partition is tailed by polling its files.
 */
import { join } from 'node:path';
import type { ConsumeOptions, LogConsumer, LogRecord } from '../log.js';
import { takeLock } from '../../ground/pid-lock.js';
import { PartitionCursor } from './cursor.js';
import { OffsetStore } from './offsets.js';

export interface ConsumerHost {
  readonly topicDir: string;
  readonly partitionCount: number;
  readonly pollMs: number;
  readonly maxBatch: number;
  readonly log: (msg: string) => void;
  partitionDir(p: number): string;
  endOffsets(): Promise<Map<number, number>>;
  cursors: Set<PartitionCursor>;
}

export class FileLogConsumer implements LogConsumer {
  private readonly store: OffsetStore;
  private running = false;
  private loops: Promise<void>[] = [];
  private wakers = new Set<() => void>();
  private release: (() => void) | null = null;
  private opts: ConsumeOptions | null = null;

  constructor(
    private readonly host: ConsumerHost,
    private readonly group: string,
  ) {
    this.store = new OffsetStore(join(host.topicDir, '_consumers'), group);
  }

  async run(opts: ConsumeOptions): Promise<void> {
    if (this.running) throw new Error(`consumer of group ${this.group} is already running`);
    this.release = takeLock(join(this.host.topicDir, '_consumers', `${this.group}.lock`));
    try {
      const committed = await this.store.read();
      const cursors: PartitionCursor[] = [];
      await opts.onAssign?.([...Array(this.host.partitionCount).keys()]);
      for (let p = 0; p < this.host.partitionCount; p++) {
        const start = (await opts.startOffset(p)) ?? committed.get(p) ?? 0;
        const c = new PartitionCursor(this.host.partitionDir(p), p);
        await c.seek(start);
        cursors.push(c);
      }
      this.running = true;
      this.opts = opts;
      this.loops = cursors.map((c) => this.tail(c, opts));
    } catch (e) {
      this.release();
      this.release = null;
      throw e;
    }
  }

  private async tail(c: PartitionCursor, opts: ConsumeOptions): Promise<void> {
    this.host.cursors.add(c);
    let failures = 0;
    let pending: LogRecord[] = [];
    try {
      while (this.running) {
        if (pending.length === 0) pending = await c.read(this.host.maxBatch);
        if (pending.length === 0) {
          await this.sleep(this.host.pollMs);
          continue;
        }
        try {
          await opts.eachBatch({ partition: c.partition, records: pending });
          pending = [];
          failures = 0;
        } catch (e) {
          // the handler could not finish (e.g. lake down): redeliver the same batch after a pause
          failures++;
          const wait = Math.min(200 * 2 ** failures, 10_000);
          this.host.log(`partition ${c.partition}: batch at offset ${pending[0]?.offset} failed (${(e as Error).message}); retrying in ${wait} ms`);
          await this.sleep(wait);
        }
      }
    } catch (e) {
      this.host.log(`partition ${c.partition}: reader stopped: ${(e as Error).message}`);
    } finally {
      this.host.cursors.delete(c);
      await c.close();
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(t);
        this.wakers.delete(done);
        resolve();
      };
      const t = setTimeout(done, ms);
      this.wakers.add(done);
    });
  }

  commit(partition: number, nextOffset: number): Promise<void> {
    return this.store.commit(partition, nextOffset);
  }

  committed(): Promise<Map<number, number>> {
    return this.store.read();
  }

  endOffsets(): Promise<Map<number, number>> {
    return this.host.endOffsets();
  }

  async readRange(partition: number, from: number, to: number): Promise<LogRecord[]> {
    const c = new PartitionCursor(this.host.partitionDir(partition), partition);
    const out: LogRecord[] = [];
    try {
      await c.seek(from);
      while (c.nextOffset < to) {
        const recs = await c.read(Math.min(this.host.maxBatch, to - c.nextOffset));
        if (recs.length === 0) break;
        for (const r of recs) if (r.offset < to) out.push(r);
      }
    } finally {
      await c.close();
    }
    return out;
  }

  /** Linear scan per partition; timestamps never decrease within a partition. */
  async offsetsForTime(time: number): Promise<Map<number, number>> {
    const res = new Map<number, number>();
    for (let p = 0; p < this.host.partitionCount; p++) {
      const c = new PartitionCursor(this.host.partitionDir(p), p);
      try {
        await c.seek(0);
        let found: number | null = null;
        while (found === null) {
          const recs = await c.read(this.host.maxBatch);
          if (recs.length === 0) break;
          const hit = recs.find((r) => r.timestamp >= time);
          if (hit) found = hit.offset;
        }
        res.set(p, found ?? c.nextOffset);
      } finally {
        await c.close();
      }
    }
    return res;
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    for (const w of [...this.wakers]) w();
    await Promise.all(this.loops);
    this.loops = [];
    const opts = this.opts;
    this.opts = null;
    this.release?.();
    this.release = null;
    if (opts?.onRevoke) await opts.onRevoke([...Array(this.host.partitionCount).keys()]);
  }
}
