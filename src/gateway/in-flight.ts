/**
 * In-flight limits: how many calls one API key, and one customer (all its keys), may have open
 * at the gateway at once, from the upstream request until the answer is done. Over either, the
 * call is refused at once (429 too_many_concurrent_requests) instead of waiting. The upstream
 * pool (proxy.ts, 256 connections) can then hold at most `perCustomer` calls of one customer,
 * however slowly that customer sends or reads: the rest stays for everyone else.
 *
 * Limits come per plan from the catalog (`inFlight: { perKey, perCustomer }`), else the
 * gateway's defaults (inFlightPerKey, inFlightPerCustomer settings). Counts live in memory per
 * gateway process (a slot is a socket of this process; nothing to share between processes).
 */
export interface InFlightLimit {
  perKey: number;
  perCustomer: number;
}

export interface InFlightRefusal {
  scope: 'key' | 'customer';
  limit: number;
}

export interface InFlightStats {
  /** Calls holding a slot now. */
  open: number;
  /** Calls refused because their key or customer had too many open. */
  refusedKey: number;
  refusedCustomer: number;
}

export class InFlight {
  private readonly byKey = new Map<string, number>();
  private readonly byCustomer = new Map<string, number>();
  private open = 0;
  private refusedKey = 0;
  private refusedCustomer = 0;

  /** A slot for one call, or why not. Call the returned release once the call is over (extra calls are ignored). */
  acquire(keyId: string, customer: string, limit: InFlightLimit): (() => void) | InFlightRefusal {
    const k = this.byKey.get(keyId) ?? 0;
    if (k >= limit.perKey) {
      this.refusedKey++;
      return { scope: 'key', limit: limit.perKey };
    }
    const c = this.byCustomer.get(customer) ?? 0;
    if (c >= limit.perCustomer) {
      this.refusedCustomer++;
      return { scope: 'customer', limit: limit.perCustomer };
    }
    this.byKey.set(keyId, k + 1);
    this.byCustomer.set(customer, c + 1);
    this.open++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.open--;
      dec(this.byKey, keyId);
      dec(this.byCustomer, customer);
    };
  }

  /** Open calls of one key / customer (0 when none): for tests and health. */
  openFor(keyId: string, customer: string): { key: number; customer: number } {
    return { key: this.byKey.get(keyId) ?? 0, customer: this.byCustomer.get(customer) ?? 0 };
  }

  stats(): InFlightStats {
    return { open: this.open, refusedKey: this.refusedKey, refusedCustomer: this.refusedCustomer };
  }
}

/** Maps hold only keys and customers with open calls: memory follows the open calls, not history. */
function dec(m: Map<string, number>, k: string): void {
  const n = (m.get(k) ?? 1) - 1;
  if (n <= 0) m.delete(k);
  else m.set(k, n);
}

/** Plan id -> its limit: the catalog's where a plan sets one (either field), the defaults for the rest. */
export function planInFlight(plans: Record<string, { inFlight?: Partial<InFlightLimit> | null }>, defaults: InFlightLimit): Record<string, InFlightLimit> {
  const out: Record<string, InFlightLimit> = {};
  for (const [id, p] of Object.entries(plans))
    out[id] = { perKey: p.inFlight?.perKey ?? defaults.perKey, perCustomer: p.inFlight?.perCustomer ?? defaults.perCustomer };
  return out;
}
