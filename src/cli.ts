/**
 * The `meter` command line. Commands are thin: parse and validate, wire adapters, call into
 * gateway / pipeline / billing. Settings (see docs/configuration.md) are accepted as
 * flags anywhere on the line, as METER_* environment variables, or in meter.config.json.
 */
import { buildProgram } from './commands/program.js';

await buildProgram().parseAsync(process.argv);
