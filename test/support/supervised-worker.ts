/**
 * A stand-in gateway worker for test/unit/gateway-supervisor.test.ts: forked by the real
 * GatewaySupervisor, it answers `start` by listening the way the gateway does (listenOptions of
 * reuse-port.ts) with an HTTP server that answers its pid, so the test sees which worker took a
 * connection without starting whole gateways.
 */
import { createServer } from 'node:http';
import { Peer, type Channel } from '../../src/gateway/workers/peer.js';
import { listenOptions } from '../../src/gateway/workers/reuse-port.js';
import { WORKER_READY, type WorkerListen } from '../../src/gateway/workers/supervisor.js';

const peer = new Peer(process as unknown as Channel);
const server = createServer((req, res) => {
  req.resume();
  res.end(String(process.pid));
});

peer.handle('start', async (init: { listen: WorkerListen }) => {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listenOptions('127.0.0.1', init.listen.port, init.listen.reusePort), () => resolve());
  });
  const port = (server.address() as { port: number }).port;
  return { url: `http://127.0.0.1:${port}`, port };
});
peer.handle('status', () => ({ pid: process.pid }));
peer.handle('stop', () => {
  server.close();
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 20);
});
process.on('disconnect', () => process.exit(0));
process.send?.({ t: WORKER_READY });
