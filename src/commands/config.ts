import type { Command } from 'commander';
import { action, contextOf, printJson } from './context.js';
import { describeBackends } from '../config/config.js';
import { maskedConfig } from '../security/masked-config.js';

export function registerConfig(program: Command): void {
  program
    .command('config')
    .description('print the effective configuration (flags > METER_* env > config file > defaults) and the backends it selects')
    .action(
      action(async (_opts, cmd: Command) => {
        const { config, json } = contextOf(cmd);
        const shown = maskedConfig(config);
        if (json) printJson({ config: shown, backends: describeBackends(config) });
        else {
          const backends = Object.entries(describeBackends(config));
          // One column for the values, however long the longest setting's name.
          const width = Math.max(...[...Object.keys(shown), ...backends.map(([k]) => k)].map((k) => k.length));
          for (const [k, v] of Object.entries(shown)) process.stdout.write(`${k.padEnd(width)} ${Array.isArray(v) ? v.join(',') : v}\n`);
          process.stdout.write('\n');
          for (const [k, v] of backends) process.stdout.write(`${k.padEnd(width)} ${v}\n`);
        }
      }),
    );
}
