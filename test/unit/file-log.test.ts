import { test } from 'node:test';
import assert from 'node:assert/strict';
import { constants, readdirSync, readFileSync, readlinkSync, appendFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FileLog } from '../../src/log/file-log.js';
import { logContract } from '../contract/log.contract.js';

let n = 0;
logContract('file log', async () => {
  const log = new FileLog({ dir: tempDir('meter-flog-'), topic: `t${n++}`, partitions: 4 });
  await log.init();
  return log;
});

import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promises as fsp } from 'node:fs';
import type { LogRecord } from '../../src/log/log.js';
import { crc32 } from '../../src/log/file-log/crc32.js';
import { LogDamagedError, MARK_FILE, readDurableMark, writeDurableMark } from '../../src/log/file-log/durable-mark.js';
import { PartitionWriter } from '../../src/log/file-log/writer.js';
import { UserError } from '../../src/ground/errors.js';
import { PartitionCursor } from '../../src/log/file-log/cursor.js';
import { findDamage, repairPartition } from '../../src/log/file-log/repair.js';
import { sleep, until } from '../support/until.js';
import { tempDir } from '../support/tmp.js';

const fileLogModule = fileURLToPath(new URL('../../src/log/file-log.js', import.meta.url));

/**
 * A writer child: appends `total` records (value = sequence number) in batches, two sends in
 * flight at a time, printing `ack <n>` after each acknowledged pair, then `done`.
 */
function spawnWriter(dir: string, topic: string, total: number, batch: number, extra = '{}', pauseMs = 0): ChildProcess {
  const code = `
    import { FileLog } from ${JSON.stringify(fileLogModule)};
    const log = new FileLog({ dir: ${JSON.stringify(dir)}, topic: ${JSON.stringify(topic)}, partitions: 3, ...${extra} });
    await log.init();
    const prod = await log.producer();
    const mk = (from, n) => Array.from({ length: n }, (_, i) => ({ key: 'k' + ((from + i) % 7), value: Buffer.from(String(from + i).padStart(200, ' ')) }));
    let seq = 0;
    while (seq < ${total}) {
      const a = mk(seq, ${batch}); const b = mk(seq + ${batch}, ${batch});
      await Promise.all([prod.send(a), prod.send(b)]);
      seq += 2 * ${batch};
      process.stdout.write('ack ' + seq + '\\n');
      // pacing: the writer spreads its records over time so the reader tails it live
      if (${pauseMs}) await new Promise((r) => setTimeout(r, ${pauseMs}));
    }
    process.stdout.write('done\\n');
    await prod.close();
    await log.close();
  `;
  return spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
}

function watchAcks(child: ChildProcess): { last: () => number; done: Promise<void> } {
  let acked = 0;
  let buf = '';
  child.stdout!.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      const m = /^ack (\d+)$/.exec(line);
      if (m) acked = Number(m[1]);
    }
  });
  return { last: () => acked, done: new Promise((r) => child.once('exit', () => r())) };
}

async function readAll(log: FileLog): Promise<LogRecord[]> {
  const c = await log.consumer('read-all');
  const end = await c.endOffsets();
  const out: LogRecord[] = [];
  for (const [p, e] of end) out.push(...(await c.readRange(p, 0, e)));
  return out;
}

test('crc32: the IEEE checksum, of a whole buffer and of a range', () => {
  const b = Buffer.from('The quick brown fox jumps over the lazy dog');
  assert.equal(crc32(b), 0x414fa339);
  assert.equal(crc32(b, 4, 9), 0x8dc71ed7); // "quick"
  assert.equal(crc32(Buffer.alloc(0)), 0);
});

test('file log: every record acknowledged before SIGKILL is read back exactly once after restart', async () => {
  const dir = tempDir('meter-flog-kill-');
  const child = spawnWriter(dir, 'usage', 10_000_000, 250, '{ "segmentBytes": 262144 }');
  const acks = watchAcks(child);
  await until('20k acks', () => acks.last() >= 20_000);
  child.kill('SIGKILL');
  await acks.done;
  const acked = acks.last();

  const log = new FileLog({ dir, topic: 'usage', partitions: 3, segmentBytes: 262144 });
  await log.init();
  const prod = await log.producer(); // takes over the dead child's lock, truncates any torn tail
  const recs = await readAll(log);
  const seqs = recs.map((r) => Number(r.value.toString().trim()));
  const seen = new Set(seqs);
  assert.equal(seen.size, seqs.length, 'no record twice');
  for (let s = 0; s < acked; s++) if (!seen.has(s)) assert.fail(`acknowledged record ${s} lost (acked ${acked})`);
  // offsets are dense per partition from 0
  for (let p = 0; p < 3; p++) {
    const offs = recs.filter((r) => r.partition === p).map((r) => r.offset);
    assert.deepEqual(
      offs,
      offs.map((_, i) => i),
    );
  }
  assert.ok(readdirSync(join(dir, 'usage', '0')).filter((f) => f.endsWith('.seg')).length > 1, 'segments rolled');
  // the restarted writer continues at the end
  await prod.send([{ key: 'k1', value: Buffer.from('after') }]);
  const again = await readAll(log);
  assert.equal(again.length, recs.length + 1);
  await prod.close();
  await log.close();
});

test('file log: a torn last record is not delivered, is counted, and is truncated by the next writer', async () => {
  const dir = tempDir('meter-flog-torn-');
  const log = new FileLog({ dir, topic: 't', partitions: 1, pollMs: 10 });
  await log.init();
  const prod = await log.producer();
  await prod.send(Array.from({ length: 10 }, (_, i) => ({ key: 'k', value: Buffer.from(`v${i}`) })));
  await prod.close();
  const seg = join(dir, 't', '0', '00000000000000000000.seg');
  const goodSize = statSync(seg).size;
  // a crash mid-write: a header announcing 100 bytes, and only 7 of them
  const torn = Buffer.alloc(15);
  torn.writeUInt32LE(100, 0);
  torn.writeUInt32LE(0xdeadbeef, 4);
  appendFileSync(seg, torn);

  const got: LogRecord[] = [];
  const c = await log.consumer('g');
  await c.run({ startOffset: async () => null, eachBatch: async (b) => void got.push(...b.records) });
  await until('10 good records', () => got.length >= 10);
  await sleep(100); // a quiet period is the thing tested: the reader must not go past the torn tail
  assert.equal(got.length, 10);
  assert.equal(log.stats().readerTornBytes, 15, 'the reader waits at 15 torn bytes');
  assert.deepEqual((await c.endOffsets()).get(0), 10);

  const log2 = new FileLog({ dir, topic: 't', partitions: 1 });
  const prod2 = await log2.producer();
  assert.equal(log2.stats().tornBytesTruncated, 15);
  assert.equal(statSync(seg).size, goodSize);
  await prod2.send([
    { key: 'k', value: Buffer.from('v10') },
    { key: 'k', value: Buffer.from('v11') },
  ]);
  await until('records after the repair', () => got.length >= 12);
  await sleep(100); // a quiet period is the thing tested: no record delivered twice
  await c.stop();
  assert.deepEqual(
    got.map((r) => r.value.toString()),
    Array.from({ length: 12 }, (_, i) => `v${i}`),
  );
  assert.deepEqual(
    got.map((r) => r.offset),
    Array.from({ length: 12 }, (_, i) => i),
  );
  assert.equal(log.stats().readerTornBytes, 0);
  await prod2.close();
  await log2.close();
  await log.close();
});

test('file log: a last record with a bad CRC is treated as torn', async () => {
  const dir = tempDir('meter-flog-crc-');
  const log = new FileLog({ dir, topic: 't', partitions: 1 });
  const prod = await log.producer();
  await prod.send(Array.from({ length: 5 }, (_, i) => ({ key: 'k', value: Buffer.from(`value-${i}`) })));
  await prod.close();
  const seg = join(dir, 't', '0', '00000000000000000000.seg');
  const bytes = await fsp.readFile(seg);
  bytes[bytes.length - 1]! ^= 0xff; // flip a bit of the last record's value
  writeFileSync(seg, bytes);
  // A crash tears only a write in flight, never acknowledged: the durable mark is before it.
  await writeDurableMark(join(dir, 't', '0'), 4);
  assert.deepEqual(
    (await readAll(log)).map((r) => r.value.toString()),
    ['value-0', 'value-1', 'value-2', 'value-3'],
  );
  const log2 = new FileLog({ dir, topic: 't', partitions: 1 });
  const p2 = await log2.producer();
  assert.ok(log2.stats().tornBytesTruncated > 0);
  await p2.send([{ key: 'k', value: Buffer.from('value-4b') }]);
  assert.deepEqual(
    (await readAll(log2)).map((r) => `${r.offset}=${r.value}`),
    ['0=value-0', '1=value-1', '2=value-2', '3=value-3', '4=value-4b'],
  );
  await p2.close();
  await log2.close();
  await log.close();
});

test('file log: a reader process tails a writer process across segment rolls', async () => {
  const dir = tempDir('meter-flog-xproc-');
  const log = new FileLog({ dir, topic: 'usage', partitions: 3, pollMs: 20 });
  await log.init();
  const got: LogRecord[] = [];
  const c = await log.consumer('tail');
  await c.run({ startOffset: async () => null, eachBatch: async (b) => void got.push(...b.records) });
  const child = spawnWriter(dir, 'usage', 6000, 300, '{ "segmentBytes": 65536 }', 5);
  const acks = watchAcks(child);
  await acks.done;
  assert.equal(acks.last(), 6000);
  await until('all 6000 records tailed', () => got.length >= 6000);
  await sleep(100); // a quiet period is the thing tested: no record delivered twice
  await c.stop();
  assert.equal(got.length, 6000);
  const seqs = got.map((r) => Number(r.value.toString().trim()));
  assert.equal(new Set(seqs).size, 6000);
  for (let k = 0; k < 7; k++) {
    const mine = seqs.filter((s) => s % 7 === k);
    assert.deepEqual(
      mine,
      [...mine].sort((a, b) => a - b),
      `key k${k} in order`,
    );
  }
  assert.ok(readdirSync(join(dir, 'usage', '1')).filter((f) => f.endsWith('.seg')).length > 3, 'segments rolled');
  await log.close();
});

test("file log: one writer process at a time; a dead writer's lock is taken over", async () => {
  const dir = tempDir('meter-flog-lock-');
  const child = spawnWriter(dir, 'usage', 10_000_000, 10, '{}', 20);
  const acks = watchAcks(child);
  await until('child writing', () => acks.last() > 0);
  const log = new FileLog({ dir, topic: 'usage', partitions: 3 });
  await assert.rejects(log.producer(), /held by process \d+/);
  child.kill('SIGKILL');
  await acks.done;
  const prod = await log.producer();
  await prod.send([{ key: 'a', value: Buffer.from('x') }]);
  await prod.close();
  await log.close();
});

test('file log: a different partition count for an existing topic is refused', async () => {
  const dir = tempDir('meter-flog-parts-');
  await new FileLog({ dir, topic: 'usage', partitions: 3 }).init();
  await assert.rejects(new FileLog({ dir, topic: 'usage', partitions: 4 }).init(), (e: unknown) => {
    assert.ok(e instanceof UserError, 'a user error (exit 2 with a hint), not a crash');
    assert.match(e.message, /has 3 partitions.*asks for 4/);
    assert.match(e.hint!, /--partitions 3/);
    return true;
  });
  // An empty _topic.json (an older version wrote it in place and crashed): read from the folders.
  writeFileSync(join(dir, 'usage', '_topic.json'), '');
  await new FileLog({ dir, topic: 'usage', partitions: 3 }).init();
  assert.deepEqual(JSON.parse(readFileSync(join(dir, 'usage', '_topic.json'), 'utf8')), { partitions: 3 });
});

test('file log: commits survive a new instance; a second running consumer of a group is refused', async () => {
  const dir = tempDir('meter-flog-commit-');
  const log = new FileLog({ dir, topic: 'usage', partitions: 2 });
  const c = await log.consumer('ingest');
  await c.commit(0, 5);
  await c.commit(1, 7);
  await c.commit(0, 9);
  await c.run({ startOffset: async () => null, eachBatch: async () => {} });
  const c2 = await log.consumer('ingest');
  await assert.rejects(c2.run({ startOffset: async () => null, eachBatch: async () => {} }), /held by process/);
  await c.stop();
  const other = new FileLog({ dir, topic: 'usage', partitions: 2 });
  assert.deepEqual(
    [...(await (await other.consumer('ingest')).committed())],
    [
      [0, 9],
      [1, 7],
    ],
  );
  assert.ok(readdirSync(join(dir, 'usage', '_consumers')).includes('ingest.json'));
});

/** The open flags of this process's descriptors on files under `dir` (Linux: /proc/self/fdinfo). */
function openFlagsUnder(dir: string): number[] {
  const out: number[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    let target: string;
    try {
      target = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      continue; // closed since the listing
    }
    if (!target.startsWith(dir) || !target.endsWith('.seg')) continue;
    const flags = /^flags:\s+([0-7]+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
    if (flags) out.push(Number.parseInt(flags[1]!, 8));
  }
  return out;
}

// An acknowledged send is durable because each write is: segments are opened O_DSYNC, the
// fdatasync the writer no longer makes (writer.ts writeAndSync).
test('file log: segments are written O_DSYNC, the one they start in and the ones they roll to', { skip: process.platform !== 'linux' }, async () => {
  const dir = tempDir('meter-flog-dsync-');
  const log = new FileLog({ dir, topic: 'dsync', partitions: 2, segmentBytes: 4096 });
  await log.init();
  const prod = await log.producer();
  const first = openFlagsUnder(dir);
  assert.equal(first.length, 2, 'one open segment per partition');
  for (const f of first) assert.ok(f & constants.O_DSYNC, `flags ${f.toString(8)} lack O_DSYNC`);
  // Past segmentBytes: every partition rolls to a new segment.
  for (let i = 0; i < 10; i++) await prod.send(Array.from({ length: 20 }, (_, j) => ({ key: `k${j}`, value: Buffer.alloc(100, 1) })));
  const segments = readdirSync(join(dir, 'dsync', '0')).filter((f) => f.endsWith('.seg'));
  assert.ok(segments.length > 1, `partition 0 rolled: ${segments.join(', ')}`);
  const rolled = openFlagsUnder(dir);
  assert.equal(rolled.length, 2);
  for (const f of rolled) assert.ok(f & constants.O_DSYNC, `flags ${f.toString(8)} lack O_DSYNC after a roll`);
  await log.close();
  // A new writer reopens the last segment of each partition, O_DSYNC too.
  const again = new FileLog({ dir, topic: 'dsync', partitions: 2, segmentBytes: 4096 });
  await again.init();
  await again.producer();
  const reopened = openFlagsUnder(dir);
  assert.equal(reopened.length, 2);
  for (const f of reopened) assert.ok(f & constants.O_DSYNC, `flags ${f.toString(8)} lack O_DSYNC after reopening`);
  await again.close();
});

/** Records v0..v(n-1) in sends of `batch`, acknowledged, then the log closed (its mark written). */
async function writeClosed(dir: string, n: number, batch = 10): Promise<string> {
  const log = new FileLog({ dir, topic: 't', partitions: 1 });
  const prod = await log.producer();
  for (let i = 0; i < n; i += batch)
    await prod.send(Array.from({ length: Math.min(batch, n - i) }, (_, j) => ({ key: 'k', value: Buffer.from(`v${i + j}`.padEnd(40, '.')) })));
  await prod.close();
  await log.close();
  return join(dir, 't', '0');
}

/** Overwrite 8 bytes in the middle of record `offset`'s frame (every frame here is the same size). */
function damageRecord(partitionDir: string, offset: number): void {
  const seg = join(partitionDir, '00000000000000000000.seg');
  const bytes = readFileSync(seg);
  const frame = bytes.length / Number(readFileSync(join(partitionDir, MARK_FILE), 'utf8').match(/\d+/)![0]);
  bytes.write('XXXXXXXX', offset * frame + 20);
  writeFileSync(seg, bytes);
}

const stats = () => ({ tornBytesTruncated: 0, appended: 0, writes: 0 });

test('file log: an acknowledged record damaged mid-segment is not cut off: the writer refuses, a reader reports it', async () => {
  const p = await writeClosed(tempDir('meter-flog-damage-'), 200);
  assert.equal(await readDurableMark(p), 200, 'the mark covers every acknowledged record once closed');
  damageRecord(p, 70);
  const size = statSync(join(p, '00000000000000000000.seg')).size;
  await assert.rejects(PartitionWriter.open(p, 64 << 20, stats()), (e: unknown) => {
    assert.ok(e instanceof LogDamagedError);
    assert.equal(e.goodUpTo, 70);
    assert.equal(e.mark, 200);
    assert.match(e.message, /meter doctor --repair-log/);
    return true;
  });
  assert.equal(statSync(join(p, '00000000000000000000.seg')).size, size, 'nothing was cut off');
  const c = new PartitionCursor(p, 0);
  await c.seek(0);
  assert.equal((await c.read(1000)).length, 70, 'the records before the damage are read');
  await assert.rejects(c.read(1000), LogDamagedError, 'then the reader says why it cannot go on, instead of waiting forever');
  await c.close();
  assert.deepEqual(await findDamage(p), { segment: join(p, '00000000000000000000.seg'), pos: e70(p), goodUpTo: 70, mark: 200 });
});

/** Byte position of record 70: every frame of writeClosed's log has the same size. */
function e70(p: string): number {
  return (statSync(join(p, '00000000000000000000.seg')).size / 200) * 70;
}

test('file log: the repair keeps every readable record, loses only the damaged one, and never reuses an offset', async () => {
  const p = await writeClosed(tempDir('meter-flog-repair-'), 200);
  damageRecord(p, 70);
  const r = await repairPartition(p);
  assert.ok(r);
  assert.deepEqual(r.lost, [[70, 71]]);
  assert.equal(r.segments[0]!.keptRecords, 129);
  assert.deepEqual(r.segments[0]!.newSegments, [71]);
  assert.ok(statSync(r.segments[0]!.savedAs).size > 0, 'the original is kept');
  assert.equal(await findDamage(p), null, 'the gap the repair reported is not damage any more');
  assert.equal(await repairPartition(p), null, 'a second repair changes nothing');

  const log = new FileLog({ dir: join(p, '..', '..'), topic: 't', partitions: 1 });
  const prod = await log.producer();
  await prod.send([{ key: 'k', value: Buffer.from('after') }]);
  const all = await readAll(log);
  assert.deepEqual(
    all.map((x) => x.offset),
    [...Array.from({ length: 70 }, (_, i) => i), ...Array.from({ length: 130 }, (_, i) => 71 + i)],
  );
  assert.equal(all.at(-1)!.value.toString(), 'after');
  assert.equal(all.at(-2)!.value.toString().replace(/\.+$/, ''), 'v199');
  await prod.close();
  await log.close();
});

test('file log: damage reaching the end of the last segment: the repair starts new records at the durable mark', async () => {
  const p = await writeClosed(tempDir('meter-flog-repair-tail-'), 200);
  const seg = join(p, '00000000000000000000.seg');
  const bytes = readFileSync(seg);
  writeFileSync(seg, bytes.subarray(0, Math.floor(bytes.length * 0.9))); // the last ~20 records cut off
  const d = await findDamage(p);
  assert.ok(d && d.goodUpTo < 200 && d.mark === 200);
  const r = await repairPartition(p);
  assert.ok(r);
  assert.deepEqual(r.lost, [[d.goodUpTo, 200]]);
  assert.equal(r.resumedAt, 200);
  const w = await PartitionWriter.open(p, 64 << 20, stats());
  assert.equal(w.nextOffset, 200, 'a reader may have committed past the lost records: their offsets are not given again');
  await w.close();
});

test("file log: a torn tail past the durable mark is still the writer's to cut (a crash mid-write)", async () => {
  const p = await writeClosed(tempDir('meter-flog-torn-mark-'), 20);
  const torn = Buffer.alloc(30);
  torn.writeUInt32LE(100, 0);
  appendFileSync(join(p, '00000000000000000000.seg'), torn);
  assert.equal(await findDamage(p), null);
  const s = stats();
  const w = await PartitionWriter.open(p, 64 << 20, s);
  assert.equal(s.tornBytesTruncated, 30);
  assert.equal(w.nextOffset, 20);
  await w.close();
});
