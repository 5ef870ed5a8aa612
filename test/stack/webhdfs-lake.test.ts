/** WebHdfsLake against the real NameNode + DataNode from stack/run: the shared lake contract plus WebHDFS specifics. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { stackEnv } from '../support/stack.js';
import { WebHdfsLake } from '../../src/lake/webhdfs-lake.js';
import { lakeContract } from '../contract/lake.contract.js';
import { tempDir } from '../support/tmp.js';

const env = await stackEnv(['hdfs']);
const base = env.METER_LAKE_URL; // hdfs://127.0.0.1:19870/meter
const uniq = (p: string) => `${p}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;

async function fresh(): Promise<WebHdfsLake> {
  const lake = new WebHdfsLake(`${base}/test/${uniq('lake')}`, { cacheDir: tempDir('meter-hdfs-cache-') });
  await lake.init();
  return lake;
}
function localFile(content: string | Buffer): string {
  const f = join(tempDir('meter-hdfs-'), 'f.bin');
  writeFileSync(f, content);
  return f;
}

lakeContract('webhdfs', fresh);

test('webhdfs: a larger binary file round-trips byte for byte through the DataNode', async () => {
  const lake = await fresh();
  const body = Buffer.alloc(3 << 20);
  for (let i = 0; i < body.length; i++) body[i] = (i * 2654435761) >>> 24;
  await lake.publish(localFile(body), 'usage/dt=2026-01-01/hour=00/big.parquet');
  assert.ok((await lake.read('usage/dt=2026-01-01/hour=00/big.parquet')).equals(body));
  const [e] = await lake.list('usage/dt=2026-01-01/hour=00');
  assert.equal(e!.size, body.length);
});

test('webhdfs: publish leaves nothing in _tmp, and writes there first', async () => {
  const lake = await fresh();
  await lake.publish(localFile('x'), 'a/b/c.parquet');
  const tmp = await lake.client.list(lake.abs('_tmp'));
  assert.deepEqual(tmp, [], '_tmp is empty after a publish');
  assert.equal((await lake.read('a/b/c.parquet')).toString(), 'x');
});

test('webhdfs: a RENAME answered {"boolean": false} is an error, not a silent success', async () => {
  const lake = await fresh();
  // The tmp file does not exist, so the NameNode answers HTTP 200 {"boolean": false}.
  await assert.rejects(lake.promote('_tmp/never-uploaded', 'usage/x.parquet'), /answered \{"boolean": false\}/);
  assert.deepEqual(await lake.list('usage'), []);
});

test('webhdfs: publishing onto a folder is refused (RENAME would move the file into it)', async () => {
  const lake = await fresh();
  await lake.publish(localFile('inner'), 'usage/clash.parquet/inner.parquet');
  await assert.rejects(lake.publish(localFile('x'), 'usage/clash.parquet'), /destination is a folder/);
  assert.equal((await lake.read('usage/clash.parquet/inner.parquet')).toString(), 'inner');
  assert.deepEqual(await lake.client.list(lake.abs('_tmp')), [], 'the upload is cleaned up');
});

test('webhdfs: server errors carry the RemoteException (missing file, parent is a file)', async () => {
  const lake = await fresh();
  await assert.rejects(lake.read('nope.parquet'), /HTTP 404: FileNotFoundException: File .*nope\.parquet (not found|does not exist)/);
  await lake.publish(localFile('f'), 'plain');
  await assert.rejects(lake.publish(localFile('g'), 'plain/child.parquet'), /HTTP \d+: \w+Exception/);
  await assert.rejects(lake.materialize(['missing.parquet']), /no such file/);
});

test('webhdfs: materialize caches by size: same size is not downloaded again, a new size is', async () => {
  const lake = await fresh();
  const p = 'usage/dt=2026-05-05/hour=05/m+0+1+2.parquet';
  await lake.publish(localFile('version-1'), p);
  const [local] = await lake.materialize([p]);
  assert.equal(readFileSync(local!, 'utf8'), 'version-1');
  // Mark the cached copy: a re-download would replace the file (new inode).
  const old = new Date(Date.UTC(2001, 0, 1));
  utimesSync(local!, old, old);
  const ino = statSync(local!).ino;
  const [again] = await lake.materialize([p]);
  assert.equal(again, local);
  assert.equal(statSync(local!).ino, ino, 'cache hit: not rewritten');
  assert.ok(statSync(local!).mtimeMs > old.getTime(), 'its mtime says when it was last used (lake-cache.ts)');
  await lake.publish(localFile('version-two'), p);
  const [third] = await lake.materialize([p]);
  assert.equal(readFileSync(third!, 'utf8'), 'version-two');
});

test('webhdfs: materialize keeps order for many files; delete of a missing file is fine; the root is protected', async () => {
  const lake = await fresh();
  const paths = Array.from({ length: 9 }, (_, i) => `usage/dt=2026-06-06/hour=06/f+0+${i}+${i}.parquet`);
  for (const [i, p] of paths.entries()) await lake.publish(localFile(`n${i}`), p);
  const locals = await lake.materialize(paths);
  assert.deepEqual(
    locals.map((l) => readFileSync(l, 'utf8')),
    paths.map((_, i) => `n${i}`),
  );
  await lake.delete('usage/not-there.parquet');
  await assert.rejects(lake.delete(''), /root/);
});

test('webhdfs: a lake URL with nothing listening fails after retries with a clear error', async () => {
  const lake = new WebHdfsLake('hdfs://127.0.0.1:1/meter', { timeoutMs: 2000 });
  await assert.rejects(lake.list('usage'), /127\.0\.0\.1:1.*(fetch failed|ECONNREFUSED)/);
});
