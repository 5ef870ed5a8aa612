/** Headless Chromium for the page tests, and where they save screenshots. */
import { existsSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { ensureTools } from './tools.js';

/** Screenshots are saved here as test artifacts (METER_TEST_ARTIFACTS, default <tmp>/meter-test-artifacts). */
export const ARTIFACTS = process.env.METER_TEST_ARTIFACTS ?? join(tmpdir(), 'meter-test-artifacts');

const CHROMIUM = process.env.METER_CHROMIUM ?? '/usr/bin/chromium';

/** Debian's Chromium, installed by `stack/run tools chromium` if missing (the test fails, never skips, without it). */
export function ensureChromium(): void {
  if (existsSync(CHROMIUM)) return;
  ensureTools(['chromium']);
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM} (set METER_CHROMIUM to its path)`);
}

/** That Chromium, headless and quiet (no GPU, sandbox, QUIC or background traffic); ARTIFACTS made. */
export async function launchChromium(): Promise<Browser> {
  ensureChromium();
  mkdirSync(ARTIFACTS, { recursive: true });
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}
