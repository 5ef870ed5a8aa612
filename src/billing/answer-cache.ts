/**
 * A bounded memory of finished answers (JSON, as text or bytes), each tagged with the versions it was
 * computed at (answer-versions.ts). An entry is used only while its tag equals the caller's;
 * otherwise the answer is computed again and replaces it. One computation per (key, tag) at a
 * time: callers that ask meanwhile share it.
 *
 * Bounded in entries and in bytes (oldest use evicted first); an answer larger than
 * maxEntryBytes is served but not kept, so a few large answers cannot push out many small ones.
 */

export interface AnswerCacheLimits {
  maxEntries: number;
  /** Sum of the kept answers' lengths (bytes of a Buffer; UTF-16 code units of a string). */
  maxBytes: number;
  maxEntryBytes: number;
}

export const DEFAULT_ANSWER_LIMITS: AnswerCacheLimits = { maxEntries: 10_000, maxBytes: 32 * 1024 * 1024, maxEntryBytes: 256 * 1024 };

/** What is kept: its length is what the bounds count. */
export type Answer = string | Buffer;

interface Entry<T extends Answer> {
  tag: string;
  text: T;
}

export interface AnswerCacheStats {
  hits: number;
  misses: number;
  entries: number;
  bytes: number;
}

export class AnswerCache<T extends Answer = string> {
  /** Map order is use order: the first entry is the least recently used. */
  private readonly entries = new Map<string, Entry<T>>();
  private readonly pending = new Map<string, { tag: string; text: Promise<T> }>();
  private bytes = 0;
  private hits = 0;
  private misses = 0;

  constructor(private readonly limits: AnswerCacheLimits = DEFAULT_ANSWER_LIMITS) {
    if (!(limits.maxEntries >= 1 && limits.maxBytes >= 1 && limits.maxEntryBytes >= 1)) throw new RangeError('answer cache limits must be >= 1');
  }

  /** The answer for `key` at `tag`: from memory, from a computation under way, or from `compute`. */
  get(key: string, tag: string, compute: () => Promise<T>): Promise<T> {
    const e = this.entries.get(key);
    if (e && e.tag === tag) {
      this.hits++;
      // Most recently used goes last.
      this.entries.delete(key);
      this.entries.set(key, e);
      return Promise.resolve(e.text);
    }
    const p = this.pending.get(key);
    if (p && p.tag === tag) {
      this.hits++;
      return p.text;
    }
    this.misses++;
    const text = compute();
    const mine = { tag, text };
    this.pending.set(key, mine);
    const forget = () => {
      if (this.pending.get(key) === mine) this.pending.delete(key);
    };
    text.then((t) => {
      forget();
      this.put(key, tag, t);
    }, forget);
    return text;
  }

  private put(key: string, tag: string, text: T): void {
    // Replaced whatever its tag: an entry at an older tag is only ever a miss, never wrong.
    const old = this.entries.get(key);
    if (old) {
      this.entries.delete(key);
      this.bytes -= old.text.length;
    }
    if (text.length > this.limits.maxEntryBytes) return;
    this.entries.set(key, { tag, text });
    this.bytes += text.length;
    for (const [k, v] of this.entries) {
      if (this.entries.size <= this.limits.maxEntries && this.bytes <= this.limits.maxBytes) break;
      this.entries.delete(k);
      this.bytes -= v.text.length;
    }
  }

  stats(): AnswerCacheStats {
    return { hits: this.hits, misses: this.misses, entries: this.entries.size, bytes: this.bytes };
  }
}
