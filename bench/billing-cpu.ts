/**
 * CPU time of every process of a benchmark side, from /proc (Linux): this process (the server
 * under test), its waited-for children (the load generators, run with execFile), and a
 * Postgres server (the postmaster, its live backends, and through the postmaster's own
 * children counters the backends that exited meanwhile).
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

/** Clock ticks per second of /proc's CPU fields (USER_HZ: 100 on Linux). */
const HZ = 100;

/** utime, stime, cutime, cstime and ppid of a process, in ms; null if it is gone. */
function stat(pid: number | 'self'): { self: number; children: number; ppid: number } | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // Fields after the command name (which may hold spaces), from field 3 (state) on.
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const n = (i: number) => (Number(f[i - 3]) * 1000) / HZ;
  return { self: n(14) + n(15), children: n(16) + n(17), ppid: Number(f[1]) };
}

export interface CpuSample {
  /** This process. */
  server: number;
  /** This process's waited-for children (load generators). */
  load: number;
  /** The Postgres server's processes; 0 without one. */
  postgres: number;
}

/** The postmaster's pid from its data folder, or null (embedded: no Postgres process). */
export function postmasterPid(dataDir: string): number | null {
  try {
    const pid = Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

/** CPU ms of the Postgres server whose postmaster is `pid` (0 without one). */
export function postgresMs(pid: number | null): number {
  if (pid === null) return 0;
  const pm = stat(pid);
  if (!pm) return 0;
  let ms = pm.self + pm.children;
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const s = stat(Number(d));
    if (s && s.ppid === pid) ms += s.self;
  }
  return ms;
}

export function cpuNow(postmaster: number | null): CpuSample {
  const me = stat('self')!;
  return { server: me.self, load: me.children, postgres: postgresMs(postmaster) };
}

export function cpuSince(a: CpuSample, postmaster: number | null): CpuSample {
  const b = cpuNow(postmaster);
  return { server: b.server - a.server, load: b.load - a.load, postgres: b.postgres - a.postgres };
}

/** The 1-minute load average (the box is shared: every result says how busy it was). */
export function loadAverage(): number {
  return Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
}
