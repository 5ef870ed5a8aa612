/**
 * The usage event id of a CloudEvent: a pure function of its (`source`, `id`), so a resend of the
 * same event gets the same id and the rollup counts it once (docs/architecture.md invariant 2:
 * the id is the dedupe key end to end). A UUIDv8 (RFC 9562 "custom") holding the first 122 bits
 * of SHA-256 over the pair; its version nibble 8 keeps it apart from the gateway's UUIDv7 ids.
 */
import { createHash } from 'node:crypto';

export function eventIdOf(source: string, id: string): string {
  // JSON of the pair: unambiguous whatever the two strings hold.
  const h = createHash('sha256')
    .update(JSON.stringify([source, id]), 'utf8')
    .digest();
  h.writeUInt8((h.readUInt8(6) & 0x0f) | 0x80, 6);
  h.writeUInt8((h.readUInt8(8) & 0x3f) | 0x80, 8);
  const x = h.toString('hex', 0, 16);
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`;
}
