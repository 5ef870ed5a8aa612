import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { PgliteWarehouse } from '../../src/warehouse/pglite-warehouse.js';
import { UserError } from '../../src/ground/errors.js';
import { tempDir } from '../support/tmp.js';

test('a second opener of the embedded warehouse gets a clear error, and can open it after close', async () => {
  const dir = join(tempDir('meter-pgl-'), 'pglite');
  const a = await PgliteWarehouse.open(dir);
  await a.query('CREATE TABLE t (x int)');
  await assert.rejects(
    PgliteWarehouse.open(dir),
    (e: unknown) => e instanceof UserError && /in use by process/.test(e.message) && /meter dev/.test(e.hint ?? ''),
  );
  await a.close();
  const b = await PgliteWarehouse.open(dir);
  assert.deepEqual(await b.query('SELECT count(*)::int AS n FROM t'), [{ n: 0 }]);
  await b.close();
});

test('held by `meter dev`, the embedded warehouse says so and how to run beside it (the hint said "run the parts together with meter dev")', async () => {
  const dir = join(tempDir('meter-pglite-dev-'), 'pglite');
  // A process whose command line reads like `node /somewhere/bin/meter.js --data-dir /x dev`.
  const holder = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)', '/opt/meter/bin/meter.js', '--data-dir', '/x', 'dev'], { stdio: 'ignore' });
  try {
    mkdirSync(dir, { recursive: true });
    writeFileSync(`${dir}.lock`, String(holder.pid));
    await assert.rejects(PgliteWarehouse.open(dir), (e: unknown) => {
      assert.ok(e instanceof UserError);
      assert.match(e.message, new RegExp(`in use by process ${holder.pid} \\(meter dev\\)`));
      assert.match(e.hint!, /`meter dev` holds it: stop it to run this command, or set METER_DATABASE_URL/);
      return true;
    });
  } finally {
    holder.kill();
  }
});
