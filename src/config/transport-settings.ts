/**
 * The transport-security settings (TLS, SASL, AUTH of the Kafka, Redis and Postgres clients),
 * appended to config.ts's table. Data only, no imports of values: config.ts builds SETTINGS from
 * this list while it loads. docs/security.md explains each one.
 */
import type { Kind, MeterConfig } from './config.js';

export const TRANSPORT_SETTINGS: Array<[keyof MeterConfig, Kind, string, boolean]> = [
  ['kafkaTls', { t: 'enum', values: ['off', 'on'] }, 'Kafka: TLS to the brokers (on) or plaintext (off)', false],
  ['kafkaTlsCaFile', { t: 'path' }, "Kafka: PEM file of the CA(s) that signed the brokers' certificates; unset = the system CAs", true],
  [
    'kafkaSaslMechanism',
    { t: 'enum', values: ['none', 'plain', 'scram-sha-256', 'scram-sha-512'] },
    'Kafka: SASL mechanism (none, plain, scram-sha-256, scram-sha-512)',
    false,
  ],
  ['kafkaSaslUsername', { t: 'string' }, 'Kafka: SASL user name', true],
  ['kafkaSaslPassword', { t: 'secret' }, 'Kafka: SASL password (secret: prefer the environment or the config file to a flag)', true],
  ['redisUsername', { t: 'string' }, 'Redis: ACL user name for AUTH (unset = the default user)', true],
  ['redisPassword', { t: 'secret' }, "Redis: password for AUTH (requirepass or the ACL user's; secret)", true],
  ['redisTls', { t: 'enum', values: ['off', 'on'] }, 'Redis: TLS (on; also implied by a rediss:// URL) or plaintext (off)', false],
  ['redisTlsCaFile', { t: 'path' }, "Redis: PEM file of the CA(s) that signed the server's certificate; unset = the system CAs", true],
  [
    'databaseTls',
    { t: 'enum', values: ['off', 'require', 'verify-ca', 'verify-full'] },
    'Postgres: TLS as libpq sslmode: off, require (encrypt, no check), verify-ca (check the CA), verify-full (CA and host name)',
    false,
  ],
  ['databaseTlsCaFile', { t: 'path' }, "Postgres: PEM file of the CA(s) that signed the server's certificate; unset = the system CAs", true],
];

export const TRANSPORT_DEFAULTS = {
  kafkaTls: 'off',
  kafkaTlsCaFile: null,
  kafkaSaslMechanism: 'none',
  kafkaSaslUsername: null,
  kafkaSaslPassword: null,
  redisUsername: null,
  redisPassword: null,
  redisTls: 'off',
  redisTlsCaFile: null,
  databaseTls: 'off',
  databaseTlsCaFile: null,
} as const satisfies Partial<MeterConfig>;
