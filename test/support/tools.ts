/**
 * Peer tools the tests drive (kcat, curl, Debian's chromium): installed by `stack/run tools` when
 * missing, like the stack's servers. If one cannot be had the test fails saying why; never skips.
 */
import { execFileSync } from 'node:child_process';
import { assetPath } from '../../src/config/assets.js';

export function ensureTools(tools: ('kcat' | 'curl' | 'chromium')[]): void {
  try {
    execFileSync('bash', [assetPath('stack/run'), 'tools', ...tools], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 15 * 60_000 });
  } catch (e) {
    const err = (e as { stderr?: Buffer }).stderr?.toString().trim();
    throw new Error(
      `test tools ${tools.join(', ')} are missing and \`bash stack/run tools ${tools.join(' ')}\` could not install them: ${err || (e as Error).message}`,
    );
  }
}
