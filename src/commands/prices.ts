import type { Command } from 'commander';
import { ensureCatalog } from './default-catalog.js';
import { action, contextOf, printJson, withWarehouse } from './context.js';
import { openWarehouse } from '../runtime/backends.js';
import { UserError } from '../ground/errors.js';
import { API_RE, CatalogError, parseCharge, parseEffectiveFrom, type Charge } from '../billing/catalog.js';
import { loadPlan, loadStoredCatalog, priceList, setMeterPrice, setPrice } from '../billing/catalog-store.js';
import { table, userErrors } from './billing-support.js';

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
          if (!plans.length) throw new UserError(`unknown plan "${opts.plan}"`, 'see meter plans list (or meter plans import)');
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
    .description('add a price version for one API or meter of a plan, from an effective date (past hours keep their price)')
    .requiredOption('--plan <id>', 'plan id')
    .option('--api <name>', 'priced operation, e.g. locations.create')
    .option('--meter <slug>', 'a COUNT, SUM or MAX meter instead of an API, e.g. ai_tokens (docs/meters.md)')
    .option('--unit-price <decimal>', 'per-unit price in the currency, e.g. 0.0005')
    .option(
      '--charge <json>',
      'any charge model as JSON, e.g. \'{"model":"graduated","tiers":[{"upTo":1000,"unitPrice":"0"},{"upTo":null,"unitPrice":"0.001"}]}\'',
    )
    .option('--free-units <n>', 'free calls per billing period (with --unit-price)')
    .option('--effective-from <instant>', 'ISO instant on a whole hour, e.g. 2026-03-01T00:00:00+09:00 [default: the next whole hour]')
    .addHelpText(
      'after',
      '\nExamples:\n  meter prices set --plan pro --api locations.create --unit-price 0.0009 --effective-from 2026-03-01T00:00:00+09:00\n  meter prices set --plan pro --api locations.history --charge \'{"model":"package","packageSize":1000,"packagePrice":"1.00"}\'\n  meter prices set --plan pro --meter ai_tokens --unit-price 0.000002 --free-units 100000\n',
    )
    .action(
      action(
        async (
          opts: { plan: string; api?: string; meter?: string; unitPrice?: string; charge?: string; freeUnits?: string; effectiveFrom?: string },
          cmd: Command,
        ) => {
          const { config, logger, json } = contextOf(cmd);
          if (Boolean(opts.api) === Boolean(opts.meter)) throw new UserError('give exactly one of --api and --meter', 'see meter prices set --help');
          const name = (opts.api ?? opts.meter)!;
          if (opts.api && !API_RE.test(opts.api))
            throw new UserError(`--api ${JSON.stringify(opts.api)} is not an api name`, 'letters, digits, ".", "_", "-", ":" or "/"');
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
          const charge = await userErrors(async () => (opts.charge ? parseCharge(raw, '--charge') : unitPriceCharge(raw)));
          const effectiveFrom = opts.effectiveFrom
            ? await userErrors(async () => parseEffectiveFrom(opts.effectiveFrom, '--effective-from'))
            : Math.ceil(Date.now() / HOUR) * HOUR;
          const db = await openWarehouse(config, logger);
          try {
            await ensureCatalog(db, config);
            const version = { effectiveFrom, charge };
            const r = await userErrors(() => (opts.meter ? setMeterPrice(db, opts.plan, opts.meter, version) : setPrice(db, opts.plan, name, version)));
            const plan = (await loadPlan(db, opts.plan))!;
            const versions = priceList(plan).filter((v) => v.api === name && Boolean(v.meter) === Boolean(opts.meter));
            if (json) printJson({ result: r, versions });
            else
              process.stdout.write(
                `${r} ${opts.plan} ${opts.meter ? `meter ${name}` : name} from ${new Date(effectiveFrom).toISOString()}\n` +
                  table(
                    ['from', 'until', 'charge'],
                    versions.map((v) => [v.effectiveFrom ?? '-', v.effectiveTo ?? '-', JSON.stringify(v.charge)]),
                  ),
              );
          } finally {
            await db.close();
          }
        },
      ),
    );
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
    throw new UserError(`${f.flag} ${(e as CatalogError).message.slice((e as CatalogError).field.length + 2)}`, f.hint);
  }
}
