/**
 * A private, real redis-server for tests that stop and start Redis (the stack's Redis is shared
 * by the other tests of a run): its own port and folder, no persistence. `stop()` ends the
 * process (SIGTERM, waits for exit); `start()` starts it again on the same port.
 * The binary is the stack's (`stack/run up redis` installs redis-server when missing).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { Redis } from 'ioredis';
import { stackEnv } from './stack.js';
import { tempDir } from './tmp.js';
import { freePort } from './net.js';

export class TestRedis {
  private proc: ChildProcess | null = null;
  private constructor(
    readonly port: number,
    private readonly dir: string,
  ) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  static async start(): Promise<TestRedis> {
    await stackEnv(['redis']); // makes sure redis-server is installed
    const r = new TestRedis(await freePort(), tempDir('meter-test-redis-'));
    await r.start();
    return r;
  }

  async start(): Promise<void> {
    if (this.proc) return;
    const p = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', this.dir], {
      stdio: 'ignore',
    });
    this.proc = p;
    p.once('exit', () => {
      if (this.proc === p) this.proc = null;
    });
    const deadline = Date.now() + 10_000;
    for (;;) {
      const c = new Redis(this.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false });
      c.on('error', () => {}); // not up yet: the loop tries again
      try {
        await c.connect();
        if ((await c.ping()) === 'PONG') return;
      } catch {
        if (Date.now() > deadline || !this.proc) throw new Error(`redis-server on port ${this.port} did not start`);
      } finally {
        c.disconnect();
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async stop(): Promise<void> {
    const p = this.proc;
    if (!p) return;
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill('SIGTERM');
    await exited;
    this.proc = null;
  }

  async destroy(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
