/** Non-code files (SQL migrations, Lua scripts, fixtures) are read from the package's source tree. */
import { resolve } from 'node:path';
import { packageRoot } from './config.js';

export function assetPath(...parts: string[]): string {
  return resolve(packageRoot(), ...parts);
}
