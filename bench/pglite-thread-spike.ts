/**
 * A spike, not product code: PGlite in a worker thread behind the Warehouse interface (every
 * statement a message), to measure whether the rollup's count and its PGlite write overlap then
 * as they do with a Postgres server (bench/results/2026-12-05-rollup-pglite.md). `Rollup.backfill`
 * of the compacted bench lake into a new PGlite folder per run: in this process (as meter runs it)
 * vs in a worker thread, with 1 and 8 hours per write transaction, rotated.
 *
 *   node dist/bench/pglite-thread-spike.js [hours=8] [runs=3]
 */
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { PGlite, Transaction } from '@electric-sql/pglite';
import type { Sql, Warehouse } from '../src/warehouse/warehouse.js';

interface Msg {
  id: number;
  op: 'query' | 'begin' | 'end' | 'close';
  tx?: number;
  text?: string;
  params?: unknown[];
  copy?: string;
  ok?: boolean;
}

if (!isMainThread) {
  const { PGlite: Db } = await import('@electric-sql/pglite');
  const db: PGlite = new Db(workerData.dir as string);
  await db.waitReady;
  const txs = new Map<number, { tx: Transaction; done: () => void; fail: (e: Error) => void; ended: Promise<void> }>();
  const port = parentPort!;
  port.on('message', async (m: Msg) => {
    try {
      if (m.op === 'query') {
        const on = m.tx ? txs.get(m.tx)!.tx : db;
        const r = await on.query(m.text!, m.params ?? [], m.copy !== undefined ? { blob: new Blob([m.copy]) } : undefined);
        port.postMessage({ id: m.id, rows: r.rows });
      } else if (m.op === 'begin') {
        const ended = db.transaction(
          (tx) =>
            new Promise<void>((done, fail) => {
              // Registered before the reply: the main thread's next message may use it at once.
              txs.set(m.id, { tx, done, fail, ended });
              port.postMessage({ id: m.id, rows: [] });
            }),
        );
        ended.catch(() => {});
      } else if (m.op === 'end') {
        const t = txs.get(m.tx!)!;
        txs.delete(m.tx!);
        if (m.ok) t.done();
        else t.fail(new Error('rolled back'));
        try {
          await t.ended;
          port.postMessage({ id: m.id, rows: [] });
        } catch (e) {
          if (m.ok) throw e;
          port.postMessage({ id: m.id, rows: [] });
        }
      } else if (m.op === 'close') {
        await db.close();
        port.postMessage({ id: m.id, rows: [] });
      }
    } catch (e) {
      port.postMessage({ id: m.id, error: { message: (e as Error).message, code: (e as { code?: string }).code } });
    }
  });
}

class ThreadWarehouse implements Warehouse {
  readonly kind = 'pglite' as const;
  private seq = 0;
  private readonly waiting = new Map<number, { ok: (rows: unknown[]) => void; fail: (e: Error) => void }>();
  constructor(private readonly worker: Worker) {
    worker.on('message', (r: { id: number; rows?: unknown[]; error?: { message: string; code?: string } }) => {
      const w = this.waiting.get(r.id)!;
      this.waiting.delete(r.id);
      if (r.error) w.fail(Object.assign(new Error(r.error.message), { code: r.error.code }));
      else w.ok(r.rows ?? []);
    });
  }
  static async open(dir: string): Promise<ThreadWarehouse> {
    const w = new ThreadWarehouse(new Worker(fileURLToPath(import.meta.url), { workerData: { dir } }));
    await w.query('SELECT 1');
    return w;
  }
  private call<T>(m: Omit<Msg, 'id'>): Promise<T[]> {
    const id = ++this.seq;
    return new Promise((ok, fail) => {
      this.waiting.set(id, { ok: ok as (rows: unknown[]) => void, fail });
      this.worker.postMessage({ ...m, id });
    });
  }
  query<T = Record<string, unknown>>(text: string, params?: unknown[]): Promise<T[]> {
    return this.call<T>({ op: 'query', text, params: params ?? [] });
  }
  async transaction<T>(fn: (tx: Sql) => Promise<T>): Promise<T> {
    const id = this.seq + 1;
    await this.call({ op: 'begin' });
    try {
      const out = await fn({
        query: <R>(text: string, params?: unknown[]) => this.call<R>({ op: 'query', tx: id, text, params: params ?? [] }),
        copyIn: async (table, columns, text) => {
          await this.call({ op: 'query', tx: id, text: `COPY ${table} (${columns.join(', ')}) FROM '/dev/blob'`, params: [], copy: text });
        },
      });
      await this.call({ op: 'end', tx: id, ok: true });
      return out;
    } catch (e) {
      await this.call({ op: 'end', tx: id, ok: false }).catch(() => {});
      throw e;
    }
  }
  async close(): Promise<void> {
    await this.call({ op: 'close' });
    await this.worker.terminate();
  }
}

async function main(): Promise<void> {
  const { PgliteWarehouse } = await import('../src/warehouse/pglite-warehouse.js');
  const { migrate } = await import('../src/warehouse/migrate.js');
  const { LocalLake } = await import('../src/lake/local-lake.js');
  const { Rollup } = await import('../src/pipeline/rollup.js');
  const { benchWorkDir, fmt, median } = await import('./lib.js');
  const args = process.argv.slice(2);
  const hours = Number(args[0] ?? 8);
  const runs = Number(args[1] ?? 3);
  const root = join(benchWorkDir(), `lake-1000eps-${hours <= 8 ? 8 : 24}h-compacted`);
  const FROM = Date.UTC(2021, 2, 1);
  const sides: { name: string; thread: boolean; perWrite: number }[] = [
    { name: 'in process, 8 hours per write', thread: false, perWrite: 8 },
    { name: 'worker thread, 1 hour per write', thread: true, perWrite: 1 },
    { name: 'worker thread, 8 hours per write', thread: true, perWrite: 8 },
  ];
  const got = new Map<string, { ms: number; cpu: number }[]>(sides.map((s) => [s.name, []]));
  console.log(`# PGlite in process vs in a worker thread: ${hours} h of ${root}, ${runs} rotated runs`);
  for (let i = 0; i < runs; i++)
    for (let j = 0; j < sides.length; j++) {
      const side = sides[(i + j) % sides.length]!;
      const dir = join(benchWorkDir(), 'pglite-thread-spike');
      rmSync(dir, { recursive: true, force: true });
      rmSync(`${dir}.lock`, { recursive: true, force: true });
      const db: Warehouse = side.thread ? await ThreadWarehouse.open(dir) : await PgliteWarehouse.open(dir);
      try {
        await migrate(db);
        const r = new Rollup({ lake: new LocalLake(pathToFileURL(root).href), db, hoursPerWrite: side.perWrite });
        const c0 = process.cpuUsage();
        const t0 = performance.now();
        const s = await r.backfill(FROM, FROM + hours * 3_600_000);
        const ms = performance.now() - t0;
        const c = process.cpuUsage(c0);
        await r.close();
        if (s.hours !== hours) throw new Error(`${side.name}: ${s.hours} hours`);
        got.get(side.name)!.push({ ms, cpu: (c.user + c.system) / 1000 });
        console.log(
          `run ${i + 1} ${side.name}: ${fmt(ms)} ms wall, CPU ${fmt((c.user + c.system) / 1000)} ms (worker's included); load ${loadavg()[0]!.toFixed(1)}`,
        );
      } finally {
        await db.close();
      }
    }
  for (const s of sides) {
    const l = got.get(s.name)!;
    console.log(`${s.name}: median ${fmt(median(l.map((x) => x.ms)))} ms wall, CPU ${fmt(median(l.map((x) => x.cpu)))} ms`);
  }
}

if (isMainThread) await main();
