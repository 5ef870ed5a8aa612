/**
 * `meter doctor`: one line per check of each configured backend, with the fix for a failure.
 * Every check has a time limit so a dead server gives a clear line instead of a hang.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MeterConfig } from '../config/config.js';
import { describeBackends, redactUrl } from '../config/config.js';
import { openLog, openLake, openWarehouse, openLimiter } from './backends.js';
import { pendingMigrations } from '../warehouse/migrate.js';
import { catalogOf } from './roles.js';

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
  fix?: string;
}

async function within<T>(ms: number, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, rej) => (timer = setTimeout(() => rej(new Error(`no answer within ${ms / 1000} s`)), ms)));
  try {
    return await Promise.race([p, t]);
  } finally {
    clearTimeout(timer);
  }
}

export async function runDoctor(cfg: MeterConfig, timeoutMs = 15_000): Promise<Check[]> {
  const checks: Check[] = [];
  const b = describeBackends(cfg);
  const check = async (name: string, fix: string, fn: () => Promise<string>) => {
    try {
      checks.push({ name, ok: true, detail: await within(timeoutMs, fn()) });
    } catch (e) {
      checks.push({ name, ok: false, detail: (e as Error).message.split('\n')[0], fix });
    }
  };

  await check('catalog', `fix ${cfg.catalogFile} or set METER_CATALOG_FILE`, async () => {
    const c = catalogOf(cfg);
    return `${Object.keys(c.plans).length} plans in ${cfg.catalogFile}`;
  });

  await check('log', cfg.kafkaBrokers.length ? `start Kafka at ${cfg.kafkaBrokers.join(',')} (stack/run up kafka) or unset METER_KAFKA_BROKERS for the embedded log` : `check that ${cfg.dataDir} is writable`, async () => {
    const log = await openLog(cfg);
    try {
      const n = await log.partitions();
      const c = await log.consumer('meter-doctor');
      const ends = await c.endOffsets();
      await c.stop();
      const total = [...ends.values()].reduce((a, x) => a + x, 0);
      return `${b.log}: ${n} partitions, ${total} records`;
    } finally {
      await log.close();
    }
  });

  await check('lake', cfg.lakeUrl.startsWith('file:') ? `check that ${cfg.lakeUrl} is writable` : `start HDFS (stack/run up hdfs) or fix METER_LAKE_URL; WebHDFS must be on and the DataNode reachable`, async () => {
    const lake = await openLake(cfg);
    const dir = mkdtempSync(join(tmpdir(), 'meter-doctor-'));
    try {
      const local = join(dir, 'probe');
      writeFileSync(local, 'meter doctor probe\n');
      const path = `_doctor/probe-${randomBytes(4).toString('hex')}`;
      await lake.publish(local, path);
      const back = (await lake.read(path)).toString();
      await lake.delete(path);
      if (back !== 'meter doctor probe\n') throw new Error('read back different bytes than were written');
      const days = await lake.listDirs('usage');
      return `${cfg.lakeUrl}: writable (publish, read, delete), ${days.length} day folders`;
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await lake.close();
    }
  });

  await check('warehouse', cfg.databaseUrl ? `start Postgres (stack/run up postgres) or fix METER_DATABASE_URL (${redactUrl(cfg.databaseUrl)})` : 'stop the other meter process that holds the embedded warehouse, or set METER_DATABASE_URL', async () => {
    const db = await openWarehouse(cfg, undefined, { migrate: false });
    try {
      const [v] = await db.query<{ v: string }>('SELECT version() AS v');
      const pending = await pendingMigrations(db);
      const version = String(v.v).split(' ').slice(0, 2).join(' ');
      // Pending migrations are not a fault: every command that opens the warehouse applies them.
      if (pending.length) return `${b.warehouse}: ${version}, ${pending.length} migrations pending (${pending.map((m) => m.name).join(', ')}): \`meter migrate\` or the next command applies them`;
      return `${b.warehouse}: ${version}, migrations applied`;
    } finally {
      await db.close();
    }
  });

  await check('limiter', cfg.redisUrl ? `start Redis (stack/run up redis) or fix METER_REDIS_URL; meanwhile the gateway's limiter decides by limiterFailMode=${cfg.limiterFailMode}` : '', async () => {
    const limiter = await openLimiter(cfg);
    try {
      const d = await limiter.take(`doctor-${randomBytes(4).toString('hex')}`, { ratePerSec: 1, burst: 2 });
      if (d.degraded) throw new Error(`${b.limiter}: unreachable (the limiter decides by limiterFailMode=${cfg.limiterFailMode})`);
      if (!d.allowed || d.remaining !== 1) throw new Error(`${b.limiter}: token bucket answered wrongly (allowed=${d.allowed}, remaining=${d.remaining})`);
      return `${b.limiter}: token bucket answers${limiter.kind === 'redis' ? ' (Lua script loaded)' : ''}`;
    } finally {
      await limiter.close();
    }
  });
  return checks;
}
