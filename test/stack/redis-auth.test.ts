/**
 * Redis AUTH and TLS through the limiter as every command builds it (openLimiter from the
 * config), against redis-servers this test starts itself (requirepass + an ACL user; TLS with a
 * self-signed certificate): the right credentials decide through Redis, wrong ones degrade by
 * failMode with an error naming the setting and never the password; `meter doctor` says so too.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { loadConfig } from '../../src/config/config.js';
import { openLimiter } from '../../src/runtime/backends.js';
import { runDoctor } from '../../src/runtime/doctor.js';
import type { Logger } from '../../src/ground/logger.js';
import { selfSignedCert, startRedis, type Cert, type OwnServer } from '../support/own-servers.js';
import { tempDir } from '../support/tmp.js';

const PASSWORD = 'requirepass-s3cret-1';
const ACL_USER = 'meter-limiter';
const ACL_PASSWORD = 'acl-s3cret-2';
let plain: OwnServer;
let tls: OwnServer;
let cert: Cert;

before(async () => {
  // The ACL user may run the token bucket (EVALSHA/EVAL/SCRIPT) on the limiter's keys only.
  plain = await startRedis(() => [
    '--requirepass',
    PASSWORD,
    '--user',
    ACL_USER,
    'on',
    `>${ACL_PASSWORD}`,
    '~meter:rl:*',
    '~meter:gw:*',
    '+evalsha',
    '+eval',
    '+script|load',
    '+hmget',
    '+hset',
    '+pexpire',
    '+time',
    '+zadd',
    '+zremrangebyscore',
    '+zcard',
    '+zrem',
    '+ping',
    '+info',
    '+client',
    // The same without HSET: the script cannot store the bucket.
    '--user',
    'too-narrow',
    'on',
    `>${ACL_PASSWORD}`,
    '~meter:rl:*',
    '+evalsha',
    '+eval',
    '+script|load',
    '+hmget',
    '+pexpire',
    '+ping',
    '+info',
    '+client',
  ]);
  cert = selfSignedCert();
  tls = await startRedis(
    (port) => [
      '--tls-port',
      String(port),
      '--tls-cert-file',
      cert.certFile,
      '--tls-key-file',
      cert.keyFile,
      '--tls-ca-cert-file',
      cert.certFile,
      '--tls-auth-clients',
      'no',
      '--requirepass',
      PASSWORD,
    ],
    { tls: true },
  );
});
after(async () => {
  await plain?.stop();
  await tls?.stop();
  if (cert) rmSync(cert.dir, { recursive: true, force: true });
});

const cwd = tempDir('meter-redis-auth-');
after(() => rmSync(cwd, { recursive: true, force: true }));
const cfgOf = (env: Record<string, string>) => loadConfig({ cwd, env: { METER_LIMITER_FAIL_MODE: 'closed', ...env } });

function capture(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const at = (m: string) => void lines.push(m);
  const logger: Logger = { debug: at, info: at, warn: at, error: at, child: () => logger };
  return { logger, lines };
}

/** One take; the decision and what the limiter reported. */
async function takeWith(env: Record<string, string>) {
  const { logger, lines } = capture();
  const limiter = await openLimiter(cfgOf(env), logger);
  try {
    const d = await limiter.take(`auth-${Math.random().toString(36).slice(2)}`, { ratePerSec: 1, burst: 5 });
    return { d, lines };
  } finally {
    await limiter.close();
  }
}

test('redis requirepass: the password setting logs in and the token bucket decides', async () => {
  const { d, lines } = await takeWith({ METER_REDIS_URL: `redis://127.0.0.1:${plain.port}`, METER_REDIS_PASSWORD: PASSWORD });
  assert.equal(d.degraded, undefined, lines.join('\n'));
  assert.equal(d.allowed, true);
  assert.equal(d.remaining, 4);
});

test('redis ACL user: username + password log in as that user', async () => {
  const { d, lines } = await takeWith({
    METER_REDIS_URL: `redis://127.0.0.1:${plain.port}`,
    METER_REDIS_USERNAME: ACL_USER,
    METER_REDIS_PASSWORD: ACL_PASSWORD,
  });
  assert.equal(d.degraded, undefined, lines.join('\n'));
  assert.equal(d.remaining, 4);
});

test('redis ACL user without a command the script needs: degraded, the error says which ACL to give', async () => {
  const { d, lines } = await takeWith({
    METER_REDIS_URL: `redis://127.0.0.1:${plain.port}`,
    METER_REDIS_USERNAME: 'too-narrow',
    METER_REDIS_PASSWORD: ACL_PASSWORD,
  });
  assert.equal(d.degraded, true);
  assert.match(lines.join('\n'), /the ACL user may not run this.*\+hset/);
});

test('redis wrong password: degraded by failMode, the error names the setting, not the password', async () => {
  const wrong = 'wrong-redis-pass-77';
  const { d, lines } = await takeWith({ METER_REDIS_URL: `redis://127.0.0.1:${plain.port}`, METER_REDIS_PASSWORD: wrong });
  assert.equal(d.degraded, true);
  assert.equal(d.allowed, false, 'failMode closed refuses');
  const text = lines.join('\n');
  assert.match(text, /redis refused the login \(WRONGPASS[^)]*\); fix redisUsername \/ redisPassword/);
  assert.ok(!text.includes(wrong), text);
});

test('redis without a password where one is required: says to set redisPassword', async () => {
  const { d, lines } = await takeWith({ METER_REDIS_URL: `redis://127.0.0.1:${plain.port}` });
  assert.equal(d.degraded, true);
  assert.match(lines.join('\n'), /requires a password.*set redisPassword/);
});

test('meter doctor with a wrong Redis password: FAIL limiter with the reason, no password', async () => {
  const wrong = 'doctor-wrong-pass-88';
  const checks = await runDoctor(cfgOf({ METER_REDIS_URL: `redis://127.0.0.1:${plain.port}`, METER_REDIS_PASSWORD: wrong }), 8000);
  const lim = checks.find((c) => c.name === 'limiter')!;
  assert.equal(lim.ok, false);
  assert.match(lim.detail, /\(AUTH as default\).*refused the login.*fix redisUsername \/ redisPassword/);
  assert.ok(!JSON.stringify(checks).includes(wrong));
});

test('redis TLS: redisTls=on with the CA file connects; without the CA the certificate is refused, saying which setting', async () => {
  const url = `redis://127.0.0.1:${tls.port}`;
  const ok = await takeWith({ METER_REDIS_URL: url, METER_REDIS_PASSWORD: PASSWORD, METER_REDIS_TLS: 'on', METER_REDIS_TLS_CA_FILE: cert.certFile });
  assert.equal(ok.d.degraded, undefined, ok.lines.join('\n'));
  assert.equal(ok.d.remaining, 4);
  const viaUrl = await takeWith({ METER_REDIS_URL: `rediss://127.0.0.1:${tls.port}`, METER_REDIS_PASSWORD: PASSWORD, METER_REDIS_TLS_CA_FILE: cert.certFile });
  assert.equal(viaUrl.d.degraded, undefined, viaUrl.lines.join('\n'));
  const noCa = await takeWith({ METER_REDIS_URL: url, METER_REDIS_PASSWORD: PASSWORD, METER_REDIS_TLS: 'on' });
  assert.equal(noCa.d.degraded, true);
  assert.match(noCa.lines.join('\n'), /certificate.*redisTlsCaFile/);
});
