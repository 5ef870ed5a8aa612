/**
 * One side of an A/B benchmark in its own process, so each side's CPU is its own: the child
 * prints one JSON line (where to reach it), then answers each `cpu` line on stdin with its CPU µs
 * so far (plus any counters it adds), and ends on `stop`.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { load } from './lib.js';

/** In the child: answer `cpu` requests on stdin until `stop` (or stdin closes). */
export async function answerCpuRequests(extra: () => Record<string, unknown> = () => ({})): Promise<void> {
  for await (const line of createInterface({ input: process.stdin })) {
    if (line === 'cpu') {
      const c = process.cpuUsage();
      console.log(JSON.stringify({ cpuUs: c.user + c.system, ...extra() }));
    } else if (line === 'stop') break;
  }
}

export interface SideProcess {
  /** The next JSON line the child printed. */
  next<T>(): Promise<T>;
  /** The child's CPU µs so far, with the counters it adds. */
  cpu<T extends { cpuUs: number } = { cpuUs: number }>(): Promise<T>;
  /** Ask the child to stop and wait for it to exit. */
  stop(): Promise<void>;
}

/** Runs this script (or `script`) again with `args` (stderr shared) as a side process. */
export function spawnSide(args: string[], script = process.argv[1]!, nodeArgs: string[] = []): SideProcess {
  const child = spawn(process.execPath, [...nodeArgs, script, ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const next = async <T>(): Promise<T> => JSON.parse((await lines.next()).value as string) as T;
  return {
    next,
    cpu<T>() {
      child.stdin.write('cpu\n');
      return next<T>();
    },
    async stop() {
      child.stdin.write('stop\n');
      await new Promise((r) => child.once('exit', r));
    },
  };
}

/**
 * Warm a side's gateway up (2 s flat out: JIT, pools, key cache), then hold it at `rate` req/s
 * for `seconds`: the side's CPU µs per call, the p99, and its counters before and after.
 */
export async function cpuPerCallAtRate<T extends { cpuUs: number } = { cpuUs: number }>(
  side: SideProcess,
  target: { url: string; headers: Record<string, string> },
  o: { rate: number; seconds: number; name: string },
): Promise<{ cpuPerCall: number; p99: number; before: T; after: T }> {
  await load(target.url, { connections: 50, seconds: 2, headers: target.headers });
  const before = await side.cpu<T>();
  const r = await load(target.url, { connections: 50, seconds: o.seconds, headers: target.headers, rate: o.rate });
  const after = await side.cpu<T>();
  if (r.bad) throw new Error(`${o.name}: ${r.bad} of ${r.total} answers were not 2xx`);
  return { cpuPerCall: (after.cpuUs - before.cpuUs) / r.total, p99: r.p99, before, after };
}
