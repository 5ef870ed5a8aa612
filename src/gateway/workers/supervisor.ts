/**
 * The primary process of a gateway with workers (node:cluster): forks N workers that each run a
 * whole gateway on the same port, restarts a worker that dies, and gathers what the admin
 * listener shows (statuses, metrics) from all of them. With `reusePort` each worker listens on
 * the port with a socket of its own and the kernel spreads new connections over them; without,
 * the primary accepts every connection and hands it to a worker round-robin (cluster's default
 * on Linux). What a worker runs is the module `exec`; the two talk through a Peer (peer.ts).
 */
import cluster, { type Worker } from 'node:cluster';
import { SOURCE_TIMEOUT_MS } from '../../observability/metrics.js';
import { Peer, type Channel } from './peer.js';

export interface SupervisorLogger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export interface SupervisorOptions {
  workers: number;
  /** The worker's entry module (it answers `start`, `status`, `metrics`, `stop`). */
  exec: string;
  /** What a worker gets in `start` (its config and index, and where to listen). */
  init: (index: number, listen: WorkerListen) => unknown;
  /** The configured gateway port (0 = any free port). */
  port: number;
  /** Workers listen with SO_REUSEPORT (probed by the caller: reuse-port.ts); else through cluster. */
  reusePort: boolean;
  /** Register the primary's handlers for one worker (the backends it serves). */
  serve: (peer: Peer, index: number) => void;
  logger: SupervisorLogger;
  /** A worker must be listening within this long (ms; default 120 s: PGlite warms slowly on a busy box). */
  startTimeoutMs?: number;
}

export interface WorkerStatus {
  worker: number;
  pid: number;
  /** Times this worker slot was restarted after its process died. */
  restarts: number;
  listening: boolean;
  /** The worker's own /status of its gateway (refreshed every second). */
  gateway: unknown;
}

/** Where a worker listens: the port it must bind, and how. */
export interface WorkerListen {
  port: number;
  reusePort: boolean;
}

interface Slot {
  index: number;
  worker: Worker | null;
  peer: Peer | null;
  restarts: number;
  listening: boolean;
  status: unknown;
  startedAt: number;
}

const STATUS_EVERY_MS = 1000;

/** One readiness check of a worker: its name, whether it gates readiness, null or the error. */
export interface WorkerCheck {
  name: string;
  required: boolean;
  error: string | null;
}

/** What a worker sends once it answers calls (gateway-worker-main.ts). */
export const WORKER_READY = 'meter.worker.ready';

export class GatewaySupervisor {
  private readonly slots: Slot[] = [];
  private stopping = false;
  private timer: NodeJS.Timeout | null = null;
  /**
   * The port workers bind with reusePort: the configured one, or the one the first worker got
   * for port 0, so that the others and every restarted worker join it. Through cluster it stays
   * the configured one: the primary keys its shared socket by the port asked for, so a worker
   * asking for the port 0 gave would get a second socket, and EADDRINUSE.
   */
  private port: number;

  constructor(private readonly o: SupervisorOptions) {
    if (!cluster.isPrimary) throw new Error('GatewaySupervisor runs in the primary process');
    // 'advanced': Buffers (log records) cross the channel as they are.
    cluster.setupPrimary({ exec: o.exec, args: [], serialization: 'advanced' });
    this.port = o.port;
    for (let i = 1; i <= o.workers; i++) this.slots.push({ index: i, worker: null, peer: null, restarts: 0, listening: false, status: null, startedAt: 0 });
  }

  /** Start every worker; resolves with the gateway's URL once all listen. */
  async start(): Promise<{ url: string; port: number }> {
    let started: { url: string; port: number }[];
    if (this.o.reusePort && this.port === 0) {
      // Each worker binds its own socket: the first picks the port, the others join it.
      const first = await this.fork(this.slots[0] as Slot);
      this.port = first.port;
      started = [first, ...(await Promise.all(this.slots.slice(1).map((s) => this.fork(s))))];
    } else {
      started = await Promise.all(this.slots.map((s) => this.fork(s)));
      if (this.o.reusePort) this.port = (started[0] as { port: number }).port;
    }
    this.timer = setInterval(() => this.refresh(), STATUS_EVERY_MS);
    this.timer.unref();
    return started[0] as { url: string; port: number };
  }

  private fork(s: Slot): Promise<{ url: string; port: number }> {
    // The slot number, for telling worker processes apart (`ps e`); nothing reads it (docs/testing.md).
    const w = cluster.fork({ METER_GATEWAY_WORKER: String(s.index) });
    const peer = new Peer(w as unknown as Channel);
    s.worker = w;
    s.peer = peer;
    s.listening = false;
    s.startedAt = Date.now();
    this.o.serve(peer, s.index);
    // A send to a worker that just died fails with ERR_IPC_CHANNEL_CLOSED; Peer handles its own
    // sends, and any other such error must not kill the primary (the 'exit' below restarts it).
    w.on('error', (e: Error) => this.o.logger.warn('gateway worker channel error', { worker: s.index, error: e.message }));
    w.on('exit', (code, signal) => {
      peer.close(`gateway worker ${s.index} exited`);
      if (s.worker !== w) return;
      s.worker = null;
      s.peer = null;
      s.listening = false;
      if (this.stopping) return;
      // A worker that dies right after starting would be restarted in a tight loop: back off.
      const quick = Date.now() - s.startedAt < 5000;
      const delay = quick ? Math.min(10_000, 250 * 2 ** Math.min(s.restarts, 6)) : 50;
      s.restarts++;
      this.o.logger.warn('gateway worker died; starting another', { worker: s.index, pid: w.process.pid, code, signal, restartInMs: delay });
      setTimeout(() => {
        if (this.stopping) return;
        this.fork(s).catch((e: unknown) => this.o.logger.error('gateway worker did not start', { worker: s.index, error: (e as Error).message }));
      }, delay).unref();
    });
    const timeout = this.o.startTimeoutMs ?? 120_000;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`gateway worker ${s.index} was not listening within ${timeout} ms`)), timeout);
      // The worker's module registers its handlers before it says so; a message sent earlier would be lost.
      const ready = new Promise<void>((r) => {
        const on = (m: unknown) => {
          if ((m as { t?: unknown })?.t !== WORKER_READY) return;
          w.off('message', on);
          r();
        };
        w.on('message', on);
      });
      ready
        .then(() => peer.call<{ url: string; port: number }>('start', this.o.init(s.index, { port: this.port, reusePort: this.o.reusePort })))
        .then(
          (r) => {
            clearTimeout(timer);
            s.listening = true;
            resolve(r);
          },
          (e: unknown) => {
            clearTimeout(timer);
            reject(e as Error);
          },
        );
    });
  }

  private refresh(): void {
    for (const s of this.slots) {
      if (!s.peer || !s.listening) continue;
      s.peer.call('status').then(
        (st) => (s.status = st),
        () => {},
      );
    }
  }

  /** Every worker slot: its process, restarts and last known gateway status. */
  status(): WorkerStatus[] {
    return this.slots.map((s) => ({ worker: s.index, pid: s.worker?.process.pid ?? 0, restarts: s.restarts, listening: s.listening, gateway: s.status }));
  }

  /** Workers listening now. */
  listening(): number {
    return this.slots.filter((s) => s.listening).length;
  }

  /**
   * Each listening worker's Prometheus text, its backend reads bounded by `budgetMs`; a worker
   * that does not answer within that and 250 ms more is left out.
   */
  async metricsTexts(budgetMs = SOURCE_TIMEOUT_MS): Promise<{ worker: string; text: string }[]> {
    const out = await Promise.all(
      this.slots.map(async (s) => {
        if (!s.peer || !s.listening) return null;
        const text = await Promise.race([
          s.peer.call<string>('metrics', budgetMs),
          new Promise<null>((r) => setTimeout(() => r(null), budgetMs + 250).unref()),
        ]).catch(() => null);
        return text === null ? null : { worker: String(s.index), text };
      }),
    );
    return out.filter((x): x is { worker: string; text: string } => x !== null);
  }

  /**
   * Each listening worker's own readiness checks (its spool, its log writes, its limiter...), as
   * its Observability.checkAll answers them; a worker that does not answer within `budgetMs` is
   * left out (the 'workers' check counts the ones listening).
   */
  async workerChecks(budgetMs = SOURCE_TIMEOUT_MS): Promise<{ worker: string; checks: WorkerCheck[] }[]> {
    const out = await Promise.all(
      this.slots.map(async (s) => {
        if (!s.peer || !s.listening) return null;
        const checks = await Promise.race([
          s.peer.call<WorkerCheck[]>('checks'),
          new Promise<null>((r) => setTimeout(() => r(null), budgetMs + 250).unref()),
        ]).catch(() => null);
        return checks === null ? null : { worker: String(s.index), checks };
      }),
    );
    return out.filter((x): x is { worker: string; checks: WorkerCheck[] } => x !== null);
  }

  /** Stop restarting; ask each worker to finish its calls and hand over its events; kill one that takes over `graceMs`. */
  async close(graceMs = 30_000): Promise<void> {
    this.stopping = true;
    if (this.timer) clearInterval(this.timer);
    await Promise.all(
      this.slots.map(async (s) => {
        const w = s.worker;
        if (!w) return;
        const exited = new Promise<void>((r) => (w.isDead() ? r() : w.once('exit', () => r())));
        s.peer?.call('stop').catch(() => {});
        const kill = setTimeout(() => w.process.kill('SIGKILL'), graceMs);
        await exited;
        clearTimeout(kill);
      }),
    );
  }
}
