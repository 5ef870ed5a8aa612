/**
 * The upstream API of the gateway benchmark, run as its own process (`node dist/bench/upstream.js`)
 * so it never shares an event loop with the proxy being measured: answers every request with a
 * small JSON body (like the sample location API's `latest`) and prints its port on stdout.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

const body = Buffer.from(JSON.stringify({ deviceId: 'd1', lat: 37.5665, lon: 126.978, accuracyM: 5, at: '2026-11-24T07:00:00.000Z' }));
const server = createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
  req.resume();
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
  res.end(body);
});
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  process.stdout.write(`${(server.address() as AddressInfo).port}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
