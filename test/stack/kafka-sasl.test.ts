/**
 * Kafka SASL against the stack's broker (its SASL_PLAINTEXT listener, stack/run): meter's
 * KafkaLog, built from the config exactly as every command builds it (openLog), produces and
 * consumes with PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512; a wrong password or no SASL at all is a
 * clear, bounded error naming the setting to fix, never a hang or a stack trace.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { stackEnv } from '../support/stack.js';
import { loadConfig } from '../../src/config/config.js';
import { openLog } from '../../src/runtime/backends.js';
import { UserError } from '../../src/ground/errors.js';
import { assetPath } from '../../src/config/assets.js';
import type { UsageLog, LogRecord } from '../../src/log/log.js';
import { KafkaLog } from '../../src/log/kafka-log.js';
import { kafkaSecurity } from '../../src/security/client-options.js';
import { encodeEvent, uuidv7 } from '../../src/events/usage-event.js';
import { tempDir } from '../support/tmp.js';

const env = await stackEnv(['kafka']);
const saslBrokers = env.METER_STACK_KAFKA_SASL_BROKERS!;
const user = env.METER_STACK_KAFKA_SASL_USERNAME!;
const password = env.METER_STACK_KAFKA_SASL_PASSWORD;
const saslSslBrokers = env.METER_STACK_KAFKA_SASL_SSL_BROKERS;
const caFile = env.METER_STACK_KAFKA_TLS_CA_FILE;
assert.ok(saslBrokers && user && password, 'stack/run env prints the SASL listener and its user');
assert.ok(saslSslBrokers && caFile, 'stack/run env prints the SASL_SSL listener and its CA file');

const uniq = (p: string) => `${p}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
const opened: UsageLog[] = [];
const cwd = tempDir('meter-sasl-');
after(async () => {
  for (const l of opened) await l.close().catch(() => {});
  rmSync(cwd, { recursive: true, force: true });
});

function saslEnv(mechanism: string, pw: string, topic = uniq('sasl')): Record<string, string> {
  return {
    METER_KAFKA_BROKERS: saslBrokers,
    METER_TOPIC: topic,
    METER_PARTITIONS: '2',
    METER_KAFKA_SASL_MECHANISM: mechanism,
    METER_KAFKA_SASL_USERNAME: user,
    METER_KAFKA_SASL_PASSWORD: pw,
  };
}

async function openWith(e: Record<string, string>): Promise<UsageLog> {
  const cfg = loadConfig({ cwd, env: e });
  const log = await openLog(cfg);
  opened.push(log);
  return log;
}

const tlsEnv = { METER_KAFKA_TLS: 'on', METER_KAFKA_TLS_CA_FILE: '' };

for (const [mechanism, tls] of [
  ['plain', false],
  ['scram-sha-256', false],
  ['scram-sha-512', false],
  ['scram-sha-512', true],
  ['plain', true],
] as const) {
  test(`kafka SASL ${mechanism}${tls ? ' over TLS (SASL_SSL)' : ''}: produce and consume through KafkaLog`, async () => {
    const e = saslEnv(mechanism, password);
    const log = await openWith(tls ? { ...e, METER_KAFKA_BROKERS: saslSslBrokers, ...tlsEnv, METER_KAFKA_TLS_CA_FILE: caFile } : e);
    const producer = await log.producer();
    const keys = ['acme', 'globex', 'initech', 'umbrella'];
    await producer.send(keys.map((k) => ({ key: k, value: Buffer.from(`${mechanism}:${k}`) })));
    await producer.close();
    const c = await log.consumer(uniq('g'));
    const got: LogRecord[] = [];
    for (const [p, end] of await c.endOffsets()) got.push(...(await c.readRange(p, 0, end)));
    await c.stop();
    assert.deepEqual(got.map((r) => r.value.toString()).sort(), keys.map((k) => `${mechanism}:${k}`).sort());
  });
}

/** Time a rejection; the error it rejects with. */
async function rejection(p: Promise<unknown>): Promise<{ err: Error; ms: number }> {
  const t0 = Date.now();
  try {
    await p;
  } catch (err) {
    return { err: err as Error, ms: Date.now() - t0 };
  }
  assert.fail('expected a rejection');
}

for (const mechanism of ['plain', 'scram-sha-512']) {
  test(`kafka SASL ${mechanism}: a wrong password is refused at once, naming the setting, without the password`, async () => {
    const wrong = 'not-the-password-42';
    const { err, ms } = await rejection(openWith(saslEnv(mechanism, wrong)));
    assert.ok(err instanceof UserError, `a user error (exit 2), got ${err.name}: ${err.message}`);
    assert.match(err.message, new RegExp(`kafka ${saslBrokers}: SASL ${mechanism} login as "${user}" was refused`));
    assert.match(err.hint ?? '', /kafkaSaslPassword/);
    assert.ok(!`${err.message} ${err.hint}`.includes(wrong), 'the password is not in the error');
    assert.ok(ms < 10_000, `refused after ${ms} ms (a refused login is not retried)`);
  });
}

test('kafka SASL_SSL without the CA file: the certificate is refused, naming kafkaTlsCaFile; no TLS on a TLS listener points at kafkaTls', async () => {
  const cfg = loadConfig({ cwd, env: { ...saslEnv('scram-sha-512', password), METER_KAFKA_BROKERS: saslSslBrokers, METER_KAFKA_TLS: 'on' } });
  // retries 0: a certificate error would be retried by the default client for ~20 s to the same end.
  const noCa = new KafkaLog({ brokers: [saslSslBrokers], topic: uniq('noca'), partitions: 1, retries: 0, ...kafkaSecurity(cfg) });
  opened.push(noCa);
  const a = await rejection(noCa.init());
  assert.ok(a.err instanceof UserError, a.err.message);
  assert.match(a.err.message, /TLS certificate check failed \(.*self-signed certificate/);
  assert.match(a.err.hint ?? '', /kafkaTlsCaFile/);
  const plainCfg = loadConfig({ cwd, env: { ...saslEnv('scram-sha-512', password), METER_KAFKA_BROKERS: saslSslBrokers } });
  const noTls = new KafkaLog({ brokers: [saslSslBrokers], topic: uniq('notls'), partitions: 1, retries: 0, ...kafkaSecurity(plainCfg) });
  opened.push(noTls);
  const b = await rejection(noTls.init());
  assert.match(b.err.message, /expects TLS too \(SASL_SSL\), set kafkaTls=on/);
  assert.ok(b.ms < 30_000, `failed after ${b.ms} ms`);
});

test('kafka SASL listener without SASL settings: an error that points at the SASL settings, bounded in time', async () => {
  const cfg = loadConfig({ cwd, env: { METER_KAFKA_BROKERS: saslBrokers, METER_TOPIC: uniq('nosasl') } });
  const { err, ms } = await rejection(openLog(cfg));
  assert.match(err.message, /expects SASL or TLS, set kafkaSaslMechanism/);
  assert.ok(ms < 60_000, `failed after ${ms} ms`);
});

test('meter ingest with a wrong SASL password: one line and the fix, exit 2, no stack trace', () => {
  const wrong = 'wrong-pass-from-env';
  const r = spawnSync(process.execPath, [assetPath('bin/meter.js'), 'ingest', '--once'], {
    cwd,
    env: { PATH: process.env.PATH!, HOME: process.env.HOME ?? '/tmp', ...saslEnv('scram-sha-256', wrong) },
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /SASL scram-sha-256 login as "meter" was refused/);
  assert.match(r.stderr, /hint: fix kafkaSaslUsername \/ kafkaSaslPassword/);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  assert.ok(!r.stderr.includes(wrong) && !r.stdout.includes(wrong), 'the password is not printed');
});

test('meter ingest --once over SASL_SSL: events to the lake, a malformed one to <topic>.dlq, with the same login', async () => {
  const topic = uniq('e2e');
  const e = {
    ...saslEnv('scram-sha-512', password, topic),
    METER_KAFKA_BROKERS: saslSslBrokers,
    METER_KAFKA_TLS: 'on',
    METER_KAFKA_TLS_CA_FILE: caFile,
    METER_DATA_DIR: join(cwd, topic),
  };
  // Ingest dead-letters events of customers that do not exist (docs/dead-letters.md): create acme before its events.
  const made = spawnSync(process.execPath, [assetPath('bin/meter.js'), 'customers', 'create', 'acme'], {
    cwd,
    env: { PATH: process.env.PATH!, HOME: process.env.HOME ?? '/tmp', ...e },
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(made.status, 0, made.stderr);
  const log = await openWith(e);
  const producer = await log.producer();
  const now = Date.now();
  const good = Array.from({ length: 5 }, (_, i) => ({
    v: 1,
    id: uuidv7(now),
    time: now,
    customer: 'acme',
    keyId: 'k1',
    api: 'devices.get',
    method: 'GET',
    status: 200,
    latencyMs: 3,
    bytesIn: 0,
    bytesOut: 10 + i,
    billable: true,
  }));
  await producer.send([...good.map((g) => ({ key: g.customer, value: encodeEvent(g) })), { key: 'acme', value: Buffer.from('not json') }]);
  await producer.close();
  const r = spawnSync(process.execPath, [assetPath('bin/meter.js'), 'ingest', '--once', '--json', '--timeout', '60000'], {
    cwd,
    env: { PATH: process.env.PATH!, HOME: process.env.HOME ?? '/tmp', ...e },
    encoding: 'utf8',
    timeout: 120_000,
  });
  assert.equal(r.status, 0, r.stderr);
  const stats = JSON.parse(r.stdout) as { written: number; deadLettered: number };
  assert.equal(stats.written, 5);
  assert.equal(stats.deadLettered, 1);
  const dlq = await openWith({ ...e, METER_TOPIC: `${topic}.dlq` });
  const c = await dlq.consumer(uniq('dlq'));
  const end = (await c.endOffsets()).get(0) ?? 0;
  const entries = await c.readRange(0, 0, end);
  await c.stop();
  assert.equal(entries.length, 1, 'the dead letter went to Kafka through the SASL_SSL login');
  assert.ok(!r.stderr.includes(password), 'no password in the log');
});
