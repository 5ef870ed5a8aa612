/**
 * Ids are positional arguments (`customers show acme`, `invoices show acme`); commands that took
 * a `--customer` flag before keep it so scripts go on working. Both given and different is a
 * mistake; neither is a mistake with an example.
 */
import { UserError } from '../ground/errors.js';
import { logNameProblem } from '../ground/log-names.js';
import { quote } from '../ground/text.js';

export function idArgument(name: string, positional: string | undefined, flag: string | undefined, example: string): string {
  if (positional !== undefined && flag !== undefined && positional !== flag)
    throw new UserError(`two different ${name}s given: ${quote(positional)} and --${name} ${quote(flag)}`, `give it once, e.g. ${example}`);
  const id = positional ?? flag;
  if (id === undefined || id === '') throw new UserError(`missing ${name}`, `e.g. ${example}`);
  return id;
}

/** A `--group` flag: it names files of the embedded log, so it is checked before anything opens. */
export function groupFlag(value: string): string {
  const bad = logNameProblem('consumer group', value);
  if (bad) throw new UserError(`--group: ${bad}`, 'e.g. --group meter-ingest-2');
  return value;
}
