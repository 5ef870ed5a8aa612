/**
 * CPU of one durable append on this machine's disk, the unit the embedded log pays per partition
 * per batch (src/log/file-log/writer.ts: write + fdatasync): appends of `bytes` to a new file,
 * each made durable, timed on the calling thread (the kernel's work counts there, as it does on
 * libuv's pool in the gateway). Variants: growing file or preallocated, fdatasync or O_DSYNC.
 *
 *   node dist/bench/fsync-cost.js [appends=2000] [bytes=1200] [rounds=2]
 */
import { closeSync, constants, fdatasyncSync, fsyncSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { benchWorkDir, fmt } from './lib.js';

const n = Number(process.argv[2] ?? 2000);
const bytes = Number(process.argv[3] ?? 1200);
const rounds = Number(process.argv[4] ?? 2);
const dir = mkdtempSync(join(benchWorkDir(), 'fsync-cost-'));
const buf = Buffer.alloc(bytes, 'x');

function run(name: string, prealloc: boolean, dsync: boolean): void {
  const file = join(dir, `${name.replace(/\W+/g, '-')}.seg`);
  const fd = openSync(file, constants.O_RDWR | constants.O_CREAT | constants.O_TRUNC | (dsync ? constants.O_DSYNC : 0));
  if (prealloc) {
    writeSync(fd, Buffer.alloc(n * bytes), 0, n * bytes, 0);
    fsyncSync(fd);
  }
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    writeSync(fd, buf, 0, bytes, i * bytes);
    if (!dsync) fdatasyncSync(fd);
  }
  const c = process.cpuUsage(c0);
  const wall = performance.now() - t0;
  closeSync(fd);
  rmSync(file);
  console.log(`${name}: ${fmt((c.user + c.system) / n, 1)} µs CPU per durable append, ${fmt((wall * 1000) / n, 0)} µs wall`);
}

try {
  for (let r = 0; r < rounds; r++) {
    run('growing file, write + fdatasync', false, false);
    run('preallocated, write + fdatasync', true, false);
    run('growing file, O_DSYNC write', false, true);
    run('preallocated, O_DSYNC write', true, true);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
