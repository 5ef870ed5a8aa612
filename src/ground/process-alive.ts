/**
 * Whether a process id names a running process. `kill(pid, 0)` alone also answers yes for a
 * zombie: a process that has exited but was not yet reaped by its parent. A child whose parent
 * was killed with -9 is reparented to PID 1, and not every PID 1 reaps at once (this repository's
 * CI box showed zombies for seconds), so on Linux a zombie counts as gone. Elsewhere (no /proc),
 * `kill(pid, 0)` decides.
 */
import { readFileSync } from 'node:fs';

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // exists, not ours
  }
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch (e) {
    // No /proc (not Linux): kill said it exists. On Linux, gone between the two calls.
    return (e as NodeJS.ErrnoException).code !== 'ENOENT' || !isLinux();
  }
  // "pid (comm) S ...": comm may hold spaces and parentheses, so the state follows the last ')'.
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return state !== 'Z' && state !== 'X';
}

function isLinux(): boolean {
  return process.platform === 'linux';
}
