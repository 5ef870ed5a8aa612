/**
 * Attacks on the gateway's spool: a flood of calls while the log is down and the spool's disk is
 * full. The gateway must refuse (503) before the upstream, keep its memory bounded, and answer
 * fast; every call it answered 200 must have its event stored or held (never silently dropped).
 * The disk is a 2 MiB tmpfs (needs root, as on this machine); without it, spoolMaxBytes plays
 * the full disk and the observation says so.
 */
import { execFileSync } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { mkdirSync, openSync, writeSync, closeSync, statfsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Pool } from 'undici';
import type { Attack, AbuseCtx, AttackResult } from './attack.js';
import { KafkaLog } from '../../src/log/kafka-log.js';
import { Spool } from '../../src/gateway/spool/spool.js';
import { SpoolingProducer } from '../../src/gateway/spool/spooling-producer.js';
import { startGateway } from '../../src/gateway/server.js';
import { KeyStore, createKey } from '../../src/gateway/keys.js';
import { compileRoutes } from '../../src/gateway/routes.js';
import { MemoryLimiter } from '../../src/limiter/memory-limiter.js';
import { PgliteWarehouse } from '../../src/warehouse/pglite-warehouse.js';
import { migrate } from '../../src/warehouse/migrate.js';
import { freePort } from '../support/net.js';

function fillTo(dir: string, leave: number): void {
  const fd = openSync(join(dir, 'ballast'), 'a');
  const chunk = Buffer.alloc(4096, 1);
  const free = () => {
    const s = statfsSync(dir);
    return s.bavail * s.bsize;
  };
  try {
    while (free() > leave) writeSync(fd, chunk);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
  } finally {
    closeSync(fd);
  }
}

const pct = (xs: number[], q: number) => (xs.length ? [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * q))] : 0);

function floodOnFullDisk(durability: 'batched' | 'strict'): Attack {
  return {
    name: `flood with the spool's disk full (${durability})`,
    expected: '503 before the upstream, memory stops growing once full, 503 p50 < 20 ms (no wait on disk or log), every 200 stored or held',
    async run(ctx: AbuseCtx): Promise<AttackResult> {
      const spoolDir = join(ctx.dir, 'spool');
      mkdirSync(spoolDir, { recursive: true });
      let mounted = false;
      try {
        execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', spoolDir], { stdio: 'ignore' });
        mounted = true;
        fillTo(spoolDir, 128 << 10);
      } catch {
        // not root: spoolMaxBytes stands in for the disk
      }
      const db = await PgliteWarehouse.open(null);
      let upstreamCalls = 0;
      const upstream: Server = createServer((req, res) => {
        upstreamCalls++;
        req.resume();
        req.on('end', () => res.end('{"ok":true}'));
      });
      await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
      const kafka = new KafkaLog({ brokers: [`127.0.0.1:${await freePort()}`], topic: 'abuse-spool', partitions: 1, clientId: 'meter-abuse' });
      const spool = await Spool.open({ dir: spoolDir, topic: 'abuse-spool', maxBytes: mounted ? 1 << 30 : 128 << 10, logger: () => {} });
      const sp = new SpoolingProducer({ openPrimary: () => kafka.producer(), spool, spoolAfterMs: 200, logger: () => {} });
      let gw: Awaited<ReturnType<typeof startGateway>> | null = null;
      try {
        await migrate(db);
        const key = await createKey(db, { customer: 'flooder', plan: 'pro', plans: { pro: {} } });
        gw = await startGateway({
          host: '127.0.0.1',
          port: 0,
          upstream: `http://127.0.0.1:${(upstream.address() as { port: number }).port}`,
          keys: new KeyStore(db),
          limiter: new MemoryLimiter(),
          plans: { pro: { ratePerSec: 1_000_000, burst: 1_000_000 } },
          routes: compileRoutes({ routes: [{ method: 'GET', path: '/v1/x/:id', api: 'x.get' }], unmatched: 'other' }),
          producer: sp,
          spool: sp,
          durability,
          eventFlushMs: 5,
          maxBodyBytes: 1024,
          logger: { info() {}, warn() {}, error() {} },
        });
        const pool = new Pool(gw.url, { connections: 32 });
        let ok = 0;
        let refused = 0;
        let cut = 0;
        let upstreamAtFirst503 = -1;
        let maxBuffered = 0;
        // Memory holds the calls answered before the spool was found full (one spool write's worth,
        // more on a faster box); once calls are refused it must not grow past the 32 in flight.
        let maxAfterFull = 0;
        const lat503: number[] = [];
        const lat503At: number[] = [];
        const t0 = Date.now();
        // Until 3 s after the first 503 (at most 20 s): the flood meets the full spool whatever the machine's speed.
        const deadline = Date.now() + 20_000;
        let firstRefusal = 0;
        let i = 0;
        const client = async () => {
          while (Date.now() < deadline && !(firstRefusal && Date.now() > firstRefusal + 3000)) {
            const t = performance.now();
            try {
              const r = await pool.request({ method: 'GET', path: `/v1/x/${i++}`, headers: { authorization: `Bearer ${key.key}` } });
              await r.body.dump();
              if (r.statusCode === 200) ok++;
              else if (r.statusCode === 503) {
                lat503.push(performance.now() - t);
                lat503At.push(Date.now() - t0);
                if (refused++ === 0) {
                  upstreamAtFirst503 = upstreamCalls;
                  firstRefusal = Date.now();
                }
              }
            } catch {
              cut++;
            }
            const buffered = gw!.batcher.stats().buffered;
            if (refused === 0) maxBuffered = Math.max(maxBuffered, buffered);
            else maxAfterFull = Math.max(maxAfterFull, buffered);
          }
        };
        await Promise.all(Array.from({ length: 32 }, client));
        await pool.close();
        const s = sp.stats();
        const ev = gw.batcher.stats();
        const afterFull = upstreamAtFirst503 < 0 ? -1 : upstreamCalls - upstreamAtFirst503;
        const accounted = s.spool.pending + ev.buffered === ok;
        if (process.env.METER_ABUSE_DEBUG)
          ctx.log(
            lat503
              .map((l, k) => [lat503At[k], l])
              .filter(([, l]) => l! > 50)
              .map(([a, l]) => `${a}:${l!.toFixed(0)}`)
              .join(' '),
          );
        const good =
          refused > 0 &&
          afterFull <= 32 &&
          maxAfterFull <= maxBuffered + 32 &&
          pct(lat503, 0.5)! < 20 &&
          accounted &&
          ev.dropped === (durability === 'strict' ? cut : 0);
        return {
          ok: good,
          observed:
            `${mounted ? '2 MiB tmpfs' : 'spoolMaxBytes 128 KiB (no tmpfs: not root)'}: ${ok} x 200, ${refused} x 503 (p50 ${pct(lat503, 0.5)!.toFixed(1)} ms, p99 ${pct(lat503, 0.99)!.toFixed(1)} ms), ${cut} cut; ` +
            `upstream calls after the first 503: ${afterFull}; memory max ${maxBuffered} events before full, ${maxAfterFull} after; 200s stored ${s.spool.pending} + held ${ev.buffered}; reason "${s.spool.fullReason ?? '-'}"`,
        };
      } finally {
        // Room again, so the events held in memory can be stored and the gateway closes promptly.
        if (mounted) rmSync(join(spoolDir, 'ballast'), { force: true });
        await gw?.close();
        await sp.close(0);
        await kafka.close();
        await new Promise<void>((r) => upstream.close(() => r()));
        await db.close();
        if (mounted) {
          try {
            execFileSync('umount', [spoolDir]);
          } catch {
            execFileSync('umount', ['-l', spoolDir]);
          }
        }
      }
    },
  };
}

export const attacks: Attack[] = [floodOnFullDisk('batched'), floodOnFullDisk('strict')];
