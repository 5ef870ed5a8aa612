/**
 * The rollup's local copy of an HDFS lake is bounded (lakeCacheMaxBytes, src/lake/lake-cache.ts),
 * on the stack's real NameNode + DataNode: least recently used files go first, never a file in
 * use (materialized and not released), nor one another process used within the grace.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stackEnv } from '../support/stack.js';
import { tempDir } from '../support/tmp.js';
import { WebHdfsLake } from '../../src/lake/webhdfs-lake.js';

const env = await stackEnv(['hdfs']);
const base = env.METER_LAKE_URL;
const KB = 1024;
const FILE = 100 * KB;

function du(dir: string): number {
  let n = 0;
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name));
      else n += statSync(join(d, e.name)).size;
    }
  };
  if (existsSync(dir)) walk(dir);
  return n;
}

/** Hour folders of the cached files, one entry per file. */
function cached(dir: string): string[] {
  return readdirSync(dir, { recursive: true })
    .filter((f) => String(f).endsWith('.parquet'))
    .map((f) => String(f).split('/').at(-2)!)
    .sort();
}

/** A lake with `hours` hours of two 100 KB files each; hour h's paths. */
async function world(hours: number, maxBytes: number, graceMs = 60_000) {
  const cacheDir = tempDir('meter-cache-bound-');
  const lake = new WebHdfsLake(`${base}/test/cache-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`, {
    cacheDir,
    cacheMaxBytes: maxBytes,
    cacheGraceMs: graceMs,
  });
  await lake.init();
  const src = join(tempDir('meter-cache-src-'), 'f.bin');
  const paths: string[][] = [];
  for (let h = 0; h < hours; h++) {
    const hp: string[] = [];
    for (let f = 0; f < 2; f++) {
      writeFileSync(src, Buffer.alloc(FILE, h * 2 + f));
      const p = `usage/dt=2026-01-01/hour=${String(h).padStart(2, '0')}/t+${f}+0+9.parquet`;
      await lake.publish(src, p);
      hp.push(p);
    }
    paths.push(hp);
  }
  return { lake, cacheDir, paths };
}

test('lake cache: held within lakeCacheMaxBytes, least recently used first; a file used again stays', { timeout: 120_000 }, async () => {
  const w = await world(5, 450 * KB);
  // Hour 0, then 1, then 0 again (now more recent than 1), then 2, 3, 4.
  for (const h of [0, 1, 0, 2, 3, 4]) {
    const local = await w.lake.materialize(w.paths[h]!);
    for (const [i, f] of local.entries()) assert.equal(statSync(f).size, FILE, `hour ${h} file ${i} complete`);
    w.lake.release(local);
    assert.ok(du(w.cacheDir) <= 450 * KB, `after hour ${h}: ${du(w.cacheDir)} bytes in the cache, bound ${450 * KB}`);
    if (h === 2) assert.deepEqual(cached(w.cacheDir), ['hour=00', 'hour=00', 'hour=02', 'hour=02'], 'hour 1 went first: hour 0 was used after it');
  }
  // Four files fit: hours 3 and 4 (the last used); 0, 1, 2 went, 1 before 0 (0 was used again).
  assert.deepEqual(cached(w.cacheDir), ['hour=03', 'hour=03', 'hour=04', 'hour=04']);
  assert.ok(w.lake.cache.evicted >= 6, `evicted ${w.lake.cache.evicted}`);
});

test('lake cache: a file in use is never evicted, even past the bound; it goes once released', { timeout: 120_000 }, async () => {
  const w = await world(3, 250 * KB);
  const a = await w.lake.materialize(w.paths[0]!);
  const b = await w.lake.materialize(w.paths[1]!);
  // Both hours in use: 400 KB against a bound of 250 KB, nothing deleted.
  for (const f of [...a, ...b]) assert.ok(existsSync(f), `${f} in use and kept`);
  assert.equal(du(w.cacheDir), 4 * FILE);
  w.lake.release(a);
  w.lake.release(b);
  const c = await w.lake.materialize(w.paths[2]!);
  for (const f of [...a, ...b]) assert.equal(existsSync(f), false, `${f} released and older: evicted`);
  for (const f of c) assert.ok(existsSync(f));
  w.lake.release(c);
});

test("lake cache: another process's recently used files are kept; an earlier run's old files count and go", { timeout: 120_000 }, async () => {
  const w = await world(1, 250 * KB);
  // Left by an earlier run (old mtime) and by a process sharing the folder (just now).
  const old = join(w.cacheDir, 'usage/dt=2025-01-01/hour=00/old.parquet');
  const recent = join(w.cacheDir, 'usage/dt=2025-01-01/hour=01/recent.parquet');
  mkdirSync(join(old, '..'), { recursive: true });
  mkdirSync(join(recent, '..'), { recursive: true });
  writeFileSync(old, Buffer.alloc(FILE));
  const { utimesSync } = await import('node:fs');
  utimesSync(old, new Date(Date.now() - 3_600_000), new Date(Date.now() - 3_600_000));
  writeFileSync(recent, Buffer.alloc(FILE));
  const local = await w.lake.materialize(w.paths[0]!);
  w.lake.release(local);
  assert.equal(existsSync(old), false, 'the old file was evicted');
  assert.equal(existsSync(recent), true, 'a file another process used within the grace is kept');
});
