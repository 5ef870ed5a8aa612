/** A tiny leveled logger to stderr (stdout is kept for command output and --json). */
import { scrub } from '../security/secrets.js';
export type Level = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
  child(scope: string): Logger;
}

export function createLogger(level: Level = 'info', scope = 'meter', sink: (line: string) => void = (l) => process.stderr.write(l + '\n')): Logger {
  const at = (l: Level) => (msg: string) => {
    if (ORDER[l] >= ORDER[level]) sink(`${new Date().toISOString()} ${l.padEnd(5)} [${scope}] ${scrub(msg)}`);
  };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: (s) => createLogger(level, s, sink) };
}

export const silentLogger: Logger = createLogger('error', 'silent', () => {});
