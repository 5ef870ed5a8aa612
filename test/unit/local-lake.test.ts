import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { LocalLake } from '../../src/lake/local-lake.js';
import { lakeContract } from '../contract/lake.contract.js';
import { tempDir } from '../support/tmp.js';

lakeContract('local lake', async () => {
  const lake = new LocalLake(pathToFileURL(tempDir('meter-lake-')).href);
  await lake.init();
  return lake;
});

test('local lake: files land at exactly the layout path, nothing is left in _tmp, paths cannot escape', async () => {
  const root = tempDir('meter-lake-');
  const lake = new LocalLake(pathToFileURL(root).href);
  await lake.init();
  const src = join(tempDir('meter-src-'), 'a.parquet');
  writeFileSync(src, 'x');
  await lake.publish(src, 'usage/dt=2026-11-24/hour=23/t+1+0000000000000000005+0000000000000000009.parquet');
  assert.deepEqual(readdirSync(join(root, 'usage', 'dt=2026-11-24', 'hour=23')), ['t+1+0000000000000000005+0000000000000000009.parquet']);
  assert.deepEqual(readdirSync(join(root, '_tmp')), []);
  assert.deepEqual(await lake.materialize(['usage/a.parquet']), [join(root, 'usage', 'a.parquet')]);
  await assert.rejects(lake.publish(src, '../outside.parquet'), /outside the lake/);
});
