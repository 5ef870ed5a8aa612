/**
 * A backfill through a warehouse restart, on the stack's real Postgres: the warehouse is reached
 * through a TCP forwarder, and "restart" cuts every connection and refuses new ones until
 * "back" (the server itself is not stopped: other tests use it; test/faults restarts the real
 * server). The backfill must go on from the hour in flight and report hours done and left;
 * when it gives up, `rollup --follow` repairs the hours it left.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { LocalLake } from '../../src/lake/local-lake.js';
import { HOUR_MS, dataFileName, hourDir } from '../../src/lake/layout.js';
import { PgWarehouse } from '../../src/warehouse/pg-warehouse.js';
import { migrate } from '../../src/warehouse/migrate.js';
import { Rollup } from '../../src/pipeline/rollup.js';
import { BackfillIncomplete, backfill } from '../../src/pipeline/backfill.js';
import { uuidv7 } from '../../src/events/usage-event.js';
import { freshDatabase, stackEnv } from '../support/stack.js';
import { fileDuck, writeLakeFile } from '../support/duck-lake.js';
import { tempDir } from '../support/tmp.js';
import { freePort } from '../support/net.js';
import { until } from '../support/until.js';
import { emptyHourFolders } from '../support/hour-folders.js';

const duck = fileDuck();
const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function writeHour(root: string, hour: number, n: number): Promise<void> {
  const file = join(root, hourDir(hour), dataFileName('usage-events', 0, hour / HOUR_MS, hour / HOUR_MS + n - 1));
  const rows = Array.from({ length: n }, (_, i) => ({ id: uuidv7(hour + i), time: hour + i, customer: 'acme', api: 'locations.create' }));
  await writeLakeFile(duck.conn, file, rows);
}

/** A TCP path to Postgres that can be cut (every connection reset, new ones refused) and restored. */
class Cuttable {
  private server: Server | null = null;
  private readonly socks = new Set<Socket>();
  constructor(
    readonly port: number,
    private readonly to: { host: string; port: number },
  ) {}
  async up(): Promise<void> {
    this.server = createServer((c) => {
      const u = connect(this.to.port, this.to.host);
      this.socks.add(c).add(u);
      c.pipe(u).pipe(c);
      c.on('error', () => u.destroy());
      u.on('error', () => c.destroy());
      c.on('close', () => this.socks.delete(c));
      u.on('close', () => this.socks.delete(u));
    });
    await new Promise<void>((r) => this.server!.listen(this.port, '127.0.0.1', r));
  }
  async down(): Promise<void> {
    const s = this.server;
    this.server = null;
    for (const x of this.socks) x.destroy();
    if (s) await new Promise<void>((r) => s.close(() => r()));
  }
}

const env = await stackEnv(['postgres']);

/** 120 hours, each with a lake folder (a backfill visits those), data in the last 3 (10, 20, 30 events); rolled up once, then those rows damaged. */
async function world() {
  const url = new URL(await freshDatabase(env, 'backfill'));
  const cut = new Cuttable(await freePort(), { host: url.hostname, port: Number(url.port) });
  await cut.up();
  url.hostname = '127.0.0.1';
  url.port = String(cut.port);
  const db = await PgWarehouse.open(url.toString());
  await migrate(db);
  const root = tempDir('meter-backfill-');
  dirs.push(root);
  const lake = new LocalLake(pathToFileURL(root).href);
  await lake.init();
  const from = Date.UTC(2026, 9, 1, 0);
  const to = from + 120 * HOUR_MS;
  const data = [to - 3 * HOUR_MS, to - 2 * HOUR_MS, to - HOUR_MS];
  emptyHourFolders(root, from, to);
  for (const [i, h] of data.entries()) await writeHour(root, h, 10 * (i + 1));
  const rollup = new Rollup({ lake, db });
  await rollup.run();
  // What a backfill is for: rows gone wrong while the files did not change (a restored dump, a bug).
  await db.query(`UPDATE usage_hourly SET calls = calls + 7, events = events + 7`);
  assert.deepEqual(await rollup.pendingHours(), [], 'the file check alone does not see it');
  const rows = async () =>
    (await db.query<{ hour: Date; calls: string }>(`SELECT hour, calls::text AS calls FROM usage_hourly ORDER BY hour`)).map((r) => [
      new Date(r.hour).getTime(),
      Number(r.calls),
    ]);
  const right = data.map((h, i) => [h, 10 * (i + 1)]);
  return { db, lake, rollup, cut, from, to, rows, right, close: async () => (await rollup.close(), await db.close(), await lake.close(), await cut.down()) };
}

test('backfill: a warehouse restart mid-way is retried from the hour in flight; every hour done once, reported', { timeout: 180_000 }, async () => {
  const w = await world();
  try {
    let cutAt = -1;
    const retries: string[] = [];
    const done: number[] = [];
    const report = await backfill(w.rollup, w.from, w.to, {
      retryBaseMs: 200,
      retryMaxMs: 1000,
      onProgress: (n) => {
        done.push(n);
        if (n === 40 && cutAt < 0) {
          cutAt = n;
          void w.cut.down().then(() => setTimeout(() => void w.cut.up(), 1500));
        }
      },
      onRetry: (e, wait, n, total) => retries.push(`${n}/${total} ${wait} ms: ${e.message}`),
    });
    assert.equal(cutAt, 40);
    assert.ok(retries.length >= 1, 'the restart was retried');
    assert.ok(
      retries.every((r) => r.startsWith('40/120') || /^4\d\/120/.test(r)),
      retries.join('\n'),
    );
    assert.deepEqual(
      done,
      Array.from({ length: 120 }, (_, i) => i + 1),
      'each hour reported done once, in order',
    );
    assert.equal(report.hoursDone, 120);
    assert.equal(report.hoursLeft, 0);
    assert.equal(report.firstHourLeft, null);
    assert.equal(report.retries, retries.length);
    assert.equal(report.events, 60);
    assert.deepEqual(await w.rows(), w.right, 'the damaged rows are right again');
  } finally {
    await w.close();
  }
});

test('backfill gives up after --retry-for with hours done and left and the command to resume; follow repairs what it left', { timeout: 180_000 }, async () => {
  const w = await world();
  try {
    let err: unknown = null;
    try {
      await backfill(w.rollup, w.from, w.to, {
        giveUpAfterMs: 2000,
        retryBaseMs: 200,
        retryMaxMs: 500,
        onProgress: (n) => {
          if (n === 60) void w.cut.down();
        },
      });
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof BackfillIncomplete, String(err));
    const r = err.report;
    assert.equal(r.hoursDone, 60);
    assert.equal(r.hoursLeft, 60);
    assert.equal(r.firstHourLeft, new Date(w.from + 60 * HOUR_MS).toISOString());
    assert.match(err.message, /no hour could be written for \d+ s/);
    assert.ok(err.message.includes(`Resume with: meter rollup --backfill --from ${r.firstHourLeft} --to ${new Date(w.to).toISOString()}`), err.message);

    await w.cut.up();
    assert.notDeepEqual(await w.rows(), w.right, 'the hours left behind are still wrong');
    const ac = new AbortController();
    const logs: string[] = [];
    const logger = { info: () => {}, debug: () => {}, warn: (m: string) => logs.push(m), error: (m: string) => logs.push(m), child: () => logger } as any;
    const follower = new Rollup({ lake: w.lake, db: w.db, logger });
    const following = follower.follow(100, ac.signal, undefined, 1000);
    try {
      await until(
        () => `follow to repair the hours; its log: ${logs.join(' | ')}`,
        async () => JSON.stringify(await w.rows()) === JSON.stringify(w.right),
        30_000,
        100,
      );
    } finally {
      ac.abort();
      await following;
      await follower.close();
    }
    assert.deepEqual(await w.rows(), w.right, `follow repaired the hours; its log: ${logs.join(' | ')}`);
    assert.match(logs.join('\n'), /3 hours hold rows that disagree/);
  } finally {
    await w.close();
  }
});
