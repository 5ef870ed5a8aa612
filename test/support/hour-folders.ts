/** Empty hour folders in a local lake (`<lakeRoot>/usage/dt=…/hour=…`): hours a backfill visits, with nothing to count. */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { HOUR_MS, hourDir } from '../../src/lake/layout.js';

export function emptyHourFolders(lakeRoot: string, from: number, to: number): void {
  for (let h = from; h < to; h += HOUR_MS) mkdirSync(join(lakeRoot, hourDir(h)), { recursive: true });
}
