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
  // 500ms passed though the message said "from 1s"; a bare number never had a unit here.
  for (const d of ['0s', '30x', '-1d', '4000d', '500ms', '999ms', '1000']) {
    const r = meter(['tokens', 'create', '--customer', 'globex', '--expires-in', d]);
    assert.equal(r.code, 2, d);
    assert.match(
      r.err,
      new RegExp(`^meter: --expires-in "${d}" is (not a duration|shorter than 1s|longer than 3650d)\n {2}hint: .*\\(from 1s to 3650d; a unit is required\\)`),
      d,
    );
  }
});

test('tokens create --expires-in counts from when the token is stored (it counted from before the warehouse opened: 1s was stored expired)', () => {
  meter(['customers', 'create', 'initech']);
  const r = meter(['tokens', 'create', 'initech', '--expires-in', '1s', '--json']);
  assert.equal(r.code, 0, r.err);
  const made = JSON.parse(r.out);
  const row = JSON.parse(meter(['tokens', 'list', '--customer', 'initech', '--json']).out).find((t: any) => t.expiresAt === made.expiresAt);
  assert.ok(row, 'the token is listed with the expiry printed');
  // created_at is the INSERT's now(): the expiry is 1 s after it, less the statement's own delay
  // (up to ~150 ms measured on a loaded box). Counted from before the warehouse opened, it was
  // ~190 ms after it (opening PGlite took the rest of the second).
  const ms = Date.parse(row.expiresAt) - Date.parse(row.createdAt);
  assert.ok(ms > 500 && ms <= 1000, `expires ${ms} ms after it was stored`);
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
