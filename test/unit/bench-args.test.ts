/** The bench runner refuses what it does not know (the smoke run of every stage: test/stack/bench-smoke.test.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const runner = resolve(dirname(fileURLToPath(import.meta.url)), '../../bench/run.js');

test('bench refuses an unknown stage or argument', async () => {
  for (const args of [['--stages', 'nope'], ['--bogus']]) {
    const code = await new Promise<number | null>((res) =>
      execFile(process.execPath, [runner, ...args], (err) => res(err ? ((err as { code?: number }).code ?? 1) : 0)),
    );
    assert.equal(code, 1, `bench ${args.join(' ')} should fail`);
  }
});
