/**
 * Query strings already checked and parsed, so a client asking the same question again (the
 * payment server polling a customer's month) skips the checks: parsing a period's query was
 * a visible share of a kept answer's CPU (bench/billing-profile.ts). A parse is a pure function
 * of its key (the query string and what else the caller puts in the key), so a kept result is
 * the one a new parse would give. Only successes are kept; a query refused is refused again.
 * Keys come from requests: a full memory is emptied rather than grown, and a long key (a query
 * string can be as long as the request's headers allow) is parsed every time, never kept, so
 * the memory stays under MAX_ENTRIES x MAX_KEY_LENGTH characters of keys.
 */
const MAX_ENTRIES = 4096;
const MAX_KEY_LENGTH = 512;

export class QueryMemo<T> {
  private readonly kept = new Map<string, T>();

  /** The result of `parse` for `key`, from memory when kept. Kept results are shared: frozen by the caller. */
  get(key: string, parse: () => T): T {
    if (key.length > MAX_KEY_LENGTH) return parse();
    let v = this.kept.get(key);
    if (v === undefined) {
      v = parse();
      if (this.kept.size >= MAX_ENTRIES) this.kept.clear();
      this.kept.set(key, v);
    }
    return v;
  }
}
