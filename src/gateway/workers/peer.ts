/**
 * Calls between the gateway's primary process and its workers over the cluster IPC channel,
 * both ways. Calls made in the same tick travel as one message (a worker under load asks the
 * primary's limiter once per call: one message per call would cost a write and a read each).
 * The channel uses 'advanced' serialization (supervisor.ts), so Buffers pass as they are.
 */

export interface Channel {
  /** With a callback, a closed channel's error comes to it (without one, Node emits 'error'). */
  send(msg: unknown, callback?: (error: Error | null) => void): boolean;
  on(event: 'message', fn: (msg: unknown) => void): unknown;
}

type Handler = (...args: never[]) => unknown;

interface Batch {
  t: 'meter.peer';
  calls?: { id: number; m: string; a: unknown[] }[];
  replies?: { id: number; v?: unknown; e?: string }[];
}

function isBatch(m: unknown): m is Batch {
  return typeof m === 'object' && m !== null && (m as { t?: unknown }).t === 'meter.peer';
}

export class PeerClosedError extends Error {}

export class Peer {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private readonly handlers = new Map<string, Handler>();
  private out: Batch | null = null;
  private closed = false;

  constructor(private readonly ch: Channel) {
    ch.on('message', (msg) => {
      if (isBatch(msg)) this.receive(msg);
    });
  }

  /** Answer calls of `method` from the other side. */
  handle<A extends unknown[], R>(method: string, fn: (...args: A) => R | Promise<R>): void {
    this.handlers.set(method, fn as unknown as Handler);
  }

  call<R>(method: string, ...args: unknown[]): Promise<R> {
    if (this.closed) return Promise.reject(new PeerClosedError('the gateway primary process is gone'));
    const id = this.nextId++;
    return new Promise<R>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      (this.batch().calls ??= []).push({ id, m: method, a: args });
    });
  }

  /** Fail every call still waiting (the other side died). */
  close(reason = 'the other gateway process is gone'): void {
    this.closed = true;
    for (const p of this.pending.values()) p.reject(new PeerClosedError(reason));
    this.pending.clear();
  }

  private batch(): Batch {
    if (!this.out) {
      this.out = { t: 'meter.peer' };
      setImmediate(() => this.flush());
    }
    return this.out;
  }

  private flush(): void {
    const b = this.out;
    this.out = null;
    if (!b || this.closed) return;
    // The channel can close under us (the other process was killed): its calls cannot be answered.
    // The error comes synchronously or, for a channel already closed, to the callback: without a
    // callback Node emits it as an 'error' event, which killed the gateway's primary when a batch
    // was flushed just after a worker's kill -9 (fault suite, kill-9-gateway-worker-batched).
    const fail = (e: Error) => {
      for (const c of b.calls ?? []) {
        this.pending.get(c.id)?.reject(new PeerClosedError(e.message));
        this.pending.delete(c.id);
      }
    };
    try {
      this.ch.send(b, (e) => e && fail(e));
    } catch (e) {
      fail(e as Error);
    }
  }

  private receive(b: Batch): void {
    for (const r of b.replies ?? []) {
      const p = this.pending.get(r.id);
      if (!p) continue;
      this.pending.delete(r.id);
      if (r.e !== undefined) p.reject(new Error(r.e));
      else p.resolve(r.v);
    }
    for (const c of b.calls ?? []) {
      const fn = this.handlers.get(c.m);
      const reply = (v: unknown, e?: string) => {
        if (this.closed) return;
        (this.batch().replies ??= []).push(e === undefined ? { id: c.id, v } : { id: c.id, e });
      };
      if (!fn) {
        reply(undefined, `no handler for ${c.m}`);
        continue;
      }
      try {
        Promise.resolve((fn as (...a: unknown[]) => unknown)(...c.a)).then(
          (v) => reply(v),
          (e: unknown) => reply(undefined, (e as Error)?.message ?? String(e)),
        );
      } catch (e) {
        reply(undefined, (e as Error)?.message ?? String(e));
      }
    }
  }
}
