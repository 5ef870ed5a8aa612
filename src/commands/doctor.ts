import type { Command } from 'commander';
import { action, contextOf, printJson } from './context.js';
import { runDoctor } from '../runtime/doctor.js';

export function registerDoctor(program: Command): void {
  program
    .command('doctor')
    .description('check each configured backend (reachable, version, topic, lake writable, migrations, limiter) and say how to fix failures')
    .option('--timeout <ms>', 'time limit per check', '15000')
    .action(
      action(async (opts: { timeout: string }, cmd: Command) => {
        const { config, json } = contextOf(cmd);
        const checks = await runDoctor(config, Number(opts.timeout) || 15_000);
        if (json) printJson(checks);
        else
          for (const c of checks)
            process.stdout.write(`${!c.ok ? 'FAIL' : c.warn ? 'warn' : 'ok  '} ${c.name.padEnd(10)} ${c.detail}${(!c.ok || c.warn) && c.fix ? `\n     fix: ${c.fix}` : ''}\n`);
        // Any failed check fails the command, whichever backend (warnings do not).
        process.exitCode = checks.every((c) => c.ok) ? 0 : 1;
      }),
    );
}
