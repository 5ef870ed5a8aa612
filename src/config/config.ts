/**
 * The one configuration type of meter, validated at the edge.
 *
 * Precedence: flags > METER_* environment > config file (JSON) > defaults.
 * Every setting has one name in each place: `lakeUrl` in the file, `METER_LAKE_URL` in the
 * environment, `--lake-url` as a flag. An invalid value throws ConfigError naming the setting
 * and what is allowed; the CLI prints it on one line and exits 2.
 */
import { readFileSync, existsSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { TRANSPORT_SETTINGS, TRANSPORT_DEFAULTS } from './transport-settings.js';
import { checkTransportSecurity, transportNote } from './transport-security.js';
import { rememberSecrets, urlPassword } from '../security/secrets.js';
import { parseHeaderPattern } from '../ground/header-pattern.js';
import { logNameProblem } from '../ground/log-names.js';
import { FETCH_BAD_PORTS } from '../ground/fetch-bad-ports.js';
import { didYouMean, nearest } from '../ground/nearest.js';
import { PARTITION_BY, type PartitionBy } from '../events/event-spread.js';
import { quote, shortPath } from '../ground/text.js';

export interface MeterConfig {
  /** Folder for embedded state (log, lake, PGlite, caches). */
  dataDir: string;
  /** Kafka bootstrap brokers; empty = embedded durable log under dataDir. */
  kafkaBrokers: string[];
  /** Kafka consumer group session timeout (ms): a member silent this long loses its partitions. */
  kafkaSessionTimeoutMs: number;
  kafkaHeartbeatIntervalMs: number;
  /** How producers compress record batches: gzip (smaller log on disk) or none (less CPU per event). */
  kafkaCompression: 'gzip' | 'none';
  topic: string;
  /** Partitions of the topic (created if absent) and of the embedded log. */
  partitions: number;
  /** How producers place records: spread by event id, or one partition per customer (src/log/log.ts). */
  partitionBy: PartitionBy;
  /** `file:///abs/path` or `hdfs://host:9870/path` (WebHDFS). */
  lakeUrl: string;
  /** postgres://... ; null = embedded PGlite under dataDir. */
  databaseUrl: string | null;
  /** redis://... ; null = in-process limiter. */
  redisUrl: string | null;
  /** Price list + plans (JSON). */
  catalogFile: string;
  /** Route table: method + path pattern -> api name (JSON). */
  routesFile: string;
  gatewayHost: string;
  gatewayPort: number;
  /** Gateway worker processes (0 = one per core). */
  gatewayWorkers: number;
  /** Where the gateway forwards calls; required by `meter gateway`. */
  upstream: string | null;
  billingHost: string;
  billingPort: number;
  /** Bearer tokens accepted by the billing API as service (admin/payment server) tokens. */
  billingTokens: string[];
  /** Ingest rotation: close a file after this many records or this many ms of wall time. */
  ingestMaxRecords: number;
  ingestFlushMs: number;
  ingestMemoryMb: number;
  /** Gateway: flush buffered usage events to the log at least this often. */
  eventFlushMs: number;
  /** Gateway: largest request body accepted, bytes. */
  maxBodyBytes: number;
  /** Gateway: answer before the event is durable (batched) or only after (strict). */
  durability: 'batched' | 'strict';
  /** Gateway: largest size of the local spool (events kept while the log is slow or down), bytes. */
  spoolMaxBytes: number;
  /** rollup on HDFS: bound of the local copy of the lake (bytes). */
  lakeCacheMaxBytes: number;
  /** Compaction: size of the merged files (MB), and how long after an hour ends the follower compacts it (0 = never). */
  compactTargetMb: number;
  compactAfterMs: number;
  /** Gateway: a log send not acknowledged within this many ms goes to the spool instead. */
  spoolAfterMs: number;
  /** Gateway: re-read a customer's quota count from the warehouse at most this often. */
  quotaRefreshMs: number;
  /** Gateway: extra client headers dropped as identity headers (names, or prefixes ending in `*`). */
  stripHeaders: string[];
  /** Gateway: calls one API key / one customer may have in progress at once (plans may set their own). */
  inFlightPerKey: number;
  inFlightPerCustomer: number;
  /** Gateway: request headers complete within this many ms, else 408. */
  headersTimeoutMs: number;
  /** Gateway: longest pause in a request body, and the grace before minBodyBytesPerSec applies (ms). */
  bodyTimeoutMs: number;
  /** Gateway: least average rate of a request body after bodyTimeoutMs (bytes/s; 0 = none). */
  minBodyBytesPerSec: number;
  /** Limiter behaviour when Redis is unreachable. */
  limiterFailMode: 'local' | 'open' | 'closed';
  logLevel: 'debug' | 'info' | 'warn' | 'error';
  /** Transport security of the clients (docs/security.md; checked in transport-security.ts). */
  kafkaTls: 'off' | 'on';
  kafkaTlsCaFile: string | null;
  kafkaSaslMechanism: 'none' | 'plain' | 'scram-sha-256' | 'scram-sha-512';
  kafkaSaslUsername: string | null;
  kafkaSaslPassword: string | null;
  redisUsername: string | null;
  redisPassword: string | null;
  redisTls: 'off' | 'on';
  redisTlsCaFile: string | null;
  databaseTls: 'off' | 'require' | 'verify-ca' | 'verify-full';
  databaseTlsCaFile: string | null;
  /** Log lines as text or JSON (docs/operations.md). */
  logFormat: 'text' | 'json';
  /** Admin listener (/metrics, /healthz, /readyz, /ops) of long-running roles; port 0 = any free port. */
  adminHost: string;
  adminPort: number;
}

export class ConfigError extends Error {
  constructor(
    readonly setting: string,
    message: string,
  ) {
    super(message);
    this.name = 'ConfigError';
  }
}

export type Kind =
  | { t: 'string' }
  | { t: 'path' }
  /** A string never printed (masked in `meter config`, errors and logs: src/security/secrets.ts). */
  | { t: 'secret' }
  | { t: 'url'; protocols: string[] }
  | { t: 'int'; min: number; max: number }
  | { t: 'list' }
  | { t: 'enum'; values: readonly string[] };

interface Setting {
  key: keyof MeterConfig;
  env: string;
  flag: string;
  kind: Kind;
  nullable?: boolean;
  help: string;
}

const S = (key: keyof MeterConfig, kind: Kind, help: string, nullable = false): Setting => ({
  key,
  env: 'METER_' + key.replace(/[A-Z]/g, (c) => '_' + c).toUpperCase(),
  flag: '--' + key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase()),
  kind,
  nullable,
  help,
});

/** The table of settings; docs/configuration.md is generated from the same list (config-docs.ts). */
export const SETTINGS: Setting[] = [
  S('dataDir', { t: 'path' }, 'folder for embedded state (log, lake, PGlite)'),
  S('kafkaBrokers', { t: 'list' }, 'Kafka brokers host:port,...; unset = embedded durable log'),
  S(
    'kafkaSessionTimeoutMs',
    { t: 'int', min: 6000, max: 300_000 },
    "consumer groups (ingest, live): a member silent this long loses its partitions to the others (ms; within the broker's group.min/max.session.timeout.ms; docs/scaling.md: takeover)",
  ),
  S(
    'kafkaHeartbeatIntervalMs',
    { t: 'int', min: 100, max: 100_000 },
    'consumer groups: heartbeat this often (ms; at most a third of the session timeout), so a rebalance is noticed this soon',
  ),
  S(
    'kafkaCompression',
    { t: 'enum', values: ['gzip', 'none'] },
    "producers (gateway, events API): gzip each record batch (~4x smaller in the log) or send it as is (no deflate in the gateway, none in the broker's checks or the consumers; docs/scaling.md: Kafka's CPU)",
  ),
  S('topic', { t: 'string' }, 'usage event topic (1-200 of A-Z a-z 0-9 . _ -, not starting with . or _: it names folders of the embedded log)'),
  S('partitions', { t: 'int', min: 1, max: 1024 }, 'partitions of the topic / embedded log'),
  S(
    'partitionBy',
    { t: 'enum', values: PARTITION_BY },
    "where producers put a record: `event` spreads each customer's events over all partitions by event id; `customer` keeps a customer in one partition, in order (docs/scaling.md: hot partitions)",
  ),
  S('lakeUrl', { t: 'url', protocols: ['file:', 'hdfs:', 'webhdfs:'] }, 'lake root: file:///path or hdfs://host:9870/path'),
  S('databaseUrl', { t: 'url', protocols: ['postgres:', 'postgresql:'] }, 'Postgres URL; unset = embedded PGlite', true),
  S('redisUrl', { t: 'url', protocols: ['redis:', 'rediss:'] }, 'Redis URL; unset = in-process limiter', true),
  S('catalogFile', { t: 'path' }, 'plans and prices (JSON)'),
  S('routesFile', { t: 'path' }, 'route table: method + path -> api name (JSON)'),
  S('gatewayHost', { t: 'string' }, 'gateway listen address'),
  S('gatewayPort', { t: 'int', min: 0, max: 65535 }, 'gateway listen port (0 = any free port)'),
  S('upstream', { t: 'url', protocols: ['http:', 'https:'] }, 'upstream API the gateway forwards to', true),
  S(
    'gatewayWorkers',
    { t: 'int', min: 0, max: 1024 },
    "gateway: worker processes sharing the port (0 = one per core, the default; 1 = none, the gateway runs in the command's process); docs/gateway.md",
  ),
  S('billingHost', { t: 'string' }, 'billing API listen address'),
  S('billingPort', { t: 'int', min: 0, max: 65535 }, 'billing API listen port (0 = any free port)'),
  S('billingTokens', { t: 'list' }, 'service bearer tokens for the billing API'),
  S('ingestMaxRecords', { t: 'int', min: 1, max: 50_000_000 }, 'ingest: rotate a file after this many records'),
  S('ingestFlushMs', { t: 'int', min: 10, max: 3_600_000 }, 'ingest: rotate files at least this often (ms)'),
  S(
    'ingestMemoryMb',
    { t: 'int', min: 128, max: 1_048_576 },
    'ingest/replay: memory limit of the DuckDB that writes Parquet (MB; at least 128, which rows of the largest accepted fields need); past it DuckDB spills to local disk',
  ),
  S('eventFlushMs', { t: 'int', min: 1, max: 10_000 }, 'gateway: flush usage events to the log at least this often (ms)'),
  S('maxBodyBytes', { t: 'int', min: 0, max: 1 << 30 }, 'gateway: largest request body accepted (bytes)'),
  S(
    'durability',
    { t: 'enum', values: ['batched', 'strict'] },
    'gateway: batched (answer, then flush within eventFlushMs) or strict (answer after the event is durable)',
  ),
  S('spoolMaxBytes', { t: 'int', min: 65_536, max: 2 ** 50 }, 'gateway: size bound of the local spool used while the log is down (bytes)'),
  S(
    'lakeCacheMaxBytes',
    { t: 'int', min: 1 << 20, max: 2 ** 50 },
    'rollup on HDFS: bound of the local copy of the lake under dataDir/lake-cache (bytes; least recently used files go first)',
  ),
  S('compactTargetMb', { t: 'int', min: 1, max: 1_048_576 }, "compaction: merge a closed hour's files per partition into files of about this size (MB)"),
  S('compactAfterMs', { t: 'int', min: 0, max: 2_592_000_000 }, 'rollup --follow: compact an hour this long after it ends (ms; 0 = only by meter compact)'),
  S('spoolAfterMs', { t: 'int', min: 10, max: 600_000 }, 'gateway: spool a batch the log has not acknowledged within this many ms'),
  S('quotaRefreshMs', { t: 'int', min: 50, max: 600_000 }, "gateway: re-read customers' quota counts from the warehouse this often (ms)"),
  S(
    'stripHeaders',
    { t: 'list' },
    'gateway: extra client headers to drop before forwarding, besides the built-in identity families (names, or prefixes ending in *)',
  ),
  S('inFlightPerKey', { t: 'int', min: 1, max: 100_000 }, 'gateway: calls one API key may have in progress at once (429 above; a plan may set its own)'),
  S('inFlightPerCustomer', { t: 'int', min: 1, max: 100_000 }, 'gateway: calls one customer (all its keys) may have in progress at once'),
  S('headersTimeoutMs', { t: 'int', min: 100, max: 600_000 }, 'gateway: request headers must be complete within this many ms (408)'),
  S(
    'bodyTimeoutMs',
    { t: 'int', min: 100, max: 600_000 },
    'gateway: longest pause in a request body, and the grace before minBodyBytesPerSec applies (ms; 408)',
  ),
  S('minBodyBytesPerSec', { t: 'int', min: 0, max: 1 << 30 }, 'gateway: least average rate of a request body after bodyTimeoutMs (bytes/s, 0 = none; 408)'),
  S(
    'limiterFailMode',
    { t: 'enum', values: ['local', 'open', 'closed'] },
    "limiter when Redis is down or slow: local (in-process bucket, this process's share), open (allow) or closed (429)",
  ),
  S('logLevel', { t: 'enum', values: ['debug', 'info', 'warn', 'error'] }, 'log level'),
  ...TRANSPORT_SETTINGS.map(([key, kind, help, nullable]) => S(key, kind, help, nullable)),
  S('logFormat', { t: 'enum', values: ['text', 'json'] }, 'log lines as text or json (time, level, role, fields)'),
  S('adminHost', { t: 'string' }, 'admin listener address (/metrics, /healthz, /readyz, /ops)'),
  S('adminPort', { t: 'int', min: 0, max: 65535 }, 'admin listener port of long-running roles (0 = any free port, logged)'),
];

const PACKAGE_ROOT = resolve(new URL('.', import.meta.url).pathname, '../../..');
/** Root of the installed package (dist/src/config -> package root). */
export function packageRoot(): string {
  return existsSync(resolve(PACKAGE_ROOT, 'package.json')) ? PACKAGE_ROOT : resolve(PACKAGE_ROOT, '..');
}

export function defaults(): Omit<MeterConfig, 'lakeUrl'> & { lakeUrl: string | null } {
  return {
    dataDir: './.meter',
    kafkaBrokers: [],
    kafkaSessionTimeoutMs: 6_000,
    kafkaHeartbeatIntervalMs: 500,
    kafkaCompression: 'gzip',
    topic: 'usage-events',
    partitions: 4,
    partitionBy: 'event',
    lakeUrl: null,
    databaseUrl: null,
    redisUrl: null,
    catalogFile: resolve(packageRoot(), 'fixtures/catalog.json'),
    routesFile: resolve(packageRoot(), 'fixtures/routes.json'),
    gatewayHost: '127.0.0.1',
    gatewayPort: 8080,
    gatewayWorkers: 0,
    upstream: null,
    billingHost: '127.0.0.1',
    billingPort: 8090,
    billingTokens: [],
    ingestMaxRecords: 500_000,
    ingestFlushMs: 30_000,
    ingestMemoryMb: 256,
    eventFlushMs: 5,
    maxBodyBytes: 1 << 20,
    durability: 'batched',
    spoolMaxBytes: 1 << 30,
    lakeCacheMaxBytes: 4 * 2 ** 30,
    compactTargetMb: 256,
    compactAfterMs: 3_600_000,
    spoolAfterMs: 1000,
    quotaRefreshMs: 1000,
    stripHeaders: [],
    inFlightPerKey: 64,
    inFlightPerCustomer: 128,
    headersTimeoutMs: 10_000,
    bodyTimeoutMs: 10_000,
    minBodyBytesPerSec: 1024,
    limiterFailMode: 'local',
    logLevel: 'info',
    ...TRANSPORT_DEFAULTS,
    logFormat: 'text',
    adminHost: '127.0.0.1',
    adminPort: 0,
  };
}

export type RawSettings = Partial<Record<keyof MeterConfig, unknown>>;

function parseValue(s: Setting, raw: unknown, where: string): unknown {
  const name = `${s.key} (${where})`;
  if (raw === null || raw === '' || raw === undefined) {
    if (s.nullable) return null;
    if (s.kind.t === 'list') return [];
    throw new ConfigError(s.key, `invalid ${name}: a value is required`);
  }
  const k = s.kind;
  switch (k.t) {
    case 'string':
    case 'path':
    case 'secret':
      if (typeof raw !== 'string') throw new ConfigError(s.key, `invalid ${name}: expected a string`);
      return raw;
    case 'list': {
      // `[null]` or `[42]` in the file must not become the text "null" (a usable token).
      if (Array.isArray(raw) ? raw.some((x) => typeof x !== 'string') : typeof raw !== 'string')
        throw new ConfigError(s.key, `invalid ${name}: expected a list of strings (a JSON array of strings, or a,b,c), got ${quote(raw)}`);
      const items: string[] = Array.isArray(raw) ? raw : (raw as string).split(',');
      return items.map((x) => String(x).trim()).filter(Boolean);
    }
    case 'int': {
      const n = typeof raw === 'number' ? raw : typeof raw === 'string' && /^-?\d+$/.test(raw.trim()) ? Number(raw.trim()) : NaN;
      if (!Number.isInteger(n) || n < k.min || n > k.max)
        // A number as written (1e309 is Infinity, which JSON.stringify shows as null).
        throw new ConfigError(s.key, `invalid ${name}: ${typeof raw === 'number' ? String(raw) : quote(raw)} is not an integer from ${k.min} to ${k.max}`);
      return n;
    }
    case 'enum':
      if (typeof raw !== 'string' || !k.values.includes(raw))
        throw new ConfigError(s.key, `invalid ${name}: ${quote(raw)} is not one of ${k.values.join(', ')}`);
      return String(raw);
    case 'url': {
      if (typeof raw !== 'string') throw new ConfigError(s.key, `invalid ${name}: expected a URL string, got ${quote(raw)}`);
      let u: URL;
      try {
        u = new URL(String(raw));
      } catch {
        throw new ConfigError(
          s.key,
          `invalid ${name}: ${quote(redactUrl(String(raw)))} is not a URL (expected ${k.protocols.map((p) => p + '//...').join(' or ')})`,
        );
      }
      if (!k.protocols.includes(u.protocol)) throw new ConfigError(s.key, `invalid ${name}: protocol ${u.protocol} is not one of ${k.protocols.join(', ')}`);
      return String(raw);
    }
  }
}

export interface LoadOptions {
  /** Values from command-line flags (already camelCased by commander); undefined = not given. */
  flags?: RawSettings;
  env?: NodeJS.ProcessEnv;
  /** Config file path; default: $METER_CONFIG, else ./meter.config.json when present. */
  configFile?: string;
  cwd?: string;
  /** The flag a value of `flags` came from when its command names it otherwise (gatewayWorkers: `--workers`), for errors. */
  flagNames?: Partial<Record<keyof MeterConfig, string>>;
}

/** Build the validated config: flags > env > file > defaults. */
export function loadConfig(opts: LoadOptions = {}): MeterConfig {
  const env = opts.env ?? process.env;
  const cwd = opts.cwd ?? process.cwd();
  const fileValues = readConfigFile(opts.configFile ?? env.METER_CONFIG, cwd);
  const out: Record<string, unknown> = { ...defaults() };
  for (const s of SETTINGS) {
    const flag = opts.flags?.[s.key];
    if (flag !== undefined) out[s.key] = parseValue(s, flag, opts.flagNames?.[s.key] ?? s.flag);
    else if (env[s.env] !== undefined) out[s.key] = parseValue(s, env[s.env], s.env);
    else if (fileValues[s.key] !== undefined) out[s.key] = parseValue(s, fileValues[s.key], 'config file');
  }
  const cfg = out as unknown as MeterConfig;
  cfg.dataDir = resolve(cwd, cfg.dataDir);
  checkDataDir(cfg.dataDir);
  cfg.catalogFile = resolve(cwd, cfg.catalogFile);
  cfg.routesFile = resolve(cwd, cfg.routesFile);
  checkBrokers(cfg.kafkaBrokers);
  for (const [key, what] of [
    ['gatewayPort', 'the gateway'],
    ['billingPort', 'the billing API'],
  ] as const)
    if (FETCH_BAD_PORTS.has(cfg[key]))
      throw new ConfigError(
        key,
        `invalid ${key}: ${cfg[key]} is a port browsers and fetch() refuse to connect to (the Fetch standard's bad ports), so ${what} would be unreachable from web apps and meter's own clients; pick another`,
      );
  const badTopic = logNameProblem('topic', cfg.topic);
  if (badTopic) throw new ConfigError('topic', `invalid topic: ${badTopic}`);
  try {
    for (const h of cfg.stripHeaders) parseHeaderPattern(h);
  } catch (e) {
    throw new ConfigError('stripHeaders', `invalid stripHeaders: ${(e as Error).message}`);
  }
  if (!cfg.lakeUrl) cfg.lakeUrl = pathToFileURL(resolve(cfg.dataDir, 'lake')).href;
  if (cfg.lakeUrl.startsWith('file:') && !cfg.lakeUrl.startsWith('file:///'))
    throw new ConfigError('lakeUrl', `invalid lakeUrl: ${shortPath(cfg.lakeUrl)} must be an absolute file:///path`);
  checkTransportSecurity(cfg, cwd);
  rememberSecrets([cfg.kafkaSaslPassword, cfg.redisPassword, urlPassword(cfg.databaseUrl), urlPassword(cfg.redisUrl), ...cfg.billingTokens]);
  return cfg;
}

/** METER_* variables that are not settings, read by name elsewhere: never taken for typos. */
const OTHER_VARIABLES = new Set(['METER_CONFIG', 'METER_DEBUG', 'METER_ACCESS_LOG', 'METER_GATEWAY_WORKER']);

/**
 * A METER_* variable that is one or two letters off a setting's (`METER_GATEWAY_PROT`): a typo,
 * ignored without a word before, so the gateway came up on 8080. One warning line each; other
 * METER_* names (the stack's, the tests') are too far from any setting to be named.
 */
export function mistypedVariables(env: NodeJS.ProcessEnv): string[] {
  const settings = SETTINGS.map((s) => s.env);
  const known = new Set<string>(settings);
  const out: string[] = [];
  for (const name of Object.keys(env)) {
    if (!name.startsWith('METER_') || known.has(name) || OTHER_VARIABLES.has(name)) continue;
    const meant = nearest(name, settings);
    if (meant) out.push(`${name} is not a setting and is ignored; did you mean ${meant}?`);
  }
  return out;
}

/**
 * Each broker is host:port. A bare host passed as a list item and failed only after kafkajs'
 * retries, some 20 s later, with "Port should be >= 0 and < 65536. Received type number (NaN)".
 */
function checkBrokers(brokers: string[]): void {
  for (const b of brokers) {
    const m = /^(?:\[[0-9A-Fa-f:.]+\]|[^\s:/[\]]+):(\d{1,5})$/.exec(b);
    if (!m || Number(m[1]) < 1 || Number(m[1]) > 65535)
      throw new ConfigError('kafkaBrokers', `invalid kafkaBrokers: ${quote(b)} is not host:port (e.g. 127.0.0.1:9092; several: a:9092,b:9092)`);
  }
}

/**
 * The data dir is made when missing, so only one thing can be wrong before a command starts: it,
 * or a folder above it, is a file. Said here, with the setting; it was "ENOTDIR: not a directory,
 * mkdir '…/pglite'" and exit 1 from whichever part opened first.
 */
function checkDataDir(dir: string): void {
  for (let p = dir; ; p = dirname(p)) {
    let isFolder: boolean | null = null;
    try {
      isFolder = statSync(p).isDirectory();
    } catch {
      // missing (made later) or unreadable (the part that opens it says why)
    }
    if (isFolder === false)
      throw new ConfigError(
        'dataDir',
        `invalid dataDir: ${shortPath(p)} is a file, not a folder${p === dir ? '' : ` (on the way to ${shortPath(dir)})`}; point --data-dir / METER_DATA_DIR at a folder (made if missing)`,
      );
    if (isFolder || dirname(p) === p) return;
  }
}

function readConfigFile(path: string | undefined, cwd: string): RawSettings {
  const explicit = path !== undefined && path !== '';
  const file = resolve(cwd, explicit ? path : 'meter.config.json');
  if (!existsSync(file)) {
    if (explicit) throw new ConfigError('config', `config file ${shortPath(file)} does not exist (set by METER_CONFIG or --config)`);
    return {};
  }
  // A folder was "is not valid JSON: EISDIR"; an unreadable file is not a JSON problem either.
  if (statSync(file).isDirectory())
    throw new ConfigError(
      'config',
      `config file ${shortPath(file)} is a directory; give the JSON file in it (e.g. ${shortPath(join(file, 'meter.config.json'))})`,
    );
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError('config', `config file ${shortPath(file)} cannot be read: ${(e as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new ConfigError('config', `config file ${shortPath(file)} is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw new ConfigError('config', `config file ${shortPath(file)} must hold a JSON object of settings`);
  const known = new Set(SETTINGS.map((s) => s.key as string));
  for (const k of Object.keys(parsed)) {
    if (!known.has(k)) {
      throw new ConfigError(k, `config file ${shortPath(file)}: unknown setting ${quote(k)} (${didYouMean(k, known)}known: ${[...known].join(', ')})`);
    }
  }
  return parsed as RawSettings;
}

/** Which backends the config selects, for logs and `meter doctor`. */
export function describeBackends(cfg: MeterConfig): Record<string, string> {
  return {
    log: cfg.kafkaBrokers.length ? `kafka ${cfg.kafkaBrokers.join(',')} topic ${cfg.topic}${transportNote(cfg, 'kafka')}` : `embedded log ${cfg.dataDir}/log`,
    lake: cfg.lakeUrl,
    warehouse: cfg.databaseUrl ? redactUrl(cfg.databaseUrl) + transportNote(cfg, 'database') : `embedded PGlite ${cfg.dataDir}/pglite`,
    limiter: cfg.redisUrl ? redactUrl(cfg.redisUrl) + transportNote(cfg, 'redis') : 'in-process token bucket',
  };
}

/** Never print a password (user:password@ or a password= query parameter, as pg accepts). */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    for (const k of [...u.searchParams.keys()]) if (/pass|secret|token/i.test(k)) u.searchParams.set(k, '***');
    return u.toString();
  } catch {
    // Not a URL: still hide what looks like credentials.
    return url.replace(/(\/\/[^:/@\s]*:)[^@\s]*@/, '$1***@');
  }
}
