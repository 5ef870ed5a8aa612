/**
 * Faults of the gateway's spool and of the backfill (issue 18):
 *
 *   spool-disk-full-{batched,strict}  the spool's folder is a 2 MiB tmpfs (mostly filled by a
 *        ballast file); Kafka is stopped, the spool fills the disk, the gateway must say so
 *        (health `spool_full`) and answer 503 before the upstream; kill -9 of the gateway while
 *        full, restarted on the same full disk; Kafka back: the spool ships with the disk still
 *        full (cursor rewritten in place), each record once, and gives its disk back.
 *   postgres-restart-in-backfill  rows damaged (and a stray row in each hour, so every hour is
 *        visited), then `meter rollup --backfill` over 60 days with
 *        Postgres restarted while it runs: it retries and finishes (exit 0, hours done reported).
 *        Damaged again, and Postgres kept down past `--retry-for`: it exits 1 naming the hours
 *        left and the command to resume; the running `rollup --follow` repairs them.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, openSync, writeSync, closeSync, readdirSync, statfsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { KafkaLog } from '../../src/log/kafka-log.js';
import { HOUR_MS, hourStart } from '../../src/lake/layout.js';
import { PgWarehouse } from '../../src/warehouse/pg-warehouse.js';
import { MeterProcess } from './procs.js';
import { sleep, until, type ScenarioWorld } from './scenario.js';
import type { ScenarioDef } from './scenarios.js';
import { startService, stopService } from './stack-control.js';
import { startTraffic } from './traffic.js';
import { kafkaCounts } from './log-counts.js';

const freeBytes = (dir: string) => {
  const s = statfsSync(dir);
  return s.bavail * s.bsize;
};

/** Fill `dir`'s file system with a ballast file until `leave` bytes are free. */
function ballast(dir: string, leave: number): void {
  const fd = openSync(join(dir, 'ballast'), 'a');
  const chunk = Buffer.alloc(4096, 1);
  try {
    while (freeBytes(dir) > leave) writeSync(fd, chunk);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
  } finally {
    closeSync(fd);
  }
}

function umount(dir: string): void {
  try {
    execFileSync('umount', [dir]);
  } catch {
    execFileSync('umount', ['-l', dir]);
  }
}

/** Sum of the ingest group's committed offsets on the scenario's topic. */
async function ingestCommitted(w: ScenarioWorld): Promise<number> {
  const log = new KafkaLog({ brokers: w.env.METER_KAFKA_BROKERS!.split(','), topic: w.env.METER_TOPIC!, partitions: 4 });
  try {
    const c = await (await log.consumer('meter-ingest')).committed();
    return [...c.values()].reduce((a, b) => a + b, 0);
  } finally {
    await log.close();
  }
}

function spoolDiskFull(durability: 'batched' | 'strict'): ScenarioDef {
  return {
    name: `spool-disk-full-${durability}`,
    env: { METER_DURABILITY: durability },
    async run(w, ctx, notes, failures) {
      const spoolDir = join(w.env.METER_DATA_DIR!, 'spool');
      mkdirSync(spoolDir, { recursive: true });
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', spoolDir]);
      let mounted = true;
      try {
        // ~500 KiB for the spool: at 200 calls/s it fills in a few seconds of Kafka down.
        ballast(spoolDir, 512 << 10);
        await w.startGateway();
        const ingest = w.startIngest();
        const traffic = startTraffic({ gatewayUrl: w.gatewayUrl, customers: w.customers, ratePerSec: ctx.rate, seed: durability === 'strict' ? 909 : 919 });
        // Kafka goes down once ingest works (an ingest still connecting when Kafka stops exits:
        // not this scenario's subject).
        await until('ingest to commit', async () => (await ingestCommitted(w)) > 0, 90_000, 500);
        ctx.log(`${w.name}: stopping Kafka`);
        await stopService('kafka');
        const full = await until(
          'the gateway to report its spool full',
          async () => {
            const h = await w.gatewayHealth();
            return h.status === 'spool_full' ? h : null;
          },
          90_000,
          200,
        );
        if (!full.spool?.spool?.full || !/ENOSPC/.test(full.spool?.spool?.fullReason ?? ''))
          failures.push(`health during the full disk: ${JSON.stringify(full.spool)}`);
        notes.push(
          `spool full after ${traffic.sent()} calls: ${full.spool.spool.pending} events in the spool, ${full.events.buffered} in memory; reason "${full.spool.spool.fullReason}"`,
        );
        await sleep(3000); // timeline: traffic against the full spool
        // The loss a kill may cause in batched mode is what memory holds (answered, not durable).
        const before = await w.gatewayHealth();
        const kill = Date.now();
        await w.gateway!.kill9();
        await w.startGateway();
        await sleep(3000); // timeline: the restarted gateway serves with Kafka still down
        ctx.log(`${w.name}: starting Kafka`);
        await startService('kafka');
        const back = await until(
          'the spool shipped and the gateway sending directly again',
          async () => {
            const h = await w.gatewayHealth();
            return h.status === 'ok' && h.spool?.mode === 'direct' && h.spool.spool.pending === 0 ? h : null;
          },
          120_000,
          500,
        );
        await sleep(3000); // timeline: traffic once the gateway sends directly again
        const truth = await traffic.stop();
        await until(
          'the gateway to hand over every event',
          async () => {
            const h = await w.gatewayHealth();
            return h.events.buffered === 0 && h.spool.spool.pending === 0;
          },
          60_000,
        );
        const end = await w.gatewayHealth();
        notes.push(
          `after Kafka came back: shipped ${back.spool.shipper.shipped} from the spool, cursor write errors ${back.spool.spool.cursorWriteErrors}, ` +
            `spool bytes ${end.spool.spool.bytes} (reclaimed ${end.spool.spool.reclaimedBytes} in ${end.spool.spool.reclaimedSegments} segments)`,
        );
        if (end.spool.spool.bytes !== 0) failures.push(`the shipped spool still holds ${end.spool.spool.bytes} bytes`);
        const temps = readdirSync(join(spoolDir, w.env.METER_TOPIC!, '_consumers')).filter((f) => f.endsWith('.tmp'));
        if (temps.length) failures.push(`temp files left in the spool: ${temps.join(', ')}`);
        if (!ingest.alive) failures.push(`ingest died (see ${ingest.logFile})`);
        // Stop it here, so the tmpfs can go (drain() skips a stopped gateway).
        const e = await w.gateway!.stop();
        if (e.code !== 0) failures.push(`gateway exited with ${e.code}/${e.signal} on SIGTERM`);
        umount(spoolDir);
        mounted = false;
        const k = await kafkaCounts(w);
        // One resend is possible per kill (a batch sent but its cursor not yet written): at most
        // the shipper's batch (2,000).
        notes.push(`Kafka holds ${k.records} records for ${k.ids} event ids`);
        if (k.records - k.ids > 2000) failures.push(`Kafka holds ${k.records - k.ids} duplicate records: the spool re-sent what Kafka had`);
        // The gateway's own 5xx (the upstream's deliberate 503s excluded): all must be usage_unavailable.
        const refused = truth.gateway5xx;
        const other = truth.gateway5xxSamples.filter((x) => !x.includes('usage_unavailable'));
        notes.push(
          `503 usage_unavailable (refused before the upstream) ${refused}, cut mid-call ${[...truth.uncertain.values()].reduce((s, c) => s + c.events, 0)}`,
        );
        if (!refused) failures.push('the gateway never refused a call while its spool was full');
        if (other.length) failures.push(`gateway 5xx other than usage_unavailable: ${other.join(' | ')}`);
        // Batched: a kill loses what memory held (events of calls answered before the spool was
        // found full, plus the flush window) and the calls answered in the 1.5 s before the kill.
        let lossBound = 0;
        if (durability === 'batched') {
          lossBound = (before.events?.buffered ?? 0) + truth.answeredAt.filter((t) => t <= kill && t > kill - 1500).length;
          notes.push(`loss bound = ${before.events?.buffered ?? 0} events in memory before the kill + calls answered in the 1.5 s before it`);
        }
        return { truth, lossBound };
      } finally {
        if (mounted) {
          await w.gateway?.stop(5000).catch(() => undefined);
          umount(spoolDir);
        }
      }
    },
  };
}

export const spoolDiskFullBatched = spoolDiskFull('batched');
export const spoolDiskFullStrict = spoolDiskFull('strict');

/** Progress lines "backfill N/M hours" of a running backfill's log. */
function backfillDone(p: MeterProcess): number {
  const m = [...readFileSync(p.logFile, 'utf8').matchAll(/backfill (\d+)\/(\d+) hours/g)];
  return m.length ? Number(m[m.length - 1]![1]) : 0;
}

export const postgresRestartInBackfill: ScenarioDef = {
  name: 'postgres-restart-in-backfill',
  async run(w, ctx, notes, failures) {
    await w.startGateway();
    w.startIngest();
    let follower: MeterProcess | null = null;
    const traffic = startTraffic({ gatewayUrl: w.gatewayUrl, customers: w.customers, ratePerSec: ctx.rate, seed: 929 });
    await sleep(15_000); // timeline: traffic that gives the backfill hours to recompute
    const truth = await traffic.stop();
    // Everything into the lake and rolled up, then the rows damaged: what a backfill is for.
    await w.drain();
    const db = await PgWarehouse.open(w.env.METER_DATABASE_URL!);
    const ids = w.customers.map((c) => c.id);
    const damage = async () => {
      const n = await db.query(`UPDATE usage_hourly SET calls = calls + 3, events = events + 3 WHERE customer_id = ANY($1::text[]) RETURNING 1`, [ids]);
      return n.length;
    };
    const rightNow = async () => {
      const r = await db.query<{ n: string }>(
        `SELECT count(*)::text AS n FROM usage_hourly u JOIN rollup_hours h ON h.hour = u.hour WHERE u.customer_id = ANY($1::text[])
           AND (SELECT sum(events) FROM usage_hourly x WHERE x.hour = u.hour) <> h.events`,
        [ids],
      );
      return Number(r[0]!.n) === 0;
    };
    try {
      const now = Date.now();
      const from = new Date(hourStart(now) - 60 * 24 * HOUR_MS).toISOString();
      const to = new Date(hourStart(now) + HOUR_MS).toISOString();
      // A backfill visits the hours that hold something (lake folders, rows): a stray row in every
      // hour of the 60 days, of a customer outside the traffic, gives it 1441 hours to clear.
      const ballast = () =>
        db.query(
          `INSERT INTO usage_hourly (customer_id, api, hour, calls, events)
           SELECT 'backfill-ballast', 'stray', h, 1, 1 FROM generate_series($1::timestamptz, $2::timestamptz - interval '1 hour', interval '1 hour') h
           ON CONFLICT DO NOTHING`,
          [from, to],
        );

      // 1. Postgres restarted inside the backfill: retried, finished, exit 0.
      notes.push(`damaged ${await damage()} rows`);
      await ballast();
      const bf = new MeterProcess('backfill', ['rollup', '--backfill', '--from', from, '--to', to], w.env, join(w.dir, 'backfill-1.log'));
      await until('the backfill to be under way', async () => !bf.alive || backfillDone(bf) >= 48, 120_000, 100);
      if (!bf.alive) failures.push(`the backfill ended before Postgres was restarted: ${bf.tail(3)}`);
      const at = backfillDone(bf);
      ctx.log(`${w.name}: restarting Postgres at hour ${at} of the backfill`);
      await stopService('postgres');
      await sleep(3000); // timeline: Postgres down 3 s inside the backfill is the fault
      await startService('postgres');
      const e1 = await bf.exited;
      const last = bf.tail(5);
      const m = /backfill: (\d+) of (\d+) hours done, (\d+) left, (\d+) retries/.exec(last);
      notes.push(`backfill 1: Postgres restarted at hour ${at}; exit ${e1.code}; ${m ? m[0] : last}`);
      if (e1.code !== 0) failures.push(`the backfill exited ${e1.code} after a Postgres restart:\n${last}`);
      else if (!m || m[1] !== m[2] || m[3] !== '0' || Number(m[4]) < 1) failures.push(`backfill 1 did not report all hours done after a retry: ${last}`);
      if (!(await until('rows right after backfill 1', rightNow, 30_000, 500).catch(() => false))) failures.push('rows still damaged after backfill 1');

      // 2. Postgres down past --retry-for: exit 1 with the hours left and the resume command;
      //    the follower repairs them once Postgres is back.
      await damage();
      await ballast();
      const bf2 = new MeterProcess(
        'backfill',
        ['rollup', '--backfill', '--from', from, '--to', to, '--retry-for', '3000'],
        w.env,
        join(w.dir, 'backfill-2.log'),
      );
      await until('backfill 2 to be under way', async () => !bf2.alive || backfillDone(bf2) >= 48, 120_000, 100);
      await stopService('postgres');
      const e2 = await bf2.exited;
      const msg = bf2.tail(6);
      notes.push(`backfill 2 (Postgres kept down): exit ${e2.code}; ${(/backfill stopped:[^\n]*/.exec(msg) ?? [msg])[0].slice(0, 400)}`);
      if (e2.code !== 1 || !/Hours done: \d+ of \d+; left: \d+, from \S+\. Resume with: meter rollup --backfill --from \S+ --to \S+/.test(msg))
        failures.push(`backfill 2 did not give up with hours done/left and the resume command:\n${msg}`);
      // The follower starts with Postgres still down (it retries), as one would after the failure.
      follower = new MeterProcess(
        'rollup-follow',
        ['rollup', '--follow', '--interval', '2000', '--verify-every', '5000'],
        w.env,
        join(w.dir, 'rollup-follow.log'),
      );
      await sleep(2000); // timeline: the follower runs 2 s with Postgres down
      await startService('postgres');
      const t = Date.now();
      const repaired = await until('the follower to repair the rows', rightNow, 90_000, 1000).catch(() => false);
      if (!repaired) failures.push('rollup --follow did not repair the hours the backfill left');
      else notes.push(`rollup --follow repaired the hours left ${Math.round((Date.now() - t) / 1000)} s after Postgres came back`);
      if (!follower.alive) failures.push(`rollup --follow died (see ${follower.logFile})`);
    } finally {
      await follower?.stop(15_000).catch(() => undefined);
      await db.close();
    }
    return { truth };
  },
};

export const SPOOL_SCENARIOS: ScenarioDef[] = [spoolDiskFullBatched, spoolDiskFullStrict, postgresRestartInBackfill];
