/**
 * The benchmarks still run: `npm run bench -- --smoke` (tiny sizes, embedded parts only) must
 * finish and print a row for every stage. Nothing here looks at the numbers: they are
 * meaningless at smoke sizes and the machine is shared. In test/stack although it needs no
 * server: every stage is a minute of real work, too much for the unit suite.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from '../support/tmp.js';

const runner = resolve(dirname(fileURLToPath(import.meta.url)), '../../bench/run.js');

test('bench --smoke runs every stage and prints its table', { timeout: 10 * 60_000 }, async () => {
  const dir = tempDir('meter-bench-smoke-');
  const json = join(dir, 'out.json');
  const { stdout } = await new Promise<{ stdout: string; stderr: string }>((res, rej) =>
    execFile(
      process.execPath,
      [runner, '--smoke', '--json', json],
      { env: { ...process.env, METER_BENCH_DIR: dir }, maxBuffer: 32 << 20, timeout: 9 * 60_000 },
      (err, stdout, stderr) => (err ? rej(new Error(`${err.message}\n${stderr.slice(-3000)}`)) : res({ stdout, stderr })),
    ),
  );
  assert.match(stdout, /\| stage \| metric \| meter \| baseline \| ratio \| target \| met\? \|/);
  const out = JSON.parse(readFileSync(json, 'utf8')) as { rows: { stage: string; meter: string; baseline: string }[] };
  const stages = new Set(out.rows.map((r) => r.stage));
  for (const s of ['Parquet writer', 'Rollup', 'Billing query', 'Gateway', 'Ingest', 'Embedded demo', 'Log append', 'Freshness'])
    assert.ok(stages.has(s), `no row for stage ${s}: ${[...stages].join(', ')}`);
  for (const r of out.rows) assert.ok(r.meter.length > 0 && r.baseline.length > 0, `empty cell in ${JSON.stringify(r)}`);
});
