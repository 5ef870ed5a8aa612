/**
 * Checks of the transport-security settings that involve more than one setting (a SASL
 * mechanism needs a user and a password, a CA file needs TLS on, ...), and CA files resolved
 * and read once at load. Each mistake is one ConfigError line naming the setting and the fix.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { ConfigError, type MeterConfig } from './config.js';

/** Function declarations (hoisted): config.ts and this module import each other. */
export function checkTransportSecurity(cfg: MeterConfig, cwd: string): void {
  for (const key of ['kafkaTlsCaFile', 'redisTlsCaFile', 'databaseTlsCaFile'] as const) {
    const f = cfg[key];
    if (f) cfg[key] = checkCaFile(key, resolve(cwd, f));
  }
  checkKafka(cfg);
  checkRedis(cfg);
  checkDatabase(cfg);
}

function checkCaFile(key: string, file: string): string {
  if (!existsSync(file) || !statSync(file).isFile())
    throw new ConfigError(key, `invalid ${key}: ${file} does not exist or is not a file (give a PEM file of CA certificates)`);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(key, `invalid ${key}: cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  if (!text.includes('-----BEGIN CERTIFICATE-----'))
    throw new ConfigError(key, `invalid ${key}: ${file} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  return file;
}

function checkKafka(cfg: MeterConfig): void {
  const sasl = cfg.kafkaSaslMechanism !== 'none';
  const any = sasl || cfg.kafkaTls === 'on' || cfg.kafkaTlsCaFile || cfg.kafkaSaslUsername || cfg.kafkaSaslPassword;
  if (any && !cfg.kafkaBrokers.length)
    throw new ConfigError(
      'kafkaBrokers',
      'Kafka TLS/SASL settings are set but kafkaBrokers is not: set kafkaBrokers (METER_KAFKA_BROKERS), or unset the kafkaTls*/kafkaSasl* settings (the embedded log has no network)',
    );
  if (cfg.kafkaTlsCaFile && cfg.kafkaTls !== 'on')
    throw new ConfigError('kafkaTls', 'kafkaTlsCaFile is set but kafkaTls is off: set kafkaTls=on (METER_KAFKA_TLS=on) or unset kafkaTlsCaFile');
  if (sasl) {
    if (!cfg.kafkaSaslUsername)
      throw new ConfigError(
        'kafkaSaslUsername',
        `kafkaSaslMechanism is ${cfg.kafkaSaslMechanism} but kafkaSaslUsername is not set (METER_KAFKA_SASL_USERNAME)`,
      );
    if (!cfg.kafkaSaslPassword)
      throw new ConfigError(
        'kafkaSaslPassword',
        `kafkaSaslMechanism is ${cfg.kafkaSaslMechanism} but kafkaSaslPassword is not set (METER_KAFKA_SASL_PASSWORD)`,
      );
  } else if (cfg.kafkaSaslUsername || cfg.kafkaSaslPassword) {
    throw new ConfigError(
      'kafkaSaslMechanism',
      'a Kafka SASL user or password is set but kafkaSaslMechanism is none: set it to plain, scram-sha-256 or scram-sha-512 (METER_KAFKA_SASL_MECHANISM)',
    );
  }
}

function checkRedis(cfg: MeterConfig): void {
  const any = cfg.redisUsername || cfg.redisPassword || cfg.redisTls === 'on' || cfg.redisTlsCaFile;
  if (!cfg.redisUrl) {
    if (any)
      throw new ConfigError(
        'redisUrl',
        'Redis AUTH/TLS settings are set but redisUrl is not: set redisUrl (METER_REDIS_URL), or unset the redis* security settings (the in-process limiter has no network)',
      );
    return;
  }
  const u = new URL(cfg.redisUrl);
  if ((u.username || u.password) && (cfg.redisUsername || cfg.redisPassword))
    throw new ConfigError(
      'redisPassword',
      'Redis credentials are given twice, in redisUrl and in redisUsername/redisPassword: keep one (the settings keep the password out of the URL)',
    );
  if (cfg.redisUsername && !cfg.redisPassword)
    throw new ConfigError('redisPassword', `redisUsername is set but redisPassword is not (METER_REDIS_PASSWORD): an ACL user logs in with a password`);
  if (cfg.redisTlsCaFile && cfg.redisTls !== 'on' && u.protocol !== 'rediss:')
    throw new ConfigError('redisTls', 'redisTlsCaFile is set but TLS is off: set redisTls=on (METER_REDIS_TLS=on) or use a rediss:// URL');
}

/** libpq's TLS parameters in a URL: pg lets them win over our `ssl`, so only one place may set TLS. */
const URL_TLS_PARAMS = ['ssl', 'sslmode', 'sslrootcert', 'sslcert', 'sslkey', 'sslcrl'];

function checkDatabase(cfg: MeterConfig): void {
  if (!cfg.databaseUrl) {
    if (cfg.databaseTls !== 'off' || cfg.databaseTlsCaFile)
      throw new ConfigError(
        'databaseUrl',
        'Postgres TLS settings are set but databaseUrl is not: set databaseUrl (METER_DATABASE_URL), or unset databaseTls* (embedded PGlite has no network)',
      );
    return;
  }
  const inUrl = URL_TLS_PARAMS.filter((p) => new URL(cfg.databaseUrl!).searchParams.has(p));
  if (inUrl.length && (cfg.databaseTls !== 'off' || cfg.databaseTlsCaFile))
    throw new ConfigError(
      'databaseTls',
      `TLS is set twice: databaseUrl has ${inUrl.join(', ')} and databaseTls/databaseTlsCaFile are set; keep one (remove ${inUrl.join(', ')} from the URL, or unset databaseTls)`,
    );
  if (cfg.databaseTlsCaFile && cfg.databaseTls !== 'verify-ca' && cfg.databaseTls !== 'verify-full')
    throw new ConfigError(
      'databaseTls',
      `databaseTlsCaFile is set but databaseTls is ${cfg.databaseTls}: the CA file is used by verify-ca or verify-full (METER_DATABASE_TLS=verify-full)`,
    );
}

/** " (TLS, SASL scram-sha-512 as meter)" for describeBackends; "" when plain. */
export function transportNote(cfg: MeterConfig, which: 'kafka' | 'redis' | 'database'): string {
  const parts: string[] = [];
  if (which === 'kafka') {
    if (cfg.kafkaTls === 'on') parts.push(cfg.kafkaTlsCaFile ? `TLS, CA ${cfg.kafkaTlsCaFile}` : 'TLS');
    if (cfg.kafkaSaslMechanism !== 'none') parts.push(`SASL ${cfg.kafkaSaslMechanism} as ${cfg.kafkaSaslUsername}`);
  } else if (which === 'redis') {
    const tls = cfg.redisTls === 'on' || (cfg.redisUrl?.startsWith('rediss:') ?? false);
    if (tls) parts.push(cfg.redisTlsCaFile ? `TLS, CA ${cfg.redisTlsCaFile}` : 'TLS');
    if (cfg.redisPassword) parts.push(`AUTH as ${cfg.redisUsername ?? 'default'}`);
  } else if (cfg.databaseTls !== 'off') {
    parts.push(`TLS ${cfg.databaseTls}${cfg.databaseTlsCaFile ? `, CA ${cfg.databaseTlsCaFile}` : ''}`);
  }
  return parts.length ? ` (${parts.join(', ')})` : '';
}
