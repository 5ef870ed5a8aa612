/**
 * Who made a change, for an audit trail, without the secret: service tokens (config
 * `billingTokens`) have no names, so a token is named by the first 8 hex digits of its SHA-256
 * (32 bits: tells the configured tokens apart, reveals nothing usable of the token).
 */
import { createHash } from 'node:crypto';

export function serviceTokenName(token: string): string {
  return `service:${createHash('sha256').update(token, 'utf8').digest('hex').slice(0, 8)}`;
}
