/**
 * The pieces of gateway workers that need no process: the Peer (calls both ways, batched per
 * tick, failures carried back, pending calls failed when the other side goes) over a real
 * MessageChannel, and the merge of the workers' Prometheus texts.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { fork } from 'node:child_process';
import { Peer, PeerClosedError, type Channel } from '../../src/gateway/workers/peer.js';
import { labelSample, mergeMetrics } from '../../src/gateway/workers/merge-metrics.js';

function channel(port: MessagePort): Channel & { sent: number } {
  const ch = {
    sent: 0,
    send(m: unknown) {
      ch.sent++;
      port.postMessage(m);
      return true;
    },
    on(_e: 'message', fn: (m: unknown) => void) {
      port.on('message', fn);
      return ch;
    },
  };
  return ch;
}

describe('gateway workers: peer', () => {
  it('a call to a process killed with -9 fails with PeerClosedError, and the sender lives on', async () => {
    // A real child with an IPC channel, as cluster workers have: killed before the batch is
    // flushed, so the send meets a closed channel (Node would emit an unhandled 'error').
    const child = fork('-e', ['setInterval(() => {}, 1000)'], { execArgv: [], stdio: ['ignore', 'ignore', 'ignore', 'ipc'] });
    await new Promise((r) => child.once('spawn', r));
    const peer = new Peer(child as unknown as Channel);
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
    await assert.rejects(peer.call('take', 1), PeerClosedError);
  });

  it('answers calls both ways, one message per tick for many calls, and carries errors back', async () => {
    const { port1, port2 } = new MessageChannel();
    const a = channel(port1);
    const b = channel(port2);
    const primary = new Peer(a);
    const worker = new Peer(b);
    let taken = 0;
    primary.handle('take', async (n: number) => (taken += n));
    primary.handle('boom', () => {
      throw new Error('no bucket');
    });
    worker.handle('status', () => ({ pid: 42, buf: Buffer.from('x') }));
    const answers = await Promise.all(Array.from({ length: 100 }, () => worker.call<number>('take', 1)));
    assert.equal(taken, 100);
    assert.deepEqual(
      [...answers].sort((x, y) => x - y),
      Array.from({ length: 100 }, (_, i) => i + 1),
    );
    assert.equal(b.sent, 1, '100 calls of one tick travel as one message');
    assert.equal(a.sent, 1, 'and their answers as one');
    await assert.rejects(worker.call('boom'), /no bucket/);
    await assert.rejects(worker.call('nothing'), /no handler for nothing/);
    const st = await primary.call<{ pid: number }>('status');
    assert.equal(st.pid, 42);
    // The other side never answers: close() fails what waits, and later calls fail at once.
    const waiting = primary.call('never');
    primary.close('worker gone');
    await assert.rejects(waiting, PeerClosedError);
    await assert.rejects(primary.call('status'), PeerClosedError);
    port1.close();
    port2.close();
  });
});

describe('gateway workers: merged metrics', () => {
  it('labels every sample by worker and keeps each family together under one HELP and TYPE', () => {
    assert.equal(labelSample('meter_x 3', '1'), 'meter_x{worker="1"} 3');
    assert.equal(labelSample('meter_y{role="gateway",le="0.5"} 2', '2'), 'meter_y{worker="2",role="gateway",le="0.5"} 2');
    assert.equal(labelSample('meter_z{} 1', 'primary'), 'meter_z{worker="primary"} 1');
    const w = (n: number) =>
      `# HELP meter_a a\n# TYPE meter_a counter\nmeter_a ${n}\n# HELP meter_h h\n# TYPE meter_h histogram\nmeter_h_bucket{le="1"} ${n}\nmeter_h_sum ${n}\nmeter_h_count ${n}\n`;
    const merged = mergeMetrics([
      { worker: '1', text: w(1) },
      { worker: '2', text: w(2) },
    ]);
    assert.equal(
      merged,
      [
        '# HELP meter_a a',
        '# TYPE meter_a counter',
        'meter_a{worker="1"} 1',
        'meter_a{worker="2"} 2',
        '# HELP meter_h h',
        '# TYPE meter_h histogram',
        'meter_h_bucket{worker="1",le="1"} 1',
        'meter_h_sum{worker="1"} 1',
        'meter_h_count{worker="1"} 1',
        'meter_h_bucket{worker="2",le="1"} 2',
        'meter_h_sum{worker="2"} 2',
        'meter_h_count{worker="2"} 2',
        '',
      ].join('\n'),
    );
  });
});
