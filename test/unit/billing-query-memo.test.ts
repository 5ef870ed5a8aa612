/**
 * The billing API's memory of parsed query strings (src/billing/query-memo.ts): a kept result
 * is reused, a failure is not kept, a long key is never kept, and a full memory is emptied.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { QueryMemo } from '../../src/billing/query-memo.js';

test('a kept parse is reused; a refused one is refused again; a long key is parsed every time', () => {
  const m = new QueryMemo<{ n: number }>();
  let parses = 0;
  const parse = () => ({ n: ++parses });
  assert.equal(m.get('from=1', parse), m.get('from=1', parse));
  assert.equal(parses, 1);
  let refusals = 0;
  const refuse = () => {
    refusals++;
    throw new Error('bad');
  };
  assert.throws(() => m.get('bad=1', refuse));
  assert.throws(() => m.get('bad=1', refuse));
  assert.equal(refusals, 2, 'a refusal is not kept');
  const long = `q=${'x'.repeat(600)}`;
  assert.notEqual(m.get(long, parse), m.get(long, parse), 'a long key is not kept');
});

test('a full memory is emptied rather than grown', () => {
  const m = new QueryMemo<number>();
  let parses = 0;
  for (let i = 0; i < 5000; i++) m.get(`k${i}`, () => ++parses);
  assert.equal(parses, 5000);
  // k0 was dropped when the memory filled at 4,096; the latest keys are still kept.
  m.get('k0', () => ++parses);
  assert.equal(parses, 5001);
  m.get('k4999', () => ++parses);
  assert.equal(parses, 5001);
});
