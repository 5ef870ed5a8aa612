import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
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
