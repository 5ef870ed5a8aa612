/**
 * `meter doctor`: one line per check of each configured backend, with the fix for a failure.
 * Every check has a time limit so a dead server gives a clear line instead of a hang.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { oneRow } from '../warehouse/one-row.js';
import type { MeterConfig } from '../config/config.js';
import { describeBackends, redactUrl } from '../config/config.js';
import { openLog, openLake, openWarehouse, openLimiter } from './backends.js';
import { pendingMigrations } from '../warehouse/migrate.js';
import { catalogOf } from './roles.js';
import { scrub } from '../security/secrets.js';
import { UserError, fileAccessError } from '../ground/errors.js';
import { lakeDataCheck } from './doctor-lake.js';
import { localLogDamage } from './doctor-log.js';
import { findUnpricedUsage } from '../billing/unpriced.js';

export interface Check {
  name: string;
  ok: boolean;
  /** Not a failure (the exit code stays 0) but something to fix: printed as `warn`. */
  warn?: boolean;
  detail: string;
  fix?: string;
}

/** How far back `meter doctor` looks for calls that no price covers: this and last billing month. */
const UNPRICED_WINDOW_MS = 62 * 86_400_000;

async function within<T>(ms: number, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, rej) => (timer = setTimeout(() => rej(new Error(`no answer within ${ms / 1000} s`)), ms)));
  try {
    return await Promise.race([p, t]);
  } finally {
    clearTimeout(timer);
  }
}

export async function runDoctor(cfg: MeterConfig, timeoutMs = 15_000, opts: { lakeCheckHours?: number | null } = {}): Promise<Check[]> {
  const checks: Check[] = [];
  const warnings: Check[] = [];
  const b = describeBackends(cfg);
  const check = async (name: string, fix: string, fn: () => Promise<string>) => {
    try {
      checks.push({ name, ok: true, detail: await within(timeoutMs, fn()) });
    } catch (caught) {
      // A folder it may not write is named as such: the generic fix (another process holds it) misled.
      const e = fileAccessError(caught) ?? caught;
      // A refused login or TLS mismatch carries its own fix (the setting), better than the generic one.
      const hint = e instanceof UserError && e.hint ? e.hint : fix;
      // The lake check's message is a multi-line report; the others are one line.
      const message = name === 'lake-data' ? (e as Error).message : ((e as Error).message.split('\n', 1)[0] ?? '');
      checks.push({ name, ok: false, detail: scrub(message), fix: scrub(hint) });
    }
  };

  await check('catalog', `fix ${cfg.catalogFile} or set METER_CATALOG_FILE`, async () => {
    const c = catalogOf(cfg);
    return `${Object.keys(c.plans).length} plans in ${cfg.catalogFile}`;
  });

  await check(
    'log',
    cfg.kafkaBrokers.length
      ? `start Kafka at ${cfg.kafkaBrokers.join(',')} (stack/run up kafka) or unset METER_KAFKA_BROKERS for the embedded log`
      : `check that ${cfg.dataDir} is writable`,
    async () => {
      // Two retries, not eight: past its time limit the check is a FAIL line, but kafkajs' retries
      // of a refused connection ran on (some 14 s), and doctor ended 10 s later with "a connection
      // was still open" instead of at once; a refused broker now fails with its own reason.
      const log = await openLog(cfg, { kafkaRetries: 2 });
      try {
        const n = await log.partitions();
        const c = await log.consumer('meter-doctor');
        const ends = await c.endOffsets();
        await c.stop();
        const total = [...ends.values()].reduce((a, x) => a + x, 0);
        // The embedded log and the gateway's spools (kept in Kafka mode too) are local files.
        const damage = await localLogDamage(cfg);
        if (damage.length)
          throw new UserError(
            `acknowledged records cannot be read in ${damage.length} local log partition(s): ${damage.join('; ')}`,
            'stop the gateway, then run `meter doctor --repair-log` (keeps every readable record, reports the lost ones; docs/durability.md)',
          );
        return `${b.log}: ${n} partitions, ${total} records`;
      } finally {
        await log.close();
      }
    },
  );

  await check(
    'lake',
    cfg.lakeUrl.startsWith('file:')
      ? `check that ${cfg.lakeUrl} is writable`
      : `start HDFS (stack/run up hdfs) or fix METER_LAKE_URL; WebHDFS must be on and the DataNode reachable`,
    async () => {
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
    },
  );

  if (opts.lakeCheckHours) {
    const hours = opts.lakeCheckHours;
    await check(
      'lake-data',
      'a running `meter ingest` repairs overlapping ranges of its partitions when they are next assigned (restart it); docs/lake.md',
      async () => {
        const r = await within(Math.max(timeoutMs, 300_000), lakeDataCheck(cfg, hours));
        if (!r.ok) throw new Error(r.detail);
        return r.detail;
      },
    );
  }

  await check(
    'warehouse',
    cfg.databaseUrl
      ? `start Postgres (stack/run up postgres) or fix METER_DATABASE_URL (${redactUrl(cfg.databaseUrl)})`
      : 'stop the other meter process that holds the embedded warehouse, or set METER_DATABASE_URL',
    async () => {
      const db = await openWarehouse(cfg, undefined, { migrate: false });
      try {
        const v = oneRow(await db.query<{ v: string }>('SELECT version() AS v'), 'SELECT version()');
        const pending = await pendingMigrations(db);
        const version = String(v.v).split(' ').slice(0, 2).join(' ');
        // Pending migrations are not a fault: every command that opens the warehouse applies them.
        if (pending.length)
          return `${b.warehouse}: ${version}, ${pending.length} migrations pending (${pending.map((m) => m.name).join(', ')}): \`meter migrate\` or the next command applies them`;
        // Calls billed at 0 because their API has no price: a warning, with the pairs named.
        const now = Date.now();
        const unpriced = await within(timeoutMs, findUnpricedUsage(db, now - UNPRICED_WINDOW_MS, now));
        if (unpriced.length) {
          const shown = unpriced.slice(0, 5).map((u) => `${u.customer}/${u.api} (${u.calls} calls, plan ${u.plan ?? 'none'})`);
          warnings.push({
            name: 'prices',
            ok: true,
            warn: true,
            detail: `${unpriced.length} customer/API pairs had calls in the last 62 days with no price, billed at 0: ${shown.join(', ')}${unpriced.length > 5 ? ', …' : ''}`,
            fix: 'set a price (meter prices set --plan P --api A ...) or add the API to the plan in the catalog and run meter plans import',
          });
        }
        return `${b.warehouse}: ${version}, migrations applied`;
      } finally {
        await db.close();
      }
    },
  );

  // After the warehouse line they come from.
  checks.push(...warnings);

  await check(
    'limiter',
    cfg.redisUrl
      ? `start Redis (stack/run up redis) or fix METER_REDIS_URL; meanwhile the gateway's limiter decides by limiterFailMode=${cfg.limiterFailMode}`
      : '',
    async () => {
      const limiter = await openLimiter(cfg);
      try {
        const d = await limiter.take(`doctor-${randomBytes(4).toString('hex')}`, { ratePerSec: 1, burst: 2 });
        const why = (limiter as { lastError?: string | null }).lastError;
        if (d.degraded) throw new Error(`${b.limiter}: unreachable (the limiter decides by limiterFailMode=${cfg.limiterFailMode})${why ? `: ${why}` : ''}`);
        if (!d.allowed || d.remaining !== 1) throw new Error(`${b.limiter}: token bucket answered wrongly (allowed=${d.allowed}, remaining=${d.remaining})`);
        return `${b.limiter}: token bucket answers${limiter.kind === 'redis' ? ' (Lua script loaded)' : ''}`;
      } finally {
        await limiter.close();
      }
    },
  );
  return checks;
}
