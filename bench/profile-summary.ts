/**
 * Top functions by self time in a V8 CPU profile (`node --cpu-prof`):
 *   node dist/bench/profile-summary.js <file.cpuprofile> [top=15] [--by-file] [calls]
 * With `calls` (the calls served while profiling), CPU µs per call instead of shares of samples,
 * idle left out.
 * Used for BENCHMARKS.md's "where the time goes" notes.
 */
import { readFileSync } from 'node:fs';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount: number;
}
const prof = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as { nodes: Node[]; samples: number[] };
const top = Number(process.argv[3] ?? 15);
/** `--by-file` as 4th argument: self time summed per script (module) instead of per function. */
const byFile = process.argv[4] === '--by-file';
const self = new Map<string, number>();
let total = 0;
for (const n of prof.nodes) {
  const f = n.callFrame;
  const file = f.url.replace(/^.*\/(node_modules\/|dist\/)/, '$1') || f.functionName;
  // WebAssembly has no file: undici's HTTP/1 parser (llhttp) is one module, PGlite another.
  const name = byFile ? (file.startsWith('wasm://') ? 'wasm (undici llhttp, PGlite)' : file) : `${f.functionName || '(anonymous)'} ${file}:${f.lineNumber + 1}`;
  self.set(name, (self.get(name) ?? 0) + n.hitCount);
  total += n.hitCount;
}
const calls = Number(process.argv[5] ?? 0);
if (calls > 0) {
  const p = prof as unknown as { startTime: number; endTime: number; samples: number[] };
  const usPerSample = (p.endTime - p.startTime) / p.samples.length;
  let busy = 0;
  for (const [name, hits] of self) if (name !== '(idle)' && !name.startsWith('(idle)')) busy += hits;
  console.log(`${((busy * usPerSample) / calls).toFixed(1).padStart(6)} µs  busy, per call (${calls} calls)`);
  for (const [name, hits] of [...self]
    .filter(([n]) => !n.startsWith('(idle)'))
    .sort((a, b) => b[1] - a[1])
    .slice(0, top))
    console.log(`${((hits * usPerSample) / calls).toFixed(1).padStart(6)} µs  ${name}`);
} else
  for (const [name, hits] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${((100 * hits) / total).toFixed(1).padStart(5)}%  ${name}`);
