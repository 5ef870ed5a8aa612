/**
 * Meters from the CLI as a user meets them (embedded warehouse in a temp data dir): a bad meter
 * in the catalog file is one line naming the field, `rollup --meter` without `--backfill` or with
 * an unknown meter is a usage error (exit 2), and a meter backfill over an empty lake runs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { assetPath } from '../../src/config/assets.js';
import { cliFolder } from '../support/cli-run.js';

const cli = await cliFolder('meter-meters-cli-');
const { dir } = cli;
const meter = (...args: string[]) => cli.meter(args);

test('meters from the CLI: catalog errors name the field, rollup --meter errors exit 2, a meter backfill runs', () => {
  const catalog = JSON.parse(readFileSync(assetPath('fixtures/catalog.json'), 'utf8'));
  catalog.meters[0].valueProperty = '$..tokens';
  const bad = join(dir, 'bad.json');
  writeFileSync(bad, JSON.stringify(catalog));
  const imp = meter('plans', 'import', bad);
  assert.equal(imp.code, 2, imp.err);
  assert.match(imp.err, /meters\.ai_tokens\.valueProperty: "\$\.\.tokens" is not a JSON path/);
  assert.doesNotMatch(imp.err, /\n\s+at /, 'no stack trace');

  // The sample catalog with a UNIQUE_COUNT meter and a MAX meter more.
  const good = JSON.parse(readFileSync(assetPath('fixtures/catalog.json'), 'utf8'));
  good.meters.push(
    { slug: 'active_users', eventType: 'ai.tokens', aggregation: 'UNIQUE_COUNT', valueProperty: '$.user' },
    { slug: 'peak_tokens', eventType: 'ai.tokens', aggregation: 'MAX', valueProperty: '$.tokens' },
  );
  const goodFile = join(dir, 'good.json');
  writeFileSync(goodFile, JSON.stringify(good));
  const imported = meter('plans', 'import', goodFile);
  assert.equal(imported.code, 0, imported.err);
  const noBackfill = meter('rollup', '--meter', 'ai_tokens');
  assert.equal(noBackfill.code, 2);
  assert.match(noBackfill.err, /--meter needs --backfill/);
  const unknown = meter('rollup', '--backfill', '--meter', 'nope', '--from', '2026-12-01T00:00Z', '--to', '2026-12-01T02:00Z');
  assert.equal(unknown.code, 2, unknown.err);
  assert.match(unknown.err, /no meter "nope" in the warehouse \(meters: calls, active_users, ai_tokens, peak_tokens\)/);

  const ok = meter('rollup', '--backfill', '--meter', 'ai_tokens', '--from', '2026-12-01T00:00Z', '--to', '2026-12-01T02:00Z', '--json');
  assert.equal(ok.code, 0, ok.err);
  const report = JSON.parse(ok.out);
  // No lake folder or rows in the range: no hour to visit.
  assert.deepEqual(report, {
    meter: 'ai_tokens',
    hours: 0,
    files: 0,
    rows: 0,
    events: 0,
    ms: report.ms,
    finalInvoices: { checked: 0, truncated: false, drifts: [] },
  });
});

test('meter prices set --meter: a version for a COUNT, SUM, MAX or UNIQUE_COUNT meter; calls, unknown meters are one-line usage errors', () => {
  const set = (...args: string[]) => meter('prices', 'set', '--plan', 'pro', ...args);
  const peak = set('--meter', 'peak_tokens', '--unit-price', '0.5', '--effective-from', '2027-01-01T00:00:00Z');
  assert.equal(peak.code, 0, peak.err);
  assert.match(peak.out, /^inserted pro meter peak_tokens from 2027-01-01T00:00:00.000Z/);
  const users = set('--meter', 'active_users', '--unit-price', '1', '--effective-from', '2027-01-01T00:00:00Z');
  assert.equal(users.code, 0, users.err);
  assert.match(users.out, /^inserted pro meter active_users from 2027-01-01T00:00:00.000Z/);
  const again = set('--meter', 'peak_tokens', '--unit-price', '0.5', '--effective-from', '2027-01-01T00:00:00Z');
  assert.match(again.out, /^unchanged /);
  const list = meter('prices', 'list', '--plan', 'pro', '--json');
  assert.equal(list.code, 0, list.err);
  const rows = JSON.parse(list.out) as { api: string; meter?: string; effectiveFrom: string | null }[];
  assert.deepEqual(
    rows.filter((r) => r.meter).map((r) => `${r.meter} ${r.effectiveFrom}`),
    ['active_users 2027-01-01T00:00:00.000Z', 'ai_tokens null', 'peak_tokens 2027-01-01T00:00:00.000Z'],
  );

  const refused: [string[], RegExp][] = [
    [['--meter', 'calls', '--unit-price', '1'], /calls are priced per API/],
    [['--meter', 'nope', '--unit-price', '1'], /no meter "nope" \(meters: calls, active_users, ai_tokens, peak_tokens\)/],
    [['--meter', 'bytes_in', '--unit-price', '1'], /meter "bytes_in" is built in but off/],
    [['--meter', 'ai_tokens', '--api', 'locations.latest', '--unit-price', '1'], /give exactly one of --api and --meter/],
    [['--api', 'ai_tokens', '--unit-price', '1'], /--api "ai_tokens" is a meter, not an API\n {2}hint: price the meter with --meter ai_tokens/],
    [['--api', 'ai_tokens', '--any-api', '--unit-price', '1'], /"ai_tokens" is also a meter priced by plan pro: an invoice line would name both/],
  ];
  for (const [args, message] of refused) {
    const r = set(...args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.err}`);
    assert.match(r.err, message);
    assert.doesNotMatch(r.err, /\n\s+at /, 'no stack trace');
  }
});
