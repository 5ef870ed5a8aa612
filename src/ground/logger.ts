/**
 * meter's logger: pino underneath, one line per event on stderr (stdout is kept for command
 * output and --json). Every line has time, level, role and the event's fields.
 *   text (default)  2026-12-05T01:02:03.456Z info  [gateway] message key=value ...
 *   json            {"level":"info","time":"2026-...","role":"gateway","msg":"message","key":"value"}
 * kafkajs's own lines come through here too (routeKafkaLogs), so they get time, level and role.
 */
import { pino, stdTimeFunctions, type Logger as Pino } from 'pino';
import { scrub } from '../security/secrets.js';

export type Level = 'debug' | 'info' | 'warn' | 'error';
export type LogFormat = 'text' | 'json';
export type Fields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  /** The same logger for another role (the `role` field / the bracketed name in text). */
  child(scope: string): Logger;
}

type Sink = (line: string) => void;
const stderrSink: Sink = (l) => process.stderr.write(l + '\n');

/** pino writes JSON; text mode turns each line into the readable form before the sink. */
function destination(sink: Sink, format: LogFormat) {
  return {
    write(s: string) {
      const line = s.endsWith('\n') ? s.slice(0, -1) : s;
      // Loaded secrets never reach a log line, whoever wrote it (security/secrets.ts).
      sink(scrub(format === 'json' ? line : toText(line)));
    },
  };
}

const RESERVED = new Set(['level', 'time', 'role', 'msg']);

export function toText(jsonLine: string): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(jsonLine);
  } catch {
    return jsonLine;
  }
  let out = `${o.time} ${String(o.level).padEnd(5)} [${o.role}] ${o.msg ?? ''}`;
  for (const [k, v] of Object.entries(o)) {
    if (RESERVED.has(k) || v === undefined) continue;
    const s = typeof v === 'string' ? v : JSON.stringify(v);
    out += ` ${k}=${typeof v === 'string' && /[\s"=]/.test(s) ? JSON.stringify(s) : s}`;
  }
  return out;
}

function wrap(p: Pino, make: (scope: string) => Logger): Logger {
  const at = (l: Level) => (msg: string, fields?: Fields) => {
    if (fields) p[l](fields, msg);
    else p[l](msg);
  };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: make };
}

export function createLogger(level: Level = 'info', scope = 'meter', sink: Sink = stderrSink, format: LogFormat = 'text'): Logger {
  const dest = destination(sink, format);
  // Roles ask for their child per line (roles.ts: logger.child('ingest').info(m)): build each once.
  const children = new Map<string, Logger>();
  const make = (role: string): Logger => {
    let l = children.get(role);
    if (!l) children.set(role, (l = build(role)));
    return l;
  };
  const build = (role: string): Logger =>
    wrap(
      pino(
        {
          level,
          base: { role },
          messageKey: 'msg',
          timestamp: stdTimeFunctions.isoTime,
          formatters: { level: (label) => ({ level: label }) },
        },
        dest,
      ),
      make,
    );
  return make(scope);
}

export const silentLogger: Logger = createLogger('error', 'silent', () => {});

type KafkaLine = (level: 'error' | 'warn' | 'info', label: string, message: string, fields: Fields) => void;
let kafkaLine: KafkaLine = (_level, label, message, fields) => process.stderr.write(scrub(`kafkajs ${label} ${message} ${JSON.stringify(fields)}\n`));

/** kafkajs's log lines (src/log/kafka-log.ts quietLogger) go to this logger from now on. */
export function routeKafkaLogs(logger: Logger): void {
  kafkaLine = (level, label, message, fields) => logger[level](message, { kafkajs: label, ...fields });
}

/** Called by kafka-log.ts for each kafkajs line it keeps. */
export function kafkaLog(level: number, label: string, message: string, fields: Fields): void {
  // kafkajs levels: 1 ERROR, 2 WARN, 4 INFO, 5 DEBUG.
  kafkaLine(level <= 1 ? 'error' : level === 2 ? 'warn' : 'info', label, message, fields);
}
