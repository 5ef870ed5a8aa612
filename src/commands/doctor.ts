import type { Command } from 'commander';
import { TIMER, parseDurationFlag } from './duration.js';
import { action, contextOf, printJson } from './context.js';
import { runDoctor } from '../runtime/doctor.js';
import { DEFAULT_LAKE_CHECK_HOURS, lakeCheckHours } from '../runtime/doctor-lake.js';
import { repairLocalLogs } from '../runtime/doctor-log.js';
import { LockedError } from '../ground/pid-lock.js';
import { UserError } from '../ground/errors.js';
import type { PartitionRepair } from '../log/file-log/repair.js';

/** What --repair-log did, one line per partition. */
function repairLines(repairs: PartitionRepair[]): string[] {
  if (!repairs.length) return ['repair-log: no damage in the local logs; nothing changed'];
  return repairs.map((r) => {
    const lost = r.lost.reduce((a, [from, to]) => a + to - from, 0);
    const ranges = r.lost.map(([from, to]) => (to - from === 1 ? `${from}` : `${from}..${to - 1}`)).join(', ');
    const kept = r.segments.reduce((a, s) => a + s.keptRecords, 0);
    const saved = r.segments.map((s) => s.savedAs).join(', ');
    return (
      `repair-log: ${r.partitionDir}: ${lost} record(s) lost (offsets ${ranges || 'none'}), ${kept} kept past the damage` +
      `${r.resumedAt !== null ? `, new records from offset ${r.resumedAt}` : ''}${saved ? `; original kept as ${saved}` : ''}`
    );
  });
}

export function registerDoctor(program: Command): void {
  program
    .command('doctor')
    .description('check each configured backend (reachable, version, topic, lake writable, migrations, limiter) and say how to fix failures')
    .option('--timeout <duration>', 'time limit per check (e.g. 15s; at most 24d; a bare number is ms)', '15s')
    .option(
      '--lake-check [hours]',
      `also check the lake's last hours (default ${DEFAULT_LAKE_CHECK_HOURS}): overlapping file ranges per partition, rows vs distinct event ids per hour`,
    )
    .option(
      '--repair-log',
      'first repair damaged local logs (the embedded log, the gateway spools): keep every readable record, report the lost ones, keep each damaged file as .damaged; the gateway must be stopped',
    )
    .action(
      action(async (opts: { timeout: string; lakeCheck?: string | boolean; repairLog?: boolean }, cmd: Command) => {
        const { config, json } = contextOf(cmd);
        const lakeHours = lakeCheckHours(opts.lakeCheck);
        if (opts.repairLog) {
          const repairs = await repairLocalLogs(config).catch((e: unknown) => {
            if (e instanceof LockedError)
              throw new UserError(`a local log is in use: ${e.message}`, 'stop the gateway (or meter dev) using this data dir, then run --repair-log again');
            throw e;
          });
          for (const line of repairLines(repairs)) process.stderr.write(`${line}\n`);
        }
        const checks = await runDoctor(config, parseDurationFlag('timeout', opts.timeout, { minMs: 1, maxMs: TIMER }), { lakeCheckHours: lakeHours });
        if (json) printJson(checks);
        else
          for (const c of checks)
            process.stdout.write(
              `${!c.ok ? 'FAIL' : c.warn ? 'warn' : 'ok  '} ${c.name.padEnd(10)} ${c.detail}${(!c.ok || c.warn) && c.fix ? `\n     fix: ${c.fix}` : ''}\n`,
            );
        // Any failed check fails the command, whichever backend (warnings do not).
        process.exitCode = checks.every((c) => c.ok) ? 0 : 1;
      }),
    );
}
