/**
 * What every command shares: reading the validated config from the command's flags, a logger,
 * and one error policy (user mistakes: one line + hint, exit 2; everything else: exit 1).
 */
import type { Command } from 'commander';
import { loadConfig, mistypedVariables, ConfigError, SETTINGS, type MeterConfig, type RawSettings } from '../config/config.js';
import { createLogger, routeKafkaLogs, type Logger } from '../ground/logger.js';
import { UserError, fileAccessError } from '../ground/errors.js';
import { parseTime } from '../ground/time.js';
import { scrub } from '../security/secrets.js';
import { Interrupted } from './progress.js';
import { openWarehouse } from '../runtime/backends.js';
import type { Warehouse } from '../warehouse/warehouse.js';
import { quote } from '../ground/text.js';

export interface CommandContext {
  config: MeterConfig;
  logger: Logger;
  json: boolean;
}

/** A command's own flag for a setting (`gateway --workers` for gatewayWorkers). */
export type SettingFlag = { flag: string; value: string | undefined };

/**
 * `extraEnv` overrides the process environment (e.g. the settings of `stack/run env`).
 * `settingFlags`: the command's own flags for settings, used unless the setting's global flag is
 * given too, and named in errors as typed (`invalid gatewayWorkers (--workers)`, not the
 * variable the value used to be passed through).
 */
export function contextOf(
  cmd: Command,
  extraEnv: Record<string, string> = {},
  settingFlags: Partial<Record<keyof MeterConfig, SettingFlag>> = {},
): CommandContext {
  const all = cmd.optsWithGlobals() as Record<string, unknown>;
  // Empty, it was taken for "not given": the default file was read without a word.
  if (all.config === '')
    throw new UserError('--config needs a file name', 'e.g. --config meter.config.json (without --config: ./meter.config.json when present, or $METER_CONFIG)');
  const flags: RawSettings = {};
  const flagNames: Partial<Record<keyof MeterConfig, string>> = {};
  for (const s of SETTINGS) if (all[s.key] !== undefined) flags[s.key] = all[s.key];
  for (const [key, f] of Object.entries(settingFlags) as [keyof MeterConfig, SettingFlag][])
    if (f.value !== undefined && flags[key] === undefined) {
      flags[key] = f.value;
      flagNames[key] = f.flag;
    }
  const env = { ...process.env, ...extraEnv };
  const config = loadConfig({ flags, flagNames, configFile: all.config as string | undefined, env });
  for (const w of mistypedVariables(env)) process.stderr.write(`meter: warning: ${w}\n`);
  const logger = createLogger(config.logLevel, 'meter', undefined, config.logFormat);
  routeKafkaLogs(logger.child('kafka'));
  return { config, logger, json: Boolean(all.json) };
}

/** Wrap a command action with the error policy. */
export function action<A extends unknown[]>(fn: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
      // Done, and everything is closed. A client library that leaves a socket behind (kafkajs
      // after a broker cut a connection mid-disconnect) must not hang the command: exit after a
      // grace period; the unref'd timer never delays a process that ends by itself.
      setTimeout(() => {
        process.stderr.write('meter: a connection was still open 10 s after the command finished; exiting\n');
        // Keep the command's own verdict (meter doctor sets 1 when a check failed).
        process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0);
      }, 10_000).unref();
    } catch (e) {
      // Exit now: open backends (PGlite, sockets) must not keep a failed command alive.
      process.exit(reportError(e));
    }
  };
}

export function reportError(e: unknown): number {
  if (e instanceof Interrupted) {
    if (!e.reported) process.stderr.write(`meter: ${e.message}\n`);
    return e.exitCode;
  }
  if (e instanceof ConfigError) {
    process.stderr.write(`meter: ${e.message}\n`);
    return 2;
  }
  const user = e instanceof UserError ? e : fileAccessError(e);
  if (user) {
    process.stderr.write(scrub(`meter: ${user.message}\n${user.hint ? `  hint: ${user.hint}\n` : ''}`));
    return 2;
  }
  const err = e as Error;
  process.stderr.write(scrub(`meter: ${err?.message ?? String(e)}\n`));
  if (process.env.METER_DEBUG) process.stderr.write(scrub(`${err?.stack}\n`));
  else process.stderr.write('  (set METER_DEBUG=1 to see the stack trace)\n');
  return 1;
}

/** Resolves on SIGINT/SIGTERM: long-running commands stop cleanly (flush, commit) on it. */
export function untilSignal(): Promise<string> {
  return new Promise((resolve) => {
    const on = (sig: string) => () => resolve(sig);
    process.once('SIGINT', on('SIGINT'));
    process.once('SIGTERM', on('SIGTERM'));
  });
}

/**
 * An ISO 8601 flag (`--from`, `--to`, `--hour`): a date or date-time, UTC unless it names a zone.
 * Not Date.parse, which took `--from 1` as 2001-01-01 and `--hour "Dec 1"` as a local time, so a
 * typo ran a backfill of the wrong month without a word (the billing API's parser, ground/time.ts).
 */
export function parseIsoFlag(name: string, value: string | undefined): number {
  if (value === undefined) throw new UserError(`--${name} is required`, `give an ISO time, e.g. --${name} 2026-11-01T00:00:00Z`);
  const t = parseTime(value, 'UTC');
  if (t === null)
    throw new UserError(
      `--${name} ${quote(value)} is not an ISO 8601 date or date-time`,
      `e.g. --${name} 2026-11-01T00:00:00Z or --${name} 2026-11-01 (UTC unless a zone is given)`,
    );
  return t;
}

/**
 * [--from, --to) must hold an hour at least. Says both times as read (the rollup and compact
 * start --from at its hour), so `--from 2026-11-01T00:30Z --to 2026-11-01T00:30Z` or a swap is
 * plain; before, "--to must be after --from" alone, without a hint.
 */
export function requireRange(from: number, to: number): void {
  if (to <= from)
    throw new UserError(
      `--to ${new Date(to).toISOString()} must be after --from ${new Date(from).toISOString()}`,
      '--to is the end, exclusive: e.g. --from 2026-11-01 --to 2026-11-02 for one day',
    );
}

/**
 * JSON on stdout. JSON.stringify escapes C0 controls but leaves DEL and C1 raw (a stored name with
 * \x9b acts on a terminal): they are escaped too, which any JSON reader reads back the same.
 */
export function printJson(value: unknown): void {
  const text = String(JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? v.toString() : v), 2));
  process.stdout.write(text.replace(/[\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`) + '\n');
}

export interface WarehouseContext extends CommandContext {
  db: Warehouse;
}

/**
 * `action` for a command that works on the warehouse: opens it (migrated), hands it to `fn` with
 * the context, and closes it whatever happens. Commander passes (arguments..., options, command).
 */
export function withWarehouse<A extends unknown[]>(fn: (w: WarehouseContext, ...args: A) => Promise<void>): (...args: [...A, Command]) => Promise<void> {
  return action(async (...args: [...A, Command]) => {
    const cmd = args[args.length - 1] as Command;
    const ctx = contextOf(cmd);
    const db = await openWarehouse(ctx.config, ctx.logger);
    try {
      await fn({ ...ctx, db }, ...(args.slice(0, -1) as A));
    } finally {
      await db.close();
    }
  });
}
