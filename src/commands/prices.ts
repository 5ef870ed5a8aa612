import type { Command } from 'commander';
import { ensureCatalog } from './default-catalog.js';
import { action, contextOf, printJson, withWarehouse } from './context.js';
import { openWarehouse } from '../runtime/backends.js';
import { UserError } from '../ground/errors.js';
import { API_RE, CatalogError, parseCharge, parseChargeInput, parseEffectiveFrom, type Charge } from '../billing/catalog.js';
import { loadPlan, loadStoredCatalog, priceList, setMeterPrice, setPrice } from '../billing/catalog-store.js';
import { driftSentence, finalInvoiceDrift } from '../billing/final-invoice-drift.js';
import { table, userErrors } from './billing-support.js';
import { checkApiName } from './api-names.js';
import { quote } from '../ground/text.js';

const HOUR = 3_600_000;

export function registerPrices(program: Command): void {
  const prices = program.command('prices').description('per-API and per-meter prices of plans, versioned with effective dates');
  prices
    .command('list')
    .description('price versions (all plans, or one)')
    .option('--plan <id>', 'only this plan')
    .action(
      withWarehouse(async ({ db, config, json }, opts: { plan?: string }) => {
        await ensureCatalog(db, config);
        let plans = Object.values((await loadStoredCatalog(db)).plans);
        if (opts.plan) {
          plans = plans.filter((p) => p.id === opts.plan);
          if (!plans.length) throw new UserError(`unknown plan ${quote(opts.plan)}`, 'see meter plans list (or meter plans import)');
        }
        const rows = plans.flatMap(priceList);
        if (json) return printJson(rows);
        process.stdout.write(
          table(
            ['plan', 'api', 'from', 'until', 'currency', 'charge'],
            rows.map((r) => [r.plan, r.meter ? `${r.api} (meter)` : r.api, r.effectiveFrom ?? '-', r.effectiveTo ?? '-', r.currency, JSON.stringify(r.charge)]),
          ),
        );
      }),
    );
  prices
    .command('set')
    .description(
      'add a price version for one API or meter of a plan, from an effective date on: the next whole hour or later (hours that have begun keep their price unless --backdate)',
    )
    .requiredOption('--plan <id>', 'plan id')
    .option(
      '--api <name>',
      "priced operation, e.g. locations.create: an API of the route table (routesFile), a declared meter's event type or an API the catalog prices",
    )
    .option('--any-api', "accept an --api name this process does not know (an event type only POST /v1/events sends, or a route of another gateway's table)")
    .option('--meter <slug>', 'a COUNT, SUM or MAX meter instead of an API, e.g. ai_tokens (docs/meters.md)')
    .option('--unit-price <decimal>', 'per-unit price in the currency, e.g. 0.0005')
    .option(
      '--charge <json>',
      'any charge model as JSON, e.g. \'{"model":"graduated","tiers":[{"upTo":1000,"unitPrice":"0"},{"upTo":null,"unitPrice":"0.001"}]}\'',
    )
    .option('--free-units <n>', 'free calls per billing period (with --unit-price)')
    .option(
      '--effective-from <instant>',
      'ISO instant on a whole hour, e.g. 2027-03-01T00:00:00+09:00; not in the past without --backdate [default: the next whole hour]',
    )
    .option(
      '--backdate',
      'allow an --effective-from in the past: drafts and cost answers of the hours since then are priced again with this version; final invoices never change (those it would change are listed, for a credit note)',
    )
    .addHelpText(
      'after',
      '\nExamples:\n  meter prices set --plan pro --api locations.create --unit-price 0.0009 --effective-from 2027-03-01T00:00:00+09:00\n  meter prices set --plan pro --api locations.history --charge \'{"model":"package","packageSize":1000,"packagePrice":"1.00"}\'\n  meter prices set --plan pro --meter ai_tokens --unit-price 0.000002 --free-units 100000\n  meter prices set --plan pro --api locations.create --unit-price 0.0007 --effective-from 2026-11-01T00:00:00Z --backdate\n\nA past --effective-from is refused unless --backdate; final invoices are stored and never change (docs/billing.md).\nAn --api no route, declared meter or catalog price names is refused with the nearest known name unless --any-api.\n',
    )
    .action(
      action(
        async (
          opts: {
            plan: string;
            api?: string;
            anyApi?: boolean;
            meter?: string;
            unitPrice?: string;
            charge?: string;
            freeUnits?: string;
            effectiveFrom?: string;
            backdate?: boolean;
          },
          cmd: Command,
        ) => {
          const { config, logger, json } = contextOf(cmd);
          if (Boolean(opts.api) === Boolean(opts.meter)) throw new UserError('give exactly one of --api and --meter', 'see meter prices set --help');
          const name = (opts.api ?? opts.meter)!;
          if (opts.api && !API_RE.test(opts.api))
            throw new UserError(`--api ${quote(opts.api)} is not an api name`, 'letters, digits, ".", "_", "-", ":" or "/"');
          if (Boolean(opts.unitPrice) === Boolean(opts.charge)) throw new UserError('give exactly one of --unit-price and --charge');
          let raw: unknown;
          if (opts.charge) {
            try {
              raw = JSON.parse(opts.charge);
            } catch {
              throw new UserError('--charge is not valid JSON');
            }
          } else raw = { model: 'per_unit', unitPrice: opts.unitPrice, ...(opts.freeUnits !== undefined ? { freeUnits: opts.freeUnits } : {}) };
          if (opts.charge && opts.freeUnits !== undefined)
            throw new UserError('--free-units goes with --unit-price', 'with --charge, put "freeUnits" in its JSON');
          const charge = await userErrors(async () => (opts.charge ? chargeFlag(raw) : unitPriceCharge(raw)));
          const now = Date.now();
          const nextHour = Math.ceil(now / HOUR) * HOUR;
          const effectiveFrom = opts.effectiveFrom ? await userErrors(async () => parseEffectiveFrom(opts.effectiveFrom, '--effective-from')) : nextHour;
          // An hour that has begun has calls priced already (drafts, cost answers, quotas' view of
          // them): a version from then on reprices them, so it is said on purpose (--backdate).
          if (effectiveFrom < now && !opts.backdate)
            throw new UserError(
              `--effective-from ${new Date(effectiveFrom).toISOString()} is in the past: hours that have begun keep the price they were billed at`,
              `price from ${new Date(nextHour).toISOString()} or later (the default), or add --backdate to reprice those hours (final invoices never change)`,
            );
          const db = await openWarehouse(config, logger);
          try {
            await ensureCatalog(db, config);
            if (opts.api && !opts.anyApi) await checkApiName(db, config, opts.api);
            const version = { effectiveFrom, charge };
            const r = await userErrors(() => (opts.meter ? setMeterPrice(db, opts.plan, opts.meter, version) : setPrice(db, opts.plan, name, version)));
            const plan = (await loadPlan(db, opts.plan))!;
            const versions = priceList(plan).filter((v) => v.api === name && Boolean(v.meter) === Boolean(opts.meter));
            // Final invoices are stored and never recomputed (docs/architecture.md invariant 6): a
            // backdated price leaves them as they are; those it would change are said, as
            // `rollup --backfill --meter` does.
            const drift = effectiveFrom < now && r !== 'unchanged' ? await finalInvoiceDrift(db, effectiveFrom, now, undefined, opts.plan) : null;
            if (json) return printJson({ result: r, versions, ...(drift ? { finalInvoices: drift } : {}) });
            process.stdout.write(
              `${r} ${opts.plan} ${opts.meter ? `meter ${name}` : name} from ${new Date(effectiveFrom).toISOString()}${drift ? ' (backdated: drafts and cost answers since then use it)' : ''}\n` +
                table(
                  ['from', 'until', 'charge'],
                  versions.map((v) => [v.effectiveFrom ?? '-', v.effectiveTo ?? '-', JSON.stringify(v.charge)]),
                ),
            );
            if (!drift) return;
            for (const d of drift.drifts) process.stdout.write(`${driftSentence(d)}\n`);
            process.stdout.write(
              `${drift.checked} final invoices of plan ${opts.plan} since then checked${drift.truncated ? ' (the first ones only)' : ''}: ${drift.drifts.length} would change; final invoices are never recomputed\n`,
            );
          } finally {
            await db.close();
          }
        },
      ),
    );
}

/** --charge: its errors say where the models and their keys are. */
function chargeFlag(raw: unknown): Charge {
  try {
    return parseChargeInput(raw, '--charge');
  } catch (e) {
    if (e instanceof CatalogError)
      throw new UserError(
        e.message,
        e.field === '--charge.effectiveFrom' ? 'give it as --effective-from' : 'the charge models and their keys: docs/billing.md ("Charge models")',
      );
    throw e;
  }
}

/**
 * --unit-price and --free-units fill a per_unit charge; its errors name those flags, not the
 * JSON fields they went into ("--unit-price.unitPrice: …" sent the user looking for a field).
 */
const FLAG_OF_FIELD: Record<string, { flag: string; hint: string }> = {
  '--unit-price.unitPrice': { flag: '--unit-price', hint: 'e.g. --unit-price 0.0005' },
  '--unit-price.freeUnits': { flag: '--free-units', hint: 'e.g. --free-units 1000' },
};
function unitPriceCharge(raw: unknown): Charge {
  try {
    return parseCharge(raw, '--unit-price');
  } catch (e) {
    const f = e instanceof CatalogError ? FLAG_OF_FIELD[e.field] : undefined;
    if (!f) throw e;
    throw new UserError(`${f.flag} ${(e as CatalogError).detail}`, f.hint);
  }
}
