/**
 * The `meter` command line. Commands are thin: parse and validate, wire adapters, call into
 * gateway / pipeline / billing. Settings (see docs/configuration.md) are accepted as
 * flags anywhere on the line, as METER_* environment variables, or in meter.config.json.
 */
import { buildProgram } from './commands/program.js';
import { nodeVersionWarning } from './ground/node-version.js';
import { endQuietlyOnClosedOutput } from './ground/closed-output.js';

endQuietlyOnClosedOutput();

const old = nodeVersionWarning(process.versions.node);
if (old) process.stderr.write(`meter: warning: ${old}\n`);
await buildProgram().parseAsync(process.argv);
