/**
 * The config's transport-security settings as each client library wants them: kafkajs
 * (`ssl`, `sasl`), ioredis (`username`, `password`, `tls`) and pg (`ssl`). Every place that
 * creates one of these clients from the config takes its options from here (src/runtime/
 * backends.ts, src/runtime/roles.ts, src/demo/run-demo.ts), so no client is built without them.
 */
import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import type { SASLOptions } from 'kafkajs';
import type { MeterConfig } from '../config/config.js';

const ca = (file: string | null) => (file ? { ca: [readFileSync(file, 'utf8')] } : {});

export interface KafkaSecurity {
  ssl?: ConnectionOptions;
  sasl?: SASLOptions;
}

export function kafkaSecurity(cfg: MeterConfig): KafkaSecurity {
  const out: KafkaSecurity = {};
  if (cfg.kafkaTls === 'on') out.ssl = { rejectUnauthorized: true, ...ca(cfg.kafkaTlsCaFile) };
  if (cfg.kafkaSaslMechanism !== 'none') {
    out.sasl = { mechanism: cfg.kafkaSaslMechanism, username: cfg.kafkaSaslUsername!, password: cfg.kafkaSaslPassword! } as SASLOptions;
  }
  return out;
}

export interface RedisSecurity {
  username?: string;
  password?: string;
  tls?: ConnectionOptions;
}

export function redisSecurity(cfg: MeterConfig): RedisSecurity {
  const out: RedisSecurity = {};
  if (cfg.redisUsername) out.username = cfg.redisUsername;
  if (cfg.redisPassword) out.password = cfg.redisPassword;
  if (cfg.redisTls === 'on' || cfg.redisTlsCaFile) out.tls = { rejectUnauthorized: true, ...ca(cfg.redisTlsCaFile) };
  return out;
}

/** pg's `ssl` option for databaseTls, as libpq's sslmode of the same name; undefined = off. */
export function pgSsl(cfg: MeterConfig): ConnectionOptions | undefined {
  switch (cfg.databaseTls) {
    case 'off':
      return undefined;
    case 'require':
      return { rejectUnauthorized: false };
    case 'verify-ca':
      // The chain is checked; the host name is not (libpq's verify-ca).
      return { rejectUnauthorized: true, ...ca(cfg.databaseTlsCaFile), checkServerIdentity: () => undefined };
    case 'verify-full':
      return { rejectUnauthorized: true, ...ca(cfg.databaseTlsCaFile) };
  }
}
