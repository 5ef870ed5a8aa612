/**
 * One send at a time; what is queued meanwhile goes together in the next send, up to `maxBytes`
 * (the first item is taken whatever its size). Used where overlapping sends are unsafe: the Kafka
 * producer (src/log/kafka/producer.ts) and the events API's log appender
 * (src/billing/events/log-appender.ts); their comments say why.
 */
export class SerialBatches<T extends { readonly bytes: number }> {
  private readonly queue: T[] = [];
  private running = false;

  /** `send` settles every item of its batch itself and never throws. */
  constructor(
    private readonly maxBytes: number,
    private readonly send: (batch: T[]) => Promise<void>,
  ) {}

  /** Queues `item`; the send that takes it starts once the one running, if any, has ended. */
  push(item: T): void {
    this.queue.push(item);
    void this.drain();
  }

  /** Takes `item` back if no send has taken it yet; false if one has. */
  remove(item: T): boolean {
    const i = this.queue.indexOf(item);
    if (i < 0) return false;
    this.queue.splice(i, 1);
    return true;
  }

  private async drain(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      while (this.queue.length) await this.send(this.take());
    } finally {
      this.running = false;
    }
  }

  /** The queue's first item and as many after it as fit in maxBytes together. */
  private take(): T[] {
    const batch: T[] = [];
    let bytes = 0;
    for (let next = this.queue[0]; next !== undefined; next = this.queue[0]) {
      if (batch.length && bytes + next.bytes > this.maxBytes) break;
      this.queue.shift();
      batch.push(next);
      bytes += next.bytes;
    }
    return batch;
  }
}
