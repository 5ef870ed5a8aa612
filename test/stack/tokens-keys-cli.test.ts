/**
 * `meter tokens create|list|revoke` (expiry included), `meter keys create` refusing unknown
 * customers and plans, and config values of the wrong type: as a user runs them, embedded.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig, ConfigError } from '../../src/config/config.js';
import { cliFolder } from '../support/cli-run.js';

const cli = await cliFolder('meter-tokens-cli-');
const { dir } = cli;
const meter = cli.meter;

test('keys create refuses a customer that does not exist and an unknown plan (exit 2, a hint)', () => {
  const k = meter(['keys', 'create', '--customer', 'ghost', '--plan', 'pro']);
  assert.equal(k.code, 2, k.err);
  assert.match(k.err, /customer "ghost" does not exist/);
  assert.match(k.err, /hint: .*meter customers create ghost/);
  assert.doesNotMatch(k.err, /\n\s+at /);
  assert.equal(meter(['customers', 'create', 'acme', '--tz', 'Asia/Seoul']).code, 0);
  const p = meter(['keys', 'create', '--customer', 'acme', '--plan', 'platinum']);
  assert.equal(p.code, 2);
  assert.match(p.err, /unknown plan "platinum"/);
  const bad = meter(['keys', 'create', '--customer', 'a\u0001b', '--plan', 'pro']);
  assert.equal(bad.code, 2);
  assert.match(bad.err, /invalid customer id/);
  const ok = meter(['keys', 'create', '--customer', 'acme', '--plan', 'pro', '--json']);
  assert.equal(ok.code, 0, ok.err);
  assert.match(JSON.parse(ok.out).key, /^mk_live_/);
  // The customer was not replaced or duplicated by the key.
  const c = JSON.parse(meter(['customers', 'list', '--json']).out);
  assert.deepEqual(
    c.map((x: any) => [x.id, x.timeZone]),
    [['acme', 'Asia/Seoul']],
  );
});

test('tokens: create with an expiry, list without secrets, revoke; unknown customer and bad duration exit 2', () => {
  meter(['customers', 'create', 'globex']);
  const a = meter(['tokens', 'create', '--customer', 'globex', '--expires-in', '30d', '--json']);
  assert.equal(a.code, 0, a.err);
  const made = JSON.parse(a.out);
  assert.match(made.token, /^mbt_[0-9a-f]{16}_/);
  const days = (Date.parse(made.expiresAt) - Date.now()) / 86_400_000;
  assert.ok(days > 29.9 && days <= 30, String(days));
  const b = JSON.parse(meter(['tokens', 'create', '--customer', 'globex', '--json']).out);
  assert.equal(b.expiresAt, null);

  const list = meter(['tokens', 'list', '--json']);
  assert.equal(list.code, 0, list.err);
  assert.ok(!list.out.includes(made.token.slice(22)), 'no secret in the list');
  const rows = JSON.parse(list.out);
  assert.deepEqual(
    rows.map((r: any) => r.state),
    ['active', 'active'],
  );
  const id = made.token.slice(4, 20);
  assert.ok(rows.some((r: any) => r.id === id && r.expiresAt === made.expiresAt));
  const text = meter(['tokens', 'list', '--customer', 'globex']);
  assert.match(text.out, new RegExp(`${id}\\s+globex\\s+\\S+\\s+active until ${made.expiresAt.replace(/\./g, '\\.')}`));

  const rv = meter(['tokens', 'revoke', id]);
  assert.equal(rv.code, 0, rv.err);
  assert.match(rv.out, new RegExp(`revoked token ${id}`));
  assert.equal(JSON.parse(meter(['tokens', 'list', '--json']).out).find((r: any) => r.id === id).state, 'revoked');
  const again = meter(['tokens', 'revoke', id]);
  assert.equal(again.code, 2);
  assert.match(again.err, /no active token/);
  // Revoking by the whole token prints only its id.
  const whole = meter(['tokens', 'revoke', b.token]);
  assert.equal(whole.code, 0, whole.err);
  assert.ok(!whole.out.includes(b.token.slice(22)));

  const ghost = meter(['tokens', 'create', '--customer', 'ghost']);
  assert.equal(ghost.code, 2);
  assert.match(ghost.err, /customer "ghost" does not exist/);
  for (const d of ['0s', '30x', '-1d', '4000d']) {
    const r = meter(['tokens', 'create', '--customer', 'globex', '--expires-in', d]);
    assert.equal(r.code, 2, d);
    assert.match(r.err, /--expires-in/);
  }
});

test('config values of the wrong type are refused in one line, exit 2', () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ billingTokens: [null] }, /billingTokens .*list of strings/],
    [{ billingTokens: [42] }, /billingTokens/],
    [{ billingTokens: 'a,b', kafkaBrokers: [true] }, /kafkaBrokers/],
    [{ topic: 5 }, /topic .*expected a string/],
    [{ databaseUrl: 5 }, /databaseUrl .*URL string/],
    [{ durability: ['strict'] }, /durability/],
    [{ gatewayPort: '80x' }, /gatewayPort/],
    [{ gatewayPort: true }, /gatewayPort/],
  ];
  for (const [settings, re] of cases) {
    const file = join(dir, 'meter.config.json');
    writeFileSync(file, JSON.stringify(settings));
    assert.throws(
      () => loadConfig({ env: {}, configFile: file }),
      (e: unknown) => e instanceof ConfigError && re.test(e.message),
      JSON.stringify(settings),
    );
    const r = meter(['config', '--config', file]);
    assert.equal(r.code, 2, JSON.stringify(settings));
    assert.equal(r.err.trim().split('\n').length, 1, r.err);
    assert.match(r.err, re);
  }
  // `Bearer null` is never a service token: the [null] config does not load at all, and a
  // string list still does.
  writeFileSync(join(dir, 'ok.json'), JSON.stringify({ billingTokens: ['s3cret', 'other'] }));
  assert.deepEqual(loadConfig({ env: {}, configFile: join(dir, 'ok.json') }).billingTokens, ['s3cret', 'other']);
});
