/**
 * A refused login or a security mismatch, turned into one line that says what failed and which
 * setting fixes it. Driver messages are kept (they say which mechanism and why) and never hold
 * the password; src/security/secrets.ts scrubs printed text anyway.
 */
import { UserError } from '../ground/errors.js';
import { isUnreachable } from '../ground/unreachable.js';

export interface KafkaAuthContext {
  brokers: string[];
  sasl?: { mechanism: string; username?: string };
  ssl?: unknown;
}

/** kafkajs' error from a connect, explained; other errors are returned unchanged. */
export function explainKafkaError(e: unknown, ctx: KafkaAuthContext): unknown {
  const err = e as Error & { name?: string };
  const msg = String(err?.message ?? e);
  const where = `kafka ${ctx.brokers.join(',')}`;
  if (e instanceof UserError || msg.startsWith(`${where}: `)) return e; // explained already
  if (err?.name === 'KafkaJSSASLAuthenticationError' || /SASL .*authentication failed/i.test(msg)) {
    const who = ctx.sasl ? `SASL ${ctx.sasl.mechanism} login as "${ctx.sasl.username}"` : 'SASL login';
    return new UserError(
      `${where}: ${who} was refused (${msg})`,
      'fix kafkaSaslUsername / kafkaSaslPassword (METER_KAFKA_SASL_USERNAME / METER_KAFKA_SASL_PASSWORD) or kafkaSaslMechanism (METER_KAFKA_SASL_MECHANISM)',
    );
  }
  if (/SASL mechanism .* not supported|UNSUPPORTED_SASL_MECHANISM|not enabled/i.test(msg) && ctx.sasl) {
    return new UserError(
      `${where}: the broker does not accept SASL ${ctx.sasl.mechanism} (${msg})`,
      'set kafkaSaslMechanism (METER_KAFKA_SASL_MECHANISM) to one the listener enables',
    );
  }
  // Not ECONNREFUSED or timeouts: those are a broker down or slow, not a security mismatch.
  if (/Closed connection|disconnected before secure TLS|wrong version number/i.test(msg)) {
    const hint =
      !ctx.sasl && !ctx.ssl
        ? 'if this listener expects SASL or TLS, set kafkaSaslMechanism/kafkaSaslUsername/kafkaSaslPassword or kafkaTls=on'
        : ctx.ssl
          ? 'if this listener is plaintext, set kafkaTls=off; if it is TLS, check kafkaTlsCaFile'
          : 'if this listener expects TLS too (SASL_SSL), set kafkaTls=on; if it is PLAINTEXT, set kafkaSaslMechanism=none';
    return new Error(`${where}: ${msg} (${hint})`, { cause: e });
  }
  if (/self[- ]signed certificate|unable to verify|certificate|Hostname\/IP does not match/i.test(msg)) {
    return new UserError(
      `${where}: TLS certificate check failed (${msg})`,
      "set kafkaTlsCaFile (METER_KAFKA_TLS_CA_FILE) to the CA that signed the brokers' certificates",
    );
  }
  // A broker down or a wrong address: say that it is Kafka, where, and the settings. kafkajs said
  // only "Connection error: connect ECONNREFUSED 127.0.0.1:1", which a user of `meter ingest`
  // could not tell from the warehouse or the lake. The cause is kept: followers still wait for it.
  if (isUnreachable(e) || /\bENOTFOUND\b/.test(msg)) return kafkaUnreachable(ctx.brokers, msg, e);
  return e;
}

/** "Kafka is not there": where, why, and the settings (an unreachable error still: followers wait for it). */
export function kafkaUnreachable(brokers: string[], why: string, cause?: unknown): Error {
  const e = new Error(`kafka ${brokers.join(',')}: unreachable (${why}); start Kafka there, fix METER_KAFKA_BROKERS, or unset it for the embedded log`, {
    cause: cause ?? Object.assign(new Error(why), { code: 'ECONNREFUSED' }),
  });
  return e;
}

/** Redis refusals that are a credential problem, not an outage. */
export function isRedisAuthError(e: Error): boolean {
  return /^(NOAUTH|WRONGPASS|NOPERM)\b|invalid username-password|Authentication required/i.test(e.message);
}

/** An ioredis error with the setting to fix when it is about AUTH or TLS. */
export function explainRedisError(e: Error): Error {
  const msg = e.message;
  if (/^NOAUTH\b|Authentication required/i.test(msg))
    return new Error(`redis refused the connection: it requires a password (${msg}); set redisPassword (METER_REDIS_PASSWORD)`);
  if (/^WRONGPASS\b|invalid username-password/i.test(msg))
    return new Error(`redis refused the login (${msg}); fix redisUsername / redisPassword (METER_REDIS_USERNAME / METER_REDIS_PASSWORD)`);
  if (/^NOPERM\b|can't run this command|no permissions to access/i.test(msg))
    return new Error(
      `redis: the ACL user may not run this (${msg}); give it the limiter's commands and keys (docs/security.md: ~meter:rl:* ~meter:gw:* +evalsha +eval +script|load +hmget +hset +pexpire +time +zadd +zremrangebyscore +zcard +zrem)`,
    );
  if (/self[- ]signed certificate|unable to verify|certificate/i.test(msg))
    return new Error(
      `redis TLS certificate check failed (${msg}); set redisTlsCaFile (METER_REDIS_TLS_CA_FILE) to the CA that signed the server's certificate`,
    );
  return e;
}

/** A pg connect error with the setting to fix when it is about TLS or the login; else the message. */
export function explainPgError(e: Error): string {
  const msg = e.message;
  if (/no encryption/i.test(msg)) return `${msg} (the server accepts only TLS connections: set databaseTls=verify-full with databaseTlsCaFile, or require)`;
  if (/does not support SSL/i.test(msg)) return `${msg} (set databaseTls=off, or turn ssl on in the server)`;
  if (/self[- ]signed certificate|unable to verify|unable to get local issuer|certificate has expired/i.test(msg))
    return `TLS certificate check failed: ${msg} (set databaseTlsCaFile, METER_DATABASE_TLS_CA_FILE, to the CA that signed the server's certificate)`;
  if (/does not match certificate|altnames/i.test(msg))
    return `TLS host name check failed: ${msg} (connect by a name the certificate holds, or use databaseTls=verify-ca)`;
  if (/password authentication failed/i.test(msg)) return `${msg} (fix the user or password in databaseUrl, METER_DATABASE_URL)`;
  return msg;
}
