/**
 * The lake contract, run against every Lake (local folder, HDFS over WebHDFS).
 * `open()` returns an initialised lake on an EMPTY root (e.g. a unique folder per call);
 * each test closes the lake it opened.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Lake } from '../../src/lake/lake.js';
import { hourDir, dataFileName } from '../../src/lake/layout.js';
import { tempDir } from '../support/tmp.js';

function localFile(content: string | Buffer): string {
  const f = join(tempDir('meter-lakec-'), 'f.bin');
  writeFileSync(f, content);
  return f;
}

export function lakeContract(name: string, open: () => Promise<Lake>): void {
  test(`${name}: publish, then list, read and materialize the file`, async () => {
    const lake = await open();
    try {
      const dir = hourDir(Date.UTC(2026, 10, 24, 7, 30));
      assert.equal(dir, 'usage/dt=2026-11-24/hour=07');
      const path = `${dir}/${dataFileName('usage-events', 2, 0, 99)}`;
      const body = Buffer.from('PAR1 not really parquet \u00e9'.repeat(100));
      await lake.publish(localFile(body), path);
      const ls = await lake.list(dir);
      assert.equal(ls.length, 1);
      assert.equal(ls[0]!.path, path);
      assert.equal(ls[0]!.size, body.length);
      assert.ok(Math.abs(ls[0]!.mtime - Date.now()) < 10 * 60_000, 'mtime is epoch ms, recent');
      assert.deepEqual(await lake.read(path), body);
      const [local] = await lake.materialize([path]);
      assert.ok(local!.startsWith('/'), 'absolute local path');
      assert.deepEqual(readFileSync(local!), body);
    } finally {
      await lake.close();
    }
  });

  test(`${name}: listDirs walks the hour layout; absent folders list as empty`, async () => {
    const lake = await open();
    try {
      for (const h of [1, 2, 26]) await lake.publish(localFile(`h${h}`), `${hourDir(Date.UTC(2026, 0, 1, h))}/x+0+1+2.parquet`);
      assert.deepEqual(await lake.listDirs('usage'), ['dt=2026-01-01', 'dt=2026-01-02']);
      assert.deepEqual(await lake.listDirs('usage/dt=2026-01-01'), ['hour=01', 'hour=02']);
      assert.deepEqual(await lake.listDirs('usage/dt=1999-01-01'), []);
      assert.deepEqual(await lake.list('usage/dt=1999-01-01/hour=00'), []);
      assert.ok(!(await lake.listDirs('')).includes('_tmp'), '_tmp is not listed');
    } finally {
      await lake.close();
    }
  });

  test(`${name}: publishing the same name again replaces the file; delete removes it`, async () => {
    const lake = await open();
    try {
      const path = 'usage/dt=2026-02-03/hour=04/t+0+00+10.parquet';
      await lake.publish(localFile('first version'), path);
      await lake.publish(localFile('second'), path);
      assert.equal((await lake.read(path)).toString(), 'second');
      const ls = await lake.list('usage/dt=2026-02-03/hour=04');
      assert.deepEqual(
        ls.map((e) => [e.path, e.size]),
        [[path, 6]],
      );
      await lake.delete(path);
      assert.deepEqual(await lake.list('usage/dt=2026-02-03/hour=04'), []);
      await assert.rejects(lake.read(path));
    } finally {
      await lake.close();
    }
  });

  test(`${name}: names starting with _ or . are invisible to list and listDirs`, async () => {
    const lake = await open();
    try {
      const dir = 'usage/dt=2026-03-01/hour=00';
      await lake.publish(localFile('a'), `${dir}/visible.parquet`);
      await lake.publish(localFile('b'), `${dir}/_temporary.parquet`);
      await lake.publish(localFile('c'), `${dir}/.hidden.parquet`);
      await lake.publish(localFile('d'), `usage/_scratch/x.parquet`);
      assert.deepEqual(
        (await lake.list(dir)).map((e) => e.path),
        [`${dir}/visible.parquet`],
      );
      assert.deepEqual(await lake.listDirs('usage'), ['dt=2026-03-01']);
      assert.equal((await lake.read(`${dir}/_temporary.parquet`)).toString(), 'b');
    } finally {
      await lake.close();
    }
  });
}
