/** `meter rollup --backfill --meter SLUG --from --to`: one meter computed for past hours (Rollup.backfillMeter). */
import { loadMeters } from '../billing/meter-store.js';
import { UserError } from '../ground/errors.js';
import type { Logger } from '../ground/logger.js';
import type { Rollup } from '../pipeline/rollup.js';
import type { Sql } from '../warehouse/warehouse.js';
import { driftSentence, finalInvoiceDrift } from '../billing/final-invoice-drift.js';
import { printJson } from './context.js';
import { Progress } from './progress.js';
import { quote } from '../ground/text.js';

export async function backfillMeterCommand(rollup: Rollup, db: Sql, slug: string, from: number, to: number, json: boolean, logger: Logger): Promise<void> {
  const meters = await loadMeters(db, (m) => logger.warn(m));
  const meter = meters.find((m) => m.slug === slug);
  if (!meter)
    throw new UserError(
      `no meter ${quote(slug)} in the warehouse (meters: ${meters.map((m) => m.slug).join(', ')})`,
      'declare it in the catalog file\'s "meters" and run meter plans import first',
    );
  if (slug === 'calls') throw new UserError('calls are rolled up with the hour', `meter rollup --backfill --from ... --to ... (without --meter)`);
  const progress = json ? null : new Progress({ label: `backfill ${slug}`, unit: 'hours', lineEveryCount: 24 });
  const r = await rollup.backfillMeter(meter, from, to, (done, total) => progress?.update(done, total));
  progress?.finish(`backfill of meter ${slug} done in ${(r.ms / 1000).toFixed(1)} s: ${r.hours} hours, ${r.files} files, ${r.events} events, ${r.rows} rows`);
  // Final invoices keep their lines: say which ones the new rows would change, for a credit note.
  const drift = await finalInvoiceDrift(db, from, to);
  if (json) return printJson({ ...r, finalInvoices: drift });
  for (const d of drift.drifts) process.stdout.write(`${driftSentence(d)}\n`);
  process.stdout.write(
    `${drift.checked} final invoices in the range checked${drift.truncated ? ' (the first ones only)' : ''}: ${drift.drifts.length} would change; final invoices are never recomputed\n`,
  );
}
