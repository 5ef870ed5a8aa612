/**
 * The supervisor of gateway workers with real forked processes (a stand-in worker that answers
 * its pid: test/support/supervised-worker.ts), both ways of sharing the port: with SO_REUSEPORT
 * each worker holds its own listening socket on the one port (the first picks it for port 0),
 * through cluster the primary holds the only one (the fallback where reusePort is unavailable).
 * Either way new connections reach every worker, and a worker killed with -9 comes back on the
 * same port while the others answer.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { get } from 'node:http';
import { fileURLToPath } from 'node:url';
import { GatewaySupervisor } from '../../src/gateway/workers/supervisor.js';
import { probeReusePort } from '../../src/gateway/workers/reuse-port.js';
import { listeningSockets, pidsListeningOn } from '../support/net.js';
import { until } from '../support/until.js';

const quiet = { info() {}, warn() {}, error() {} };

/** The pid of the worker that answered, on a connection of its own. */
function whoAnswers(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path: '/', agent: false }, (res) => {
      let body = '';
      res.on('data', (b: Buffer) => (body += b));
      res.on('end', () => resolve(Number(body)));
    }).on('error', reject);
  });
}

async function answeredBy(port: number, n: number): Promise<Set<number>> {
  const pids = new Set<number>();
  for (let i = 0; i < n; i++) pids.add(await whoAnswers(port));
  return pids;
}

function supervisor(reusePort: boolean): GatewaySupervisor {
  return new GatewaySupervisor({
    workers: 2,
    exec: fileURLToPath(new URL('../support/supervised-worker.js', import.meta.url)),
    init: (_index, listen) => ({ listen }),
    serve: () => {},
    logger: quiet,
    port: 0,
    reusePort,
  });
}

describe('gateway workers: supervisor', () => {
  it('reusePort is available on this Linux (the probe binds two sockets on one port)', async () => {
    assert.deepEqual(await probeReusePort('127.0.0.1'), { ok: true });
  });

  for (const reusePort of [true, false]) {
    it(`${reusePort ? 'SO_REUSEPORT' : 'cluster (the fallback)'}: one port, every worker answers, a killed worker comes back on it`, async () => {
      const sup = supervisor(reusePort);
      try {
        const { port } = await sup.start();
        const pids = sup.status().map((w) => w.pid);
        // Who holds the listening socket tells the two apart: each worker, or the primary alone.
        const holders = pidsListeningOn(port, [process.pid, ...pids]).sort();
        assert.deepEqual(holders, reusePort ? [...pids].sort() : [process.pid]);
        // 40 new connections all on one of two workers: 2 in 2^40 (reusePort's hash) or never (round-robin).
        assert.deepEqual([...(await answeredBy(port, 40))].sort(), [...pids].sort());

        const [victim, other] = pids as [number, number];
        process.kill(victim, 'SIGKILL');
        if (reusePort) await until("the killed worker's socket to close", () => listeningSockets(port).size === 1, 10_000, 5);
        else await until('the supervisor to see the worker die', () => sup.status()[0]?.pid !== victim, 10_000, 5);
        // Until its replacement listens, the survivor answers every new connection.
        assert.deepEqual([...(await answeredBy(port, 5))], [other]);
        const back = await until(
          'the worker to be restarted',
          () => sup.status().find((w) => w.worker === 1 && w.listening && w.pid !== victim)?.pid,
          30_000,
          20,
        );
        if (reusePort) assert.deepEqual(pidsListeningOn(port, [other, back]).sort(), [other, back].sort());
        await until('the restarted worker to answer on the same port', async () => (await answeredBy(port, 10)).has(back), 30_000, 0);
      } finally {
        await sup.close(5000);
      }
    });
  }
});
