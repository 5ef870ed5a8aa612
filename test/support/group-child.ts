/**
 * A `meter <command>` child process in a Kafka consumer group, for takeover tests: its stderr
 * kept with arrival times, and the partitions of the last assignment it logged
 * (src/log/kafka/assignment-line.ts). Only this process is ever signalled, by its own pid.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { assetPath } from '../../src/config/assets.js';

export interface GroupChild {
  child: ChildProcess;
  err: string;
  /** stderr lines (kafkajs's own left out) with their arrival time, epoch ms. */
  lines: { at: number; text: string }[];
  /** Partitions of the last assignment it logged; null before the first. */
  partitions(): number[] | null;
  exited: Promise<void>;
  /** Its lines from `since` on, each with its time relative to `since`. */
  timeline(since: number): string;
}

export function startGroupChild(args: string[], env: Record<string, string>): GroupChild {
  const child = spawn(process.execPath, [assetPath('bin/meter.js'), ...args], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const c: GroupChild = {
    child,
    err: '',
    lines: [],
    partitions() {
      const all = [...c.err.matchAll(/kafka group \S+: generation \d+ .* partitions \[([\d, ]*)\]/g)];
      const last = all[all.length - 1];
      return last ? (last[1] ? last[1].split(', ').map(Number) : []) : null;
    },
    exited: new Promise((r) => child.once('exit', () => r())),
    timeline(since) {
      return c.lines
        .filter((l) => l.at >= since)
        .map((l) => `+${l.at - since} ms ${l.text}`)
        .join('\n');
    },
  };
  child.stderr!.on('data', (d: Buffer) => {
    c.err += d;
    const at = Date.now();
    for (const text of d.toString().split('\n')) if (text.trim() && !/kafkajs/.test(text)) c.lines.push({ at, text: text.slice(0, 300) });
  });
  child.stdout!.resume();
  return c;
}

/** SIGTERM each child still running, and wait for all to exit. */
export async function stopAll(children: GroupChild[]): Promise<void> {
  for (const c of children) if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill('SIGTERM');
  await Promise.all(children.map((c) => c.exited));
}
