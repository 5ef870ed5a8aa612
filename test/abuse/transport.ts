/**
 * Attacks on transport security (docs/security.md): clients without or with wrong SASL
 * credentials try to produce to the stack's SASL listener; an operator's secrets are looked for
 * in `meter config --json` and in the error lines of commands that fail on a credential.
 */
import { spawnSync } from 'node:child_process';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { Kafka, logLevel, type SASLOptions } from 'kafkajs';
import type { Attack } from './attack.js';
import { stackEnv, freshDatabase } from '../support/stack.js';
import { loadConfig } from '../../src/config/config.js';
import { openLog, openWarehouse, openLimiter } from '../../src/runtime/backends.js';
import { startGatewayRole } from '../../src/runtime/roles.js';
import { createKey } from '../../src/gateway/keys.js';
import type { Logger } from '../../src/ground/logger.js';
import { startRedis } from '../support/own-servers.js';
import { KafkaLog } from '../../src/log/kafka-log.js';
import { assetPath } from '../../src/config/assets.js';

const uniq = (p: string) => `${p}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;

async function saslStack() {
  const env = await stackEnv(['kafka']);
  const brokers = [env.METER_STACK_KAFKA_SASL_BROKERS!];
  const sasl = { mechanism: 'scram-sha-512' as const, username: env.METER_STACK_KAFKA_SASL_USERNAME!, password: env.METER_STACK_KAFKA_SASL_PASSWORD! };
  return { env, brokers, sasl };
}

/** Records in `topic`, read with valid credentials. */
async function recordsIn(log: KafkaLog): Promise<number> {
  const c = await log.consumer(uniq('count'));
  const ends = await c.endOffsets();
  await c.stop();
  return [...ends.values()].reduce((a, b) => a + b, 0);
}

/** An attacker's produce: a bare kafkajs producer (not meter's code) and meter's KafkaLog. */
async function tryProduce(
  brokers: string[],
  topic: string,
  sasl?: { mechanism: 'plain' | 'scram-sha-256' | 'scram-sha-512'; username: string; password: string },
): Promise<{ refused: boolean; ms: number; why: string }> {
  const t0 = Date.now();
  const kafka = new Kafka({
    clientId: 'attacker',
    brokers,
    logLevel: logLevel.NOTHING,
    connectionTimeout: 3000,
    retry: { retries: 0 },
    ...(sasl ? { sasl: sasl as SASLOptions } : {}),
  });
  const producer = kafka.producer({ allowAutoTopicCreation: false });
  let why = '';
  let refused = false;
  try {
    await producer.connect();
    await producer.send({ topic, messages: [{ key: 'evil', value: 'forged usage event' }] });
  } catch (e) {
    refused = true;
    why = (e as Error).message;
  } finally {
    await producer.disconnect().catch(() => {});
  }
  // Through meter's own client as well: init + producer + send.
  const log = new KafkaLog({ brokers, topic, partitions: 1, retries: 0, ...(sasl ? { sasl: sasl as SASLOptions } : {}) });
  try {
    await log.init();
    const p = await log.producer();
    await p.send([{ key: 'evil', value: Buffer.from('forged') }]);
    refused = false;
  } catch (e) {
    why ||= (e as Error).message;
  } finally {
    await log.close();
  }
  return { refused, ms: Date.now() - t0, why };
}

function meter(args: string[], env: Record<string, string>, cwd: string) {
  const r = spawnSync(process.execPath, [assetPath('bin/meter.js'), ...args], {
    cwd,
    env: { PATH: process.env.PATH!, HOME: process.env.HOME ?? '/tmp', ...env },
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

export const attacks: Attack[] = [
  {
    name: 'produce to the SASL listener without credentials',
    expected: 'refused within 5 s; 0 records land in the topic',
    async run() {
      const { brokers, sasl } = await saslStack();
      const owner = new KafkaLog({ brokers, topic: uniq('nosasl'), partitions: 2, sasl });
      try {
        await owner.init();
        const r = await tryProduce(brokers, owner.topic);
        const n = await recordsIn(owner);
        return {
          observed: `refused=${r.refused} after ${r.ms} ms (${r.why.slice(0, 60)}); ${n} records in the topic`,
          ok: r.refused && r.ms < 5000 && n === 0,
        };
      } finally {
        await owner.close();
      }
    },
  },
  {
    name: 'produce with wrong SASL passwords (30 tries)',
    expected: 'all refused, each < 2 s; a valid login still produces',
    async run() {
      const { brokers, sasl } = await saslStack();
      const owner = new KafkaLog({ brokers, topic: uniq('wrongsasl'), partitions: 1, sasl });
      try {
        await owner.init();
        let refused = 0;
        let slowest = 0;
        const mechs = ['plain', 'scram-sha-256', 'scram-sha-512'] as const;
        for (let i = 0; i < 30; i++) {
          const r = await tryProduce(brokers, owner.topic, { mechanism: mechs[i % 3]!, username: i % 2 ? sasl.username : 'admin', password: `guess-${i}` });
          if (r.refused) refused++;
          slowest = Math.max(slowest, r.ms);
        }
        const before = await recordsIn(owner);
        const p = await owner.producer();
        await p.send([{ key: 'acme', value: Buffer.from('real event') }]);
        const after = await recordsIn(owner);
        return {
          observed: `${refused}/30 refused, slowest ${slowest} ms; ${before} forged records; valid login then produced ${after - before}`,
          ok: refused === 30 && slowest < 2000 && before === 0 && after === 1,
        };
      } finally {
        await owner.close();
      }
    },
  },
  {
    name: 'read secrets from meter config --json',
    expected: 'no secret value in the output (env or flag)',
    async run(ctx) {
      const secrets = ['kafka-pw-' + uniq('s'), 'redis-pw-' + uniq('s'), 'db-pw-' + uniq('s'), 'tok-' + uniq('s')];
      const env = {
        METER_KAFKA_BROKERS: 'k:9092',
        METER_KAFKA_SASL_MECHANISM: 'scram-sha-256',
        METER_KAFKA_SASL_USERNAME: 'meter',
        METER_REDIS_URL: 'redis://r:6379',
        METER_REDIS_PASSWORD: secrets[1]!,
        METER_DATABASE_URL: `postgres://meter:${secrets[2]}@db:5432/meter`,
        METER_BILLING_TOKENS: secrets[3]!,
      };
      const viaEnv = meter(['config', '--json'], { ...env, METER_KAFKA_SASL_PASSWORD: secrets[0]! }, ctx.dir);
      const viaFlag = meter(['config', '--kafka-sasl-password', secrets[0]!], env, ctx.dir);
      const viaFlagJson = meter(['config', '--json', '--kafka-sasl-password', secrets[0]!], env, ctx.dir);
      const outs = [viaEnv, viaFlag, viaFlagJson];
      const leaks = outs.reduce((n, o) => n + secrets.filter((s) => o.out.includes(s)).length, 0);
      const masked = (viaEnv.out.match(/\*\*\*/g) ?? []).length;
      return {
        observed: `${outs.length} runs (exit ${outs.map((o) => o.status).join(',')}), ${leaks} secrets printed, ${masked} *** in the JSON`,
        ok: leaks === 0 && outs.every((o) => o.status === 0) && masked >= 4,
      };
    },
  },
  {
    name: 'secrets in error lines of failing commands',
    expected: 'bad SASL/Redis/Postgres credentials: errors name the setting, 0 secrets printed',
    async run(ctx) {
      const { env: stack, brokers } = await saslStack();
      const pgEnv = await stackEnv(['postgres']);
      const redisPass = 'right-redis-' + uniq('p');
      const redis = await startRedis(() => ['--requirepass', redisPass]);
      try {
        const secrets = ['sasl-wrong-' + uniq('p'), 'redis-wrong-' + uniq('p'), 'pg-wrong-' + uniq('p'), 'url-wrong-' + uniq('p')];
        const pg = new URL(pgEnv.METER_DATABASE_URL!);
        pg.password = secrets[2]!;
        const runs = [
          meter(
            ['ingest', '--once'],
            {
              METER_KAFKA_BROKERS: brokers[0]!,
              METER_KAFKA_SASL_MECHANISM: 'scram-sha-512',
              METER_KAFKA_SASL_USERNAME: stack.METER_STACK_KAFKA_SASL_USERNAME!,
              METER_KAFKA_SASL_PASSWORD: secrets[0]!,
            },
            ctx.dir,
          ),
          // The stack's Postgres as warehouse: an embedded PGlite takes 10-20 s to start on a busy machine.
          meter(
            ['doctor', '--timeout', '5000'],
            { METER_REDIS_URL: `redis://127.0.0.1:${redis.port}`, METER_REDIS_PASSWORD: secrets[1]!, METER_DATABASE_URL: pgEnv.METER_DATABASE_URL! },
            ctx.dir,
          ),
          meter(['migrate'], { METER_DATABASE_URL: pg.toString() }, ctx.dir),
          meter(['config'], { METER_DATABASE_URL: `postgres://meter:${secrets[3]}@db:99999/meter` }, ctx.dir),
        ];
        const leaks = runs.reduce((n, o) => n + secrets.filter((s) => o.out.includes(s)).length, 0);
        const named = [/kafkaSaslPassword/, /redisPassword/, /password authentication failed.*databaseUrl/, /invalid databaseUrl/].filter((re, i) =>
          re.test(runs[i]!.out),
        ).length;
        const traces = runs.filter((o) => /\n\s+at /.test(o.out)).length;
        return {
          observed: `exits ${runs.map((o) => o.status).join(',')}; ${named}/4 name the setting; ${leaks} secrets printed; ${traces} stack traces`,
          ok: leaks === 0 && named === 4 && traces === 0 && runs[0]!.status === 2 && runs[1]!.status === 1 && runs[2]!.status === 2 && runs[3]!.status === 2,
        };
      } finally {
        await redis.stop();
      }
    },
  },
  {
    name: 'gateway whose Kafka login is refused',
    expected: 'calls answered 200, events spooled, the log names the setting; fixed password ships all',
    async run(ctx) {
      const { env: stack, brokers, sasl } = await saslStack();
      const dbUrl = await freshDatabase(await stackEnv(['postgres']), 'sec');
      const upstream = createServer((req, res) => {
        req.resume();
        req.on('end', () => res.end('{"ok":true}'));
      });
      await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
      const topic = uniq('gwsasl');
      const wrong = 'gw-wrong-' + uniq('p');
      const cfgWith = (password: string) =>
        loadConfig({
          cwd: ctx.dir,
          env: {
            METER_DATA_DIR: join(ctx.dir, 'data'),
            METER_KAFKA_BROKERS: brokers[0],
            METER_TOPIC: topic,
            METER_PARTITIONS: '1',
            METER_KAFKA_SASL_MECHANISM: 'scram-sha-256',
            METER_KAFKA_SASL_USERNAME: stack.METER_STACK_KAFKA_SASL_USERNAME,
            METER_KAFKA_SASL_PASSWORD: password,
            METER_DATABASE_URL: dbUrl,
            METER_GATEWAY_PORT: '0',
            METER_SPOOL_AFTER_MS: '200',
            METER_UPSTREAM: `http://127.0.0.1:${(upstream.address() as { port: number }).port}`,
          },
        });
      const lines: string[] = [];
      const at = (m: string) => void lines.push(m);
      const logger: Logger = { debug: at, info: at, warn: at, error: at, child: () => logger };
      const run = async (password: string, calls: number) => {
        const cfg = cfgWith(password);
        const log = await openLog(cfg, { init: false });
        const db = await openWarehouse(cfg);
        const limiter = await openLimiter(cfg);
        const gw = await startGatewayRole(cfg, { log, db, limiter }, logger);
        try {
          const key = calls ? (await createKey(db, { customer: 'acme', plan: 'pro' })).key : '';
          let ok = 0;
          for (let i = 0; i < calls; i++) {
            const r = await fetch(`${gw.url}/v1/devices/d${i}/location`, { headers: { authorization: `Bearer ${key}` } });
            await r.arrayBuffer();
            if (r.status === 200) ok++;
          }
          await gw.batcher.flushDurable();
          const health = gw.health() as { spool: { mode: string; spool: { pending: number } } };
          if (!calls) await gw.batcher.flush(); // the right login: waits until the spool is shipped
          return { ok, health };
        } finally {
          await gw.close();
          await limiter.close();
          await db.close();
          await log.close();
        }
      };
      try {
        const bad = await run(wrong, 50);
        await run(sasl.password!, 0); // same data dir: ships the spool of the first run
        const owner = new KafkaLog({ brokers, topic, partitions: 1, sasl });
        let inKafka = 0;
        try {
          inKafka = await recordsIn(owner);
        } finally {
          await owner.close();
        }
        const text = lines.join('\n');
        const named = /SASL scram-sha-256 login as "meter" was refused/.test(text);
        const leaks = text.includes(wrong) || text.includes(sasl.password!);
        return {
          observed: `${bad.ok}/50 answered 200 while refused; spool ${bad.health.spool.mode} ${bad.health.spool.spool.pending} pending; refusal logged=${named}; after the fix ${inKafka} events in Kafka; password in logs=${leaks}`,
          ok: bad.ok === 50 && bad.health.spool.spool.pending === 50 && named && inKafka === 50 && !leaks,
        };
      } finally {
        await new Promise<void>((r) => upstream.close(() => r()));
      }
    },
  },
];
