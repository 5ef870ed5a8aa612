/**
 * The transport-security settings: validation (one line naming the setting, exit 2), masking
 * (`meter config`, errors), and that each setting reaches the options of the client library
 * (kafkajs, ioredis, pg). Kafka TLS is also checked on the wire: a TLS server with a self-signed
 * certificate sees meter's Kafka client complete a handshake when kafkaTlsCaFile names its CA.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:tls';
import { join } from 'node:path';
import { loadConfig, ConfigError } from '../../src/config/config.js';
import { kafkaSecurity, pgSsl, redisSecurity } from '../../src/security/client-options.js';
import { maskedConfig } from '../../src/security/masked-config.js';
import { scrub } from '../../src/security/secrets.js';
import { KafkaLog } from '../../src/log/kafka-log.js';
import { assetPath } from '../../src/config/assets.js';
import { selfSignedCert } from '../support/own-servers.js';
import { tempDir } from '../support/tmp.js';

const cwd = tempDir('meter-transport-cfg-');
const cert = selfSignedCert();
after(() => {
  rmSync(cwd, { recursive: true, force: true });
  rmSync(cert.dir, { recursive: true, force: true });
});
const load = (env: Record<string, string>) => loadConfig({ cwd, env });

test('cross-setting mistakes: one line naming the setting and the fix', () => {
  const bad = (env: Record<string, string>, setting: string, re: RegExp) =>
    assert.throws(
      () => load(env),
      (e: unknown) => e instanceof ConfigError && e.setting === setting && re.test(e.message) && !e.message.includes('\n'),
      `${JSON.stringify(env)} -> ${setting}`,
    );
  const K = { METER_KAFKA_BROKERS: 'k:9092' };
  bad({ METER_KAFKA_SASL_MECHANISM: 'plain' }, 'kafkaBrokers', /kafkaBrokers is not/);
  bad({ ...K, METER_KAFKA_SASL_MECHANISM: 'scram-sha-256' }, 'kafkaSaslUsername', /METER_KAFKA_SASL_USERNAME/);
  bad({ ...K, METER_KAFKA_SASL_MECHANISM: 'scram-sha-256', METER_KAFKA_SASL_USERNAME: 'u' }, 'kafkaSaslPassword', /METER_KAFKA_SASL_PASSWORD/);
  bad({ ...K, METER_KAFKA_SASL_USERNAME: 'u', METER_KAFKA_SASL_PASSWORD: 'p' }, 'kafkaSaslMechanism', /kafkaSaslMechanism is none/);
  bad({ ...K, METER_KAFKA_SASL_MECHANISM: 'gssapi' }, 'kafkaSaslMechanism', /not one of none, plain, scram-sha-256, scram-sha-512/);
  bad({ ...K, METER_KAFKA_TLS: 'yes' }, 'kafkaTls', /not one of off, on/);
  bad({ ...K, METER_KAFKA_TLS_CA_FILE: cert.certFile }, 'kafkaTls', /kafkaTls is off/);
  bad({ ...K, METER_KAFKA_TLS: 'on', METER_KAFKA_TLS_CA_FILE: '/nonexistent/ca.pem' }, 'kafkaTlsCaFile', /does not exist/);
  bad({ ...K, METER_KAFKA_TLS: 'on', METER_KAFKA_TLS_CA_FILE: cert.keyFile }, 'kafkaTlsCaFile', /holds no PEM certificate/);
  bad({ METER_REDIS_PASSWORD: 'p' }, 'redisUrl', /redisUrl is not/);
  bad({ METER_REDIS_URL: 'redis://:a@r:6379', METER_REDIS_PASSWORD: 'p' }, 'redisPassword', /given twice/);
  bad({ METER_REDIS_URL: 'redis://r:6379', METER_REDIS_USERNAME: 'u' }, 'redisPassword', /redisUsername is set but redisPassword is not/);
  bad({ METER_REDIS_URL: 'redis://r:6379', METER_REDIS_TLS_CA_FILE: cert.certFile }, 'redisTls', /TLS is off/);
  bad({ METER_DATABASE_TLS: 'require' }, 'databaseUrl', /databaseUrl is not/);
  bad({ METER_DATABASE_URL: 'postgres://u@h/db?sslmode=require', METER_DATABASE_TLS: 'verify-full' }, 'databaseTls', /TLS is set twice.*sslmode/);
  bad(
    { METER_DATABASE_URL: 'postgres://u@h/db', METER_DATABASE_TLS: 'require', METER_DATABASE_TLS_CA_FILE: cert.certFile },
    'databaseTls',
    /verify-ca or verify-full/,
  );
  bad({ METER_DATABASE_TLS: 'prefer', METER_DATABASE_URL: 'postgres://u@h/db' }, 'databaseTls', /not one of off, require, verify-ca, verify-full/);
});

test('a CA file path is resolved against the working folder, like the other paths', () => {
  writeFileSync(join(cwd, 'ca.pem'), readFileSync(cert.certFile));
  const cfg = load({ METER_KAFKA_BROKERS: 'k:9092', METER_KAFKA_TLS: 'on', METER_KAFKA_TLS_CA_FILE: 'ca.pem' });
  assert.equal(cfg.kafkaTlsCaFile, join(cwd, 'ca.pem'));
});

test('each setting reaches the client options of kafkajs, ioredis and pg', () => {
  const pem = readFileSync(cert.certFile, 'utf8');
  const k = kafkaSecurity(
    load({
      METER_KAFKA_BROKERS: 'k:9092',
      METER_KAFKA_TLS: 'on',
      METER_KAFKA_TLS_CA_FILE: cert.certFile,
      METER_KAFKA_SASL_MECHANISM: 'scram-sha-512',
      METER_KAFKA_SASL_USERNAME: 'u',
      METER_KAFKA_SASL_PASSWORD: 'kpw-1234',
    }),
  );
  assert.deepEqual(k, { ssl: { rejectUnauthorized: true, ca: [pem] }, sasl: { mechanism: 'scram-sha-512', username: 'u', password: 'kpw-1234' } });
  assert.deepEqual(kafkaSecurity(load({ METER_KAFKA_BROKERS: 'k:9092' })), {}, 'plaintext, no SASL by default');
  assert.deepEqual(
    kafkaSecurity(load({ METER_KAFKA_BROKERS: 'k:9092', METER_KAFKA_TLS: 'on' })),
    { ssl: { rejectUnauthorized: true } },
    'TLS with the system CAs',
  );

  const r = redisSecurity(
    load({
      METER_REDIS_URL: 'redis://r:6379',
      METER_REDIS_USERNAME: 'acl',
      METER_REDIS_PASSWORD: 'rpw-1234',
      METER_REDIS_TLS: 'on',
      METER_REDIS_TLS_CA_FILE: cert.certFile,
    }),
  );
  assert.deepEqual(r, { username: 'acl', password: 'rpw-1234', tls: { rejectUnauthorized: true, ca: [pem] } });
  assert.deepEqual(
    redisSecurity(load({ METER_REDIS_URL: 'rediss://r:6379', METER_REDIS_TLS_CA_FILE: cert.certFile })).tls?.ca,
    [pem],
    'a rediss:// URL with a CA file',
  );

  const db = (mode: string, ca = true) =>
    pgSsl(load({ METER_DATABASE_URL: 'postgres://u@h/db', METER_DATABASE_TLS: mode, ...(ca ? { METER_DATABASE_TLS_CA_FILE: cert.certFile } : {}) }));
  assert.equal(db('off', false), undefined);
  assert.deepEqual(db('require', false), { rejectUnauthorized: false });
  assert.deepEqual(db('verify-full'), { rejectUnauthorized: true, ca: [pem] });
  const vca = db('verify-ca')!;
  assert.equal(vca.rejectUnauthorized, true);
  assert.equal(vca.checkServerIdentity?.('other-host', {} as never), undefined, 'verify-ca skips the host name check');
});

test('meter config --json masks every secret; the values never appear', () => {
  const secrets = { METER_KAFKA_SASL_PASSWORD: 'kafka-sasl-pw-31', METER_REDIS_PASSWORD: 'redis-pw-32', METER_BILLING_TOKENS: 'billing-tok-33' };
  const env = {
    PATH: process.env.PATH!,
    HOME: process.env.HOME ?? '/tmp',
    METER_KAFKA_BROKERS: 'k:9092',
    METER_KAFKA_SASL_MECHANISM: 'plain',
    METER_KAFKA_SASL_USERNAME: 'meter',
    METER_REDIS_URL: 'redis://r:6379',
    METER_DATABASE_URL: 'postgres://meter:db-pw-34@h:5432/meter?password=db-pw-35',
    ...secrets,
  };
  const r = spawnSync(process.execPath, [assetPath('bin/meter.js'), 'config', '--json'], { cwd, env, encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  for (const v of [...Object.values(secrets), 'db-pw-34', 'db-pw-35']) assert.ok(!r.stdout.includes(v) && !r.stderr.includes(v), `${v} printed:\n${r.stdout}`);
  const shown = JSON.parse(r.stdout);
  assert.equal(shown.config.kafkaSaslPassword, '***');
  assert.equal(shown.config.redisPassword, '***');
  assert.deepEqual(shown.config.billingTokens, ['***']);
  assert.match(shown.config.databaseUrl, /meter:\*\*\*@h:5432\/meter\?password=\*\*\*/);
  assert.equal(shown.config.kafkaSaslUsername, 'meter', 'a user name is not a secret');
  assert.match(shown.backends.log, /SASL plain as meter/);
});

test('a bad URL with a password: the error line masks it (exit 2)', () => {
  const r = spawnSync(process.execPath, [assetPath('bin/meter.js'), 'config'], {
    cwd,
    env: { PATH: process.env.PATH!, METER_DATABASE_URL: 'postgres://meter:url-pw-36@h:99999/meter' },
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /invalid databaseUrl \(METER_DATABASE_URL\).*meter:\*\*\*@h/);
  assert.ok(!r.stderr.includes('url-pw-36'), r.stderr);
});

test('loaded secrets are scrubbed from any text (errors and logs pass through scrub)', () => {
  const cfg = load({ METER_REDIS_URL: 'redis://r:6379', METER_REDIS_PASSWORD: 'p@ss word/99' });
  assert.equal(maskedConfig(cfg).redisPassword, '***');
  assert.equal(scrub('AUTH p@ss word/99 failed; url redis://:p%40ss%20word%2F99@r'), 'AUTH *** failed; url redis://:***@r');
  // The stack's meter:meter: a password equal to the user name is not scrubbed from every "meter".
  load({ METER_DATABASE_URL: 'postgres://meter:meter@127.0.0.1:15432/meter', METER_REDIS_PASSWORD: 'short', METER_REDIS_URL: 'redis://r:6379' });
  assert.equal(scrub('meter: migrate failed for user meter (short)'), 'meter: migrate failed for user meter (short)');
});

test("kafkaTls=on: meter's Kafka client completes a TLS handshake with the CA file, and names kafkaTlsCaFile without it", async () => {
  let handshakes = 0;
  const server = createServer({ cert: readFileSync(cert.certFile), key: readFileSync(cert.keyFile) }, (s) => {
    handshakes++;
    s.destroy(); // not a Kafka broker: the client gives up, which is all this test needs
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const brokers = [`127.0.0.1:${(server.address() as { port: number }).port}`];
  const attempt = async (env: Record<string, string>) => {
    const cfg = load({ METER_KAFKA_BROKERS: brokers[0]!, METER_KAFKA_TLS: 'on', ...env });
    const log = new KafkaLog({ brokers, topic: 't', partitions: 1, retries: 0, ...kafkaSecurity(cfg) });
    try {
      await log.init();
      assert.fail('not a broker: init must fail');
    } catch (e) {
      return `${(e as Error).message} ${(e as { hint?: string }).hint ?? ''}`;
    } finally {
      await log.close();
    }
  };
  try {
    const withCa = await attempt({ METER_KAFKA_TLS_CA_FILE: cert.certFile });
    assert.ok(handshakes >= 1, `no TLS handshake completed (${withCa})`);
    const before = handshakes;
    const withoutCa = await attempt({});
    assert.equal(handshakes, before, 'an unknown CA never completes a handshake');
    assert.match(withoutCa, /TLS certificate check failed \(.*self-signed certificate.*set kafkaTlsCaFile/);
  } finally {
    server.close();
  }
});
