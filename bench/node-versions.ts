/**
 * The gateway on each Node version (issue 15: Node 20 is end-of-life; users run the current LTS):
 * bench/gateway-workers.ts run whole under each given `node` binary in turn, one round each,
 * alternating versions for several rounds, so every version meets the same noise. Per version:
 * the medians of the unmetered proxy's and meter's (1 and 2 workers) req/s and CPU per call, all
 * processes of a side counted (gateway-workers.ts reads /proc).
 *
 *   node dist/bench/node-versions.js <rounds> <seconds> <connections> <node binary>...
 *   e.g. node dist/bench/node-versions.js 3 8 64 /usr/bin/node $(bash .ci/node-bin 22)/node $(bash .ci/node-bin 24)/node
 */
import { spawn } from 'node:child_process';
import { loadavg } from 'node:os';
import { assetPath } from '../src/config/assets.js';
import { fmt, median } from './lib.js';

interface Summary {
  node: string;
  medians: Record<string, { rps: number; cpuPerCallUs: number; p99: number }>;
}

function runOnce(node: string, seconds: number, connections: number): Promise<Summary> {
  return new Promise((resolve, reject) => {
    const child = spawn(node, [assetPath('dist/bench/gateway-workers.js'), '1', String(seconds), String(connections)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString();
    });
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`${node} gateway-workers exited ${code}`));
      try {
        resolve(JSON.parse(out.slice(out.indexOf('{'))) as Summary);
      } catch (e) {
        reject(e);
      }
    });
  });
}

async function main(): Promise<void> {
  const [rounds, seconds, connections] = process.argv.slice(2, 5).map(Number);
  const nodes = process.argv.slice(5);
  if (!rounds || !seconds || !connections || nodes.length === 0) {
    console.error('usage: node dist/bench/node-versions.js <rounds> <seconds> <connections> <node binary>...');
    process.exit(2);
  }
  const load0 = loadavg()[0] ?? 0;
  const by = new Map<string, Summary[]>();
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 ? [...nodes].reverse() : nodes;
    for (const n of order) {
      const s = await runOnce(n, seconds, connections);
      console.error(`round ${r + 1} ${s.node}: ${JSON.stringify(s.medians)}`);
      by.set(s.node, [...(by.get(s.node) ?? []), s]);
    }
  }
  console.log(`| node | proxy req/s | proxy µs/call | meter 1 worker req/s | µs/call | per core (proxy µs ÷ meter µs) | meter 2 workers req/s | µs/call |`);
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const [node, runs] of by) {
    const m = (side: string, k: 'rps' | 'cpuPerCallUs') => median(runs.map((s) => s.medians[side]?.[k] ?? Number.NaN));
    console.log(
      `| ${node} | ${fmt(m('plain', 'rps'))} | ${fmt(m('plain', 'cpuPerCallUs'), 1)} | ${fmt(m('meter-1w', 'rps'))} | ${fmt(m('meter-1w', 'cpuPerCallUs'), 1)} | ${(m('plain', 'cpuPerCallUs') / m('meter-1w', 'cpuPerCallUs')).toFixed(2)} | ${fmt(m('meter-2w', 'rps'))} | ${fmt(m('meter-2w', 'cpuPerCallUs'), 1)} |`,
    );
  }
  console.log(
    `\n${rounds} alternating rounds of ${seconds} s per side, ${connections} connections; load average ${load0.toFixed(1)} -> ${(loadavg()[0] ?? 0).toFixed(1)}`,
  );
}

await main();
