/**
 * Where a client presents its API key: `Authorization: Bearer <key>` or `X-API-Key: <key>`.
 * We remember which header carried it so exactly that header is kept from the upstream.
 */
import type { IncomingHttpHeaders } from 'node:http';

export interface PresentedKey {
  key: string;
  header: 'authorization' | 'x-api-key';
}

export function presentedKey(headers: IncomingHttpHeaders): PresentedKey | null {
  const auth = headers.authorization;
  if (auth) {
    const key = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(auth)?.[1];
    if (key) return { key, header: 'authorization' };
  }
  const x = headers['x-api-key'];
  const v = Array.isArray(x) ? x[0] : x;
  if (v?.trim()) return { key: v.trim(), header: 'x-api-key' };
  return null;
}
