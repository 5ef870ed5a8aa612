/**
 * User text in messages and tables (src/ground/text.ts): a value an error quotes is cut, control
 * characters never reach the terminal, and a stored label is checked where it enters.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fsErrorText, labelProblem, quote, shorten, visible } from '../../src/ground/text.js';
import { table } from '../../src/commands/billing-support.js';
import { CustomerInputError, upsertCustomer } from '../../src/billing/customers.js';
import { CatalogError, parseCatalog } from '../../src/billing/catalog.js';
import { parseMeter } from '../../src/billing/meters.js';
import type { Warehouse } from '../../src/warehouse/warehouse.js';

const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

test('quote cuts a value to its first 60 characters and says how long it was; short ones are JSON as before', () => {
  assert.equal(quote('acme'), '"acme"');
  assert.equal(quote('a'.repeat(60)), `"${'a'.repeat(60)}"`);
  assert.equal(quote('a'.repeat(100_000)), `"${'a'.repeat(60)}"…(100000 characters)`);
  assert.equal(quote(42), '42');
  assert.equal(quote([1, 2]), '[1,2]');
  assert.ok(quote({ k: 'v'.repeat(1000) }).length < 100);
  // control characters, C1 and DEL included, are escapes, never the characters themselves
  const q = quote('Bad\x1b[31mRED\x07\nnew\x9b\x7f');
  assert.doesNotMatch(q, CONTROL);
  assert.equal(q, '"Bad\\u001b[31mRED\\u0007\\nnew\\x9b\\x7f"');
  assert.equal(shorten('x'.repeat(61)), `${'x'.repeat(60)}…(61 characters)`);
  assert.equal(shorten('/tmp/a\nb'), '/tmp/a\\nb');
});

test('visible escapes C0, DEL and C1 controls and leaves other text as it is', () => {
  assert.equal(visible('Bad\x1b[31mRED\x07\nnewline\t\r'), 'Bad\\x1b[31mRED\\x07\\nnewline\\t\\r');
  assert.equal(visible('\x00\x7f\x80\x9f\xa0é한'), '\\x00\\x7f\\x80\\x9f\xa0é한');
  assert.equal(visible('Acme Corp'), 'Acme Corp');
});

test('a label is at most 200 characters of printable text; the problem never echoes it', () => {
  assert.equal(labelProblem('Acme Corp — 株式会社'), null);
  assert.equal(labelProblem('x'.repeat(200)), null);
  assert.equal(labelProblem('x'.repeat(100_000)), 'is 100000 characters long');
  assert.match(labelProblem('Bad\x1b[31m') ?? '', /^holds a control character \(\\x1b at character 4\)/);
  assert.match(labelProblem('a\nb') ?? '', /\\n at character 2/);
  assert.match(labelProblem('a\u0085b') ?? '', /\\x85/, 'C1 (NEL) too');
  assert.match(labelProblem('a\u007fb') ?? '', /\\x7f/, 'DEL too');
});

test('customers create refuses a name with control characters or over 200 characters (both were stored and printed raw)', async () => {
  const noDb = {} as Warehouse; // the checks come before any statement
  for (const [name, re] of [
    ['Bad\x1b[31mRED\x07\nnewline', /^name holds a control character \(\\x1b at character 4\): a name is 1 to 200/],
    ['x\u009b2J', /^name holds a control character \(\\x9b/],
    ['x'.repeat(100_000), /^name is 100000 characters long: a name is 1 to 200 characters of printable text$/],
  ] as const)
    await assert.rejects(
      upsertCustomer(noDb, { id: 'acme2', name }),
      (e: unknown) => e instanceof CustomerInputError && e.field === 'name' && re.test(e.message) && e.message.length < 200,
      JSON.stringify(name.slice(0, 30)),
    );
});

test("a catalog's plan name and a meter's description are checked alike", () => {
  const catalog = (name: string) => ({ currency: 'USD', plans: { pro: { name, rateLimit: { ratePerSec: 1, burst: 1 }, prices: {} } } });
  assert.equal(parseCatalog(catalog('Pro')).plans.pro?.name, 'Pro');
  assert.throws(
    () => parseCatalog(catalog('Pro\x1b[2J')),
    (e: unknown) => e instanceof CatalogError && e.field === 'plans.pro.name' && /control character/.test(e.message),
  );
  assert.throws(
    () => parseCatalog(catalog('P'.repeat(201))),
    (e: unknown) => e instanceof CatalogError && /the name is 201 characters long: a name is 1 to 200 characters/.test(e.message),
  );
  const meter = { slug: 'tokens', eventType: 'ai.tokens', aggregation: 'SUM', valueProperty: '$.tokens' };
  assert.equal(parseMeter({ ...meter, description: 'tokens used' }, 'meters[0]').description, 'tokens used');
  assert.throws(
    () => parseMeter({ ...meter, description: 'a\nb' }, 'meters[0]'),
    (e: unknown) => e instanceof CatalogError && /printable/.test(e.message),
  );
});

test('a catalog error names a huge key shortened (the field held the whole key)', () => {
  const id = 'p'.repeat(100_000);
  assert.throws(
    () => parseCatalog({ currency: 'USD', plans: { [id]: {} } }),
    (e: unknown) => e instanceof CatalogError && e.field === `plans.${id}` && e.message.length < 300 && /…\(100006 characters\)/.test(e.message),
  );
});

test('the table printer shows control characters of stored rows as escapes, so rows stay rows', () => {
  const out = table(['id', 'name'], [['acme2', 'Bad\x1b[31mRED\x07\nnewline\x9b']]);
  assert.doesNotMatch(out.replaceAll('\n', ''), CONTROL);
  assert.equal(out.split('\n').length, 3, 'a header, one row, the final newline');
  assert.match(out, /acme2 {2}Bad\\x1b\[31mRED\\x07\\nnewline\\x9b/);
});

test('a file system error is said without the path Node puts in it (the caller names the path once, shortened)', () => {
  const e = Object.assign(new Error(`ENAMETOOLONG: name too long, open '/tmp/${'a'.repeat(5000)}'`), { code: 'ENAMETOOLONG' });
  assert.equal(fsErrorText(e), 'ENAMETOOLONG: name too long');
  assert.equal(fsErrorText(new Error('Unexpected end of JSON input')), 'Unexpected end of JSON input');
});
