/**
 * Rules of the billing commands that a new user's audit found unenforced, on the real CLI
 * (embedded warehouse, a temp data dir each): a customer's currency stays its plan's; an export
 * that skipped customers fails; a past --effective-from needs --backdate and leaves final
 * invoices as they are; --api must name what calls are recorded under; the catalog file refuses
 * keys it does not know.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { periodContaining } from '../../src/ground/time.js';
import { PgliteWarehouse } from '../../src/warehouse/pglite-warehouse.js';
import { cliFolder, type CliResult } from '../support/cli-run.js';

const noStack = (r: CliResult) => assert.doesNotMatch(r.err, /METER_DEBUG|\n\s+at .*\.js:\d+/, r.err);

function refused(r: CliResult, message: RegExp): void {
  assert.equal(r.code, 2, r.err);
  assert.match(r.err, message);
  noStack(r);
}

/** A plan priced in `currency`, one API at 1 a call. */
const plan = (currency: string) => ({ name: currency, currency, rateLimit: { ratePerSec: 1, burst: 1 }, prices: { 'locations.create': '1' } });

/** A CLI on a fresh data dir whose catalog file (imported) has plan pro in USD and tokyo in JPY. */
async function twoCurrencyCli(prefix: string) {
  const cli = await cliFolder(prefix);
  const meter = (...args: string[]) => cli.meter(args);
  const catalog = join(cli.dir, 'catalog.json');
  writeFileSync(catalog, JSON.stringify({ currency: 'USD', plans: { pro: plan('USD'), tokyo: plan('JPY') } }));
  assert.equal(meter('plans', 'import', catalog).code, 0);
  return { meter, catalog };
}

test('a customer billed in a currency its plan is not priced in is refused, by customers create and keys create; an export that skipped a customer exits 1', async () => {
  const { meter, catalog } = await twoCurrencyCli('meter-rules-currency-');
  assert.equal(meter('customers', 'create', 'acme', '--plan', 'pro').code, 0);

  // Was "updated acme: … currency EUR", exit 0, and no invoice of acme could be made after.
  refused(
    meter('customers', 'create', 'acme', '--currency', 'EUR'),
    /^meter: customer acme would be billed in EUR, but its plan "pro" is priced in USD: no invoice could be made\n {2}hint: bill it in USD \(--currency USD\), or pick a plan priced in EUR \(meter plans list\)\n$/,
  );
  refused(meter('customers', 'create', 'acme', '--plan', 'tokyo', '--currency', 'USD'), /its plan "tokyo" is priced in JPY/);
  assert.equal(JSON.parse(meter('customers', 'show', 'acme', '--json').out).customer.currency, null);
  assert.equal(meter('customers', 'create', 'acme', '--currency', 'USD').code, 0, "the plan's own currency is fine");
  refused(meter('customers', 'create', 'acme', '--plan', 'tokyo'), /customer acme would be billed in USD, but its plan "tokyo" is priced in JPY/);
  refused(meter('customers', 'create', 'zz1', '--plan', 'pro', '--currency', 'EUR'), /customer zz1 would be billed in EUR, but its plan "pro"/);

  // A customer without a plan of its own is priced by its newest key's plan.
  assert.equal(meter('customers', 'create', 'jp', '--currency', 'JPY').code, 0);
  refused(
    meter('keys', 'create', 'jp', '--plan', 'pro'),
    /^meter: customer jp would be billed in JPY, but "pro", the plan of this key, is priced in USD: no invoice could be made\n {2}hint: pick a plan priced in JPY \(meter plans list\), or give it a plan of its own priced in JPY: meter customers create jp --plan <id>\n$/,
  );
  assert.deepEqual(JSON.parse(meter('keys', 'list', '--customer', 'jp', '--json').out), [], 'no key was made');
  assert.equal(meter('keys', 'create', 'jp', '--plan', 'tokyo').code, 0);
  refused(
    meter('customers', 'create', 'jp', '--currency', 'USD'),
    /customer jp would be billed in USD, but "tokyo", the plan of its newest API key, is priced in JPY/,
  );
  // With a plan of its own, a key's plan sets only the key's limits: any currency goes.
  assert.equal(meter('customers', 'create', 'own', '--plan', 'tokyo', '--currency', 'JPY').code, 0);
  const key = meter('keys', 'create', 'own', '--plan', 'pro');
  assert.equal(key.code, 0, key.err);

  // A plan's currency changed by plans import: refused while a customer it prices names another
  // currency (it was stored, and no invoice of theirs could be made); nothing of the file is kept.
  const reimport = (plans: Record<string, string>) => {
    writeFileSync(catalog, JSON.stringify({ currency: 'USD', plans: Object.fromEntries(Object.entries(plans).map(([id, c]) => [id, plan(c)])) }));
    return meter('plans', 'import', catalog);
  };
  refused(
    reimport({ pro: 'EUR', tokyo: 'JPY' }),
    /^meter: plan "pro" would be priced in EUR instead of USD, but customers it prices are billed in their own currency: acme \(USD\); no invoice could be made for them\n {2}hint: keep USD for this plan, add a plan priced in EUR to the catalog and move them to it: meter customers create <id> --plan <new plan> --currency EUR\n$/,
  );
  // serve-billing loads the same file on start: it stops there, saying why (exit 2, no stack trace)
  refused(
    meter('serve-billing', '--catalog-file', catalog, '--billing-tokens', 'svc-secret-currency', '--billing-port', '0', '--admin-port', '0'),
    /^meter: catalog .*catalog\.json: plan "pro" would be priced in EUR instead of USD, .*\n {2}hint: keep USD for this plan/m,
  );
  // jp through its newest key's plan, own through its own plan
  refused(reimport({ pro: 'USD', tokyo: 'USD' }), /plan "tokyo" would be priced in USD instead of JPY, .*: jp \(JPY\), own \(JPY\);/);
  const currencies = () =>
    Object.fromEntries((JSON.parse(meter('plans', 'list', '--json').out) as { id: string; currency: string }[]).map((p) => [p.id, p.currency]));
  assert.deepEqual(currencies(), { pro: 'USD', tokyo: 'JPY' });
  // Customers without a currency of their own follow their plan's.
  assert.equal(reimport({ pro: 'USD', tokyo: 'JPY', eu: 'EUR' }).code, 0);
  assert.equal(meter('customers', 'create', 'fol', '--plan', 'eu').code, 0);
  const moved = reimport({ pro: 'USD', tokyo: 'JPY', eu: 'GBP' });
  assert.equal(moved.code, 0, moved.err);
  assert.deepEqual(currencies(), { eu: 'GBP', pro: 'USD', tokyo: 'JPY' });

  const period = periodContaining(Date.now(), 'UTC').name;
  const all = meter('invoices', 'export', '--period', period, '--format', 'json');
  assert.equal(all.code, 0, all.err);
  assert.deepEqual(JSON.parse(all.out).skipped, []);
  // A customer that cannot be invoiced: the others are exported, and the command fails saying so (it exited 0).
  assert.equal(meter('customers', 'create', 'noplan').code, 0);
  const partial = meter('invoices', 'export', '--period', period);
  assert.equal(partial.code, 1, partial.err);
  assert.match(
    partial.err,
    /^skipped noplan: customer noplan has no plan and no API key.*\nmeter: 1 customer\(s\) skipped \(above\): their invoices are not in the export; /m,
  );
  assert.match(partial.out, /,acme,/);
});

test("revoking a customer's newest key says where its pricing moves, and warns when that plan's currency is not the customer's", async () => {
  const { meter } = await twoCurrencyCli('meter-rules-revoke-');
  const keyOn = (customer: string, plan: string) => {
    const r = meter('keys', 'create', customer, '--plan', plan, '--json');
    assert.equal(r.code, 0, r.err);
    return JSON.parse(r.out).id as string;
  };
  // A customer following its keys' currency: a move to the older key's plan is said, not warned.
  assert.equal(meter('customers', 'create', 'fol').code, 0);
  keyOn('fol', 'pro');
  const folNew = keyOn('fol', 'tokyo');
  const folRevoke = meter('keys', 'revoke', folNew, '--json');
  assert.equal(folRevoke.code, 0, folRevoke.err);
  const pricing = JSON.parse(folRevoke.out).pricing;
  assert.deepEqual([pricing.fromPlan, pricing.toPlan, pricing.currencyMismatch], ['tokyo', 'pro', null]);

  // Billed in JPY of its own, priced by its newest key (tokyo): revoking it hands pricing to the
  // older key's plan in USD. The key is revoked all the same (a leaked key must go), with a warning
  // and the fix; before, the command said only "revoked" and the month's invoice could not be made.
  assert.equal(meter('customers', 'create', 'mix').code, 0);
  keyOn('mix', 'pro');
  const mixNew = keyOn('mix', 'tokyo');
  assert.equal(meter('customers', 'create', 'mix', '--currency', 'JPY').code, 0);
  const revoke = meter('keys', 'revoke', mixNew);
  assert.equal(revoke.code, 0, revoke.err);
  assert.match(revoke.out, new RegExp(`^revoked ${mixNew} \\(mk_\\w+…\\) of mix\\n$`));
  assert.equal(
    revoke.err,
    'warning: customer mix is now priced by plan "pro", its newest active key\'s (was "tokyo"), which is priced in USD while the customer is billed in JPY: no invoice could be made\n  hint: keep its pricing: meter customers create mix --plan tokyo\n',
  );
  const keys = JSON.parse(meter('keys', 'list', '--customer', 'mix', '--json').out) as { id: string; revokedAt: string | null }[];
  assert.ok(keys.find((k) => k.id === mixNew)?.revokedAt, 'the key is revoked');
  // The hint works, and a second revocation of the same key moves nothing and says nothing more.
  assert.equal(meter('customers', 'create', 'mix', '--plan', 'tokyo').code, 0);
  assert.equal(JSON.parse(meter('customers', 'show', 'mix', '--json').out).customer.planId, 'tokyo');
  const again = meter('keys', 'revoke', mixNew);
  assert.equal(again.code, 0, again.err);
  assert.equal(again.err, '');
  noStack(again);
});

test('a past --effective-from is refused without --backdate; with it, drafts are repriced, final invoices stay and the ones it would change are listed', async () => {
  const cli = await cliFolder('meter-rules-backdate-');
  const meter = (...args: string[]) => cli.meter(args);
  assert.equal(meter('plans', 'import').code, 0);
  assert.equal(meter('customers', 'create', 'bd', '--plan', 'free').code, 0);
  assert.equal(meter('customers', 'create', 'np').code, 0); // no plan, no key: cannot be invoiced
  const now = Date.now();
  const thisMonth = periodContaining(now, 'UTC');
  const lastMonth = periodContaining(thisMonth.start - 1, 'UTC');
  const db = await PgliteWarehouse.open(join(cli.dir, 'data', 'pglite'));
  try {
    for (const [customer, hour] of [
      ['bd', lastMonth.start],
      ['bd', thisMonth.start],
      ['np', lastMonth.start],
    ] as const)
      await db.query(`INSERT INTO usage_hourly (customer_id, api, hour, calls, events) VALUES ($1, 'locations.create', $2, 1000, 1000)`, [
        customer,
        new Date(hour).toISOString(),
      ]);
  } finally {
    await db.close();
  }
  // The customer that cannot be invoiced fails the run (it exited 0); the other is final.
  const fin = meter('invoices', 'finalize', '--period', lastMonth.name, '--grace', '0s');
  assert.equal(fin.code, 1, fin.err);
  assert.match(fin.err, /^skipped np: customer np has no plan/m);
  assert.match(fin.out, /finalized 1 invoice\(s\); 0 already final; 0 not due; 1 skipped/);
  const invoice = (period: string) => JSON.parse(meter('invoices', 'show', 'bd', '--period', period, '--json').out) as { status: string; total: string };
  const final = () => {
    const inv = invoice(lastMonth.name);
    return `${inv.status} ${inv.total}`;
  };
  assert.equal(final(), 'final 1.00'); // 1000 x 0.0010

  const from = new Date(lastMonth.start).toISOString();
  const set = (...extra: string[]) =>
    meter('prices', 'set', '--plan', 'free', '--api', 'locations.create', '--unit-price', '0.002', '--effective-from', from, ...extra);
  // Was "inserted …", exit 0: history repriced while --help said "past hours keep their price".
  refused(
    set(),
    new RegExp(
      `^meter: --effective-from ${from.replace(/\./g, '\\.')} is in the past: hours that have begun keep the price they were billed at\\n {2}hint: price from \\S+ or later \\(the default\\), or add --backdate to reprice those hours \\(final invoices never change\\)\\n$`,
    ),
  );
  const versions = () => (JSON.parse(meter('prices', 'list', '--plan', 'free', '--json').out) as { api: string }[]).filter((v) => v.api === 'locations.create');
  assert.equal(versions().length, 1, 'nothing stored');

  const back = set('--backdate');
  assert.equal(back.code, 0, back.err);
  assert.match(back.out, /\(backdated: drafts and cost answers since then use it\)/);
  assert.match(
    back.out,
    new RegExp(`final invoice inv_[0-9a-f]{24} \\(bd, ${lastMonth.name}\\) stays 1\\.00 USD; computed now 2\\.00: difference 1\\.00 \\(a credit note`),
  );
  assert.match(back.out, /1 final invoices of plan free since then checked: 1 would change; final invoices are never recomputed/);
  assert.equal(versions().length, 2);
  assert.equal(final(), 'final 1.00', 'the final invoice never changes');
  assert.equal(invoice(thisMonth.name).total, '2.00', "this month's draft is priced by the new version");
});

test('--api must name what calls are recorded under (route table, meters, catalog) unless --any-api; a catalog file with an unknown key is refused', async () => {
  const cli = await cliFolder('meter-rules-api-');
  const meter = (args: string[], env: Record<string, string> = {}) => cli.meter(args, env);
  assert.equal(meter(['plans', 'import']).code, 0);
  const set = (api: string, ...extra: string[]) => meter(['prices', 'set', '--plan', 'pro', '--api', api, '--unit-price', '0.5', ...extra]);
  refused(
    set('locations.craete'),
    /^meter: --api "locations\.craete" is not a known API \(the route table \S+routes\.json, the declared meters' event types and the catalog's prices do not name it\), so its price would never apply\n {2}hint: did you mean --api locations\.create\? known: ai\.tokens, geofences\.devices, locations\.create, locations\.history, locations\.latest; .*add --any-api\n$/,
  );
  refused(set('status'), /--api "status" is not a known API/); // a free route sends no usage
  const priced = () => (JSON.parse(meter(['prices', 'list', '--plan', 'pro', '--json']).out) as { api: string }[]).map((v) => v.api);
  assert.ok(!priced().includes('locations.craete'));
  assert.equal(set('ai.tokens').code, 0, 'the event type of a declared meter');
  assert.equal(set('sms.sent', '--any-api').code, 0, 'on purpose');
  // The route table is the configured one.
  const routes = join(cli.dir, 'routes.json');
  writeFileSync(routes, JSON.stringify({ routes: [{ method: 'POST', path: '/v1/reports', api: 'reports.create' }] }));
  refused(set('reports.create'), /--api "reports\.create" is not a known API/);
  const routed = meter(['prices', 'set', '--plan', 'pro', '--api', 'reports.create', '--unit-price', '0.5'], { METER_ROUTES_FILE: routes });
  assert.equal(routed.code, 0, routed.err);

  // Was imported, and `plans list` showed the plan without a quota.
  const file = join(cli.dir, 'typo.json');
  writeFileSync(
    file,
    JSON.stringify({ currency: 'USD', plans: { zz: { name: 'Z', rateLimit: { ratePerSec: 1, burst: 1 }, prices: {}, qouta: { limit: 10, period: 'day' } } } }),
  );
  refused(
    meter(['plans', 'import', file]),
    /^meter: plans\.zz\.qouta: unknown key \(did you mean "quota"\? known: comment, name, currency, rateLimit, quota, .*\n {2}hint: fix the file/,
  );
  assert.ok(!(JSON.parse(meter(['plans', 'list', '--json']).out) as { id: string }[]).some((p) => p.id === 'zz'));
});

test('plans import of a catalog that adds or changes a price from the past: silent without usage since; with it, the versions and the final invoices they would change are listed', async () => {
  const cli = await cliFolder('meter-rules-catalog-past-');
  const meter = (...args: string[]) => cli.meter(args);
  const lastMonth = periodContaining(periodContaining(Date.now(), 'UTC').start - 1, 'UTC');
  const from = new Date(lastMonth.start).toISOString();
  const catalog = join(cli.dir, 'catalog.json');
  const write = (unitPrice: string) =>
    writeFileSync(
      catalog,
      JSON.stringify({
        currency: 'USD',
        plans: { x: { name: 'X', rateLimit: { ratePerSec: 1, burst: 1 }, prices: { 'locations.create': [{ effectiveFrom: from, unitPrice }] } } },
      }),
    );
  write('0.0010');
  // A first import of prices that start in the past (as the fixture's do) reprices nothing.
  const first = meter('plans', 'import', catalog);
  assert.equal(first.code, 0, first.err);
  assert.doesNotMatch(first.out, /backdated/);
  assert.equal(meter('customers', 'create', 'cx', '--plan', 'x').code, 0);
  const db = await PgliteWarehouse.open(join(cli.dir, 'data', 'pglite'));
  try {
    await db.query(`INSERT INTO usage_hourly (customer_id, api, hour, calls, events) VALUES ('cx', 'locations.create', $1, 1000, 1000)`, [from]);
  } finally {
    await db.close();
  }
  assert.equal(meter('invoices', 'finalize', '--period', lastMonth.name, '--grace', '0s').code, 0);

  // Was "price versions 0 new, 1 changed", and nothing more: last month repriced in silence.
  write('0.0020');
  const changed = meter('plans', 'import', catalog);
  assert.equal(changed.code, 0, changed.err);
  assert.match(changed.out, /price versions 0 new, 1 changed, 0 unchanged\n/);
  assert.match(
    changed.out,
    new RegExp(`^backdated: x locations\\.create from ${from.replace(/\./g, '\\.')} \\(drafts and cost answers since then use it\\)$`, 'm'),
  );
  assert.match(changed.out, new RegExp(`final invoice inv_[0-9a-f]{24} \\(cx, ${lastMonth.name}\\) stays 1\\.00 USD; computed now 2\\.00: difference 1\\.00`));
  assert.match(changed.out, /1 final invoices of plan x since then checked: 1 would change; final invoices are never recomputed/);
  const again = JSON.parse(meter('plans', 'import', catalog, '--json').out) as { unchanged: number; backdated: unknown[]; finalInvoices?: unknown };
  assert.deepEqual(
    { unchanged: again.unchanged, backdated: again.backdated, finalInvoices: again.finalInvoices },
    { unchanged: 1, backdated: [], finalInvoices: undefined },
  );
});
