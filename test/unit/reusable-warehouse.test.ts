import { test } from 'node:test';
import assert from 'node:assert/strict';
import { reusableWarehouse } from '../support/warehouse.js';

const SEQUENCES = `SELECT format('%I.%I', n.nspname, c.relname) AS s FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind = 'S' AND n.nspname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1`;

test('reusableWarehouse: the next user sees a fresh migration: rows emptied, sequences back where the migrations left them', async () => {
  const first = await reusableWarehouse();
  const seqs = (await first.query<{ s: string }>(SEQUENCES)).map((r) => r.s);
  assert.ok(seqs.length > 0, 'the migrations make at least one sequence (a bigserial id)');
  const nextOf = async (db: typeof first) =>
    Promise.all(seqs.map(async (s) => String((await db.query<{ v: string }>(`SELECT nextval($1::regclass)::text AS v`, [s]))[0]!.v)));
  const fresh = await nextOf(first);
  await first.query(`INSERT INTO customers (id, name) VALUES ('reuse-test', 'x')`);
  await first.close();

  const second = await reusableWarehouse();
  try {
    assert.deepEqual(await nextOf(second), fresh, 'each sequence gives the same next value as in a fresh migration');
    assert.deepEqual(await second.query(`SELECT id FROM customers WHERE id = 'reuse-test'`), []);
  } finally {
    await second.close();
  }
});
