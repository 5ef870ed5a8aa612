/** The bench runner refuses what it does not know (the smoke run of every stage: test/stack/bench-smoke.test.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const runner = resolve(dirname(fileURLToPath(import.meta.url)), '../../bench/run.js');

function bench(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) =>
    execFile(process.execPath, [runner, ...args], (err, stdout, stderr) => res({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr })),
  );
}

test('bench refuses an unknown stage, argument or a missing value: one line naming it, exit 2, no stack trace', async () => {
  for (const [args, says] of [
    [['--stages', 'nope'], /^bench: unknown stage nope; stages: parquet, /],
    [['--bogus'], /^bench: unknown argument --bogus/],
    [['--runs'], /^bench: --runs needs a value/],
    [['--runs', '0'], /^bench: --runs takes a whole number/],
  ] as const) {
    const r = await bench([...args]);
    assert.equal(r.code, 2, `bench ${args.join(' ')} should fail as a usage error`);
    assert.match(r.stderr, says);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
});

test('bench --help says how to run it and runs nothing', async () => {
  const r = await bench(['--help']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^usage: node dist\/bench\/run\.js/);
  assert.match(r.stdout, /--stages a,b .*gateway/);
});
