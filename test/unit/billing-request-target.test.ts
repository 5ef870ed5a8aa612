/**
 * The billing API's request targets (src/billing/request-target.ts): the path and the query's
 * pairs are those `new URL(target, base)` gives, for plain targets (taken as they are) and for
 * every kind the URL parser changes (dot segments, backslashes, encoded characters, a leading
 * `//`, a fragment), listed and random.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { requestTarget } from '../../src/billing/request-target.js';

function viaUrl(target: string): { path: string; pairs: [string, string][] } {
  const u = new URL(target, 'http://billing.invalid');
  return { path: u.pathname, pairs: [...u.searchParams] };
}

function check(target: string): void {
  const t = requestTarget(target);
  assert.deepEqual({ path: t.path, pairs: [...new URLSearchParams(t.query)] }, viaUrl(target), JSON.stringify(target));
}

test('plain and unusual targets give the path and the pairs the URL parser gives', () => {
  for (const target of [
    '/v1/customers/bench-0000/cost?from=2021-04-01T00:00:00.000Z&to=2021-05-01T00:00:00.000Z&tz=UTC',
    '/v1/customers/a%20b/cost?tz=Asia%2FSeoul&from=2026-01-01+09:00',
    '/healthz',
    '/',
    '/v1/customers/x/./cost',
    '/v1/customers/x/../y/cost',
    '/v1/customers/%2e%2E/cost',
    '/v1/customers/x%2E/cost',
    '/v1\\customers\\x\\cost',
    '//evil.example/v1/customers',
    '/v1/customers/x/cost?a=1#frag?b=2',
    '/v1/customers/x y/cost?q="<>`{}',
    '/v1/customers/\u00fc/cost?z=\u00fc&\u00fc=1',
    '/v1/customers/x/cost?a=%zz&b=%&c=%2',
    '/v1/customers/x/cost?&&a&=b&c==d',
    '/v1//customers/x',
    '*',
    'http://other.example/v1/customers/x?tz=UTC',
    "/v1/customers/x;y@z:w!$&'()*+,=/cost",
  ])
    check(target);
});

test('random targets give the path and the pairs the URL parser gives', () => {
  const alphabet = 'abZ09-_~.%2eE/\\?#&=+ :;@!$\'()*,"<>`{}\u00e9\u0001\u007f';
  let seed = 12345;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  for (let i = 0; i < 5000; i++) {
    let s = '/';
    const len = rand(24);
    for (let j = 0; j < len; j++) s += alphabet[rand(alphabet.length)];
    check(s);
  }
});
