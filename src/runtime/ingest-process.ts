/**
 * The process settings `meter ingest` runs with (and `meter live`, which reads and decodes the same
 * records: 265-279 MB of RSS catching up on 2 M events instead of 378 MB, at the same rate,
 * bench/results/2026-12-06-live-catchup.txt), and the one re-exec that applies them.
 *
 * Ingest decodes every record batch into objects and makes short-lived garbage fast: at Node 24's
 * defaults V8 grew its young generation to ~100 MB and glibc kept a malloc arena per allocating
 * thread. With 16 MB semi-spaces and two arenas (and meter's fetch sizes, client.ts FETCH) ingest
 * peaked at 352-412 MB of RSS instead of 463-506 MB, at the same rate
 * (bench/results/2026-12-06-ingest-process.txt).
 *
 * Neither can be set from inside a running process (V8 sizes its heap at start; glibc reads
 * MALLOC_ARENA_MAX at its first allocation), so the ingest command replaces its own process once
 * with them added: process.execve keeps the pid, so supervisors, pid files and signals see one
 * process. A setting the user gave (a node flag, NODE_OPTIONS, MALLOC_ARENA_MAX) is left as given.
 */
export const INGEST_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=16'];
export const INGEST_ENV: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: '2' };

export interface Launch {
  /** Arguments after the node binary: node flags, then the script and its arguments. */
  args: string[];
  env: Record<string, string>;
}

/** V8 takes `--max_semi_space_size` for `--max-semi-space-size`. */
const flagName = (f: string) => f.split('=')[0]!.replace(/_/g, '-');

/**
 * What to run for this process (`execArgv`, `argv` as in `process`) to have ingest's settings, or
 * null when it has them or the user chose their own.
 */
export function ingestLaunch(execArgv: readonly string[], argv: readonly string[], env: NodeJS.ProcessEnv): Launch | null {
  const given = new Set([...execArgv, ...(env.NODE_OPTIONS ?? '').split(/\s+/)].filter(Boolean).map(flagName));
  const flags = INGEST_NODE_FLAGS.filter((f) => !given.has(flagName(f)));
  const vars = Object.entries(INGEST_ENV).filter(([k]) => env[k] === undefined);
  if (!flags.length && !vars.length) return null;
  const kept = Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined);
  return { args: [...execArgv, ...flags, ...argv.slice(1)], env: Object.fromEntries([...kept, ...vars]) };
}

/**
 * Replace this process with one that has ingest's settings (never returns then); a no-op when it
 * has them, or where Node cannot replace a process (Windows): the command then runs at Node's
 * defaults, as it does, with a warning, when the replacement fails. `command` names it in that
 * warning; `execve`: process.execve (a parameter for the test of that failure).
 */
export function reexecWithIngestSettings(command: 'ingest' | 'live', execve: typeof process.execve = process.execve): void {
  if (typeof execve !== 'function') return;
  const l = ingestLaunch(process.execArgv, process.argv, process.env);
  if (!l) return;
  try {
    execve.call(process, process.execPath, [process.execPath, ...l.args], l.env);
  } catch (e) {
    process.stderr.write(
      `meter: warning: ${command} could not restart itself with its memory settings (${(e as Error).message}); it runs at Node's defaults, with more memory (docs/operations.md "Memory of meter ingest and live")\n`,
    );
  }
}

/** The --help paragraph of a command that restarts itself with these settings. */
export function settingsHelp(command: 'ingest' | 'live'): string {
  const env = Object.entries(INGEST_ENV)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  return `\n${command[0]!.toUpperCase()}${command.slice(1)} restarts itself once, in the same process, with ${INGEST_NODE_FLAGS.join(' ')} and\n${env} (less memory; a value you set yourself is kept): docs/operations.md "Memory of meter ingest and live".\n`;
}
