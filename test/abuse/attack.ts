/**
 * One attack of the abuse suite (`npm run test:abuse`): what a misbehaving or hostile client
 * does, what meter promises, and what it observably did. Each area of the system keeps its
 * attacks in its own file here (gateway-fairness.ts, gateway-paths.ts, billing.ts, pipeline.ts,
 * ...); main.ts runs them all and prints one table.
 *
 * An attack starts what it needs itself (a gateway, a billing server, stack services through
 * test/support/stack.ts) and stops it before returning, whatever happens. It must be bounded in
 * time and traffic (loopback only) and must wait for conditions, not fixed times.
 */
export interface AttackResult {
  /** What was measured, in a few words with numbers ("p99 of key B 4.1 ms under 300 slow bodies"). */
  observed: string;
  ok: boolean;
}

export interface Attack {
  /** Short name, unique in the suite ("slow bodies from one key"). */
  name: string;
  /** The promise, in a few words ("other keys keep p99 < 50 ms"). */
  expected: string;
  run(ctx: AbuseCtx): Promise<AttackResult>;
}

export interface AbuseCtx {
  /** A fresh folder for this attack's files. */
  dir: string;
  log(msg: string): void;
}
