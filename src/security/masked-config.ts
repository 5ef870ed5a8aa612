/**
 * The config as it may be shown (`meter config`, logs): secrets masked. Driven by the settings
 * table, so a new secret setting is masked by declaring it `secret`.
 */
import { SETTINGS, redactUrl, type MeterConfig } from '../config/config.js';
import { MASK } from './secrets.js';

export function maskedConfig(cfg: MeterConfig): Record<string, unknown> {
  const out: Record<string, unknown> = { ...cfg };
  for (const s of SETTINGS) {
    const v = cfg[s.key];
    if (v === null || v === undefined) continue;
    if (s.kind.t === 'secret') out[s.key] = MASK;
    else if (s.kind.t === 'url') out[s.key] = redactUrl(String(v));
  }
  // Bearer tokens of the billing API: a list of secrets.
  out.billingTokens = cfg.billingTokens.map(() => MASK);
  return out;
}
