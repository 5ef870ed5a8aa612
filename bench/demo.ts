/**
 * Stage "embedded": `meter demo --json` (gateway -> log -> ingest -> lake -> rollup -> warehouse ->
 * billing API, checked billed == sent) with no services, against the same demo on the real stack
 * (the settings `bash stack/run env` prints: Kafka, HDFS, Postgres, Redis). Both run as the CLI
 * in a child process; events/s is the demo's own figure (calls through the gateway, traffic +
 * drain until billed). Smoke: embedded only.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stackEnv } from '../test/support/stack.js';
import { type BenchOptions, type Row, fmt, median, ratio } from './lib.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

interface DemoOut {
  ok: boolean;
  timings: { trafficMs: number; drainMs: number; totalMs: number; eventsPerSec: number };
}

function demo(events: number, env: Record<string, string>, dataDir: string): Promise<DemoOut> {
  const clean: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('METER_')) clean[k] = v;
  return new Promise((res, rej) =>
    execFile(
      process.execPath,
      [join(root, 'bin/meter.js'), '--json', '--data-dir', dataDir, 'demo', '--events', String(events), '--concurrency', '32'],
      { env: { ...clean, ...env }, maxBuffer: 64 << 20, timeout: 15 * 60_000 },
      (err, out, errOut) => {
        if (err) {
          let why = err.message.split('\n')[0];
          try {
            if ((JSON.parse(out) as DemoOut).ok === false) why = "billed != sent (the demo's own check)";
          } catch {
            /* not JSON: keep the exit message */
          }
          return rej(new Error(`meter demo failed: ${why}\n${errOut.slice(-2000)}`));
        }
        try {
          const r = JSON.parse(out) as DemoOut;
          if (!r.ok) return rej(new Error('meter demo: billed != sent'));
          res(r);
        } catch (e) {
          rej(new Error(`meter demo printed no JSON: ${(e as Error).message}\n${out.slice(0, 500)}\n${errOut.slice(-1000)}`));
        }
      },
    ),
  );
}

export async function benchDemo(o: BenchOptions): Promise<Row[]> {
  const events = o.smoke ? 500 : 20_000;
  const stack = o.smoke ? null : await stackEnv(['kafka', 'hdfs', 'postgres', 'redis']);
  const emb: DemoOut[] = [];
  const stk: DemoOut[] = [];
  let stackError = '';
  for (let i = 0; i < o.runs; i++) {
    emb.push(await demo(events, {}, mkdtempSync(join(o.workDir, 'demo-emb-'))));
    if (stack && !stackError) {
      try {
        stk.push(await demo(events, stack, mkdtempSync(join(o.workDir, 'demo-stack-'))));
      } catch (e) {
        stackError = (e as Error).message.split('\n')[0]!.slice(0, 200);
      }
    }
    o.log(
      `demo run ${i + 1}: embedded ${emb[i]!.timings.eventsPerSec} events/s${stk[i] ? `, stack ${stk[i]!.timings.eventsPerSec} events/s` : stackError ? `, stack FAILED: ${stackError}` : ''}`,
    );
  }
  const e = median(emb.map((r) => r.timings.eventsPerSec));
  const s = stk.length ? median(stk.map((r) => r.timings.eventsPerSec)) : NaN;
  return [
    {
      stage: 'Embedded demo',
      metric: `meter demo events/s (${fmt(events)} calls, 32 conns), embedded vs real stack`,
      meter: `${fmt(e)} /s`,
      baseline: stk.length ? `${fmt(s)} /s` : stackError ? `failed: ${stackError}` : 'not run (smoke)',
      ratio: stk.length ? ratio(e, s) : '',
      target: 'events/s both ways',
      met: 'n/a',
      note: `median whole-demo wall time: embedded ${fmt(median(emb.map((r) => r.timings.totalMs)) / 1000, 1)} s${stk.length ? `, stack ${fmt(median(stk.map((r) => r.timings.totalMs)) / 1000, 1)} s` : ''} (includes startup, rollup and the billed == sent check)`,
    },
  ];
}
