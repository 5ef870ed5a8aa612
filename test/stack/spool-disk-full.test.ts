/**
 * The spool on a real full disk: a 2 MiB tmpfs mounted for the test (root only, as on this
 * machine), with the spool's maxBytes far above it (1 GiB), so the disk, not the spool's own
 * bound, says no. Kafka "down" is a bootstrap address where nothing listens; "back" is a TCP
 * forwarder to the real broker started on that address (as in spool.test.ts; the fault suite
 * stops the real broker: test/faults/scenarios-spool.ts).
 */
import { test, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { rmSync, readdirSync, statSync, statfsSync, openSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { stackEnv } from '../support/stack.js';
import { Spool, SpoolFullError } from '../../src/gateway/spool/spool.js';
import { decodeEvent } from '../../src/events/usage-event.js';
import { until } from '../support/until.js';
import { tempDir } from '../support/tmp.js';
import { Forwarder, freePort } from '../support/net.js';
import { closeKeysDb, newTopic, spooledGateway, topicRecords } from '../support/spooled-gateway.js';

const rec = (i: number) => ({ key: `c${i % 3}`, value: Buffer.from(JSON.stringify({ i, pad: 'x'.repeat(200) })) });

/** A fresh 2 MiB tmpfs, unmounted (and removed) after the test. */
function tmpfs(t: TestContext, size = '2m'): string {
  const dir = tempDir('meter-fulldisk-');
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir]);
  t.after(() => {
    try {
      execFileSync('umount', ['-l', dir]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  return dir;
}

const free = (dir: string) => {
  const s = statfsSync(dir);
  return s.bavail * s.bsize;
};

/** Fill the disk with a ballast file until it refuses a write; returns the ballast's path. */
function fillDisk(dir: string, leave = 0): string {
  const file = join(dir, 'ballast');
  const fd = openSync(file, 'a');
  const chunk = Buffer.alloc(4096, 1);
  try {
    while (free(dir) > leave) writeSync(fd, chunk);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
  } finally {
    closeSync(fd);
  }
  return file;
}

function segFiles(dir: string, topic: string): { names: string[]; bytes: number } {
  const p = join(dir, topic, '0');
  const names = readdirSync(p).filter((n) => n.endsWith('.seg'));
  return { names, bytes: names.reduce((s, n) => s + statSync(join(p, n)).size, 0) };
}

test('spool on a full disk: says full (ENOSPC), keeps nothing of a refused append, records its cursor without new space, reclaims shipped segments', {
  timeout: 120_000,
}, async (t) => {
  const disk = tmpfs(t);
  const dir = join(disk, 'spool');
  const logs: string[] = [];
  const spool = await Spool.open({ dir, topic: 'usage-events', maxBytes: 1 << 30, logger: (m) => logs.push(m) });
  let n = 0;
  let refusal: unknown = null;
  for (let k = 0; k < 10_000 && !refusal; k++) {
    try {
      await spool.append(Array.from({ length: 50 }, () => rec(n++)));
    } catch (e) {
      refusal = e;
      n -= 50;
    }
  }
  assert.ok(refusal instanceof SpoolFullError, `refused with ${String(refusal)}`);
  assert.match((refusal as Error).message, /ENOSPC/);
  const st = spool.stats();
  assert.equal(st.full, true);
  assert.match(st.fullReason ?? '', /ENOSPC/);
  assert.equal(st.pending, n, 'only whole acknowledged appends are in the spool');
  assert.equal(st.bytes, segFiles(dir, 'usage-events').bytes, 'the refused append left no bytes behind');
  assert.match(logs.join('\n'), /SPOOL FULL \(the disk refused a write: ENOSPC/);
  await assert.rejects(spool.append([rec(0)]), SpoolFullError, 'full stays full until there is room');

  // The disk is now completely full: the cursor must still be recorded.
  const ballast = fillDisk(disk);
  assert.ok(free(disk) < 4096, `disk still has ${free(disk)} bytes`);
  const half = Math.floor(n / 2);
  assert.equal((await spool.read(half)).length, half);
  await spool.commit(half);
  assert.equal(spool.stats().cursorWriteErrors, 0, 'the cursor write needed no new space');
  await spool.close();
  const consumers = readdirSync(join(dir, 'usage-events', '_consumers'));
  assert.deepEqual(
    consumers.filter((f) => f.endsWith('.tmp')),
    [],
    'no temp files left',
  );

  const again = await Spool.open({ dir, topic: 'usage-events', maxBytes: 1 << 30, logger: (m) => logs.push(m) });
  assert.equal(again.cursor, half, 'the cursor written on the full disk survived a restart');
  assert.equal(again.pending(), n - half);
  const rest = await again.read(1_000_000);
  assert.deepEqual(
    rest.map((r) => JSON.parse(r.value.toString()).i),
    Array.from({ length: n - half }, (_, i) => half + i),
    'the rest, in order, each once',
  );
  rmSync(ballast);
  const bytesBefore = again.stats().bytes;
  assert.ok(bytesBefore > 1 << 20, `spool holds ${bytesBefore} bytes`);
  await again.commit(again.end);
  await again.reclaim();
  assert.equal(again.stats().bytes, 0, 'a shipped spool holds no bytes');
  assert.equal(segFiles(dir, 'usage-events').bytes, 0);
  assert.ok(again.stats().reclaimedBytes >= bytesBefore);
  assert.equal(again.stats().full, false, 'room again');
  const r = await again.append([rec(1), rec(2)]);
  assert.deepEqual(r, { from: n, to: n + 2 }, 'offsets go on after the reclaim');
  await again.close();
});

// ---- gateway + real Kafka ----
const env = await stackEnv(['kafka']);
const brokers = env.METER_KAFKA_BROKERS!.split(',');
after(() => closeKeysDb());

async function gatewayOnFullDisk(t: TestContext, strict: boolean) {
  const topic = await newTopic(brokers, 'fulldisk', 1);
  const fwd = new Forwarder(await freePort(), brokers[0]!);
  t.after(() => fwd.down());
  const disk = tmpfs(t);
  const r = await spooledGateway(t, { topic, bootstrap: `127.0.0.1:${fwd.port}`, spoolDir: join(disk, 'spool'), spoolMaxBytes: 1 << 30, strict });
  return { ...r, fwd, disk, topic };
}

for (const mode of ['strict', 'batched'] as const) {
  test(`gateway (${mode}) with Kafka down and its spool's disk full: 503 before the upstream, health says so; Kafka back: each answered event in Kafka once, disk reclaimed`, {
    timeout: 240_000,
  }, async (t) => {
    const r = await gatewayOnFullDisk(t, mode === 'strict');
    // Leave ~300 KiB for the spool: ~1,000 events fit.
    fillDisk(r.disk, 300 << 10);
    const answered = new Set<string>();
    let refused = 0;
    let cut = 0;
    let upstreamAtFirst503 = -1;
    let maxBuffered = 0;
    let maxAfterFull = 0;
    // 8 clients at once, so appends meet the full disk while calls are in flight.
    let i = 0;
    const client = async () => {
      while (refused < 200 && i < 20_000) {
        const n = i++;
        try {
          const res = await request(`${r.gw.url}/v1/things/${n}`, { headers: { authorization: `Bearer ${r.key.key}` } });
          const text = await res.body.text();
          if (res.statusCode === 200) answered.add(res.headers['x-meter-event-id'] as string);
          else {
            assert.equal(res.statusCode, 503, text);
            assert.equal(JSON.parse(text).error, 'usage_unavailable');
            assert.equal(res.headers['retry-after'], '5');
            if (refused++ === 0) upstreamAtFirst503 = r.upstreamCalls();
          }
        } catch {
          cut++; // strict: a call in flight when the disk refused its event: cut, never a 200
        }
        const buffered = r.gw.batcher.stats().buffered;
        if (refused === 0) maxBuffered = Math.max(maxBuffered, buffered);
        else maxAfterFull = Math.max(maxAfterFull, buffered);
      }
    };
    await Promise.all(Array.from({ length: 8 }, client));
    assert.ok(refused >= 200, 'the gateway refuses once the spool is full');
    // Once full is known, no refused call reaches the upstream (the 8 in flight at that moment may).
    assert.ok(r.upstreamCalls() - upstreamAtFirst503 <= 8, `upstream called ${r.upstreamCalls() - upstreamAtFirst503} times after the first 503`);
    const h = await r.health();
    assert.equal(h.status, 'spool_full');
    assert.equal(h.spool.spool.full, true);
    assert.match(h.spool.spool.fullReason, /ENOSPC/);
    assert.equal(h.events.dropped, mode === 'strict' ? cut : 0, 'batched drops nothing it answered');
    assert.ok(cut <= 8, `answers cut off: ${cut}`);
    // Memory holds only what was answered before the spool was found full, not every later call.
    // (The calls of one spool write: more on a faster box.) Once calls are refused it does not
    // grow beyond the calls in flight at that moment (8 clients).
    assert.ok(maxAfterFull <= maxBuffered + 8, `memory grew after the spool was full: ${maxBuffered} -> ${maxAfterFull}`);
    assert.ok(answered.size >= 300, `only ${answered.size} calls answered before the disk was full`);
    if (mode === 'strict') assert.equal(h.spool.spool.pending, answered.size, 'strict: every 200 is durable in the spool');
    else assert.equal(h.spool.spool.pending + h.events.buffered, answered.size, 'batched: every 200 is in the spool or in memory');

    // Kafka back, disk still full: the shipper records its progress in place and moves on.
    await r.fwd.up();
    await until(
      'spool and memory shipped with the disk full',
      async () => {
        const x = await r.health();
        return x.events.buffered === 0 && x.spool.spool.pending === 0 && x.spool.mode === 'direct';
      },
      90_000,
      50,
    );
    const x = await r.health();
    assert.equal(x.status, 'ok');
    assert.equal(x.spool.spool.cursorWriteErrors, 0);
    assert.equal(x.spool.spool.bytes, 0, 'shipped segments reclaimed');
    assert.equal(segFiles(join(r.disk, 'spool'), r.topic).bytes, 0);
    const got = await topicRecords(brokers, r.topic);
    const ids = got.map((g) => {
      const d = decodeEvent(g.value);
      assert.ok(d.ok);
      return d.event.id;
    });
    assert.equal(new Set(ids).size, ids.length, `Kafka holds ${ids.length} records for ${new Set(ids).size} ids: nothing sent twice`);
    assert.deepEqual([...ids].sort(), [...answered].sort(), 'every answered call, once');
    // And serving again, directly to Kafka.
    const res = await request(`${r.gw.url}/v1/things/after`, { headers: { authorization: `Bearer ${r.key.key}` } });
    assert.equal(res.statusCode, 200);
    await res.body.dump();
  });
}
