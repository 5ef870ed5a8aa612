import type { Command } from 'commander';
import { parseDurationFlag } from './duration.js';
import { action, contextOf, printJson } from './context.js';
import { runDoctor } from '../runtime/doctor.js';
import { DEFAULT_LAKE_CHECK_HOURS, lakeCheckHours } from '../runtime/doctor-lake.js';

export function registerDoctor(program: Command): void {
  program
    .command('doctor')
    .description('check each configured backend (reachable, version, topic, lake writable, migrations, limiter) and say how to fix failures')
    .option('--timeout <duration>', 'time limit per check (e.g. 15s; a bare number is ms)', '15s')
    .option(
      '--lake-check [hours]',
      `also check the lake's last hours (default ${DEFAULT_LAKE_CHECK_HOURS}): overlapping file ranges per partition, rows vs distinct event ids per hour`,
    )
    .action(
      action(async (opts: { timeout: string; lakeCheck?: string | boolean }, cmd: Command) => {
        const { config, json } = contextOf(cmd);
        const lakeHours = lakeCheckHours(opts.lakeCheck);
        const checks = await runDoctor(config, parseDurationFlag('timeout', opts.timeout, { minMs: 1 }), { lakeCheckHours: lakeHours });
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
