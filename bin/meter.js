#!/usr/bin/env node
// Thin launcher: the CLI is compiled to dist/ by `npm run build` (run by `npm install`/`npm ci`).
import { existsSync } from 'node:fs';
const entry = new URL('../dist/src/cli.js', import.meta.url);
if (!existsSync(entry)) {
  console.error('meter: not built yet. Run `npm ci` (or `npm run build`) in the meter folder first.');
  process.exit(2);
}
await import(entry.href);
