/**
 * The unit-suite runner (test/support/run-shards.ts): every file runs exactly once, a failing file
 * fails the run, and each batch's summary reaches the output whole (.ci/run adds those lines up).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { assetPath } from '../../src/config/assets.js';
import { deal } from '../support/run-shards.js';
import { tempDir } from '../support/tmp.js';

test('deal: every file in exactly one batch, sorted files dealt round-robin, no empty batch', () => {
  const files = Array.from({ length: 11 }, (_, i) => `f${String(i).padStart(2, '0')}.test.js`).reverse();
  const batches = deal(files, 4);
  assert.deepEqual(batches, [
    ['f00.test.js', 'f04.test.js', 'f08.test.js'],
    ['f01.test.js', 'f05.test.js', 'f09.test.js'],
    ['f02.test.js', 'f06.test.js', 'f10.test.js'],
    ['f03.test.js', 'f07.test.js'],
  ]);
  assert.deepEqual(deal(['b', 'a'], 8), [['a'], ['b']], 'fewer files than batches: one file each');
  assert.deepEqual(deal([], 3), []);
});

test('run-shards: all files run, a failure fails the run, every summary is printed', () => {
  const dir = tempDir('meter-run-shards-');
  for (let i = 0; i < 5; i++) {
    const body = i === 3 ? "assert.equal(1, 2, 'file 3 fails')" : 'assert.ok(true)';
    writeFileSync(join(dir, `t${i}.test.js`), `import assert from 'node:assert';\nimport { test } from 'node:test';\ntest('t${i}', () => { ${body}; });\n`);
  }
  const run = spawnSync(process.execPath, [assetPath('dist/test/support/run-shards.js'), dir], {
    encoding: 'utf8',
    env: { ...process.env, METER_TEST_SHARDS: '2' },
  });
  assert.notEqual(run.status, 0, 'a failing file fails the run');
  const sum = (k: string) =>
    run.stdout
      .split('\n')
      .map((l) => l.trim().split(/\s+/))
      .filter((w) => (w[0] === 'ℹ' || w[0] === '#') && w[1] === k)
      .reduce((n, w) => n + Number(w[2]), 0);
  assert.equal(sum('tests'), 5, run.stdout);
  assert.equal(sum('fail'), 1, run.stdout);
  for (let i = 0; i < 5; i++) assert.match(run.stdout, new RegExp(`t${i}`));

  const bad = spawnSync(process.execPath, [assetPath('dist/test/support/run-shards.js'), dir], {
    encoding: 'utf8',
    env: { ...process.env, METER_TEST_SHARDS: 'many' },
  });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /METER_TEST_SHARDS must be a whole number/);
});
