/**
 * Several gateways on one machine and one data dir: each needs a spool of its own (one process
 * owns a spool, spool.ts). A gateway takes the first spool folder no live process holds:
 * `<dataDir>/spool` (where a single gateway always kept it, so an upgrade keeps its unshipped
 * events), then `<dataDir>/spool-2`, `spool-3`, ... A spool whose gateway died is free again
 * (its lock is stale) and the next gateway started takes it over and ships what it holds.
 */
import { join } from 'node:path';
import { LockedError } from '../../ground/pid-lock.js';
import { UserError } from '../../ground/errors.js';
import { Spool, type SpoolOptions } from './spool.js';

/** Gateways per data dir before the message below (each slot is a folder and a lock file). */
export const MAX_SPOOL_SLOTS = 64;

export function spoolSlotDir(dataDir: string, slot: number): string {
  return join(dataDir, slot === 1 ? 'spool' : `spool-${slot}`);
}

/** Open the first free spool of `dataDir`; a UserError naming dataDir when all are taken. */
export async function openSpoolSlot(dataDir: string, opts: Omit<SpoolOptions, 'dir'>, maxSlots = MAX_SPOOL_SLOTS): Promise<{ spool: Spool; dir: string }> {
  for (let slot = 1; slot <= maxSlots; slot++) {
    const dir = spoolSlotDir(dataDir, slot);
    try {
      return { spool: await Spool.open({ ...opts, dir }), dir };
    } catch (e) {
      if (!(e instanceof LockedError)) throw e;
    }
  }
  throw new UserError(
    `all ${maxSlots} gateway spools under ${dataDir} are held by running processes`,
    'give this gateway a data dir of its own: --data-dir (METER_DATA_DIR, dataDir in the config file)',
  );
}
