import type { Command } from 'commander';
import { ensureCatalog } from './default-catalog.js';
import { action, contextOf, printJson, withWarehouse } from './context.js';
import { openWarehouse } from '../runtime/backends.js';
import { loadCatalog } from '../billing/catalog.js';
import { backdatedName, loadStoredCatalog, syncCatalog } from '../billing/catalog-store.js';
import { driftSentence, finalInvoiceDrift } from '../billing/final-invoice-drift.js';
import { table, userErrors } from './billing-support.js';
import { UserError } from '../ground/errors.js';
import { assetPath } from '../config/assets.js';

export function registerPlans(program: Command): void {
  const plans = program.command('plans').description('plans (rate limits, currency) and their prices in the warehouse');
  plans
    .command('list')
    .description('plans in the warehouse')
    .action(
      withWarehouse(async ({ db, config, json }, _opts) => {
        await ensureCatalog(db, config);
        const c = await loadStoredCatalog(db);
        const list = Object.values(c.plans);
        if (json)
          return printJson(
            list.map((p) => ({ id: p.id, name: p.name, currency: p.currency, rateLimit: p.rateLimit, quota: p.quota, apis: Object.keys(p.charges).sort() })),
          );
        if (!list.length) return void process.stderr.write('no plans in the warehouse yet: run `meter plans import`\n');
        process.stdout.write(
          table(
            ['id', 'name', 'currency', 'rate/s', 'burst', 'quota', 'priced apis'],
            list.map((p) => [
              p.id,
              p.name,
              p.currency,
              String(p.rateLimit.ratePerSec),
              String(p.rateLimit.burst),
              p.quota ? `${p.quota.limit}/${p.quota.period}` : '-',
              String(Object.keys(p.charges).length),
            ]),
          ),
        );
      }),
    );
  plans
    .command('import [file]')
    .description(
      'load a catalog file into the warehouse (idempotent; price versions set with `meter prices set` are kept); a key the file format does not know is refused with its path and the key meant',
    )
    .addHelpText('after', '\nExample:\n  meter plans import fixtures/catalog.json\n')
    .action(
      action(async (file: string | undefined, _opts, cmd: Command) => {
        const { config, logger, json } = contextOf(cmd);
        const path = file ?? config.catalogFile;
        // The catalog's own message says what is wrong in the file; the hint, what to do about it.
        const catalog = await userErrors(async () => loadCatalog(path)).catch((e: unknown) => {
          throw e instanceof UserError && !e.hint
            ? new UserError(
                e.message,
                `fix the file (its format: docs/billing.md; an example: ${assetPath('fixtures/catalog.json')}) or name another: meter plans import <file>`,
              )
            : e;
        });
        const db = await openWarehouse(config, logger);
        try {
          const r = await userErrors(() => syncCatalog(db, catalog));
          // Final invoices are stored and never recomputed: those a backdated version would
          // change are said, per plan, as `meter prices set --backdate` does.
          const drifts = [];
          for (const plan of new Set(r.backdated.map((b) => b.plan))) {
            const from = Math.min(...r.backdated.filter((b) => b.plan === plan).map((b) => b.effectiveFrom));
            drifts.push({ plan, ...(await finalInvoiceDrift(db, from, Date.now(), undefined, plan)) });
          }
          if (json) return printJson({ file: path, ...r, ...(drifts.length ? { finalInvoices: drifts } : {}) });
          process.stdout.write(`${path}: ${r.plans} plans; price versions ${r.inserted} new, ${r.changed} changed, ${r.unchanged} unchanged\n`);
          for (const b of r.backdated) process.stdout.write(`backdated: ${backdatedName(b)} (drafts and cost answers since then use it)\n`);
          for (const d of drifts) {
            for (const x of d.drifts) process.stdout.write(`${driftSentence(x)}\n`);
            process.stdout.write(
              `${d.checked} final invoices of plan ${d.plan} since then checked${d.truncated ? ' (the first ones only)' : ''}: ${d.drifts.length} would change; final invoices are never recomputed\n`,
            );
          }
        } finally {
          await db.close();
        }
      }),
    );
}
