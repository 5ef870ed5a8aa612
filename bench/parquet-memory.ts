/**
 * What DuckDB's memory limit does to the Parquet writer's memory, for gateway-like rows and for
 * the largest rows meter accepts (four 200-character non-ASCII names, about 2.5 KB a line):
 *   node dist/bench/parquet-memory.js [rows per file, default 70000] [limits in MB, default 128,256]
 * A limit too small for the rows prints DuckDB's error in place of the figures.
 * Each case runs in a fresh process: the spools of two files are written first, then both files
 * at once (as ingest does); the RSS the write adds is sampled every 5 ms. Median of 3 per case.
 * Not part of `npm run bench`; BENCHMARKS.md ("Ingest: DuckDB's memory limit") quotes it.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ParquetWriter } from '../src/pipeline/parquet-writer.js';
import { NdjsonChunks } from '../src/pipeline/ndjson-chunks.js';
import { eventLine } from '../src/pipeline/accept.js';
import { uuidv7 } from '../src/events/usage-event.js';
import { fmt, median } from './lib.js';

type Shape = 'gateway' | 'largest';

async function child(rows: number, limitMb: number, shape: Shape): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'meter-pqmem-'));
  const t0 = Date.UTC(2026, 0, 1);
  const name = (p: string, i: number) => (shape === 'largest' ? `${p}${i}-${'가'.repeat(200)}`.slice(0, 200) : `${p}${i}`);
  const spools = [0, 1].map((k) => {
    const s = new NdjsonChunks(join(dir, `s${k}`), 1 << 20);
    for (let i = 0; i < rows; i++)
      s.add(
        eventLine({
          v: 1,
          id: uuidv7(t0 + i),
          time: t0 + i,
          customer: name(`c${k}-`, i % 97),
          keyId: name('k', i % 89),
          api: name('a', i % 50),
          method: shape === 'largest' ? name('m', i % 7) : 'GET',
          status: 200,
          latencyMs: 3,
          bytesIn: 10,
          bytesOut: 100,
          billable: true,
        }),
      );
    s.release();
    return s;
  });
  const w = await ParquetWriter.open({ memoryMb: limitMb, tempDir: join(dir, 'duckdb') });
  const before = process.memoryUsage().rss;
  let peak = before;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 5);
  const t = performance.now();
  let failed: string | null = null;
  await Promise.all(spools.map((s, k) => w.writeSpool(s.files, join(dir, `${k}.parquet`)))).catch((e) => (failed = (e as Error).message.split('\n')[0]!));
  const ms = performance.now() - t;
  clearInterval(timer);
  w.close();
  console.log(JSON.stringify({ ms, addedMb: (peak - before) / 2 ** 20, lineBytes: spools[0]!.bytes / rows, failed }));
  rmSync(dir, { recursive: true, force: true });
}

async function main(): Promise<void> {
  const rows = Number(process.argv[2] ?? 70_000);
  const limits = (process.argv[3] ?? '128,256').split(',').map(Number);
  console.log(`two files of ${fmt(rows)} rows each, written at once; median of 3 fresh processes per case\n`);
  console.log('| rows | DuckDB memory_limit | line bytes | write ms | RSS added by the write |');
  console.log('| --- | --- | --- | --- | --- |');
  for (const shape of ['gateway', 'largest'] as Shape[])
    for (const mb of limits) {
      const runs: { ms: number; addedMb: number; lineBytes: number; failed: string | null }[] = [];
      for (let i = 0; i < 3 && !runs.some((r) => r.failed); i++) {
        try {
          runs.push(
            JSON.parse(
              execFileSync(process.execPath, [fileURLToPath(import.meta.url), 'child', String(rows), String(mb), shape], {
                encoding: 'utf8',
                timeout: 120_000,
              }).trim(),
            ),
          );
        } catch (e) {
          // A child that neither finishes nor fails (seen at 32 MB: DuckDB waits forever) is killed.
          const failed = (e as { code?: string }).code === 'ETIMEDOUT' ? 'no answer within 120 s (killed)' : (e as Error).message.split('\n')[0];
          runs.push({ ms: 0, addedMb: 0, lineBytes: 0, failed: failed! });
        }
      }
      if (runs.some((r) => r.failed)) console.log(`| ${shape} | ${mb} MB | ${fmt(runs[0]!.lineBytes)} | fails: ${runs.find((r) => r.failed)!.failed} | |`);
      else
        console.log(
          `| ${shape} | ${mb} MB | ${fmt(runs[0]!.lineBytes)} | ${fmt(median(runs.map((r) => r.ms)))} | ${fmt(median(runs.map((r) => r.addedMb)))} MB (${runs.map((r) => fmt(r.addedMb)).join(', ')}) |`,
        );
    }
}

if (process.argv[2] === 'child') await child(Number(process.argv[3]), Number(process.argv[4]), process.argv[5] as Shape);
else await main();
