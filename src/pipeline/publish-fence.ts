/**
 * Ingest's fence: a process that lost a partition publishes nothing for it (docs/lake.md).
 *
 * A range's commit is sent before its files are renamed into the lake. The group coordinator
 * accepts a commit only from a current member of the current generation (Kafka refuses others
 * with UNKNOWN_MEMBER_ID / ILLEGAL_GENERATION / REBALANCE_IN_PROGRESS), and an accepted commit
 * resets the member's session, so no other member can be given the partition for a session
 * timeout after it was sent. Each rename must come within a lease of a third of that; past it
 * (the process was paused, or the upload was slow) the commit is sent again first, and a
 * refusal stops the publish. The partition's own `gone` flag (revoked, or retired by a new
 * assignment) stops it too. What is left is the time between the last check and the rename
 * request itself; the owner's overlap repair covers that (overlap-repair.ts).
 */
export class Fenced extends Error {
  constructor(why: string, cause?: unknown) {
    super(`not publishing: ${why}`, { cause });
    this.name = 'Fenced';
  }
}

export interface Leased {
  p: number;
  gone: boolean;
  /** performance.now() when the last accepted commit was sent; -Infinity before any. */
  leaseFrom: number;
  /** The consumer's assignment count when this state was made (LogConsumer.assignments). */
  assignment: number | undefined;
}

export class PublishFence {
  readonly leaseMs: number;

  /** `sessionTimeoutMs` undefined: the log has no group sessions (embedded: a lock file), no lease. */
  constructor(
    sessionTimeoutMs: number | undefined,
    private readonly commit: (p: number, next: number) => Promise<void>,
    private readonly assignment: () => number | undefined = () => undefined,
  ) {
    this.leaseMs = sessionTimeoutMs == null ? Infinity : Math.floor(sessionTimeoutMs / 3);
  }

  /** Commit `next` for the partition; the lease starts when the commit was sent. */
  async confirm(st: Leased, next: number): Promise<void> {
    this.owned(st);
    const sent = performance.now();
    await this.commit(st.p, next);
    // accepted from this member, but maybe in a newer generation that gave the partition away
    this.owned(st);
    st.leaseFrom = sent;
  }

  private owned(st: Leased): void {
    if (st.gone) throw new Fenced(`partition ${st.p} was revoked`);
    if (st.assignment !== this.assignment()) throw new Fenced(`partition ${st.p} belongs to an earlier assignment of this consumer`);
  }

  /** Right before a rename: throws Fenced unless the partition is still this process's. */
  async check(st: Leased, next: number): Promise<void> {
    this.owned(st);
    if (performance.now() - st.leaseFrom <= this.leaseMs) return;
    try {
      await this.confirm(st, next);
    } catch (e) {
      if (e instanceof Fenced) throw e;
      throw new Fenced(`partition ${st.p}: the group refused the commit that renews the lease (${(e as Error).message})`, e);
    }
  }
}
