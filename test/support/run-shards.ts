/**
 * `npm run test:unit`: the unit files in a few processes at once, each process running a batch of
 * files in one Node (`--experimental-test-isolation=none`, Node >= 22.8; the README promises
 * 22.19). One process per file (Node's default) spent about 40 % of the suite's CPU starting Node,
 * loading the modules and opening a PGlite again for every file: the whole folder took ~97 s of CPU
 * in one process against ~160 s one process per file (docs/testing.md). One process alone would
 * use one core, and two fixed halves finished 30 % apart, so the files are dealt into about four
 * batches per process and `METER_TEST_SHARDS` processes (default: the machine's cores, at least 2)
 * take the next batch when one ends.
 *
 * Each batch's output is printed whole when it ends, so the reporter's summary lines (`ℹ tests N`)
 * stay intact for .ci/run to add up. Exit code: the first non-zero one, or 0.
 *
 *   node dist/test/support/run-shards.js <folder> [node --test options...]
 */
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';

function shardCount(): number {
  const env = process.env.METER_TEST_SHARDS;
  if (env !== undefined) {
    const n = Number(env);
    if (!Number.isInteger(n) || n < 1 || n > 64) {
      process.stderr.write(`run-shards: METER_TEST_SHARDS must be a whole number from 1 to 64, got ${JSON.stringify(env)}\n`);
      process.exit(2);
    }
    return n;
  }
  return Math.max(2, availableParallelism());
}

/** Deal the sorted files round-robin: neighbours (often alike in cost) land in different shards. */
export function deal(files: string[], shards: number): string[][] {
  const out: string[][] = Array.from({ length: Math.min(shards, files.length) }, () => []);
  [...files].sort().forEach((f, i) => out[i % out.length]?.push(f));
  return out;
}

/** `--experimental-test-isolation` came in Node 22.8; an older Node runs each file in its own process. */
function isolationFlag(): string[] {
  const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
  return major > 22 || (major === 22 && minor >= 8) ? ['--experimental-test-isolation=none'] : [];
}

function runBatch(files: string[], opts: string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--test', ...isolationFlag(), ...opts, ...files], {
      stdio: ['ignore', 'pipe', 'pipe'],
      // Each batch is a top-level run with its own summary, also when this runner is itself
      // started from a test (node --test marks its children with NODE_TEST_CONTEXT).
      env: { ...process.env, NODE_TEST_CONTEXT: undefined },
    });
    let output = '';
    const take = (b: Buffer) => {
      output += b.toString();
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    child.on('close', (code, signal) => resolve({ code: code ?? (signal ? 1 : 0), output }));
  });
}

async function main(): Promise<void> {
  const [folder, ...opts] = process.argv.slice(2);
  if (!folder) {
    process.stderr.write('usage: node dist/test/support/run-shards.js <folder of *.test.js> [node --test options...]\n');
    process.exit(2);
  }
  const files = readdirSync(folder)
    .filter((f) => f.endsWith('.test.js'))
    .map((f) => join(folder, f));
  const processes = shardCount();
  const batches = deal(files, processes * 4);
  process.stdout.write(`run-shards: ${files.length} files in ${batches.length} batches, ${processes} at a time\n`);
  let next = 0;
  let done = 0;
  let exit = 0;
  const worker = async (): Promise<void> => {
    for (let b = batches[next++]; b; b = batches[next++]) {
      const { code, output } = await runBatch(b, opts);
      done++;
      process.stdout.write(`\nrun-shards: batch ${done} of ${batches.length} (${b.length} files) exit ${code}\n${output}`);
      if (code !== 0 && exit === 0) exit = code;
    }
  };
  await Promise.all(Array.from({ length: processes }, worker));
  process.exit(exit);
}

if (process.argv[1]?.endsWith('run-shards.js')) await main();
