/**
 * Conventions applied to every command once all are registered (docs/cli.md):
 * - usage errors (unknown option or command, missing argument or option value, bad choice,
 *   an argument too many) exit 2, as the README promises; help and version exit 0;
 * - every command that prints data lists `--json` in its own --help. The flag itself is the
 *   program's (accepted anywhere on the line); this makes it visible where it is used;
 * - a value commander quotes in its errors ('unknown command 'x'') is shortened like meter's own.
 */
import type { Command, CommanderError } from 'commander';
import { QUOTE_CHARS, shorten } from '../ground/text.js';

/** Long-running services: they print logs, not data, so no --json. */
const NO_JSON = new Set(['gateway', 'serve-billing', 'dev']);

export const JSON_HELP = 'print the result as JSON on stdout (progress and logs stay on stderr)';

export function applyConventions(program: Command): void {
  for (const cmd of allCommands(program)) {
    cmd.exitOverride((err: CommanderError) => {
      process.exit(err.exitCode === 0 ? 0 : 2);
    });
    cmd.configureOutput({ outputError: (text, write) => write(shortenQuoted(text)) });
    const isLeaf = cmd !== program && cmd.commands.length === 0;
    // A word too many is a usage error, not ignored: `meter keys list acme` listed every
    // customer's keys as if filtered, and `meter rollup 2026-11-01` rolled up what changed.
    if (isLeaf && cmd.name() !== 'help') cmd.allowExcessArguments(false);
    if (isLeaf && !NO_JSON.has(cmd.name()) && !cmd.options.some((o) => o.long === '--json')) cmd.option('--json', JSON_HELP);
  }
}

/** Commander quotes the word it refused in '…': a 100 KB argument was echoed whole. */
const LONG_QUOTED = new RegExp(`'([^']{${QUOTE_CHARS + 1},})'`, 'g');
const shortenQuoted = (text: string) => text.replace(LONG_QUOTED, (_m, v: string) => `'${shorten(v)}'`);

function* allCommands(c: Command): Generator<Command> {
  yield c;
  for (const sub of c.commands) yield* allCommands(sub);
}
