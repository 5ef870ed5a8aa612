/**
 * The floor of an HTTP answer on this box: node:http answering one fixed JSON body (the billing
 * API's own answer, so both send the same bytes) with the same headers, no parsing, no lookups.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export async function startTrivialServer(body: string): Promise<{ url: string; close(): Promise<void> }> {
  const bytes = Buffer.from(body);
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': bytes.length, 'cache-control': 'no-store' });
    res.end(bytes);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
